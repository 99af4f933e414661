"""Logit fusion (product of experts): decode from the weighted average of the pool's log-probabilities.

All models must share one tokenizer (checked from the model cards before any model is loaded). Each
model keeps its own KV cache through ``IncrementalDecoder``; prompts are batched with left padding and
attention masks, and every step feeds the fused token to all models.

Modes: ``fixed`` uses ``weights`` (uniform when None). ``optimised`` tunes the weights on dev: it decodes
the first ``max_dev_items`` dev items with each candidate weight vector and keeps the most accurate (ties go
to the earlier candidate). Candidates, in order: uniform, each model alone, then either the simplex grid with
step ``grid_step`` (``search: grid``) or seeded Dirichlet(1) draws (``search: random``), ``trials`` in all.
"""

from __future__ import annotations

import itertools
import logging
import random
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, register
from mocoflow.methods.common import prompts_for
from mocoflow.methods.logit.decode import combined_generate, dev_accuracy_of, to_predictions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusionParams:
    """weights: one weight per pool model (pool order), normalised to sum 1; None means uniform.
    mode: "fixed" (use weights) or "optimised" (tune weights on dev). search: "grid" or "random" candidates
    (optimised mode). trials: candidate weight vectors tried (16). grid_step: simplex grid spacing (0.25).
    max_dev_items: dev items decoded per candidate (16). seed: random search seed (None = study seed)."""

    weights: list[float] | None = None
    mode: str = "fixed"
    search: str = "grid"
    trials: int = 16
    grid_step: float = 0.25
    max_dev_items: int = 16
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("fixed", "optimised"):
            raise ValueError(f"logit_fusion mode must be 'fixed' or 'optimised', not {self.mode!r}")
        if self.search not in ("grid", "random"):
            raise ValueError(f"logit_fusion search must be 'grid' or 'random', not {self.search!r}")


def fused_logprobs(logprobs: list[Any], weights: list[float]) -> Any:
    """Weighted sum of per-model log-probabilities over the shared vocabulary (truncated to the
    smallest vocab: padded embedding rows beyond the tokenizer never win)."""
    vocab = min(lp.shape[-1] for lp in logprobs)
    total = weights[0] * logprobs[0][..., :vocab]
    for w, lp in zip(weights[1:], logprobs[1:], strict=True):
        total = total + w * lp[..., :vocab]
    return total


def normalised_weights(weights: list[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise MethodError(f"logit_fusion: need {n} non-negative weights with a positive sum, got {weights}")
    s = float(sum(weights))
    return [w / s for w in weights]


def candidate_weights(n: int, search: str, trials: int, grid_step: float, seed: int) -> list[list[float]]:
    """Uniform, each model alone, then grid points or seeded Dirichlet draws; ``trials`` vectors in all."""
    cands = [[1.0 / n] * n] + [[1.0 if j == i else 0.0 for j in range(n)] for i in range(n)]
    if search == "grid":
        steps = max(1, round(1 / grid_step))
        for combo in itertools.product(range(steps + 1), repeat=n):
            if sum(combo) == steps:
                cands.append([c / steps for c in combo])
    else:
        rng = random.Random(seed)
        while len(cands) < trials:
            g = [rng.gammavariate(1.0, 1.0) for _ in range(n)]
            cands.append([x / sum(g) for x in g])
    unique: list[list[float]] = []
    for c in cands:
        if all(max(abs(a - b) for a, b in zip(c, u, strict=True)) > 1e-9 for u in unique):
            unique.append(c)
    return unique[:max(1, trials)]


@register
class LogitFusion(Method):
    name = "logit_fusion"
    level = "logit"
    needs = frozenset({Need.SAME_TOKENIZER, Need.MODELS})
    Params = FusionParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p = self.params
        engines = [ctx.engines.get(ref) for ref in ctx.pool]
        extra: dict[str, Any] = {}
        if p.mode == "optimised":
            dev = ctx.items.get("dev", [])[:p.max_dev_items]
            if not dev:
                raise MethodError("logit_fusion optimised mode needs dev items")
            seed = p.seed if p.seed is not None else ctx.seed
            cands = candidate_weights(len(engines), p.search, p.trials, p.grid_step, seed)
            scores = [dev_accuracy_of(engines, dev, lambda lps, w=w: fused_logprobs(lps, w), ctx.decoding)
                      for w in cands]
            best = max(range(len(cands)), key=lambda i: (scores[i], -i))
            weights = cands[best]
            log.info("logit_fusion: dev accuracy per candidate %s -> weights %s",
                     [(c, s) for c, s in zip(cands, scores, strict=True)], weights)
            extra = {"fusion_weights": weights, "fusion_dev_accuracy": scores[best]}
        else:
            weights = normalised_weights(p.weights, len(ctx.pool))
        items = ctx.items["test"]
        decoded = combined_generate(engines, prompts_for(items), lambda lps: fused_logprobs(lps, weights),
                                    ctx.decoding)
        return to_predictions([i.id for i in items], decoded, engines[0], len(engines), **extra)
