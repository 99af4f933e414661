"""Merging primitives, applied one parameter tensor at a time so memory stays at one model's size.

A merged model is never written to disk: the merge stage stores its recipe (the chosen coefficients,
thresholds and seeds) and the job that generates from it materialises the weights in memory with
:func:`merge_into`, tensor by tensor, into a model loaded from one pool member (config, tokenizer and
starting weights), so the extra memory is one tensor per pool model. Pool models are read through a
:class:`TensorSource`: a safetensors folder read lazily (:class:`CheckpointTensors`), or a state in memory
(:class:`StateTensors`; a base model with its LoRA adapter merged, :func:`adapted_state`).
:func:`save_state` writes a materialised merge as an HF folder for anyone who wants one on disk (export).
We merge here rather than through mergekit because mergekit pins its own torch/transformers ranges, which
conflict with the pinned CPU torch, and the formulas below are a few lines each.

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
from typing import Any, Protocol

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


class TensorSource(Protocol):
    """The parameter tensors of one model, by checkpoint name (what the merges read)."""

    def keys(self) -> list[str]: ...

    def shape(self, key: str) -> tuple[int, ...]: ...

    def get(self, key: str) -> torch.Tensor: ...


class CheckpointTensors:
    """A safetensors model folder, each tensor read when asked for (no tensor stays in memory)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.dir = Path(model_dir)
        self._index = _tensor_index(self.dir)
        self._files: dict[Path, Any] = {}

    def _file(self, key: str) -> Any:
        from safetensors import safe_open

        path = self._index[key]
        if path not in self._files:
            self._files[path] = safe_open(str(path), framework="pt")
        return self._files[path]

    def keys(self) -> list[str]:
        return list(self._index)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._file(key).get_slice(key).get_shape())

    def get(self, key: str) -> torch.Tensor:
        return self._file(key).get_tensor(key)

    def __repr__(self) -> str:
        return f"CheckpointTensors({self.dir})"


class StateTensors:
    """Tensors held in memory (``name`` says whose, in error messages)."""

    def __init__(self, state: dict[str, torch.Tensor], name: str = "state") -> None:
        self.state, self.name = state, name

    def keys(self) -> list[str]:
        return list(self.state)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.state[key].shape)

    def get(self, key: str) -> torch.Tensor:
        return self.state[key]

    def __repr__(self) -> str:
        return self.name


def load_state(source: TensorSource | Path | str) -> dict[str, torch.Tensor]:
    """Every tensor of a model (for merges that combine whole models many times)."""
    src = CheckpointTensors(source) if isinstance(source, (str, Path)) else source
    return {key: src.get(key) for key in src.keys()}


def combine_states(states: list[dict[str, torch.Tensor]], coefficients: list[float]
                   ) -> dict[str, torch.Tensor]:
    """``sum_i c_i theta_i`` for every tensor (coefficients used as given), in the first model's dtypes."""
    return {key: linear([s[key] for s in states], coefficients) for key in states[0]}


def apply_adapter(model: Any, config: Any, state: dict[str, torch.Tensor]) -> Any:
    """``model`` with a LoRA adapter (peft ``config`` and adapter ``state``, as peft saves them) merged into
    its weights, in place; returns the plain model (peft's ``merge_and_unload``)."""
    import copy

    from peft import get_peft_model, set_peft_model_state_dict

    peft_model = get_peft_model(model, copy.deepcopy(config))
    result = set_peft_model_state_dict(peft_model, state)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"adapter tensors do not fit the model: {result.unexpected_keys[:5]}")
    return peft_model.merge_and_unload()


def adapted_state(base_dir: Path, adapter_dir: Path) -> dict[str, torch.Tensor]:
    """The weights of base + LoRA adapter (peft's merge, in float32), keyed like the base's checkpoint."""
    from peft import PeftConfig
    from peft.utils import load_peft_weights
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True, dtype=torch.float32)
    merged = apply_adapter(model, PeftConfig.from_pretrained(str(adapter_dir)),
                           load_peft_weights(str(adapter_dir), device="cpu"))
    state = merged.state_dict()
    keys = CheckpointTensors(base_dir).keys()
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"{base_dir} + adapter {adapter_dir}: the loaded model names its tensors differently "
                         f"from the checkpoint (e.g. {missing[:3]})")
    return {k: state[k].detach() for k in keys}


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


def global_trim_thresholds(base: TensorSource, models: list[TensorSource], density: float) -> list[float]:
    """Per model, the magnitude of its ``round(density * n)``-th largest task-vector entry over ALL its
    parameters (``n`` = parameter count): TIES's whole-task-vector trim keeps the entries at or above it
    (+inf when nothing is kept). One model's flattened task vector is in memory at a time."""
    _check_density(density)
    keys = check_same_parameters([base, *models])
    out = []
    for model in models:
        flat = torch.cat([(model.get(key).float() - base.get(key).float()).abs().flatten() for key in keys])
        k = int(round(density * flat.numel()))
        out.append(math.inf if k == 0 else float(torch.kthvalue(flat, flat.numel() - k + 1).values))
    return out


def check_same_parameters(sources: list[TensorSource]) -> list[str]:
    """Every model must have the same parameter names and shapes; returns the first model's names."""
    shapes = [{key: s.shape(key) for key in s.keys()} for s in sources]
    for s, shape in zip(sources[1:], shapes[1:], strict=True):
        if shape != shapes[0]:
            missing = sorted(set(shapes[0]) ^ set(shape))[:5]
            differing = [k for k in shapes[0] if k in shape and shape[k] != shapes[0][k]][:5]
            raise ValueError(f"cannot merge {sources[0]!r} and {s!r}: different parameters "
                             f"(names only in one: {missing}; shapes differ: {differing})")
    return list(shapes[0])


def merge_tensors(sources: list[TensorSource], merge: TensorMerge,
                  put: Callable[[str, torch.Tensor], None]) -> int:
    """``put(name, merge(name, [tensor per model]))`` for every parameter, one tensor at a time; returns
    the number of tensors."""
    keys = check_same_parameters(sources)
    for key in keys:
        put(key, merge(key, [s.get(key) for s in sources]))
    return len(keys)


def merge_state(sources: list[TensorSource], merge: TensorMerge) -> dict[str, torch.Tensor]:
    """The merged tensors as a state dict (one model's worth in memory)."""
    state: dict[str, torch.Tensor] = {}
    merge_tensors(sources, merge, lambda key, t: state.__setitem__(key, t.contiguous()))
    return state


def merge_into(model: Any, sources: list[TensorSource], merge: TensorMerge) -> Any:
    """Overwrite ``model``'s parameters with the merged tensors, one at a time (each cast to the model's
    dtype and device, as loading a written merge would); returns ``model``. Every merged tensor must name
    a tensor of the model."""
    target = model.state_dict()

    def put(key: str, tensor: torch.Tensor) -> None:
        if key not in target:
            raise ValueError(f"merged tensor {key!r} is not a tensor of the {type(model).__name__} it is loaded "
                             f"into (it has e.g. {list(target)[:3]})")
        if tuple(target[key].shape) != tuple(tensor.shape):
            raise ValueError(f"merged tensor {key!r} has shape {tuple(tensor.shape)}, the model's "
                             f"{tuple(target[key].shape)}")
        target[key].copy_(tensor)

    with torch.no_grad():
        n = merge_tensors(sources, merge, put)
    log.info("materialised %d merged tensors in memory from %d models", n, len(sources))
    return model
