"""TIES-merging (Yadav et al. 2023): trim each task vector to its largest ``density`` fraction, elect a sign
per parameter, and average only the entries that agree with it:
``theta = theta_base + scale * disjoint_mean_i(w_i * trim(theta_i - theta_base))``.

Trim (``trim``): ``"global"`` (the DEFAULT, the paper's and its reference code's): the top ``density``
fraction by magnitude of each model's whole task vector, all parameters flattened together, so tensors
that changed a lot keep more entries than tensors that barely moved; ``"per_tensor"``: each tensor keeps its
own top fraction (mergekit's convention; it was mocoflow's only trim before).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mocoflow.methods.base import MergeContext, MergeMethod, register
from mocoflow.methods.weight.common import base_and_others, check_weights, record
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
class Ties(MergeMethod):
    name = "ties"
    Params = TiesParams

    def merge(self, pool: list[ModelRef], out_dir: Path, ctx: MergeContext | None = None) -> Path:
        from mocoflow.training.merging import global_trim_thresholds, merge_checkpoints, ties

        p = self.params
        self.check_pool(pool)
        base, others = base_and_others(pool, p.base, self.name)
        weights = check_weights(p.weights, len(others), self.name, "non-base model")
        thresholds = (global_trim_thresholds(Path(base.path), [Path(r.path) for r in others], p.density)
                      if p.trim == "global" else None)
        record(ctx, base=base.name, weights=dict(zip([r.name for r in others], weights, strict=True)),
               density=p.density, scale=p.scale, trim=p.trim)
        return merge_checkpoints([Path(r.path) for r in (base, *others)], out_dir,
                                 lambda _k, ts: ties(ts[0], ts[1:], weights, p.density, p.scale, thresholds))
