"""Contrastive decoding (Li et al. 2023): prefer tokens the expert likes much more than the amateur does,
restricted to tokens the expert itself finds plausible:

    V_head = {x : p_expert(x) >= alpha * max_w p_expert(w)}
    score(x) = log p_expert(x) - beta * log p_amateur(x)   for x in V_head, -inf otherwise

The expert and amateur are named, or else the pool's best and worst models on dev (ties: pool order).
Decisions: ``roles`` (expert, amateur).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, register
from mocoflow.methods.common import dev_accuracy, prompts_for
from mocoflow.methods.logit.decode import combined_generate, to_predictions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ContrastiveDecodingParams:
    """alpha: plausibility threshold relative to the expert's top probability (0.1).
    beta: weight of the amateur's log-probability (1.0, the paper's form).
    expert/amateur: pool model names (None = best/worst on dev)."""

    alpha: float = 0.1
    beta: float = 1.0
    expert: str | None = None
    amateur: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"contrastive_decoding alpha must be in (0, 1], got {self.alpha}")


def contrastive_decoding_scores(lp_expert: Any, lp_amateur: Any, alpha: float, beta: float = 1.0) -> Any:
    """``lp_expert - beta * lp_amateur`` on the expert's plausible set, ``-inf`` elsewhere."""
    import torch

    plausible = lp_expert >= lp_expert.max(dim=-1, keepdim=True).values + math.log(alpha)
    scores = lp_expert - beta * lp_amateur
    return torch.where(plausible, scores, torch.full_like(scores, float("-inf")))


@register
class ContrastiveDecoding(Method):
    name = "contrastive_decoding"
    level = "logit"
    needs = frozenset({Need.SAME_TOKENIZER, Need.MODELS, Need.DEV_GENERATIONS})
    Params = ContrastiveDecodingParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p = self.params
        names = [r.name for r in ctx.pool]
        for role in ("expert", "amateur"):
            if getattr(p, role) is not None and getattr(p, role) not in names:
                raise MethodError(f"{self.name}: {role} {getattr(p, role)!r} is not in the pool {names}")
        if p.expert is None or p.amateur is None:
            acc = dev_accuracy(ctx)
            order = sorted(range(len(names)), key=lambda i: (-acc[names[i]], i))
            expert = p.expert or names[order[0]]
            amateur = p.amateur or next(names[i] for i in reversed(order) if names[i] != expert)
            log.info("%s: dev accuracy %s; expert %s, amateur %s", self.name, acc, expert, amateur)
        else:
            expert, amateur = p.expert, p.amateur
        if expert == amateur:
            raise MethodError(f"{self.name}: expert and amateur are the same model {expert!r}")
        refs = {r.name: r for r in ctx.pool}
        engines = [ctx.engines.get(refs[expert]), ctx.engines.get(refs[amateur])]
        items = ctx.items["test"]
        decoded = combined_generate(engines, prompts_for(items),
                                    lambda lps, rows: contrastive_decoding_scores(lps[0], lps[1], p.alpha, p.beta),
                                    ctx.decoding)
        ctx.decide(roles={"expert": expert, "amateur": amateur})
        return to_predictions([i.id for i in items], decoded, 2, expert=expert, amateur=amateur)
