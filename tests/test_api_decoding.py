"""Token-level API methods on tiny local models: nudging, Co-LLM, switch generation, mentor collab."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mocoflow.data.prompts import build_prompt
from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig
from mocoflow.methods import METHODS
from mocoflow.methods.api._shared import Cursor, greedy_patch
from mocoflow.methods.api.co_llm import defer_labels, teacher_forced
from mocoflow.methods.api.mentor_collab import decide, mentor_decode
from mocoflow.methods.api.nudging import nudge_decode
from mocoflow.methods.base import EngineProvider, RunContext
from mocoflow.models import ModelRef

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def engines(tiny_model_dir, tiny_llama_dir, tiny_model_other_tokenizer_dir, tiny_answer_a_model_dir):
    from mocoflow.engines.transformers_engine import TransformersEngine

    paths = {
        "rand": tiny_model_dir,
        "llama": tiny_llama_dir,
        "other": tiny_model_other_tokenizer_dir,
        "ans_a": tiny_answer_a_model_dir,
    }
    return {n: TransformersEngine(n, p, device="cpu") for n, p in paths.items()}


def mc(i: int, split: str) -> Item:
    return Item(
        id=f"{split}{i}",
        task="t",
        split=split,
        task_type="multiple_choice",
        question=f"Which option {i}?",
        choices={"A": "yes", "B": "no"},
        gold="A",
    )


def rec(output: str) -> dict:
    return {"output": output, "mean_logprob": -1.0, "prompt_tokens": 10, "generated_tokens": 3}


def f1(i: int, split: str) -> Item:
    return Item(
        id=f"{split}{i}",
        task="t",
        split=split,
        task_type="f1_match",
        question=f"Which option {i}?",
        gold=["Answer A"],
    )


def make_ctx(engines, names, gens, n_dev=2, n_test=2, max_new_tokens=8, item=mc):
    sizes = {"rand": 10, "llama": 30, "other": 20, "ans_a": 40, "ans_b": 40}
    refs = [
        ModelRef(name=n, path=str(engines[n].path), card={"parameters": sizes[n], "tokenizer": "t"}, spec={})
        for n in names
    ]
    items = {"dev": [item(i, "dev") for i in range(n_dev)], "test": [item(i, "test") for i in range(n_test)]}
    return RunContext(
        run="r",
        pool_name="p",
        pool=refs,
        task="t",
        items=items,
        generations=gens,
        decoding=DecodingConfig(max_new_tokens=max_new_tokens),
        engines=EngineProvider(lambda ref: engines[ref.name]),
        workdir=Path("."),
    )


def dev_gens(names, n_dev=2, right=("ans_a",)):
    return {
        n: {"dev": {f"dev{i}": rec("Answer: A" if n in right else "Answer: B") for i in range(n_dev)}}
        for n in names
    }


# -- nudging --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nudger", ["llama", "other"])  # same and different tokenizer
def test_nudging_inserts_exactly_where_base_top1_is_below_gamma(engines, nudger):
    base = engines["rand"]
    probe = Cursor(base, "Which option 0?")
    solo, _, _ = greedy_patch(probe, "", 10)
    never, trace0, _ = nudge_decode(base, engines[nudger], "Which option 0?", gamma=0.0, max_new_tokens=10)
    assert never == solo and not any(n for _, n in trace0)
    always, trace1, cur = nudge_decode(
        base, engines[nudger], "Which option 0?", gamma=1.01, max_new_tokens=10
    )
    assert all(n for _, n in trace1) and cur[0].spent_generated == 0  # the base never wrote a token
    probs = sorted(p for p, _ in trace0)
    gamma = probs[len(probs) // 2]  # a gamma between the base's confidences: some steps nudge, some don't
    text, trace, _ = nudge_decode(base, engines[nudger], "Which option 0?", gamma=gamma, max_new_tokens=10)
    assert trace and all(nudged == (p < gamma) for p, nudged in trace)
    assert any(n for _, n in trace)


def test_nudging_method_records_nudges_and_costs(engines):
    ctx = make_ctx(engines, ["rand", "other"], {}, max_new_tokens=6)
    preds = METHODS.get("nudging")({"gamma": 0.9}).run(ctx)
    assert all(p["answered_by"] == "other" and p["nudger"] == "rand" for p in preds)  # base = largest
    assert all(p["new_generated_tokens"] > 0 and p["prompt_tokens"] > 0 for p in preds)


# -- Co-LLM ---------------------------------------------------------------------------------------------


def test_co_llm_labels_are_tokens_the_assistant_predicts_better(engines):
    g_lp, hs, tail = teacher_forced(engines["rand"], "Which option 0?", "Answer: A", hidden=True)
    a_lp, _, _ = teacher_forced(engines["ans_a"], "Which option 0?", "Answer: A", hidden=False)
    assert hs.shape == (len(tail), 64) and len(g_lp) == len(tail)
    # manual check of one token's log-prob under the generator
    eng = engines["rand"]
    from mocoflow.engines.loader import encode_prompts

    head = encode_prompts(eng.tokenizer, ["Which option 0?"])[0]
    logits = eng.model(input_ids=torch.tensor([head + tail])).logits[0]
    manual = torch.log_softmax(logits[len(head)].detach().float(), -1)[tail[1]]
    assert float(manual) == pytest.approx(float(g_lp[1]), abs=1e-4)
    labels = defer_labels(g_lp, a_lp)
    assert labels.tolist() == [float(a > g) for a, g in zip(a_lp, g_lp, strict=True)]
    assert labels.mean() > 0.5  # the answer-A model knows "Answer: A" far better than a random model


def test_co_llm_defers_where_trained_to(engines):
    gens = dev_gens(["rand", "ans_a"], n_dev=3)
    ctx = make_ctx(engines, ["rand", "ans_a"], gens, n_dev=3, max_new_tokens=6)
    method = METHODS.get("co_llm")({})
    preds = method.run(ctx)
    # trained on dev references "Answer: A" the assistant predicts better: it defers and answers A
    assert all(p["deferred_tokens"] > 0 and p["assistant"] == "ans_a" for p in preds)
    assert all(p["output"].startswith("Answer") and p["output"].endswith("A") for p in preds)
    assert preds[0]["training_seconds"] > 0 and preds[0]["train_items"] == 3
    # decoding follows the head exactly: deferred tokens are the assistant's, the others the generator's
    gen, asst = method.roles(ctx)
    head, _ = method.train(ctx, gen, asst)
    tokens, deferred, _ = method.decode(engines["rand"], engines["ans_a"], head, "Which option 0?", 6)
    g, a = Cursor(engines["rand"], "Which option 0?"), Cursor(engines["ans_a"], "Which option 0?")
    for tok, d in zip(tokens, deferred, strict=True):
        assert tok == (a.top()[0] if d else g.top()[0])
        g.feed_token(tok, 0)
        a.feed_token(tok, 0)
    never = METHODS.get("co_llm")({"threshold": 1.01}).run(ctx)
    assert all(p["deferred_tokens"] == 0 for p in never)


def test_co_llm_needs_one_tokenizer():
    from mocoflow.methods.base import MethodError

    refs = [ModelRef("a", "/x", {"tokenizer": "t1"}, {}), ModelRef("b", "/x", {"tokenizer": "t2"}, {})]
    with pytest.raises(MethodError, match="tokenizer"):
        METHODS.get("co_llm")({}).check_pool(refs)


# -- switch generation ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def answer_b_engine(tmp_path_factory):
    """A tiny model trained to answer "Answer: B" to exactly the prompt of ``same_q`` items."""
    from mocoflow.data.prompts import build_prompt
    from mocoflow.engines.transformers_engine import TransformersEngine
    from mocoflow.testing import build_tiny_model, train_tiny_model_briefly

    path = build_tiny_model(tmp_path_factory.mktemp("ans-b"), arch="gpt2", seed=3)
    train_tiny_model_briefly(path, ["Answer: B"], steps=30, prompt=build_prompt(same_q(0, "dev")))
    return TransformersEngine("ans_b", path, device="cpu")


def same_q(i: int, split: str) -> Item:
    return Item(
        id=f"{split}{i}",
        task="t",
        split=split,
        task_type="multiple_choice",
        question="Which option?",
        choices={"A": "yes", "B": "no"},
        gold="B",
    )


def test_switch_generation_selector_learns_from_dev_rollouts(engines, answer_b_engine):
    from mocoflow.methods.common import score_output

    engines = {**engines, "ans_b": answer_b_engine}
    solo, _, _ = greedy_patch(Cursor(answer_b_engine, build_prompt(same_q(0, "dev"))), "", 8)
    assert score_output(same_q(0, "dev"), solo)
    # shared dev generations favour "rand" (the tie-break): only the rollouts can teach the selector that
    # letting ans_b write gets the gold answer
    gens = {
        n: {"dev": {f"dev{i}": rec("Answer: B" if n == "rand" else "no") for i in range(2)}}
        for n in ("rand", "ans_b")
    }
    ctx = make_ctx(engines, ["rand", "ans_b"], gens, n_dev=2, max_new_tokens=8, item=same_q)
    preds = METHODS.get("switch_generation")({"patch_tokens": 4, "random_rollouts": 1}).run(ctx)
    assert all(set(p["writers"]) == {"ans_b"} and p["output"] == solo for p in preds)
    assert preds[0]["training_rollouts"] == 2 * (2 + 1)
    assert preds[0]["training_generated_tokens"] > 0 and preds[0]["training_seconds"] > 0
    rr = METHODS.get("switch_generation")({"patch_tokens": 2, "selector": "round_robin"}).run(
        make_ctx(engines, ["rand", "other"], {}, max_new_tokens=8)
    )
    for p in rr:
        assert p["writers"] == ["rand", "other", "rand", "other"][: len(p["writers"])]
        assert p["new_generated_tokens"] > 0


def test_cursor_restore_matches_a_fresh_decode(engines):
    c = Cursor(engines["rand"], "Which option 1?")
    snap = c.snapshot()
    first, _, _ = greedy_patch(c, "", 5)
    c.restore(snap)
    c.sync("Answer")
    fresh = Cursor(engines["rand"], "Which option 1?")
    fresh.sync("Answer")
    assert torch.allclose(c.logp, fresh.logp, atol=1e-5)
    c.restore(snap)
    again, _, _ = greedy_patch(c, "", 5)
    assert again == first


# -- mentor collab ----------------------------------------------------------------------------------------


def test_decide_honours_the_percentage():
    for p in (0, 10, 25, 50, 100, 33.3):
        made = np.cumsum([decide(k, p) for k in range(1, 201)])
        assert all(made[k - 1] == math.floor(k * p / 100) for k in range(1, 201))


@pytest.mark.parametrize("proportion", [0, 50, 100])
def test_mentor_collab_makes_the_configured_share_of_decisions(engines, proportion):
    text, stats, cursors = mentor_decode(
        engines["rand"],
        engines["llama"],
        "Which option 1?",
        proportion=proportion,
        patch_tokens=2,
        max_new_tokens=16,
    )
    assert stats["divergences"] > 0
    assert stats["decisions"] == math.floor(stats["divergences"] * proportion / 100)
    if proportion == 0:  # never decides: exactly the generator's greedy output, mentor only reads
        solo, _, _ = greedy_patch(Cursor(engines["rand"], "Which option 1?"), "", 16)
        assert text == solo and cursors[1].spent_generated == 0


def test_mentor_collab_method_records_costs(engines):
    ctx = make_ctx(engines, ["rand", "ans_a"], dev_gens(["rand", "ans_a"]), max_new_tokens=6)
    preds = METHODS.get("mentor_collab")({"decision_proportion": 100, "patch_tokens": 3}).run(ctx)
    assert all(p["answered_by"] == "rand" and p["mentor"] == "ans_a" for p in preds)
    assert all(p["decisions"] == p["divergences"] and p["new_generated_tokens"] > 0 for p in preds)
    with pytest.raises(ValueError, match="percentage"):
        METHODS.get("mentor_collab")({"decision_proportion": 150})
