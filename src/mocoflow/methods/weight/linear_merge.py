"""Linear merge (model soup) and task arithmetic over same-architecture models.

mode "linear": theta = sum_i w_i theta_i with weights normalised to sum 1 (uniform by default).
mode "task_arithmetic": theta = theta_base + scale * sum_i w_i (theta_i - theta_base) over the non-base
pool models (uniform w_i = 1 by default), where ``base`` names a pool model (default: the first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mocoflow.methods.base import MergeContext, MergeMethod, MethodError, register
from mocoflow.methods.weight.common import coefficient_reliance, record
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
class LinearMerge(MergeMethod):
    name = "linear_merge"
    Params = LinearMergeParams

    def merge(self, pool: list[ModelRef], out_dir: Path, ctx: MergeContext | None = None) -> Path:
        from mocoflow.training.merging import linear, merge_checkpoints, task_arithmetic

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
            return merge_checkpoints([Path(r.path) for r in pool], out_dir, lambda _k, ts: linear(ts, norm))
        base = p.base or names[0]
        if base not in names:
            raise MethodError(f"linear_merge: base {base!r} is not in the pool {names}")
        if len(pool) < 2:
            raise MethodError("linear_merge task_arithmetic needs a base and at least one other model")
        others = [r for r in pool if r.name != base]
        weights = p.weights or [1.0] * len(others)
        if len(weights) != len(others):
            raise MethodError(f"linear_merge: need {len(others)} weights (one per non-base model), got {weights}")
        ordered = [next(r for r in pool if r.name == base), *others]
        # theta = (1 - scale * sum w) theta_base + sum_i scale * w_i theta_i
        coefficients = {base: 1.0 - p.scale * sum(weights),
                        **{r.name: p.scale * w for r, w in zip(others, weights, strict=True)}}
        record(ctx, base=base, weights=dict(zip([r.name for r in others], weights, strict=True)),
               coefficients=coefficients, reliance=coefficient_reliance(coefficients))
        return merge_checkpoints([Path(r.path) for r in ordered], out_dir,
                                 lambda _k, ts: task_arithmetic(ts[0], ts[1:], weights, p.scale))
