"""DARE (Yu et al. 2024, "Language models are Super Mario"): drop a random ``1 - density`` fraction of each
task vector's entries and rescale the survivors by ``1 / density`` (exactly ``round(density * n)`` kept per
tensor, seeded per (seed, tensor name, model)), then combine like task arithmetic (``dare``) or with TIES sign
election and disjoint mean (``dare_ties``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import MergeContext, register
from mocoflow.methods.common import pool_member
from mocoflow.methods.weight.common import TensorFormulaMerge, base_and_others, check_weights, record
from mocoflow.models import ModelRef


@dataclass(frozen=True)
class DareParams:
    """base: pool model the task vectors are taken from (None = first pool model).
    density: fraction of each task vector kept (0.5); kept entries are scaled by 1/density.
    weights: per non-base model (None = 1 each). scale: multiplier on the combined task vectors (1.0).
    seed: seed of the drop masks (0)."""

    base: str | None = None
    density: float = 0.5
    weights: list[float] | None = None
    scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"dare density must be in (0, 1], got {self.density}")


@register
class Dare(TensorFormulaMerge):
    name = "dare"
    Params = DareParams
    ties_merge = False

    def plan(self, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, Any]:
        """``{"base", "others", "weights", "density", "scale", "seed", "ties_merge"}`` (the drop masks follow
        from the seed and each tensor's name)."""
        p = self.params
        self.check_pool(pool)
        base, others = base_and_others(pool, p.base, self.name)
        weights = check_weights(p.weights, len(others), self.name, "non-base model")
        record(ctx, base=base.name, weights=dict(zip([r.name for r in others], weights, strict=True)),
               density=p.density, scale=p.scale)
        return {"base": base.name, "others": [r.name for r in others], "weights": weights, "density": p.density,
                "scale": p.scale, "seed": p.seed, "ties_merge": self.ties_merge}

    def formula(self, pool: list[ModelRef], plan: dict[str, Any]) -> tuple[list[ModelRef], Any]:
        from mocoflow.training.merging import dare

        members = [pool_member(pool, n) for n in (plan["base"], *plan["others"])]
        weights, density, scale, seed = plan["weights"], plan["density"], plan["scale"], plan["seed"]
        ties_merge = bool(plan["ties_merge"])
        return members, lambda key, ts: dare(ts[0], ts[1:], weights, density, scale, seed=seed, name=key,
                                             ties_merge=ties_merge)


@register
class DareTies(Dare):
    name = "dare_ties"
    ties_merge = True
