"""Logit fusion (product of experts): decode from the weighted average of the pool's log-probabilities.

All models must share one tokenizer (checked from the model cards before any model is loaded). Each
model keeps its own KV cache through ``IncrementalDecoder``; prompts are batched with left padding and
attention masks, and every step feeds the fused token to all models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import prompts_for


@dataclass(frozen=True)
class FusionParams:
    """weights: one weight per pool model (pool order), normalised to sum 1; None means uniform."""

    weights: list[float] | None = None


def fused_logprobs(logprobs: list[Any], weights: list[float]) -> Any:
    """Weighted sum of per-model log-probabilities over the shared vocabulary (truncated to the
    smallest vocab: padded embedding rows beyond the tokenizer never win)."""
    vocab = min(lp.shape[-1] for lp in logprobs)
    total = weights[0] * logprobs[0][..., :vocab]
    for w, lp in zip(weights[1:], logprobs[1:], strict=True):
        total = total + w * lp[..., :vocab]
    return total


def normalised_weights(weights: list[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise MethodError(f"logit_fusion: need {n} non-negative weights with a positive sum, got {weights}")
    s = float(sum(weights))
    return [w / s for w in weights]


@register
class LogitFusion(Method):
    name = "logit_fusion"
    level = "logit"
    needs = frozenset({Need.SAME_TOKENIZER, Need.MODELS})
    Params = FusionParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        import torch

        from mocoflow.engines.stepper import IncrementalDecoder

        weights = normalised_weights(self.params.weights, len(ctx.pool))
        engines = [ctx.engines.get(ref) for ref in ctx.pool]
        tokenizer = engines[0].tokenizer
        eos = tokenizer.eos_token_id
        items = ctx.items["test"]
        prompts = prompts_for(items)
        bs = ctx.decoding.batch_size
        out: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        for start in range(0, len(items), bs):
            batch = prompts[start:start + bs]
            decoders = [IncrementalDecoder(e.model, e.tokenizer, e.device) for e in engines]
            with torch.no_grad():
                logprobs = [d.start(batch) for d in decoders]
                n_prompt = [int(x) for x in decoders[0].prompt_lengths()]
                generated: list[list[int]] = [[] for _ in batch]
                done = torch.zeros(len(batch), dtype=torch.bool)
                for _ in range(ctx.decoding.max_new_tokens):
                    nxt = fused_logprobs([lp.float().cpu() for lp in logprobs], weights).argmax(-1)
                    nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
                    for row, tok in enumerate(nxt.tolist()):
                        if not done[row]:
                            generated[row].append(tok)
                    done |= nxt == eos
                    if bool(done.all()):
                        break
                    logprobs = [d.step(nxt) for d in decoders]
            for row, toks in enumerate(generated):
                toks_wo_eos = [t for t in toks if t != eos]
                text = tokenizer.decode(toks_wo_eos, skip_special_tokens=True)
                n_gen = len(toks)
                out.append(prediction(items[start + row].id, text, prompt_tokens=n_prompt[row] * len(engines),
                                      generated_tokens=n_gen * len(engines), new_generated_tokens=n_gen))
        engines[0].usage.generate_seconds += time.perf_counter() - t0
        return out
