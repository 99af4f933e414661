"""Merging primitives, applied one parameter tensor at a time so memory stays at one model's size.

Checkpoints are read lazily with ``safetensors.safe_open``; the merged tensors are written as one
HF model directory (config and tokenizer copied from the first model) that the engine loads like any
other model. We merge here rather than through mergekit because mergekit pins its own torch/transformers
ranges, which conflict with the pinned CPU torch, and the four formulas below are a few lines each.
"""

from __future__ import annotations

import json
import logging
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


def check_same_parameters(model_dirs: list[Path]) -> dict[str, Path]:
    """Every model must have the same parameter names and shapes; returns the first model's index."""
    from safetensors import safe_open

    indexes = [_tensor_index(d) for d in model_dirs]
    shapes = []
    for d, index in zip(model_dirs, indexes, strict=True):
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
