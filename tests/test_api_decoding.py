"""Token-level API methods on tiny local models: nudging, Co-LLM, switch generation, mentor collab.

Each method decodes many items in lockstep through ``Stepper``s; the tests check the mechanisms on single
items, then that decoding a batch (prompts of different lengths, rows finishing early) gives exactly what
decoding each item alone gives.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mocoflow.data.prompts import build_prompt
from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.stepper import greedy_patches
from mocoflow.methods import METHODS
from mocoflow.methods.api.co_llm import defer_labels, teacher_forced
from mocoflow.methods.api.mentor_collab import decide, mentor_decode
from mocoflow.methods.api.nudging import nudge_decode
from mocoflow.methods.base import EngineProvider, RunContext, TaskScorer
from mocoflow.models import ModelRef

torch.set_num_threads(1)

# prompts of different lengths (real left padding); the answer-A model ends early on them
PROMPTS = ["Which option 0?", "Answer the question. Which option is correct? A) yes B) no C) maybe",
           "What is 2 + 3?", "hi"]
score_output = TaskScorer()  # the task's scorer, as a run's ctx.score grades outputs


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


SIZES = {"rand": 10, "llama": 30, "other": 20, "ans_a": 40, "ans_b": 40}


def make_ctx(engines, names, gens, n_dev=2, n_test=2, max_new_tokens=8, item=mc, sizes=None, batch_size=8,
             tokenizers=None):
    sizes = sizes or SIZES
    refs = [
        ModelRef(name=n, path=str(engines[n].path),
                 card={"parameters": sizes[n], "tokenizer": (tokenizers or {}).get(n, "t")}, spec={})
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
        decoding=DecodingConfig(max_new_tokens=max_new_tokens, batch_size=batch_size),
        engines=EngineProvider(lambda ref: engines[ref.name]),
        workdir=Path("."),
    )


def dev_gens(names, n_dev=2, right=("ans_a",)):
    return {
        n: {"dev": {f"dev{i}": rec("Answer: A" if n in right else "Answer: B") for i in range(n_dev)}}
        for n in names
    }


def solo_greedy(engine, prompt: str, n: int) -> str:
    stepper = engine.stepper([prompt])
    return greedy_patches(stepper, [0], n)[0].text


# -- nudging --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nudger", ["llama", "other"])  # same and different tokenizer
def test_nudging_inserts_exactly_where_base_top1_is_below_gamma(engines, nudger):
    base = engines["rand"]
    solo = solo_greedy(base, "Which option 0?", 10)
    (never,) = nudge_decode(base, engines[nudger], ["Which option 0?"], gamma=0.0, max_new_tokens=10)
    assert never.text == solo and not any(n for _, n in never.trace)
    (always,) = nudge_decode(base, engines[nudger], ["Which option 0?"], gamma=1.01, max_new_tokens=10)
    assert all(n for _, n in always.trace) and always.model_costs[0]["generated_tokens"] == 0  # base wrote none
    probs = sorted(p for p, _ in never.trace)
    gamma = probs[len(probs) // 2]  # a gamma between the base's confidences: some steps nudge, some don't
    (some,) = nudge_decode(base, engines[nudger], ["Which option 0?"], gamma=gamma, max_new_tokens=10)
    assert some.trace and all(nudged == (p < gamma) for p, nudged in some.trace)
    assert any(n for _, n in some.trace)


@pytest.mark.parametrize(("nudger", "share"), [("ans_a", False), ("ans_a", True), ("other", False)])
def test_nudging_batch_equals_one_item_at_a_time(engines, nudger, share):
    """Text exchange, and token-id exchange (one tokenizer): same answers, traces and costs."""
    base = engines["llama"]
    (probe,) = nudge_decode(base, engines[nudger], [PROMPTS[1]], gamma=0.0, max_new_tokens=12)
    probs = sorted({p for p, _ in probe.trace})
    gamma = (probs[len(probs) // 2 - 1] + probs[len(probs) // 2]) / 2  # strictly between two confidences
    kw = {"gamma": gamma, "max_new_tokens": 12, "share_tokens": share}
    batch = nudge_decode(base, engines[nudger], PROMPTS, **kw)
    alone = [nudge_decode(base, engines[nudger], [p], **kw)[0] for p in PROMPTS]
    assert [b.text for b in batch] == [a.text for a in alone]
    assert [[n for _, n in b.trace] for b in batch] == [[n for _, n in a.trace] for a in alone]
    for b, a in zip(batch, alone, strict=True):
        assert [p for p, _ in b.trace] == pytest.approx([p for p, _ in a.trace], abs=1e-5)
    assert [b.cost for b in batch] == [a.cost for a in alone]  # a model reads the other's tokens when needed
    refilled = nudge_decode(base, engines[nudger], PROMPTS, batch_size=2, **kw)  # rows joining as others end
    assert len(PROMPTS) > 2
    assert [(r.text, [n for _, n in r.trace], r.cost) for r in refilled] == [
        (a.text, [n for _, n in a.trace], a.cost) for a in alone]
    with pytest.MonkeyPatch.context() as mp:  # caches that cannot be joined: fixed batches of 2
        mp.setattr("mocoflow.engines.stepper._plain_layers", lambda past: False)
        fixed = nudge_decode(base, engines[nudger], PROMPTS, batch_size=2, **kw)
    assert [r.text for r in fixed] == [a.text for a in alone]
    assert any(b.nudger_tokens for b in batch) and any(b.base_tokens for b in batch)
    assert len({b.steps for b in batch}) > 1 or any(b.steps < 12 for b in batch)  # rows end at different steps


def test_nudging_method_records_nudges_costs_and_reliance(engines):
    ctx = make_ctx(engines, ["rand", "other"], {}, max_new_tokens=6)
    preds = METHODS.get("nudging")({"gamma": 0.9}).run(ctx)
    assert all(p["answered_by"] == "other" and p["nudger"] == "rand" for p in preds)  # base = largest
    assert all(p["new_generated_tokens"] > 0 and p["prompt_tokens"] > 0 for p in preds)
    reliance = ctx.decisions["reliance"]
    assert set(reliance) == {"other", "rand"} and sum(reliance.values()) == pytest.approx(1.0)
    assert reliance["rand"] > 0  # gamma 0.9 on a random base: the nudger writes words
    assert ctx.decisions["roles"] == {"base": "other", "nudger": "rand"}
    json.dumps(ctx.decisions, allow_nan=False)  # decisions.json material


def test_nudging_roles_of_one_size_follow_dev_accuracy(engines):
    same = {n: 10 for n in SIZES}
    gens = dev_gens(["rand", "llama", "ans_a"], right=("llama",))  # llama is the only one right on dev
    gens["ans_a"]["dev"]["dev0"] = rec("Answer: A")  # ans_a second best
    ctx = make_ctx(engines, ["llama", "rand", "ans_a"], gens, max_new_tokens=4, sizes=same)
    METHODS.get("nudging")({}).run(ctx)
    # not pool order (last = base, first = nudger): the best on dev is the base, the next best nudges
    assert ctx.decisions["roles"] == {"base": "llama", "nudger": "ans_a"}
    assert METHODS.get("nudging")({"base": "rand", "nudger": "llama"}).needs == frozenset(
        {n for n in METHODS.get("nudging")({}).needs if n.value != "dev_generations"})


# -- Co-LLM ---------------------------------------------------------------------------------------------


def test_co_llm_labels_are_tokens_the_assistant_predicts_better(engines):
    ((g_lp, hs, tail),) = teacher_forced(engines["rand"], ["Which option 0?"], ["Answer: A"], hidden=True)
    ((a_lp, _, _),) = teacher_forced(engines["ans_a"], ["Which option 0?"], ["Answer: A"], hidden=False)
    assert hs.shape == (len(tail), 64) and len(g_lp) == len(tail)
    # manual check of every token's log-prob and hidden state under the generator
    eng = engines["rand"]
    head = eng.encode(["Which option 0?"])[0]
    with torch.no_grad():
        out = eng.model(input_ids=torch.tensor([head + tail]), output_hidden_states=True)
    manual = torch.log_softmax(out.logits[0].float(), -1)
    for j, tok in enumerate(tail):
        assert float(manual[len(head) - 1 + j, tok]) == pytest.approx(float(g_lp[j]), abs=1e-4)
    assert np.allclose(hs, out.hidden_states[-1][0, len(head) - 1:-1].numpy(), atol=1e-4)
    labels = defer_labels(g_lp, a_lp)
    assert labels.tolist() == [float(a > g) for a, g in zip(a_lp, g_lp, strict=True)]
    assert labels.mean() > 0.5  # the answer-A model knows "Answer: A" far better than a random model
    # a batch of prompts of different lengths gives each prompt's own result
    batch = teacher_forced(engines["rand"], PROMPTS, ["Answer: A", "no", "5", "Answer: B"], hidden=True)
    for prompt, cont, (lp, h, t) in zip(PROMPTS, ["Answer: A", "no", "5", "Answer: B"], batch, strict=True):
        ((lp1, h1, t1),) = teacher_forced(engines["rand"], [prompt], [cont], hidden=True)
        assert t == t1 and np.allclose(lp, lp1, atol=1e-4) and np.allclose(h, h1, atol=1e-4)


def test_co_llm_defers_where_trained_to(engines):
    gens = dev_gens(["rand", "ans_a"], n_dev=3)
    ctx = make_ctx(engines, ["rand", "ans_a"], gens, n_dev=3, max_new_tokens=6)
    method = METHODS.get("co_llm")({})
    preds = method.run(ctx)
    # trained on dev references "Answer: A" the assistant predicts better: it defers and answers A
    assert all(p["deferred_tokens"] > 0 and p["assistant"] == "ans_a" for p in preds)
    assert all(p["output"].startswith("Answer") and p["output"].endswith("A") for p in preds)
    assert preds[0]["training_seconds"] > 0 and preds[0]["train_items"] == 3
    assert 0 < ctx.decisions["defer_rate"] <= 1
    assert ctx.decisions["reliance"]["ans_a"] == pytest.approx(ctx.decisions["defer_rate"])
    json.dumps(ctx.decisions, allow_nan=False)
    # decoding follows the head exactly: deferred tokens are the assistant's, the others the generator's
    gen, asst = method.roles(ctx)
    head, _ = method.train(ctx, gen, asst)
    (res,) = method.decode(engines["rand"], engines["ans_a"], head, ["Which option 0?"], 6)
    g, a = engines["rand"].stepper(["Which option 0?"]), engines["ans_a"].stepper(["Which option 0?"])
    for tok, d in zip(res.tokens, res.deferred, strict=True):
        assert tok == (a.top([0])[0][0] if d else g.top([0])[0][0])
        g.feed_tokens({0: [tok]})
        a.feed_tokens({0: [tok]})
    never = METHODS.get("co_llm")({"threshold": 1.01}).run(ctx)
    assert all(p["deferred_tokens"] == 0 for p in never)


def test_co_llm_batch_equals_one_item_at_a_time(engines):
    gens = dev_gens(["rand", "ans_a"], n_dev=3)
    ctx = make_ctx(engines, ["rand", "ans_a"], gens, n_dev=3)
    method = METHODS.get("co_llm")({})
    gen, asst = method.roles(ctx)
    head, _ = method.train(ctx, gen, asst)
    batch = method.decode(engines["rand"], engines["ans_a"], head, PROMPTS, 10)
    alone = [method.decode(engines["rand"], engines["ans_a"], head, [p], 10)[0] for p in PROMPTS]
    assert [(r.tokens, r.deferred, r.cost) for r in batch] == [(r.tokens, r.deferred, r.cost) for r in alone]
    assert any(any(r.deferred) for r in batch)
    assert len({len(r.tokens) for r in batch}) > 1  # rows of different lengths (some end early)


def test_co_llm_trains_on_gold_where_no_pool_answer_is_correct(engines):
    """The docstring's rule: a correct pool generation, else the gold answer; skip only items with neither."""
    gens = dev_gens(["rand", "ans_a"], n_dev=3, right=())  # no pool model is right on dev
    ctx = make_ctx(engines, ["rand", "ans_a"], gens, n_dev=3, max_new_tokens=4)
    method = METHODS.get("co_llm")({})
    _, info = method.train(ctx, *method.roles(ctx))
    assert info["train_items"] == 3  # gold "Answer: A" stands in for every item
    no_gold = [Item(id=f"dev{i}", task="t", split="dev", task_type="noncompliance", question="q") for i in range(3)]
    ctx.items["dev"] = no_gold + ctx.items["dev"][:1]
    _, info = method.train(ctx, *method.roles(ctx))
    assert info["train_items"] == 1  # noncompliance items have no gold answer and no correct generation


def test_co_llm_needs_one_tokenizer():
    from mocoflow.methods.base import MethodError

    refs = [ModelRef("a", "/x", {"tokenizer": "t1"}, {}), ModelRef("b", "/x", {"tokenizer": "t2"}, {})]
    with pytest.raises(MethodError, match="tokenizer"):
        METHODS.get("co_llm")({}).check_pool(refs)


# -- switch generation ------------------------------------------------------------------------------------


def kind_prompts() -> list[str]:
    return [build_prompt(two_kinds(i, "test")) for i in range(2)] + [build_prompt(same_q(0, "dev"))]


@pytest.fixture(scope="module")
def kind_models(tmp_path_factory) -> dict[str, Path]:
    """Two tiny models trained on the prompts of ``two_kinds`` and ``same_q`` items: one always answers
    "Answer: A", the other "Answer: B"."""
    from mocoflow.testing import build_tiny_model, train_tiny_model_on_pairs

    root = tmp_path_factory.mktemp("kinds")
    out = {}
    for name, reply, seed in (("ans_a", "Answer: A", 2), ("ans_b", "Answer: B", 3)):
        path = build_tiny_model(root / name, arch="gpt2", seed=seed)
        out[name] = train_tiny_model_on_pairs(path, [(p, reply) for p in kind_prompts()], steps=30)
    return out


@pytest.fixture(scope="module")
def kind_engines(kind_models):
    from mocoflow.engines.transformers_engine import TransformersEngine

    return {n: TransformersEngine(n, p, device="cpu") for n, p in kind_models.items()}


@pytest.fixture(scope="module")
def answer_b_engine(kind_engines):
    return kind_engines["ans_b"]


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


def two_kinds(i: int, split: str) -> Item:
    """Even items ask about apples (gold A), odd items about zebras (gold B)."""
    kind = ("Is an apple a fruit?", "A") if i % 2 == 0 else ("Is a zebra a fruit?", "B")
    return Item(id=f"{split}{i}", task="t", split=split, task_type="multiple_choice", question=kind[0],
                choices={"A": "yes", "B": "no"}, gold=kind[1])


def test_switch_generation_selector_learns_from_dev_rollouts(engines, answer_b_engine):
    engines = {**engines, "ans_b": answer_b_engine}
    solo = solo_greedy(answer_b_engine, build_prompt(same_q(0, "dev")), 8)
    assert score_output(same_q(0, "dev"), solo)
    # shared dev generations favour "rand" (the tie-break): only the rollouts can teach the selector that
    # letting ans_b write gets the gold answer
    gens = {
        n: {"dev": {f"dev{i}": rec("Answer: B" if n == "rand" else "no") for i in range(2)}}
        for n in ("rand", "ans_b")
    }
    ctx = make_ctx(engines, ["rand", "ans_b"], gens, n_dev=2, max_new_tokens=8, item=same_q)
    preds = METHODS.get("switch_generation")({"patch_tokens": 4, "random_rollouts": 1, "embedder": "hash"}).run(ctx)
    assert all(set(p["writers"]) == {"ans_b"} and p["output"] == solo for p in preds)
    assert preds[0]["training_rollouts"] == 2 * (2 + 1)
    assert preds[0]["training_generated_tokens"] > 0 and preds[0]["training_seconds"] > 0
    assert ctx.decisions["schedules"] == {p["id"]: p["writers"] for p in preds}
    assert ctx.decisions["reliance"] == {"rand": 0.0, "ans_b": 1.0}
    json.dumps(ctx.decisions, allow_nan=False)
    rr = METHODS.get("switch_generation")({"patch_tokens": 2, "selector": "round_robin"}).run(
        make_ctx(engines, ["rand", "other"], {}, max_new_tokens=8)
    )
    for p in rr:
        assert p["writers"] == ["rand", "other", "rand", "other"][: len(p["writers"])]
        assert p["new_generated_tokens"] > 0


def test_switch_generation_schedules_follow_the_question(engines, kind_engines):
    """Apple questions need the answer-A model, zebra questions the answer-B model: a selector that reads the
    question gives the two kinds different schedules and beats every fixed schedule."""
    from itertools import product

    from mocoflow.methods.api.switch_generation import n_patches, switch_decode
    from mocoflow.methods.common import prompts_for

    engines = {**engines, **kind_engines}
    names = ["ans_a", "ans_b"]
    gens = {n: {"dev": {f"dev{i}": rec("Answer: A") for i in range(6)}} for n in names}  # dev ties
    ctx = make_ctx(engines, names, gens, n_dev=6, n_test=6, max_new_tokens=8, item=two_kinds)
    preds = METHODS.get("switch_generation")({"patch_tokens": 4, "random_rollouts": 1, "embedder": "hash"}).run(ctx)
    test = ctx.items["test"]
    accuracy = sum(score_output(i, p["output"]) for i, p in zip(test, preds, strict=True)) / len(test)
    schedules = {tuple(p["writers"]) for p in preds}
    assert len(schedules) > 1  # per-item schedules differ
    assert {tuple(preds[0]["writers"]), tuple(preds[1]["writers"])} == schedules  # by kind
    horizon = n_patches(8, 4)
    fixed_acc = []
    for schedule in product(names, repeat=horizon):
        outs = switch_decode(engines, prompts_for(test), lambda rows, k, texts, s=schedule: [s[k]] * len(rows),
                             4, 8)
        fixed_acc.append(sum(score_output(i, o.text) for i, o in zip(test, outs, strict=True)) / len(test))
    assert accuracy > max(fixed_acc)
    assert accuracy == 1.0
    assert ctx.decisions["reliance"]["ans_a"] > 0 and ctx.decisions["reliance"]["ans_b"] > 0


def test_switch_generation_batch_equals_one_item_at_a_time(engines):
    from mocoflow.methods.api.switch_generation import switch_decode

    pool = {n: engines[n] for n in ("rand", "ans_a", "other")}  # mixed tokenizers: whole-word patches
    names = list(pool)

    def choose(rows, k, texts):
        return [names[(k + len(t)) % 3] for t in texts]  # depends on the row's own text only

    batch = switch_decode(pool, PROMPTS, choose, 3, 12, whole_words=True)
    alone = [switch_decode(pool, [p], choose, 3, 12, whole_words=True)[0] for p in PROMPTS]
    assert [(b.text, b.writers, b.cost) for b in batch] == [(a.text, a.writers, a.cost) for a in alone]
    assert len({len(b.writers) for b in batch}) > 1  # some rows end early


# -- mentor collab ----------------------------------------------------------------------------------------


def test_decide_honours_the_percentage():
    for p in (0, 10, 25, 50, 100, 33.3):
        made = np.cumsum([decide(k, p) for k in range(1, 201)])
        assert all(made[k - 1] == math.floor(k * p / 100) for k in range(1, 201))


@pytest.mark.parametrize("proportion", [0, 50, 100])
def test_mentor_collab_makes_the_configured_share_of_decisions(engines, proportion):
    (res,) = mentor_decode(engines["rand"], engines["llama"], ["Which option 1?"], proportion=proportion,
                           patch_tokens=2, max_new_tokens=16)
    assert res.stats["divergences"] > 0
    assert res.stats["decisions"] == math.floor(res.stats["divergences"] * proportion / 100)
    if proportion == 0:  # never decides: exactly the generator's greedy output, mentor only reads
        assert res.text == solo_greedy(engines["rand"], "Which option 1?", 16)
        assert res.model_costs[1]["generated_tokens"] == 0


@pytest.mark.parametrize("chooser", ["ask", "logprob"])
def test_mentor_collab_batch_equals_one_item_at_a_time(engines, chooser):
    kw = {"proportion": 100, "patch_tokens": 2, "max_new_tokens": 12, "chooser": chooser}
    batch = mentor_decode(engines["llama"], engines["ans_a"], PROMPTS, **kw)
    alone = [mentor_decode(engines["llama"], engines["ans_a"], [p], **kw)[0] for p in PROMPTS]
    assert [(b.text, b.stats, b.cost) for b in batch] == [(a.text, a.stats, a.cost) for a in alone]
    assert sum(b.stats["decisions"] for b in batch) > 0


def test_mentor_collab_method_records_costs(engines):
    ctx = make_ctx(engines, ["rand", "ans_a"], dev_gens(["rand", "ans_a"]), max_new_tokens=6)
    preds = METHODS.get("mentor_collab")({"decision_proportion": 100, "patch_tokens": 3}).run(ctx)
    assert all(p["answered_by"] == "rand" and p["mentor"] == "ans_a" for p in preds)
    assert all(p["decisions"] == p["divergences"] and p["new_generated_tokens"] > 0 for p in preds)
    decisions = sum(p["decisions"] for p in preds)
    assert ctx.decisions["mentor_adoption_rate"] == sum(p["mentor_patches"] for p in preds) / decisions
    assert ctx.decisions["roles"] == {"generator": "rand", "mentor": "ans_a"}
    json.dumps(ctx.decisions, allow_nan=False)
    with pytest.raises(ValueError, match="percentage"):
        METHODS.get("mentor_collab")({"decision_proportion": 150})
    with pytest.raises(ValueError, match="chooser"):
        METHODS.get("mentor_collab")({"chooser": "coin"})


def test_ask_generator_cancels_position_bias():
    """A judge that strongly prefers the letter A (position bias) but slightly prefers "good" content: asked
    in both orders, the content wins; identical content is a tie (the generator's own patch is kept)."""
    from mocoflow.methods.api.mentor_collab import ask_generator

    class BiasedJudge:
        def encode(self, prompts):
            return [[0] * 5 for _ in prompts]

        def score_continuations(self, prompts, continuations):
            out = []
            for prompt, letter in zip(prompts, continuations, strict=True):
                option = prompt.split(f"({letter}) ")[1].split("\n")[0]
                out.append((3.0 if letter == "A" else 0.0) + (1.0 if option == "good" else 0.0))
            return out

    prefs, read = ask_generator(BiasedJudge(), [("q", "so far", "bad", "good"), ("q", "so far", "good", "bad"),
                                                ("q", "so far", "same", "same")])
    assert prefs[0] > 0 and prefs[1] < 0 and prefs[2] == 0
    assert read == [12, 12, 12]


def test_mentor_collab_adopts_the_mentors_patch(tmp_path, kind_models, kind_engines, monkeypatch):
    """The generator writes "Answer: B" but, asked, prefers the mentor's "A" patch: the ask chooser adopts
    it (the answer becomes right); the log-prob chooser keeps the generator's own patch."""
    import shutil

    import mocoflow.methods.api.mentor_collab as mentor_module
    from mocoflow.engines.transformers_engine import TransformersEngine
    from mocoflow.testing import train_tiny_model_on_pairs

    item = two_kinds(0, "test")  # gold A
    prompt = build_prompt(item)
    kw = {"proportion": 100, "patch_tokens": 4, "max_new_tokens": 8}
    asks = []

    def record(engine, batch):
        asks.extend(batch)
        return [0.0] * len(batch), [0] * len(batch)

    with monkeypatch.context() as m:
        m.setattr(mentor_module, "ask_generator", record)
        (kept,) = mentor_decode(kind_engines["ans_b"], kind_engines["ans_a"], [prompt], **kw)
    assert kept.text == "Answer: B" and asks
    # teach a copy of the generator to prefer, when asked, the mentor's patch (in both orders)
    gen_dir = tmp_path / "gen"
    shutil.copytree(kind_models["ans_b"], gen_dir)
    pairs = [(p, "Answer: B") for p in kind_prompts()]
    for p, text, own, theirs in asks:
        pairs += [(mentor_module.choice_prompt(p, text, own, theirs), "B"),
                  (mentor_module.choice_prompt(p, text, theirs, own), "A")]
    train_tiny_model_on_pairs(gen_dir, pairs, steps=60)
    gen = TransformersEngine("gen", gen_dir, device="cpu")
    assert solo_greedy(gen, prompt, 8) == "Answer: B"  # alone it is still wrong
    (asked,) = mentor_decode(gen, kind_engines["ans_a"], [prompt], **kw)
    assert asked.stats["mentor_patches"] >= 1 and asked.text == "Answer: A" and score_output(item, asked.text)
    (by_logprob,) = mentor_decode(gen, kind_engines["ans_a"], [prompt], chooser="logprob", **kw)
    assert by_logprob.stats["decisions"] >= 1 and by_logprob.stats["mentor_patches"] == 0
    assert by_logprob.text == "Answer: B"
