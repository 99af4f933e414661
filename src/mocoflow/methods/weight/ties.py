"""TIES-merging (Yadav et al. 2023): trim each task vector to its largest ``density`` fraction, elect a sign
per parameter, and average only the entries that agree with it:
``theta = theta_base + scale * disjoint_mean_i(w_i * trim(theta_i - theta_base))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mocoflow.methods.base import MergeContext, MergeMethod, register
from mocoflow.methods.weight._common import base_and_others, check_weights
from mocoflow.models import ModelRef


@dataclass(frozen=True)
class TiesParams:
    """base: pool model whose weights the task vectors are taken from (None = first pool model).
    density: fraction of each task vector's entries kept by magnitude (0.2, the paper's k=20%).
    weights: per non-base model (None = 1 each). scale: lambda on the merged task vector (1.0)."""

    base: str | None = None
    density: float = 0.2
    weights: list[float] | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"ties density must be in (0, 1], got {self.density}")


@register
class Ties(MergeMethod):
    name = "ties"
    Params = TiesParams

    def merge(self, pool: list[ModelRef], out_dir: Path, ctx: MergeContext | None = None) -> Path:
        from mocoflow.training.merging import merge_checkpoints, ties

        p = self.params
        self.check_pool(pool)
        base, others = base_and_others(pool, p.base, self.name)
        weights = check_weights(p.weights, len(others), self.name, "non-base model")
        return merge_checkpoints([Path(r.path) for r in (base, *others)], out_dir,
                                 lambda _k, ts: ties(ts[0], ts[1:], weights, p.density, p.scale))
