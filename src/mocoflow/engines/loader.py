"""Load Hugging Face causal LMs (engines are built by :mod:`.factory`; weights are fingerprinted by
:func:`mocoflow.models.model_fingerprint`, below the engines, because model cards record it).

Nothing is fetched from a hub unless asked: ``load_model`` passes ``local_files_only=True`` by default
(a spec sets ``allow_hub: true`` to opt in). Tokenizers pad on the left (for batched generation) and
fall back to eos as the pad token.

The token helpers live in :mod:`mocoflow.engines.tokens`; they are re-exported here for callers that still
import them from this module (engines/stepper.py, methods/api/_shared.py, methods/api/co_llm.py,
methods/weight/lorahub.py, bench/bench_fusion.py and some tests).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mocoflow.engines.tokens import (  # noqa: F401  (re-exported, see the module docstring)
    encode_prompts,
    left_pad,
    position_ids_from_mask,
    render_prompt,
    shared_prefix_length,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DerivedWeights:
    """Weights computed in memory when the model loads, never stored: a merge recipe materialised, a LoRA
    fine-tune merged into its base. The engine loads the spec's ``path`` (config, tokenizer and starting
    weights) and passes the model to ``build``, which sets the weights and returns the model to use.
    ``fingerprint`` names the result (the response cache's key), e.g. the hash of a merge recipe."""

    fingerprint: str
    build: Callable[[Any], Any]


def merge_adapter(model: Any, adapter: str | os.PathLike[str]) -> Any:
    """``model`` with the peft adapter at ``adapter`` merged into its weights (peft's ``merge_and_unload``: the
    same merge the ``lora`` source once saved to disk, so the logits are the merged copy's)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


def derived_weights(spec: dict[str, Any]) -> DerivedWeights | None:
    """The in-memory weights a model spec asks for: its ``derived`` (a merge recipe, an in-memory fine-tune),
    or, for a model stored as a LoRA adapter of its base (``lora_adapter``: ``{"path", "fingerprint"}``, set by
    :meth:`mocoflow.models.ModelRef.from_card`), the adapter merged into the base loaded from ``path``."""
    if spec.get("derived") is not None:
        return spec["derived"]
    lora = spec.get("lora_adapter")
    if not lora:
        return None
    adapter = str(lora["path"])
    return DerivedWeights(str(lora["fingerprint"]), lambda model: merge_adapter(model, adapter))


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU (``CUDA_VISIBLE_DEVICES`` is respected by torch), else
    ``"cpu"``. Anything else is returned unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | Any, device: str) -> Any:
    """``"auto"``: the checkpoint's dtype on GPU, float32 on CPU (CPU half precision is slow and lossy)."""
    import torch

    if dtype == "auto":
        return "auto" if device.startswith("cuda") else torch.float32
    if isinstance(dtype, str):
        try:
            return {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
                    "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}[dtype]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r} (auto, float32, float16, bfloat16)") from None
    return dtype


def load_model(path_or_id: str | os.PathLike[str], *, device: str = "auto", dtype: str | Any = "auto",
               local_files_only: bool = True, attn_implementation: str | None = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` in eval mode on ``device``; the tokenizer pads on the left."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    src = str(Path(path_or_id).expanduser()) if Path(path_or_id).expanduser().is_dir() else str(path_or_id)
    tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=local_files_only)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {"local_files_only": local_files_only, "dtype": resolve_dtype(dtype, dev)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(src, **kwargs)
    model.to(dev)
    model.eval()
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def parameter_count(model: Any) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
