"""Logit contrastive (MoCo's form): rank the pool by dev accuracy; the top-``k`` models are experts and the
bottom-``k`` anti-experts, and decoding follows

    score = lp_top1 + lambda_ * sum_{i<k} (lp_top_i - lp_bottom_i)

MoCo applies this to logits; we apply it to log-probabilities, which differ from logits by one constant per
model and row, so the argmax and the softmax are the same. ``2k`` must not exceed the pool size.
Decisions: ``roles`` (experts, anti-experts) and the dev accuracy that ranked them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, register
from mocoflow.methods.common import dev_accuracy, prompts_for
from mocoflow.methods.logit.decode import combined_generate, to_predictions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogitContrastiveParams:
    """k: experts and anti-experts each (1). lambda_: weight of the contrast (0.2)."""

    k: int = 1
    lambda_: float = 0.2


def contrastive_scores(experts: list[Any], anti_experts: list[Any], lambda_: float) -> Any:
    """``experts[0] + lambda_ * sum_i (experts[i] - anti_experts[i])``."""
    total = experts[0] * 0
    for e, a in zip(experts, anti_experts, strict=True):
        total = total + e - a
    return experts[0] + lambda_ * total


@register
class LogitContrastive(Method):
    name = "logit_contrastive"
    level = "logit"
    needs = frozenset({Need.SAME_TOKENIZER, Need.MODELS, Need.DEV_GENERATIONS})
    Params = LogitContrastiveParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        k = self.params.k
        if k < 1 or 2 * k > len(ctx.pool):
            raise MethodError(f"{self.name}: k={k} needs 2k distinct models; pool has {len(ctx.pool)}")
        acc = dev_accuracy(ctx)
        order = sorted(range(len(ctx.pool)), key=lambda i: (-acc[ctx.pool[i].name], i))
        top, bottom = order[:k], order[-k:][::-1]  # bottom[0] is the worst
        log.info("%s: dev accuracy %s; experts %s, anti-experts %s", self.name, acc,
                 [ctx.pool[i].name for i in top], [ctx.pool[i].name for i in bottom])
        engines = [ctx.engines.get(ctx.pool[i]) for i in top + bottom]
        lam = self.params.lambda_
        items = ctx.items["test"]
        decoded = combined_generate(engines, prompts_for(items),
                                    lambda lps, rows: contrastive_scores(lps[:k], lps[k:], lam), ctx.decoding)
        experts, anti = [ctx.pool[i].name for i in top], [ctx.pool[i].name for i in bottom]
        ctx.decide(roles={"experts": experts, "anti_experts": anti}, dev_accuracy=acc)
        return to_predictions([i.id for i in items], decoded, len(engines), experts=experts, anti_experts=anti)
