"""TIES-merging (Yadav et al. 2023): trim each task vector to its largest ``density`` fraction, elect a sign
per parameter, and average only the entries that agree with it:
``theta = theta_base + scale * disjoint_mean_i(w_i * trim(theta_i - theta_base))``.

Trim (``trim``): ``"global"`` (the DEFAULT, the paper's and its reference code's): the top ``density``
fraction by magnitude of each model's whole task vector, all parameters flattened together, so tensors
that changed a lot keep more entries than tensors that barely moved; ``"per_tensor"``: each tensor keeps its
own top fraction (mergekit's convention; it was mocoflow's only trim before).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import MergeContext, register
from mocoflow.methods.common import pool_member
from mocoflow.methods.weight.common import (
    TensorFormulaMerge,
    base_and_others,
    check_weights,
    member_tensors,
    record,
)
from mocoflow.models import ModelRef


@dataclass(frozen=True)
class TiesParams:
    """base: pool model whose weights the task vectors are taken from (None = first pool model).
    density: fraction of each task vector's entries kept by magnitude (0.2, the paper's k=20%).
    weights: per non-base model (None = 1 each). scale: lambda on the merged task vector (1.0).
    trim: "global" (top fraction of each model's whole task vector, the paper's; default) or "per_tensor"."""

    base: str | None = None
    density: float = 0.2
    weights: list[float] | None = None
    scale: float = 1.0
    trim: str = "global"

    def __post_init__(self) -> None:
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"ties density must be in (0, 1], got {self.density}")
        if self.trim not in ("global", "per_tensor"):
            raise ValueError(f"ties trim must be 'global' or 'per_tensor', not {self.trim!r}")


@register
class Ties(TensorFormulaMerge):
    name = "ties"
    Params = TiesParams

    def plan(self, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, Any]:
        """``{"base", "others", "weights", "density", "scale", "thresholds"}``; ``thresholds`` (global trim
        only: one per other model, None where nothing is kept) is what reading every tensor decided, so the
        recipe materialises in one pass."""
        from mocoflow.training.merging import global_trim_thresholds

        p = self.params
        self.check_pool(pool)
        base, others = base_and_others(pool, p.base, self.name)
        weights = check_weights(p.weights, len(others), self.name, "non-base model")
        thresholds = None
        if p.trim == "global":
            found = global_trim_thresholds(member_tensors(base), [member_tensors(r) for r in others], p.density)
            thresholds = [None if math.isinf(t) else t for t in found]
        record(ctx, base=base.name, weights=dict(zip([r.name for r in others], weights, strict=True)),
               density=p.density, scale=p.scale, trim=p.trim)
        return {"base": base.name, "others": [r.name for r in others], "weights": weights, "density": p.density,
                "scale": p.scale, "thresholds": thresholds}

    def formula(self, pool: list[ModelRef], plan: dict[str, Any]) -> tuple[list[ModelRef], Any]:
        from mocoflow.training.merging import ties

        members = [pool_member(pool, n) for n in (plan["base"], *plan["others"])]
        weights, density, scale = plan["weights"], plan["density"], plan["scale"]
        thresholds = (None if plan["thresholds"] is None
                      else [math.inf if t is None else float(t) for t in plan["thresholds"]])
        return members, lambda _k, ts: ties(ts[0], ts[1:], weights, density, scale, thresholds)
