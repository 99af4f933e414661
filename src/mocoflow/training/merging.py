"""Merging primitives, applied one parameter tensor at a time so memory stays at one model's size.

Checkpoints are read lazily with ``safetensors.safe_open``; the merged tensors are written as one
HF model directory (config and tokenizer copied from the first model) that the engine loads like any
other model. We merge here rather than through mergekit because mergekit pins its own torch/transformers
ranges, which conflict with the pinned CPU torch, and the formulas below are a few lines each.

Formulas (all on one tensor; ``delta_i = theta_i - theta_base``):

- ``linear``: ``sum_i w_i theta_i``; ``task_arithmetic``: ``theta_base + scale * sum_i w_i delta_i``.
- ``ties`` (Yadav et al. 2023): trim each delta to its top-``density`` fraction by magnitude, elect the
  sign of ``sum_i w_i trimmed_i`` per entry, then take the weighted mean over the models whose trimmed
  entry is non-zero and agrees with that sign (disjoint merge): ``theta_base + scale * merged``. The trim
  is either the paper's, over each model's WHOLE task vector (all parameters flattened: one magnitude
  threshold per model, :func:`global_trim_thresholds`; entries tied at the threshold are all kept), or per
  tensor (each tensor keeps its own top fraction, as mergekit does; :func:`trim_to_density`).
- ``dare`` (Yu et al. 2024): keep a seeded random ``density`` fraction of each delta's entries (exactly
  ``round(density * n)``), rescale the kept ones by ``1 / density``, then add them like task arithmetic;
  ``dare_ties`` replaces the magnitude trim of TIES by this drop-and-rescale.
- ``expo`` (Zheng et al. 2024): extrapolate from the weaker towards (beyond) the stronger model,
  ``theta_strong + alpha * (theta_strong - theta_weak)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from mocoflow.io import atomic_path
from mocoflow.models import TOKENIZER_FILES

log = logging.getLogger(__name__)

TensorMerge = Callable[[str, list[torch.Tensor]], torch.Tensor]


def linear(tensors: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """sum_i w_i * theta_i (weights are used as given; callers normalise when they want an average)."""
    out = torch.zeros_like(tensors[0], dtype=torch.float32)
    for w, t in zip(weights, tensors, strict=True):
        out += w * t.float()
    return out.to(tensors[0].dtype)


def task_arithmetic(base: torch.Tensor, tensors: list[torch.Tensor], weights: list[float],
                    scale: float = 1.0) -> torch.Tensor:
    """theta_base + scale * sum_i w_i * (theta_i - theta_base)."""
    b = base.float()
    delta = torch.zeros_like(b)
    for w, t in zip(weights, tensors, strict=True):
        delta += w * (t.float() - b)
    return (b + scale * delta).to(base.dtype)


def trim_to_density(delta: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``round(density * n)`` largest-magnitude entries of ``delta`` (ties broken by position),
    zero the rest."""
    _check_density(density)
    flat = delta.float().flatten()
    k = int(round(density * flat.numel()))
    if k >= flat.numel():
        return delta.float().clone()
    out = torch.zeros_like(flat)
    if k > 0:
        keep = torch.topk(flat.abs(), k, sorted=False).indices
        out[keep] = flat[keep]
    return out.view_as(delta)


def elect_sign(deltas: list[torch.Tensor], weights: list[float] | None = None) -> torch.Tensor:
    """TIES sign election: the sign of the (weighted) sum of the deltas, per entry (0 where it is 0)."""
    weights = weights or [1.0] * len(deltas)
    total = torch.zeros_like(deltas[0], dtype=torch.float32)
    for w, d in zip(weights, deltas, strict=True):
        total += w * d.float()
    return torch.sign(total)


def disjoint_merge(deltas: list[torch.Tensor], sign: torch.Tensor, weights: list[float] | None = None
                   ) -> torch.Tensor:
    """Weighted mean, per entry, over the deltas that are non-zero and agree with ``sign``
    (0 where none agrees)."""
    weights = weights or [1.0] * len(deltas)
    num = torch.zeros_like(sign, dtype=torch.float32)
    den = torch.zeros_like(sign, dtype=torch.float32)
    for w, d in zip(weights, deltas, strict=True):
        agree = (torch.sign(d.float()) == sign) & (d != 0)
        num += torch.where(agree, w * d.float(), torch.zeros_like(num))
        den += agree.float() * w
    return torch.where(den != 0, num / den.clamp_min(1e-12), torch.zeros_like(num))


def trim_to_threshold(delta: torch.Tensor, threshold: float) -> torch.Tensor:
    """Keep the entries of ``delta`` whose magnitude is at least ``threshold``, zero the rest."""
    d = delta.float()
    return torch.where(d.abs() >= threshold, d, torch.zeros_like(d))


def ties(base: torch.Tensor, tensors: list[torch.Tensor], weights: list[float] | None = None,
         density: float = 0.2, scale: float = 1.0, thresholds: list[float] | None = None) -> torch.Tensor:
    """TIES-merging: trim, elect sign, disjoint (weighted) mean. The trim keeps each delta's top-``density``
    entries of this tensor, or, with ``thresholds`` (one per model, from :func:`global_trim_thresholds`),
    the entries at or above the model's whole-task-vector threshold."""
    b = base.float()
    if thresholds is None:
        trimmed = [trim_to_density(t.float() - b, density) for t in tensors]
    else:
        trimmed = [trim_to_threshold(t.float() - b, th) for t, th in zip(tensors, thresholds, strict=True)]
    merged = disjoint_merge(trimmed, elect_sign(trimmed, weights), weights)
    return (b + scale * merged).to(base.dtype)


def tensor_seed(seed: int, name: str, index: int) -> int:
    """A per-(seed, tensor name, model index) seed, independent of the order tensors are visited in."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{name}\0{index}".encode()).digest()[:8], "big") % (2**63)


def dare_drop(delta: torch.Tensor, density: float, seed: int) -> torch.Tensor:
    """DARE drop-and-rescale: keep exactly ``round(density * n)`` entries chosen uniformly at random
    (seeded), multiply them by ``1 / density``, zero the rest."""
    _check_density(density)
    flat = delta.float().flatten()
    n = flat.numel()
    k = int(round(density * n))
    gen = torch.Generator().manual_seed(seed)
    keep = torch.randperm(n, generator=gen)[:k]
    out = torch.zeros_like(flat)
    out[keep] = flat[keep] / density
    return out.view_as(delta)


def dare(base: torch.Tensor, tensors: list[torch.Tensor], weights: list[float] | None = None,
         density: float = 0.5, scale: float = 1.0, *, seed: int = 0, name: str = "",
         ties_merge: bool = False) -> torch.Tensor:
    """DARE: drop-and-rescale each delta, then add them like task arithmetic
    (``theta_base + scale * sum_i w_i dropped_i``) or, with ``ties_merge``, by TIES sign election and
    disjoint mean (DARE-TIES). Seeded per (seed, tensor name, model index)."""
    b = base.float()
    weights = weights or [1.0] * len(tensors)
    dropped = [dare_drop(t.float() - b, density, tensor_seed(seed, name, i)) for i, t in enumerate(tensors)]
    if ties_merge:
        merged = disjoint_merge(dropped, elect_sign(dropped, weights), weights)
    else:
        merged = torch.zeros_like(b)
        for w, d in zip(weights, dropped, strict=True):
            merged += w * d
    return (b + scale * merged).to(base.dtype)


def expo(weak: torch.Tensor, strong: torch.Tensor, alpha: float) -> torch.Tensor:
    """ExPO: ``theta_strong + alpha * (theta_strong - theta_weak)``."""
    s = strong.float()
    return (s + alpha * (s - weak.float())).to(strong.dtype)


def _check_density(density: float) -> None:
    if not 0.0 < density <= 1.0 or math.isnan(density):
        raise ValueError(f"density must be in (0, 1], got {density}")


def load_state(model_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors model directory (for merges that combine whole models many times)."""
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for key, f in _tensor_index(Path(model_dir)).items():
        with safe_open(str(f), framework="pt") as st:
            state[key] = st.get_tensor(key)
    return state


def combine_states(states: list[dict[str, torch.Tensor]], coefficients: list[float]
                   ) -> dict[str, torch.Tensor]:
    """``sum_i c_i theta_i`` for every tensor (coefficients used as given), in the first model's dtypes."""
    return {key: linear([s[key] for s in states], coefficients) for key in states[0]}


def save_state(state: dict[str, torch.Tensor], src_dir: Path, out_dir: Path, *,
               sources: list[str] | None = None, info: dict | None = None) -> Path:
    """Write ``state`` as an HF model directory (config, generation config and tokenizer from ``src_dir``)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": "pt"})
    src = Path(src_dir)
    for fname in ("config.json", "generation_config.json", *TOKENIZER_FILES):
        if (src / fname).exists():
            shutil.copyfile(src / fname, out_dir / fname)
    record = {"sources": sources or [str(src)], **(info or {})}
    (out_dir / "merge.json").write_text(json.dumps(record, indent=2))
    return out_dir


def _tensor_index(model_dir: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    from safetensors import safe_open

    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                index[key] = f
    if not index:
        raise FileNotFoundError(f"no safetensors weights in {model_dir}")
    return index


def global_trim_thresholds(base_dir: Path, model_dirs: list[Path], density: float) -> list[float]:
    """Per model, the magnitude of its ``round(density * n)``-th largest task-vector entry over ALL its
    parameters (``n`` = parameter count): TIES's whole-task-vector trim keeps the entries at or above it
    (+inf when nothing is kept). One model's flattened task vector is in memory at a time."""
    from safetensors import safe_open

    _check_density(density)
    base_index = check_same_parameters([Path(base_dir), *map(Path, model_dirs)])
    out = []
    for d in model_dirs:
        index = _tensor_index(Path(d))
        parts = []
        for key in base_index:
            with safe_open(str(base_index[key]), framework="pt") as sb, safe_open(str(index[key]),
                                                                                  framework="pt") as sm:
                parts.append((sm.get_tensor(key).float() - sb.get_tensor(key).float()).abs().flatten())
        flat = torch.cat(parts)
        k = int(round(density * flat.numel()))
        out.append(math.inf if k == 0 else float(torch.kthvalue(flat, flat.numel() - k + 1).values))
    return out


def check_same_parameters(model_dirs: list[Path]) -> dict[str, Path]:
    """Every model must have the same parameter names and shapes; returns the first model's index."""
    from safetensors import safe_open

    indexes = [_tensor_index(d) for d in model_dirs]
    shapes = []
    for index in indexes:
        s = {}
        for key, f in index.items():
            with safe_open(str(f), framework="pt") as st:
                s[key] = tuple(st.get_slice(key).get_shape())
        shapes.append(s)
    for d, s in zip(model_dirs[1:], shapes[1:], strict=True):
        if s != shapes[0]:
            missing = sorted(set(shapes[0]) ^ set(s))[:5]
            differing = [k for k in shapes[0] if k in s and s[k] != shapes[0][k]][:5]
            raise ValueError(f"cannot merge {model_dirs[0]} and {d}: different parameters "
                             f"(names only in one: {missing}; shapes differ: {differing})")
    return indexes[0]


def merge_checkpoints(model_dirs: list[Path], out_dir: Path, merge: TensorMerge) -> Path:
    """Apply ``merge(name, [tensor per model])`` to every parameter and save an HF model directory."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    index = check_same_parameters(model_dirs)
    indexes = [index] + [_tensor_index(d) for d in model_dirs[1:]]
    merged: dict[str, torch.Tensor] = {}
    for key in index:
        tensors = []
        for idx in indexes:
            with safe_open(str(idx[key]), framework="pt") as st:
                tensors.append(st.get_tensor(key))
        merged[key] = merge(key, tensors).contiguous()
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "model.safetensors") as tmp:
        save_file(merged, str(tmp), metadata={"format": "pt"})
    src = model_dirs[0]
    for fname in ("config.json", "generation_config.json", *TOKENIZER_FILES):
        if (src / fname).exists():
            shutil.copyfile(src / fname, out_dir / fname)
    (out_dir / "merge.json").write_text(json.dumps({"sources": [str(d) for d in model_dirs]}, indent=2))
    log.info("merged %d models into %s (%d tensors)", len(model_dirs), out_dir, len(merged))
    return out_dir
