"""LoraHub (Huang et al. 2024): combine LoRA adapters of one base model with weights found by gradient-free
optimisation on a few dev items.

The combined adapter is ``A = sum_i w_i A_i`` and ``B = sum_i w_i B_i`` for every LoRA matrix (the paper's
element-wise composition), so the merged model is ``W_base + (alpha / r) * (sum_i w_i B_i)(sum_i w_i A_i)``
per adapted layer. The weights minimise the cross-entropy of the dev items' reference answers (the same
``Answer: <gold>`` target the LoRA specialists are trained on) plus ``l1 * mean_i |w_i|`` (the reference
code's regulariser, ``sail-sg/lorahub`` ``default_l1_regularization``), searched with nevergrad's NGOpt
within ``[-bound, bound]`` under a fixed evaluation ``budget`` (40: ``max_inference_step`` of the paper's
BBH runs, ``reproduce_bbh.py``). The search starts (``init``) from the uniform combination ``w_i = 1/n``
by default: the reference code starts from all-zero weights, which IS the base model without any adapter,
so a small budget can end where it started and return the base unchanged (``init: zeros`` restores it).

Each pool model must carry a LoRA adapter (:func:`mocoflow.methods.weight.common.find_adapter`): its card's
path is a peft adapter folder, or its card names ``adapter`` (and ``base``, the base model's HF folder), or
an ``adapter/`` folder sits next to its ``weights/`` (the ``lora`` source). All adapters must share one
base model and one LoRA configuration. The merge stores only the weights (the recipe); the job that
generates merges the combined adapter into the base model when it loads it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mocoflow.methods.base import MergeContext, MergeMethod, MethodError, Need, register
from mocoflow.methods.common import pool_member, prompts_for, reliance_from_weights
from mocoflow.methods.weight.common import adapter_and_base
from mocoflow.models import ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraHubParams:
    """budget: nevergrad evaluations (40, the paper's). l1: weight of the mean |w_i| penalty (0.05, the
    paper's). bound: weights are searched in [-bound, bound] (1.5). max_dev_items: dev items in the loss (5,
    the paper's few-shot setting). seed: optimiser seed (None = the study seed).
    init: the search's start, "uniform" (1/n each; default) or "zeros" (the reference code's: the base).
    weights: fixed combination weights (skips the search and the dev split)."""

    budget: int = 40
    l1: float = 0.05
    bound: float = 1.5
    max_dev_items: int = 5
    seed: int | None = None
    init: str = "uniform"
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        if self.init not in ("uniform", "zeros"):
            raise ValueError(f"lorahub init must be 'uniform' or 'zeros', not {self.init!r}")
        if self.budget < 1:
            raise ValueError(f"lorahub budget must be at least 1, got {self.budget}")


def combine_lora(states: list[dict[str, Any]], weights: list[float]) -> dict[str, Any]:
    """``sum_i w_i state_i`` for every LoRA tensor."""
    return {k: sum(w * s[k].float() for w, s in zip(weights, states, strict=True)) for k in states[0]}


@register
class LoraHub(MergeMethod):
    name = "lorahub"
    needs = frozenset({Need.MERGED_MODEL})  # adapters of one base (checked in plan), not full models
    Params = LoraHubParams
    uses_dev = True

    def _adapters(self, pool: list[ModelRef]) -> tuple[Path, list[Path]]:
        """The shared base folder and each pool model's adapter folder (checked: one base, one LoRA shape)."""
        found = [adapter_and_base(r, self.name) for r in pool]
        bases = {str(b.resolve()) for _a, b in found}
        if len(bases) > 1:
            raise MethodError(f"lorahub: adapters must share one base model; pool has {sorted(bases)}")
        configs = [json.loads((a / "adapter_config.json").read_text()) for a, _b in found]

        def signature(c: dict) -> tuple:  # peft writes target_modules from a set: compare as a set
            targets = c.get("target_modules")
            layers = c.get("layers_to_transform")
            return (c.get("r"), c.get("lora_alpha"), sorted(targets) if isinstance(targets, list) else targets,
                    sorted(layers) if isinstance(layers, list) else layers)

        if any(signature(c) != signature(configs[0]) for c in configs):
            shown = {r.name: signature(c) for r, c in zip(pool, configs, strict=True)}
            raise MethodError("lorahub: adapters must share rank, alpha, target modules and adapted layers (a "
                              f"specialist's top_layers); (r, alpha, targets, layers) per model: {shown}")
        return found[0][1], [a for a, _b in found]

    def _states(self, adapters: list[Path]) -> list[dict[str, Any]]:
        from peft.utils import load_peft_weights

        states = [load_peft_weights(str(a), device="cpu") for a in adapters]
        if any(set(s) != set(states[0]) for s in states):
            raise MethodError("lorahub: adapters have different LoRA tensors")
        return states

    def plan(self, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, Any]:
        """``{"models", "weights", "loss"}``: the combined adapter is ``sum_i w_i adapter_i`` over the pool."""
        import torch
        from peft import PeftModel, set_peft_model_state_dict
        from transformers import AutoModelForCausalLM, AutoTokenizer

        p = self.params
        base, adapters = self._adapters(pool)
        if p.weights is not None:
            if len(p.weights) != len(pool):
                raise MethodError(f"lorahub: need {len(pool)} weights, got {p.weights}")
            weights, loss = [float(w) for w in p.weights], None
        else:
            ctx = self.merge_context(ctx, engine=False)
            states = self._states(adapters)
            model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True, dtype=torch.float32)
            model = PeftModel.from_pretrained(model, str(adapters[0]))
            model.eval()
            tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
            batch = answer_batch(tokenizer, ctx.dev_items[:p.max_dev_items])
            seed = p.seed if p.seed is not None else ctx.seed

            def objective(w: list[float]) -> float:
                set_peft_model_state_dict(model, combine_lora(states, list(w)))
                with torch.no_grad():
                    ce = float(model(**batch).loss)
                return ce + p.l1 * sum(abs(x) for x in w) / len(w)

            start = [1.0 / len(pool)] * len(pool) if p.init == "uniform" else [0.0] * len(pool)
            weights, loss = optimise(objective, len(pool), p.budget, p.bound, seed, start)
            log.info("lorahub: weights %s, loss %.4f", weights, loss)
        named = dict(zip([r.name for r in pool], weights, strict=True))
        if ctx is not None:
            ctx.decide(coefficients=named, reliance=reliance_from_weights(named), loss=loss, init=p.init,
                       budget=p.budget, base_only=all(abs(w) < 1e-6 for w in weights))
        return {"models": [r.name for r in pool], "weights": weights, "loss": loss}

    def template(self, pool: list[ModelRef], plan: dict[str, Any]) -> Path:
        return self._adapters([pool_member(pool, n) for n in plan["models"]])[0]

    def materialise(self, model: Any, pool: list[ModelRef], plan: dict[str, Any]) -> Any:
        """The base model with the weighted sum of the adapters merged into its weights."""
        from peft import PeftConfig

        from mocoflow.training.merging import apply_adapter

        _base, adapters = self._adapters([pool_member(pool, n) for n in plan["models"]])
        combined = combine_lora(self._states(adapters), [float(w) for w in plan["weights"]])
        return apply_adapter(model, PeftConfig.from_pretrained(str(adapters[0])), combined)

    def merged_state(self, pool: list[ModelRef], plan: dict[str, Any]) -> dict[str, Any]:
        """The merged model's tensors, keyed like the base's checkpoint (tests; export)."""
        import torch
        from transformers import AutoModelForCausalLM

        from mocoflow.training.merging import CheckpointTensors

        base = self.template(pool, plan)
        model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True, dtype=torch.float32)
        state = self.materialise(model, pool, plan).state_dict()
        return {k: state[k] for k in CheckpointTensors(base).keys()}


def answer_batch(tokenizer: Any, items: list[Any]) -> dict[str, Any]:
    """Right-padded (prompt + reference answer + eos) ids with the loss on the answer tokens only."""

    from mocoflow.engines.loader import encode_prompts
    from mocoflow.training.lora import answer_text, right_padded_batch

    pairs = []
    for item, head in zip(items, encode_prompts(tokenizer, prompts_for(items)), strict=True):
        answer = answer_text(item)
        if answer is not None:
            tail = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            pairs.append((head + tail, len(head)))
    if not pairs:
        raise MethodError("lorahub: no dev item has a reference answer to compute the loss on")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids, mask, labels = right_padded_batch(pairs, pad)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def optimise(objective: Any, n: int, budget: int, bound: float, seed: int,
             start: list[float] | None = None) -> tuple[list[float], float]:
    """Minimise ``objective`` over ``[-bound, bound]^n`` with nevergrad NGOpt from ``start`` (zeros when
    None; seeded)."""
    import nevergrad as ng
    import numpy as np

    init = np.zeros(n) if start is None else np.clip(np.asarray(start, dtype=float), -bound, bound)
    param = ng.p.Array(init=init, lower=-bound, upper=bound)
    param.random_state = np.random.RandomState(seed)
    optimizer = ng.optimizers.NGOpt(parametrization=param, budget=max(1, budget))
    best = optimizer.minimize(lambda w: objective([float(x) for x in w]))
    weights = [float(x) for x in best.value]
    return weights, objective(weights)
