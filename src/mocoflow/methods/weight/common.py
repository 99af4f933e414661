"""Helpers the weight-level methods share (``methods/<level>/common.py``, as every level): picking pool models
by name, recording a merge's decisions and scoring candidate weights on dev.

``DevEvaluator`` loads one engine for the pool's architecture once and swaps candidate weights into it in
place (``load_state_dict``), so evaluating a candidate costs one dev generation pass, not a model load.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mocoflow.methods.base import MergeContext, MethodError
from mocoflow.methods.common import pool_member, prompts_for, reliance_from_weights, score_output
from mocoflow.models import ModelRef

log = logging.getLogger(__name__)


def base_and_others(pool: list[ModelRef], base: str | None, method: str) -> tuple[ModelRef, list[ModelRef]]:
    """The base model (named, or the first pool model) and the other pool models, in pool order."""
    if len(pool) < 2:
        raise MethodError(f"{method} needs a base and at least one other model; pool has {len(pool)}")
    b = pool_member(pool, base, f"{method}: base") if base else pool[0]
    return b, [r for r in pool if r.name != b.name]


def record(ctx: MergeContext | None, **entries: Any) -> None:
    """Record the merge's decisions in ``ctx`` (the merge stage always passes one; direct calls may not)."""
    if ctx is not None:
        ctx.decide(**entries)


def coefficient_reliance(coefficients: dict[str, float]) -> dict[str, float]:
    """Reliance of a merge whose result is the linear combination ``sum_i c_i theta_i`` of pool models."""
    return reliance_from_weights(coefficients)


def check_weights(weights: list[float] | None, n: int, method: str, what: str) -> list[float]:
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise MethodError(f"{method}: need {n} weights (one per {what}), got {weights}")
    return [float(w) for w in weights]


class DevEvaluator:
    """Dev accuracy of candidate weights: one engine loaded from ``template_dir``, weights swapped in."""

    def __init__(self, ctx: MergeContext, template_dir: str | Path, max_items: int | None = None) -> None:
        self.items = list(ctx.dev_items[:max_items] if max_items else ctx.dev_items)
        if not self.items:
            raise MethodError("dev evaluation needs at least one dev item")
        self.prompts = prompts_for(self.items)
        self.decoding = ctx.decoding
        self.score = ctx.score or score_output
        self.engine = ctx.engine_factory(str(template_dir))
        self.evaluations = 0

    def accuracy(self, state: dict[str, Any]) -> float:
        _missing, unexpected = self.engine.model.load_state_dict(state, strict=False)
        if unexpected:
            raise MethodError(f"candidate weights do not fit the model: unexpected tensors {unexpected[:5]}")
        gens = self.engine.generate(self.prompts, self.decoding)
        self.evaluations += 1
        correct = [bool(self.score(item, g.text)) for item, g in zip(self.items, gens, strict=True)]
        return sum(correct) / len(correct)
