"""Logit fusion (product of experts): decode from the weighted average of the pool's log-probabilities.

All models must share one tokenizer (checked from the model cards before any model is loaded). Each
model decodes the items in lockstep through its own ``Stepper`` (``methods.logit.decode``), and every step
feeds the fused token to all models.

Modes: ``fixed`` uses ``weights`` (uniform when None). ``optimised`` tunes the weights on dev: it decodes
the first ``max_dev_items`` dev items with each candidate weight vector and keeps the most accurate (ties go
to the earlier candidate). Candidates, in order: uniform, each model alone, then either the simplex grid with
step ``grid_step`` (``search: grid``) or seeded Dirichlet(1) draws (``search: random``), ``trials`` in all but
never fewer than pool size + 2 (every corner point and at least one mixture besides uniform). All candidates
decode the dev items side by side in one lockstep batch (one row per candidate and item).

Decisions (``decisions.json``): ``weights`` and ``reliance`` (the weight of each model), and in optimised
mode every candidate with its dev accuracy.
"""

from __future__ import annotations

import itertools
import logging
import random
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, register
from mocoflow.methods.common import prompts_for
from mocoflow.methods.logit.decode import accuracy_per_row_group, combined_generate, to_predictions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FusionParams:
    """weights: one weight per pool model (pool order), normalised to sum 1; None means uniform.
    mode: "fixed" (use weights) or "optimised" (tune weights on dev). search: "grid" or "random" candidates
    (optimised mode). trials: candidate weight vectors tried (16; at least pool size + 2).
    grid_step: simplex grid spacing (0.25).
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
    """Uniform, each model alone (the grid's corner points), then grid points or seeded Dirichlet draws;
    ``max(trials, n + 2)`` vectors in all, so the search always includes every corner and at least one
    mixture besides uniform (fewer trials would only compare uniform with the first models alone)."""
    trials = max(trials, n + 2)
    cands = [[1.0 / n] * n] + [[1.0 if j == i else 0.0 for j in range(n)] for i in range(n)]
    if search == "grid":
        steps = max(2, round(1 / grid_step))
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
    return unique[:trials]


def fuse_rows(logprobs: list[Any], weights: Any) -> Any:
    """``sum_m weights[:, m] * logprobs[m]`` with one weight vector per row (``weights``: ``[B, n]``)."""
    total = weights[:, :1] * logprobs[0]
    for m in range(1, len(logprobs)):
        total = total + weights[:, m:m + 1] * logprobs[m]
    return total


@register
class LogitFusion(Method):
    name = "logit_fusion"
    level = "logit"
    needs = frozenset({Need.SAME_TOKENIZER, Need.MODELS})
    Params = FusionParams

    def optimise(self, ctx: RunContext, engines: list[Any]) -> tuple[list[float], list[list[float]],
                                                                        list[float]]:
        """(best weights, candidates, dev accuracy per candidate): all candidates decode the dev items side by
        side (one row per candidate and item, each row with its candidate's weights)."""
        import torch

        p = self.params
        dev = ctx.items.get("dev", [])[:p.max_dev_items]
        if not dev:
            raise MethodError("logit_fusion optimised mode needs dev items")
        seed = p.seed if p.seed is not None else ctx.seed
        cands = candidate_weights(len(engines), p.search, p.trials, p.grid_step, seed)
        per_row = torch.tensor([c for c in cands for _ in dev], dtype=torch.float32)
        decoded = combined_generate(engines, prompts_for(dev) * len(cands),
                                    lambda lps, rows: fuse_rows(lps, per_row[rows].to(lps[0].device)),
                                    ctx.decoding)
        scores = accuracy_per_row_group(dev, decoded, len(cands), ctx.score)
        best = max(range(len(cands)), key=lambda i: (scores[i], -i))
        log.info("logit_fusion: dev accuracy per candidate %s -> weights %s",
                 [(c, s) for c, s in zip(cands, scores, strict=True)], cands[best])
        return cands[best], cands, scores

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p = self.params
        engines = [ctx.engines.get(ref) for ref in ctx.pool]
        names = [r.name for r in ctx.pool]
        extra: dict[str, Any] = {}
        if p.mode == "optimised":
            weights, cands, scores = self.optimise(ctx, engines)
            best = cands.index(weights)
            extra = {"fusion_weights": weights, "fusion_dev_accuracy": scores[best]}
            ctx.decide(candidates=[{"weights": dict(zip(names, c, strict=True)), "dev_accuracy": s}
                                   for c, s in zip(cands, scores, strict=True)])
        else:
            weights = normalised_weights(p.weights, len(ctx.pool))
        ctx.decide(weights=dict(zip(names, weights, strict=True)), reliance=dict(zip(names, weights, strict=True)))
        items = ctx.items["test"]
        decoded = combined_generate(engines, prompts_for(items), lambda lps, rows: fused_logprobs(lps, weights),
                                    ctx.decoding)
        return to_predictions([i.id for i in items], decoded, len(engines), **extra)
