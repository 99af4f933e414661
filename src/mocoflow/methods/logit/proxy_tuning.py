"""Proxy tuning (Liu et al. 2024): steer a base model with the difference between a tuned model and its
untuned version, ``score = lp_base + alpha * (lp_tuned - lp_untuned)`` at every step (log-probabilities;
the per-model normalisers are constants per row, so this equals the paper's logit arithmetic after softmax).

Roles are named (``base``, ``expert``, ``anti_expert``) or taken from the pool order [base, tuned, untuned].
Decisions: ``roles`` (base, expert, anti_expert).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, register
from mocoflow.methods.common import prompts_for
from mocoflow.methods.logit.decode import combined_generate, to_predictions


@dataclass(frozen=True)
class ProxyTuningParams:
    """base: the model being steered; expert: the tuned (small) model; anti_expert: its untuned version
    (None each = pool order base, expert, anti_expert). alpha: strength of the offset (1.0)."""

    base: str | None = None
    expert: str | None = None
    anti_expert: str | None = None
    alpha: float = 1.0


def proxy_scores(lp_base: Any, lp_expert: Any, lp_anti: Any, alpha: float = 1.0) -> Any:
    return lp_base + alpha * (lp_expert - lp_anti)


@register
class ProxyTuning(Method):
    name = "proxy_tuning"
    level = "logit"
    needs = frozenset({Need.SAME_TOKENIZER, Need.MODELS})
    Params = ProxyTuningParams

    def roles(self, names: list[str]) -> list[str]:
        p = self.params
        if len(names) != 3:
            raise MethodError(f"{self.name} needs three models (base, tuned expert, untuned anti-expert); "
                              f"pool has {len(names)}: {names}")
        given = [p.base, p.expert, p.anti_expert]
        for role, name in zip(("base", "expert", "anti_expert"), given, strict=True):
            if name is not None and name not in names:
                raise MethodError(f"{self.name}: {role} {name!r} is not in the pool {names}")
        rest = [n for n in names if n not in given]
        roles = [g if g is not None else rest.pop(0) for g in given]
        if len(set(roles)) != 3:
            raise MethodError(f"{self.name}: base, expert and anti_expert must be different models: {roles}")
        return roles

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        roles = self.roles([r.name for r in ctx.pool])
        refs = {r.name: r for r in ctx.pool}
        engines = [ctx.engines.get(refs[n]) for n in roles]
        alpha = self.params.alpha
        items = ctx.items["test"]
        decoded = combined_generate(engines, prompts_for(items),
                                    lambda lps, rows: proxy_scores(lps[0], lps[1], lps[2], alpha), ctx.decoding)
        ctx.decide(roles={"base": roles[0], "expert": roles[1], "anti_expert": roles[2]})
        return to_predictions([i.id for i in items], decoded, 3, base=roles[0], expert=roles[1],
                              anti_expert=roles[2])
