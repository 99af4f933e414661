"""LoRA fine-tunes of a model already loaded in a job (SFT and DPO), for methods that train inside a run.

Multi-agent fine-tuning and AggLM tune agents with :func:`sft_lora`, SPARTA with :func:`dpo_lora`. Both run
the one training loop here (:func:`train_lora_copy`): a seeded LoRA copy of the loaded model (no second load
from disk), AdamW at a constant learning rate for ``steps`` batches (seeded epochs over the examples).
Nothing is written to disk: the tuned model is its base plus the trained adapter, kept in memory (a few MB)
as a :class:`~mocoflow.engines.loader.DerivedWeights` in the returned model's spec; the job's engine loads
the base and merges the adapter into it when the tuned model is first used (:func:`tuned_model`). Its
fingerprint hashes the base's and the adapter's tensors, so the response cache never mixes it with its
base. Batching and padding come from :mod:`mocoflow.training.lora`, the specialists' recipe, whose own loop
(warmup, decay, saved adapter) builds the ``lora`` model source.

Prompts are the model's chat-templated user turn (:func:`mocoflow.training.lora.prompt_head`); the loss
is on response tokens (and eos) only.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mocoflow.engines.loader import DerivedWeights, derived_weights
from mocoflow.models import ModelRef
from mocoflow.training.lora import batch_cycler, prompt_head, right_padded_batch

log = logging.getLogger("mocoflow.training.finetune")


class TrainingError(RuntimeError):
    """A fine-tune that cannot run on what it was given (e.g. an engine without in-process weights)."""


@dataclass(frozen=True)
class TrainBudget:
    """A small seeded LoRA fine-tune. Defaults suit SmolLM2-135M on 2 CPU cores (roughly 5-10 s a step).

    steps: optimiser steps (AdamW, constant learning rate).
    batch_size: examples per step (seeded shuffle, cycled).
    lr: learning rate of the LoRA weights.
    rank / alpha: LoRA rank and scaling numerator; all linear layers but the head are adapted.
    max_length: prompt + response tokens; longer examples are dropped (never truncated).
    seed: torch and shuffling seed.
    """

    steps: int = 8
    batch_size: int = 4
    lr: float = 1e-3
    rank: int = 8
    alpha: int = 16
    max_length: int = 384
    seed: int = 0


@dataclass
class Trained:
    """A tuned model: ``ref`` loads it like any model (base + adapter, built in memory); ``seconds`` is the
    training wall time."""

    ref: ModelRef | None
    seconds: float
    examples: int
    losses: list[float]


def encode_pair(tokenizer: Any, prompt: str, response: str) -> tuple[list[int], int]:
    """Token ids of (chat-templated prompt, response + eos) and the index where the response starts."""
    head = tokenizer(prompt_head(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    tail = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return head + tail, len(head)


def sequence_logprob(model: Any, ids: Any, mask: Any, labels: Any) -> Any:
    """Sum of log-probabilities of the labelled (response) tokens, per row."""
    import torch

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    tgt = labels[:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * (tgt != -100)).sum(-1)


def _peft_copy(engine: Any, budget: TrainBudget) -> Any:
    from peft import LoraConfig, get_peft_model

    if not hasattr(engine, "model"):
        raise TrainingError(f"{engine.name}: training needs a transformers engine (with .model)")
    base = copy.deepcopy(engine.model).float()
    config = LoraConfig(r=budget.rank, lora_alpha=budget.alpha, lora_dropout=0.0, target_modules="all-linear",
                        task_type="CAUSAL_LM", bias="none")
    return get_peft_model(base, config)


def adapter_fingerprint(base: str, config: Any, state: dict[str, Any]) -> str:
    """sha256 over the base model's fingerprint, the LoRA configuration and every adapter tensor."""
    import torch

    h = hashlib.sha256(f"lora-finetune\0{base}\0".encode())
    h.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    for key in sorted(state):
        tensor = state[key].detach().to("cpu", torch.float32).contiguous()
        h.update(f"\0{key}\0{tuple(tensor.shape)}\0".encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()


def tuned_model(model: Any, base: ModelRef, base_fingerprint: str, name: str) -> ModelRef:
    """The model ``name``: ``base`` with the adapter trained in ``model`` (a peft model), kept in memory.
    Its spec's ``derived`` loads the base (``base.path``; a base that is itself tuned applies its own
    adapters first) and merges the adapter; the base's backend does not carry over (in-memory weights are
    served by transformers)."""
    from peft import get_peft_model_state_dict

    from mocoflow.training.merging import apply_adapter

    config = copy.deepcopy(model.peft_config["default"])
    state = {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(model).items()}
    parent: DerivedWeights | None = derived_weights(base.spec)  # a merge, a fine-tune or a stored adapter
    fingerprint = adapter_fingerprint(base_fingerprint, config, state)

    def build(loaded: Any) -> Any:
        if parent is not None:
            loaded = parent.build(loaded)
        return apply_adapter(loaded, config, state)

    spec = {k: v for k, v in base.spec.items() if k not in ("path", "source", "backend", "lora_adapter")}
    card = {**base.card, "name": name, "fingerprint": fingerprint, "source": "finetune"}
    card.pop("path", None)
    return ModelRef(name=name, path=base.path, card=card, spec={**spec, "derived": DerivedWeights(fingerprint, build)})


def train_lora_copy(engine: Any, budget: TrainBudget, n_rows: int,
                    batch_loss: Callable[[Any, list[int]], Any]) -> tuple[Any, list[float]]:
    """AdamW on a LoRA copy of ``engine.model`` for ``budget.steps`` batches of row indices (seeded epochs);
    ``batch_loss(model, indices)`` gives each step's loss. Returns the model in eval mode and the losses."""
    import torch

    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(budget.seed)
        model = _peft_copy(engine, budget)
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=budget.lr)
        next_batch = batch_cycler(n_rows, budget.batch_size, random.Random(budget.seed))
        for _ in range(budget.steps):
            loss = batch_loss(model, next_batch())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    model.eval()
    return model, losses


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def sft_lora(engine: Any, base: ModelRef, pairs: list[tuple[str, str]], budget: TrainBudget, name: str
             ) -> Trained:
    """LoRA SFT of a copy of ``engine.model`` on (prompt, response) pairs, loss on response tokens only.
    Returns ``ref=None`` when no pair fits ``max_length`` (nothing trained)."""
    t0 = time.perf_counter()
    tok = engine.tokenizer
    rows = [r for r in (encode_pair(tok, p, c) for p, c in pairs) if len(r[0]) <= budget.max_length]
    if not rows:
        return Trained(None, 0.0, 0, [])
    pad = _pad_id(tok)

    def sft_loss(model: Any, batch: list[int]) -> Any:
        ids, mask, labels = right_padded_batch([rows[i] for i in batch], pad)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    model, losses = train_lora_copy(engine, budget, len(rows), sft_loss)
    ref = tuned_model(model, base, engine.fingerprint, name)
    log.info("%s: SFT on %d examples, %d steps, loss %.3f -> %.3f", name, len(rows), budget.steps,
             losses[0] if losses else 0, losses[-1] if losses else 0)
    return Trained(ref, time.perf_counter() - t0, len(rows), losses)


def dpo_lora(engine: Any, base: ModelRef, triples: list[tuple[str, str, str]], budget: TrainBudget,
             beta: float, name: str) -> Trained:
    """DPO (Rafailov et al. 2023) on (prompt, chosen, rejected) with LoRA; the reference model is the same
    network with the adapter disabled. loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    tok = engine.tokenizer
    rows = []
    for p, c, r in triples:
        rc, rr = encode_pair(tok, p, c), encode_pair(tok, p, r)
        if max(len(rc[0]), len(rr[0])) <= budget.max_length and rc[0] != rr[0]:
            rows.append((rc, rr))
    if not rows:
        return Trained(None, 0.0, 0, [])
    pad = _pad_id(tok)

    def dpo_loss(model: Any, batch_idx: list[int]) -> Any:
        batch = [rows[i] for i in batch_idx]
        ids, mask, labels = right_padded_batch([c for c, _ in batch] + [r for _, r in batch], pad)
        with torch.no_grad(), model.disable_adapter():
            ref_lp = sequence_logprob(model, ids, mask, labels)
        lp = sequence_logprob(model, ids, mask, labels)
        n = len(batch)
        margin = (lp[:n] - ref_lp[:n]) - (lp[n:] - ref_lp[n:])
        return -F.logsigmoid(beta * margin).mean()

    model, losses = train_lora_copy(engine, budget, len(rows), dpo_loss)
    ref = tuned_model(model, base, engine.fingerprint, name)
    log.info("%s: DPO on %d pairs, %d steps, loss %.3f -> %.3f", name, len(rows), budget.steps, losses[0],
             losses[-1])
    return Trained(ref, time.perf_counter() - t0, len(rows), losses)
