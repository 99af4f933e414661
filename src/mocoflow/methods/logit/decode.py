"""The decoding loop shared by logit-level methods: several same-tokenizer models, each with its own KV
cache (``IncrementalDecoder``), batched with left padding and attention masks; at every step a method's
``combine`` turns the models' next-token log-probabilities into one score vector per row, the chosen token
(argmax, or a seeded sample when ``temperature > 0``) is fed to every model, and rows stop at eos.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mocoflow.engines.base import DecodingConfig
from mocoflow.methods.base import prediction

Combine = Callable[[list[Any]], Any]  # [B, V] log-probs per model -> [B, V] scores


@dataclass
class Decoded:
    tokens: list[int]  # generated ids, eos included when reached
    prompt_tokens: int


def eos_ids(engine: Any) -> set[int]:
    ids = {engine.tokenizer.eos_token_id}
    cfg = getattr(getattr(engine.model, "generation_config", None), "eos_token_id", None)
    ids.update(cfg if isinstance(cfg, list) else [cfg])
    return {int(i) for i in ids if i is not None}


def combined_generate(engines: list[Any], prompts: list[str], combine: Combine, decoding: DecodingConfig, *,
                      stop_at_eos: bool = True) -> list[Decoded]:
    """Decode every prompt with ``combine`` over ``engines`` (all sharing one tokenizer)."""
    import torch

    from mocoflow.engines.stepper import IncrementalDecoder

    eos = eos_ids(engines[0])
    eos_t = torch.tensor(sorted(eos))
    device = torch.device(engines[0].device)
    out: list[Decoded] = []
    t0 = time.perf_counter()
    for start in range(0, len(prompts), decoding.batch_size):
        batch = prompts[start:start + decoding.batch_size]
        gen = (torch.Generator(device=device).manual_seed(decoding.seed + start) if decoding.do_sample
               else None)
        decoders = [IncrementalDecoder(e.model, e.tokenizer, e.device) for e in engines]
        with torch.no_grad():
            logprobs = [d.start(batch) for d in decoders]
            n_prompt = decoders[0].prompt_lengths()
            generated: list[list[int]] = [[] for _ in batch]
            done = torch.zeros(len(batch), dtype=torch.bool, device=device)
            for _ in range(decoding.max_new_tokens):
                vocab = min(lp.shape[-1] for lp in logprobs)
                scores = combine([lp[:, :vocab].float().to(device) for lp in logprobs])
                if gen is not None:
                    probs = torch.softmax(scores / decoding.temperature, dim=-1)
                    nxt = torch.multinomial(probs, 1, generator=gen).view(-1)
                else:
                    nxt = scores.argmax(-1)
                if stop_at_eos:
                    nxt = torch.where(done, torch.full_like(nxt, min(eos)), nxt)
                for row, tok in enumerate(nxt.tolist()):
                    if not done[row]:
                        generated[row].append(tok)
                if stop_at_eos:
                    done |= torch.isin(nxt, eos_t.to(device))
                    if bool(done.all()):
                        break
                logprobs = [d.step(nxt) for d in decoders]
        for e, d in zip(engines, decoders, strict=True):
            e.usage.prompt_tokens += sum(d.prompt_lengths())
            e.usage.generated_tokens += sum(len(g) for g in generated)
            e.usage.calls += len(batch)
        out.extend(Decoded(g, n) for g, n in zip(generated, n_prompt, strict=True))
    engines[0].usage.generate_seconds += time.perf_counter() - t0
    return out


def to_predictions(item_ids: list[str], decoded: list[Decoded], engine: Any, n_models: int,
                   **extra: Any) -> list[dict[str, Any]]:
    """Prediction records: the text stops before eos; costs count every model's forward work."""
    eos = eos_ids(engine)
    out = []
    for item_id, d in zip(item_ids, decoded, strict=True):
        text = engine.tokenizer.decode([t for t in d.tokens if t not in eos], skip_special_tokens=True)
        out.append(prediction(item_id, text, prompt_tokens=d.prompt_tokens * n_models,
                              generated_tokens=len(d.tokens) * n_models, new_generated_tokens=len(d.tokens),
                              **extra))
    return out


def dev_accuracy_of(engines: list[Any], items: list[Any], combine: Combine, decoding: DecodingConfig
                    ) -> float:
    """Accuracy on ``items`` of decoding with ``combine`` (the task's scorer)."""
    from mocoflow.methods.common import prompts_for, score_output

    if not items:
        return 0.0
    decoded = combined_generate(engines, prompts_for(items), combine, decoding)
    preds = to_predictions([i.id for i in items], decoded, engines[0], len(engines))
    return sum(score_output(i, p["output"]) for i, p in zip(items, preds, strict=True)) / len(items)
