"""Linear merge (model soup) and task arithmetic over same-architecture models.

mode "linear": theta = sum_i w_i theta_i with weights normalised to sum 1 (uniform by default).
mode "task_arithmetic": theta = theta_base + scale * sum_i w_i (theta_i - theta_base) over the non-base
pool models (uniform w_i = 1 by default), where ``base`` names a pool model (default: the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import MergeContext, MethodError, register
from mocoflow.methods.common import pool_member
from mocoflow.methods.weight.common import TensorFormulaMerge, coefficient_reliance, record
from mocoflow.models import ModelRef


@dataclass(frozen=True)
class LinearMergeParams:
    """mode: "linear" or "task_arithmetic". weights: per pool model (linear) or per non-base model
    (task arithmetic); None = uniform. base: pool model used as the base for task arithmetic (None = first).
    scale: multiplier on the summed task vectors (task arithmetic only)."""

    mode: str = "linear"
    weights: list[float] | None = None
    base: str | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("linear", "task_arithmetic"):
            raise ValueError(f"linear_merge mode must be 'linear' or 'task_arithmetic', not {self.mode!r}")


@register
class LinearMerge(TensorFormulaMerge):
    name = "linear_merge"
    Params = LinearMergeParams

    def plan(self, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, Any]:
        """linear: ``{"mode", "models", "weights"}`` (normalised); task arithmetic: ``{"mode", "base",
        "others", "weights", "scale"}``."""
        p = self.params
        self.check_pool(pool)
        names = [ref.name for ref in pool]
        if p.mode == "linear":
            weights = p.weights or [1.0] * len(pool)
            if len(weights) != len(pool) or sum(weights) <= 0:
                raise MethodError(f"linear_merge: need {len(pool)} weights with a positive sum, got {weights}")
            norm = [w / sum(weights) for w in weights]
            coefficients = dict(zip(names, norm, strict=True))
            record(ctx, coefficients=coefficients, reliance=coefficient_reliance(coefficients))
            return {"mode": "linear", "models": names, "weights": norm}
        base = p.base or names[0]
        if base not in names:
            raise MethodError(f"linear_merge: base {base!r} is not in the pool {names}")
        if len(pool) < 2:
            raise MethodError("linear_merge task_arithmetic needs a base and at least one other model")
        others = [n for n in names if n != base]
        weights = p.weights or [1.0] * len(others)
        if len(weights) != len(others):
            raise MethodError(f"linear_merge: need {len(others)} weights (one per non-base model), got {weights}")
        weights = [float(w) for w in weights]
        # theta = (1 - scale * sum w) theta_base + sum_i scale * w_i theta_i
        coefficients = {base: 1.0 - p.scale * sum(weights),
                        **{n: p.scale * w for n, w in zip(others, weights, strict=True)}}
        record(ctx, base=base, weights=dict(zip(others, weights, strict=True)),
               coefficients=coefficients, reliance=coefficient_reliance(coefficients))
        return {"mode": "task_arithmetic", "base": base, "others": others, "weights": weights, "scale": p.scale}

    def formula(self, pool: list[ModelRef], plan: dict[str, Any]) -> tuple[list[ModelRef], Any]:
        from mocoflow.training.merging import linear, task_arithmetic

        if plan["mode"] == "linear":
            weights = plan["weights"]
            return ([pool_member(pool, n) for n in plan["models"]], lambda _k, ts: linear(ts, weights))
        members = [pool_member(pool, n) for n in (plan["base"], *plan["others"])]
        weights, scale = plan["weights"], plan["scale"]
        return members, lambda _k, ts: task_arithmetic(ts[0], ts[1:], weights, scale)
