"""Cascade: weak models answer first and defer to stronger ones when their confidence is low.

Models are ordered weak to strong by dev accuracy. Each non-final model ``m`` gets its own threshold
``tau_m`` from its own dev outputs: the lowest confidence such that the dev answers at or above it are
correct at least ``target_precision`` of the time (default: the final model's dev accuracy, i.e. defer
whenever the stronger model is expected to do better). Confidence is ``exp(mean token log-prob)`` of the
model's shared generation. The last model always answers. Costs count every model consulted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, dev_correctness, reused_costs


@dataclass(frozen=True)
class CascadeParams:
    """target_precision: dev precision an accepted answer must reach (None = final model's dev accuracy).
    order: "dev_accuracy" (weak to strong on dev) or "pool" (the pool's listed order)."""

    target_precision: float | None = None
    order: str = "dev_accuracy"

    def __post_init__(self) -> None:
        if self.order not in ("dev_accuracy", "pool"):
            raise ValueError(f"cascade order must be 'dev_accuracy' or 'pool', not {self.order!r}")
        if self.target_precision is not None and not 0 <= self.target_precision <= 1:
            raise ValueError("cascade target_precision must be in [0, 1]")


def confidence(record: dict[str, Any]) -> float:
    return math.exp(float(record["mean_logprob"]))


def choose_threshold(confidences: list[float], correct: list[bool], target: float) -> float:
    """Lowest confidence tau such that dev items with conf >= tau are correct >= target of the time;
    +inf when no such tau exists (always defer)."""
    pairs = sorted(zip(confidences, correct, strict=True), key=lambda p: -p[0])
    best = math.inf
    hits = 0
    for n, (conf, ok) in enumerate(pairs, 1):
        hits += ok
        is_last_of_tie = n == len(pairs) or pairs[n][0] != conf
        if is_last_of_tie and hits / n >= target:
            best = conf
    return best


@register
class Cascade(Method):
    name = "cascade"
    level = "api"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS})
    Params = CascadeParams

    def thresholds(self, ctx: RunContext) -> tuple[list[str], dict[str, float]]:
        acc = dev_accuracy(ctx)
        names = [ref.name for ref in ctx.pool]
        if self.params.order == "dev_accuracy":
            names = sorted(names, key=lambda n: (acc[n], -names.index(n)))
        target = acc[names[-1]] if self.params.target_precision is None else self.params.target_precision
        taus = {}
        for name in names[:-1]:
            correct = dev_correctness(ctx, name)
            confs = [confidence(ctx.gen(name, "dev", i)) for i in correct]
            taus[name] = choose_threshold(confs, list(correct.values()), target) if correct else math.inf
        return names, taus

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        order, taus = self.thresholds(ctx)
        out = []
        for item in ctx.items["test"]:
            consulted = []
            for name in order:
                rec = ctx.gen(name, "test", item.id)
                consulted.append(rec)
                if name == order[-1] or confidence(rec) >= taus[name]:
                    break
            out.append(prediction(item.id, consulted[-1]["output"], answered_by=order[len(consulted) - 1],
                                  deferrals=len(consulted) - 1, **reused_costs(consulted)))
        return out
