"""Helpers the weight-level methods share (``methods/<level>/common.py``, as every level): picking pool models
by name, reading a pool model's tensors, recording a merge's decisions and scoring candidate weights on dev.

**Pool models stored as base + adapter.** A pool model's tensors come from its weights folder, or, when it is
stored as a LoRA adapter of a base model (its card's path is a peft adapter folder, or its card names an
``adapter`` and its path holds no full weights of its own), from the base with the adapter merged in memory
(:func:`member_tensors`). The folder a merged model starts from is the model's own, or its base's
(:func:`member_template`).

``TensorFormulaMerge``: a merge whose every tensor is a formula of the pool models' same-named tensors
(linear, task arithmetic, TIES, DARE, ExPO, soups, swarms); it materialises them one tensor at a time into
the model loaded from the first member's folder.

``DevEvaluator`` loads one engine for the pool's architecture once and swaps candidate weights into it in
place (``load_state_dict``), so evaluating a candidate costs one dev generation pass, not a model load.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any

from mocoflow.methods.base import MergeContext, MergeMethod, MethodError
from mocoflow.methods.common import pool_member, prompts_for, reliance_from_weights
from mocoflow.models import ModelRef, card_weights

log = logging.getLogger(__name__)


def base_and_others(pool: list[ModelRef], base: str | None, method: str) -> tuple[ModelRef, list[ModelRef]]:
    """The base model (named, or the first pool model) and the other pool models, in pool order."""
    if len(pool) < 2:
        raise MethodError(f"{method} needs a base and at least one other model; pool has {len(pool)}")
    b = pool_member(pool, base, f"{method}: base") if base else pool[0]
    return b, [r for r in pool if r.name != b.name]


def record(ctx: MergeContext | None, **entries: Any) -> None:
    """Record the merge's decisions in ``ctx`` (the merge stage always passes one; direct calls may not)."""
    if ctx is not None:
        ctx.decide(**entries)


def coefficient_reliance(coefficients: dict[str, float]) -> dict[str, float]:
    """Reliance of a merge whose result is the linear combination ``sum_i c_i theta_i`` of pool models."""
    return reliance_from_weights(coefficients)


def check_weights(weights: list[float] | None, n: int, method: str, what: str) -> list[float]:
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise MethodError(f"{method}: need {n} weights (one per {what}), got {weights}")
    return [float(w) for w in weights]


def find_adapter(ref: ModelRef) -> tuple[Path, list[Path]] | None:
    """A pool model's LoRA adapter folder and the candidate folders of its base model (card ``base``, spec
    ``base_path``, the ``base`` model's card beside this one, the adapter's ``base_model_name_or_path``), or
    None when it has no adapter. The adapter is the card's path itself when that is a peft adapter folder,
    else card ``adapter``, else an ``adapter/`` folder beside the weights (the ``lora`` source's layout)."""
    card, path = ref.card, Path(ref.path)
    spec = card.get("spec") or {}
    if (path / "adapter_config.json").exists():
        adapter = path
    elif card.get("adapter"):
        adapter = Path(card["adapter"])
    else:
        adapter = path.parent / "adapter"
    if not (adapter / "adapter_config.json").exists():
        return None
    candidates: list[Path] = [Path(v) for v in (card.get("base"), spec.get("base_path")) if v]
    if spec.get("base"):
        for folder in {path.parent.parent, adapter.parent.parent}:
            base_card = folder / str(spec["base"]) / "card.json"
            if base_card.exists():
                candidates.append(card_weights(base_card))
    config = json.loads((adapter / "adapter_config.json").read_text())
    if config.get("base_model_name_or_path"):
        candidates.append(Path(config["base_model_name_or_path"]))
    return adapter, candidates


def adapter_and_base(ref: ModelRef, method: str) -> tuple[Path, Path]:
    """The peft adapter folder and base model folder of one pool model, or a MethodError naming why not."""
    found = find_adapter(ref)
    if found is None:
        raise MethodError(f"{method} needs LoRA adapters; model {ref.name!r} has none (no card['adapter'], no "
                          f"adapter_config.json in {ref.path} and no {Path(ref.path).parent}/adapter): build it "
                          "with source 'lora' or set its adapter")
    adapter, candidates = found
    for c in candidates:
        if (c / "config.json").exists():
            return adapter, c
    raise MethodError(f"{method}: cannot find the base model of {ref.name!r} (card['base'], spec base or "
                      "base_path, and the adapter's base_model_name_or_path give no HF folder: "
                      f"{[str(c) for c in candidates]})")


def _full_weights(path: Path) -> bool:
    return (path / "config.json").exists() and not (path / "adapter_config.json").exists() \
        and any(path.glob("*.safetensors"))


def stored_as_adapter(ref: ModelRef) -> tuple[Path, Path] | None:
    """``(adapter, base)`` when the pool model's weights exist only as base + adapter; None when its path
    holds its own full weights (also a ``lora`` model that kept a merged copy beside its adapter)."""
    path = Path(ref.path)
    if _full_weights(path) and not ref.card.get("adapter"):
        return None
    if find_adapter(ref) is None:
        return None
    adapter, base = adapter_and_base(ref, "merge")
    if _full_weights(path) and path.resolve() != base.resolve():
        return None  # a full copy of its own beside the adapter
    return adapter, base


def member_tensors(ref: ModelRef) -> Any:
    """The pool model's tensors by checkpoint name: its safetensors folder read lazily, or its base with its
    adapter merged (in memory, float32)."""
    from mocoflow.training.merging import CheckpointTensors, StateTensors, adapted_state

    stored = stored_as_adapter(ref)
    if stored is None:
        return CheckpointTensors(ref.path)
    adapter, base = stored
    log.info("%s: base %s + adapter %s, merged in memory", ref.name, base, adapter)
    return StateTensors(adapted_state(base, adapter), name=f"{ref.name} (base {base} + adapter {adapter})")


def member_template(ref: ModelRef) -> Path:
    """The model folder (config, tokenizer, weights) a merged model built from ``ref`` is loaded from."""
    stored = stored_as_adapter(ref)
    return Path(ref.path) if stored is None else stored[1]


class TensorFormulaMerge(MergeMethod):
    """A merge whose merged tensors are each a formula of the same-named tensors of some pool models
    (:meth:`formula`); materialised one tensor at a time into the model loaded from the first of them."""

    @abstractmethod
    def formula(self, pool: list[ModelRef], plan: dict[str, Any]) -> tuple[list[ModelRef], Any]:
        """The pool models the formula reads, in its order, and ``f(name, [tensor per model]) -> tensor``."""

    def template(self, pool: list[ModelRef], plan: dict[str, Any]) -> Path:
        return member_template(self.formula(pool, plan)[0][0])

    def materialise(self, model: Any, pool: list[ModelRef], plan: dict[str, Any]) -> Any:
        from mocoflow.training.merging import merge_into

        members, merge = self.formula(pool, plan)
        return merge_into(model, [member_tensors(r) for r in members], merge)

    def merged_state(self, pool: list[ModelRef], plan: dict[str, Any]) -> dict[str, Any]:
        """The merged tensors as a state dict (tests; export with ``training.merging.save_state``)."""
        from mocoflow.training.merging import merge_state

        members, merge = self.formula(pool, plan)
        return merge_state([member_tensors(r) for r in members], merge)


class DevEvaluator:
    """Dev accuracy of candidate weights: one engine loaded from ``template_dir``, weights swapped in."""

    def __init__(self, ctx: MergeContext, template_dir: str | Path, max_items: int | None = None) -> None:
        self.items = list(ctx.dev_items[:max_items] if max_items else ctx.dev_items)
        if not self.items:
            raise MethodError("dev evaluation needs at least one dev item")
        self.prompts = prompts_for(self.items)
        self.decoding = ctx.decoding
        self.score = ctx.score
        self.engine = ctx.engine_factory(str(template_dir))
        self.evaluations = 0

    def accuracy(self, state: dict[str, Any]) -> float:
        _missing, unexpected = self.engine.load_state_dict(state, strict=False)
        if unexpected:
            raise MethodError(f"candidate weights do not fit the model: unexpected tensors {unexpected[:5]}")
        gens = self.engine.generate(self.prompts, self.decoding)
        self.evaluations += 1
        correct = [bool(self.score(item, g.text)) for item, g in zip(self.items, gens, strict=True)]
        return sum(correct) / len(correct)
