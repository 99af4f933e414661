"""Logit-level methods on tiny local models: each combines the models' log-probabilities as its formula says
(checked against manual full forward passes of every model, step by step, for a batch of prompts of
different lengths), fusion of a model with itself is that model's greedy output, and pools that mix
tokenizers are refused with the models named."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.factory import make_engine
from mocoflow.engines.loader import encode_prompts
from mocoflow.methods import METHODS
from mocoflow.methods.base import EngineProvider, MethodError, RunContext
from mocoflow.methods.common import prompts_for
from mocoflow.methods.logit.contrastive import contrastive_scores
from mocoflow.methods.logit.contrastive_decoding import contrastive_decoding_scores
from mocoflow.methods.logit.fusion import candidate_weights
from mocoflow.methods.logit.proxy_tuning import proxy_scores
from mocoflow.models import ModelRef, make_card

torch.set_num_threads(1)
STEPS = 4


def items(split: str, n: int) -> list[Item]:
    qs = ["What is 2 + 3?", "Which option is correct? Think about it for a while first.", "hello"]
    return [Item(id=f"{split}{i}", task="t", split=split, task_type="multiple_choice", question=qs[i % 3],
                 choices={"A": "yes", "B": "no"}, gold="A") for i in range(n)]


def make_ctx(pool: list[ModelRef], n_test: int = 3, dev_outputs: dict[str, str] | None = None,
             max_new_tokens: int = STEPS) -> RunContext:
    dev = items("dev", 2)
    gens = {name: {"dev": {i.id: {"output": out} for i in dev}} for name, out in (dev_outputs or {}).items()}
    provider = EngineProvider(lambda ref: make_engine(ref.name, {"path": ref.path}, cache_dir=None,
                                                      device="cpu"))
    return RunContext(run="r", pool_name="p", pool=pool, task="t",
                      items={"dev": dev, "test": items("test", n_test)},
                      generations=gens, decoding=DecodingConfig(max_new_tokens=max_new_tokens, batch_size=3),
                      engines=provider, workdir=Path("."))


def pool_of(**paths: Path) -> list[ModelRef]:
    return [ModelRef(name, str(p), make_card(name, {"source": "tiny"}, p), {}) for name, p in paths.items()]


def manual_decode(ctx: RunContext, names: list[str], combine) -> list[str]:
    """Greedy decoding with a full re-encode of every model at every step, one prompt at a time."""
    refs = {r.name: r for r in ctx.pool}
    engines = [ctx.engines.get(refs[n]) for n in names]
    tok = engines[0].tokenizer
    texts = []
    for prompt in prompts_for(ctx.items["test"]):
        ids = encode_prompts(tok, [prompt])[0]
        out: list[int] = []
        for _ in range(STEPS):
            x = torch.tensor([ids + out])
            with torch.no_grad():
                lps = [torch.log_softmax(e.model(input_ids=x).logits[0, -1].float(), -1) for e in engines]
            nxt = int(combine(lps).argmax())
            out.append(nxt)
            if nxt == tok.eos_token_id:
                break
        texts.append(tok.decode([t for t in out if t != tok.eos_token_id], skip_special_tokens=True))
    return texts


# ---- formulas on small tensors -----------------------------------------------------------------------------

def test_contrastive_decoding_formula_by_hand():
    pe = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    pa = torch.log(torch.tensor([[0.7, 0.1, 0.1, 0.1]]))
    out = contrastive_decoding_scores(pe, pa, alpha=0.2)  # plausible: p >= 0.1 -> tokens 0, 1, 2
    expected = torch.tensor([[math.log(0.5 / 0.7), math.log(3.0), math.log(1.5), float("-inf")]])
    assert torch.allclose(out, expected)
    assert int(out.argmax()) == 1
    assert int(contrastive_decoding_scores(pe, pa, alpha=0.7).argmax()) == 0  # only token 0 is plausible
    half = contrastive_decoding_scores(pe, pa, alpha=0.2, beta=0.5)
    assert torch.allclose(half[0, :3], pe[0, :3] - 0.5 * pa[0, :3])


def test_moco_contrastive_and_proxy_formulas_by_hand():
    t1, t2, b1, b2 = (torch.tensor([float(v), 1.0]) for v in (1, 2, 3, 5))
    # top1 + lambda * ((t1 - b1) + (t2 - b2)) = 1 + 0.5 * (-2 - 3) = -1.5; second entry 1 + 0 = 1
    assert torch.allclose(contrastive_scores([t1, t2], [b1, b2], 0.5), torch.tensor([-1.5, 1.0]))
    base, tuned, untuned = torch.tensor([0.0, -1.0]), torch.tensor([-3.0, -0.5]), torch.tensor([-1.0, -2.0])
    assert torch.allclose(proxy_scores(base, tuned, untuned, 1.0), torch.tensor([-2.0, 0.5]))
    assert torch.allclose(proxy_scores(base, tuned, untuned, 0.5), torch.tensor([-1.0, -0.25]))


def test_fusion_candidates_start_uniform_then_single_models():
    grid = candidate_weights(2, "grid", 16, 0.25, 0)
    assert grid[:3] == [[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]
    assert [0.25, 0.75] in grid and len(grid) == 5
    rnd = candidate_weights(3, "random", 7, 0.25, 1)
    assert len(rnd) == 7 and rnd == candidate_weights(3, "random", 7, 0.25, 1)
    assert all(abs(sum(c) - 1) < 1e-9 for c in rnd)


# ---- methods on tiny models, against manual forward passes ----------------------------------------------

@pytest.fixture(scope="module")
def trio(tiny_root: Path) -> dict[str, Path]:
    from mocoflow.testing import build_tiny_model

    return {n: build_tiny_model(tiny_root / f"logit-{n}", arch="gpt2", seed=s)
            for n, s in (("m0", 10), ("m1", 11), ("m2", 12))}


def test_fusion_of_a_model_with_itself_is_its_greedy_output(tiny_model_dir: Path):
    ctx = make_ctx(pool_of(a=tiny_model_dir, a_again=tiny_model_dir), max_new_tokens=8)
    preds = METHODS.get("logit_fusion")({"weights": [0.3, 0.7]}).run(ctx)
    single = make_engine("solo", {"path": str(tiny_model_dir)}, cache_dir=None, device="cpu")
    greedy = single.generate(prompts_for(ctx.items["test"]), ctx.decoding)
    assert [p["output"] for p in preds] == [g.text for g in greedy]
    assert [p["new_generated_tokens"] for p in preds] == [g.generated_tokens for g in greedy]


def test_fusion_weights_match_manual_passes(trio: dict[str, Path]):
    ctx = make_ctx(pool_of(**trio))
    preds = METHODS.get("logit_fusion")({"weights": [2.0, 1.0, 1.0]}).run(ctx)
    manual = manual_decode(ctx, ["m0", "m1", "m2"], lambda lp: 0.5 * lp[0] + 0.25 * lp[1] + 0.25 * lp[2])
    assert [p["output"] for p in preds] == manual
    uniform = manual_decode(ctx, ["m0", "m1", "m2"], lambda lp: (lp[0] + lp[1] + lp[2]) / 3)
    assert manual != uniform  # the weights matter on these prompts, so the check above can fail


def test_contrastive_decoding_matches_manual_passes(trio: dict[str, Path]):
    ctx = make_ctx(pool_of(**trio), dev_outputs={"m0": "Answer: B", "m1": "Answer: A", "m2": "Answer: B"})
    preds = METHODS.get("contrastive_decoding")({"alpha": 0.05}).run(ctx)
    # dev: m1 is best; m2 is the worst-ranked (ties with m0 go to pool order, so the last is m2)
    assert preds[0]["expert"] == "m1" and preds[0]["amateur"] == "m2"
    assert ctx.decisions["roles"] == {"expert": "m1", "amateur": "m2"}
    manual = manual_decode(ctx, ["m1", "m2"], lambda lp: contrastive_decoding_scores(lp[0], lp[1], 0.05))
    assert [p["output"] for p in preds] == manual
    assert manual != manual_decode(ctx, ["m1"], lambda lp: lp[0])  # differs from the expert alone


def test_logit_contrastive_matches_manual_passes(trio: dict[str, Path]):
    ctx = make_ctx(pool_of(**trio), dev_outputs={"m0": "Answer: B", "m1": "Answer: A", "m2": "Answer: B"})
    preds = METHODS.get("logit_contrastive")({"k": 1, "lambda_": 1.0}).run(ctx)
    assert preds[0]["experts"] == ["m1"] and preds[0]["anti_experts"] == ["m2"]
    assert ctx.decisions["roles"] == {"experts": ["m1"], "anti_experts": ["m2"]}
    manual = manual_decode(ctx, ["m1", "m2"], lambda lp: contrastive_scores([lp[0]], [lp[1]], 1.0))
    assert [p["output"] for p in preds] == manual
    with pytest.raises(MethodError, match="k=2 needs 2k distinct models; pool has 3"):
        METHODS.get("logit_contrastive")({"k": 2}).run(ctx)


def test_proxy_tuning_matches_manual_passes(trio: dict[str, Path]):
    ctx = make_ctx(pool_of(**trio))
    preds = METHODS.get("proxy_tuning")({"expert": "m2", "anti_expert": "m1"}).run(ctx)
    assert (preds[0]["base"], preds[0]["expert"], preds[0]["anti_expert"]) == ("m0", "m2", "m1")
    assert ctx.decisions["roles"] == {"base": "m0", "expert": "m2", "anti_expert": "m1"}
    manual = manual_decode(ctx, ["m0", "m2", "m1"], lambda lp: proxy_scores(lp[0], lp[1], lp[2]))
    assert [p["output"] for p in preds] == manual
    assert manual != manual_decode(ctx, ["m0"], lambda lp: lp[0])
    with pytest.raises(MethodError, match="proxy_tuning needs three models"):
        METHODS.get("proxy_tuning")({}).run(make_ctx(ctx.pool[:2]))


def test_optimised_fusion_keeps_the_best_dev_candidate(tmp_path: Path, tiny_model_dir: Path):
    from mocoflow.data.prompts import build_prompt
    from mocoflow.methods.logit.decode import dev_accuracy_of
    from mocoflow.methods.logit.fusion import fused_logprobs
    from mocoflow.testing import build_tiny_model, train_tiny_model_briefly

    trained = build_tiny_model(tmp_path / "a", seed=3)
    train_tiny_model_briefly(trained, ["Answer: A"], steps=30, prompt=build_prompt(items("dev", 1)[0]))
    ctx = make_ctx(pool_of(rand=tiny_model_dir, trained=trained), n_test=1)
    preds = METHODS.get("logit_fusion")({"mode": "optimised", "trials": 3}).run(ctx)
    engines = [ctx.engines.get(r) for r in ctx.pool]
    # trials are raised to pool size + 2: uniform, both corners and one mixture
    cands = [[0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [0.25, 0.75]]
    assert candidate_weights(2, "grid", 3, 0.25, 0) == cands
    # each candidate decoded on its own, one at a time (the method decodes them side by side)
    scores = [dev_accuracy_of(engines, ctx.items["dev"], lambda lp, rows, w=w: fused_logprobs(lp, w),
                              DecodingConfig(max_new_tokens=STEPS, batch_size=1), ctx.score) for w in cands]
    assert max(scores) > min(scores)  # the candidates differ on dev, so the choice below is meaningful
    best = max(range(len(cands)), key=lambda i: (scores[i], -i))
    assert preds[0]["fusion_weights"] == cands[best] and preds[0]["fusion_dev_accuracy"] == scores[best]
    assert [c["dev_accuracy"] for c in ctx.decisions["candidates"]] == scores
    assert ctx.decisions["reliance"] == dict(zip(["rand", "trained"], cands[best], strict=True))
    json.dumps(ctx.decisions, allow_nan=False)  # decisions.json material


def test_fusion_candidates_never_collapse_to_uniform_or_one_model():
    for n in (2, 3, 4):
        for search in ("grid", "random"):
            cands = candidate_weights(n, search, 2, 0.25, 0)
            assert len(cands) == n + 2
            corners = [[1.0 if j == i else 0.0 for j in range(n)] for i in range(n)]
            assert all(c in cands for c in corners)  # every model alone, not just the first
            mixtures = [c for c in cands if c not in corners and c != [1.0 / n] * n]
            assert mixtures and all(sum(w > 0 for w in c) >= 2 for c in mixtures)


NAMES = ["logit_fusion", "logit_contrastive", "contrastive_decoding", "proxy_tuning"]


@pytest.mark.parametrize("name", NAMES)
def test_mixed_tokenizers_are_refused_naming_the_models(name: str, tiny_model_dir: Path,
                                                        tiny_model_other_tokenizer_dir: Path):
    pool = pool_of(smol=tiny_model_dir, other=tiny_model_other_tokenizer_dir)
    why = f"{name} needs one tokenizer; pool has 2 different tokenizers: smol; other"
    with pytest.raises(MethodError, match=why):
        METHODS.get(name)({}).check_pool(pool)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_combined_decoding_in_a_batch_equals_one_prompt_at_a_time(tiny_model_dir: Path,
                                                                    tiny_answer_a_model_dir: Path,
                                                                    temperature: float,
                                                                    monkeypatch: pytest.MonkeyPatch):
    """Rows of different lengths, rows ending early at eos, and seeded sampling (each row draws from its own
    generator, seeded by its prompt): the batch gives every prompt what it gets alone. Prompts beyond the
    batch size join as rows end (continuous batching)."""
    from mocoflow.engines.stepper import Stepper
    from mocoflow.methods.logit.decode import combined_generate

    joined: list[int] = []
    add = Stepper.add

    def spy(self, *args, **kwargs):
        rows = add(self, *args, **kwargs)
        joined.extend(rows)
        return rows

    monkeypatch.setattr(Stepper, "add", spy)
    from mocoflow.methods.logit.fusion import fused_logprobs

    engines = [make_engine(n, {"path": str(p)}, cache_dir=None, device="cpu")
               for n, p in (("ans", tiny_answer_a_model_dir), ("rand", tiny_model_dir))]
    prompts = prompts_for(items("test", 3)) + ["Question: hello", "Which option is correct?", "x"]

    def fuse(lps, rows):
        return fused_logprobs(lps, [0.8, 0.2])

    batch = combined_generate(engines, prompts, fuse,
                              DecodingConfig(max_new_tokens=10, batch_size=4, temperature=temperature, seed=3))
    batch_joined = list(joined)
    alone = combined_generate(engines, prompts, fuse,
                              DecodingConfig(max_new_tokens=10, batch_size=1, temperature=temperature, seed=3))
    assert [d.tokens for d in batch] == [d.tokens for d in alone]
    assert [d.text for d in batch] == [d.text for d in alone]
    assert [d.prompt_tokens for d in batch] == [d.prompt_tokens for d in alone]
    assert len({len(d.tokens) for d in batch}) > 1  # some rows end early
    assert len(batch_joined) == 2 * (len(prompts) - 4)  # batch 4: the two last prompts joined each model's stepper
    # a cache that cannot be joined (e.g. sliding-window layers): the next prompts wait until the batch ends
    monkeypatch.setattr("mocoflow.engines.stepper._plain_layers", lambda past: False)
    joined.clear()
    fixed = combined_generate(engines, prompts, fuse,
                              DecodingConfig(max_new_tokens=10, batch_size=4, temperature=temperature, seed=3))
    assert [d.tokens for d in fixed] == [d.tokens for d in alone]
    assert len(joined) == 2 * (len(prompts) - 4)
