"""ExPO (Zheng et al. 2024, "Model Extrapolation Expedites Alignment"): extrapolate from the weaker model
towards and beyond the stronger one, ``theta = theta_strong + alpha * (theta_strong - theta_weak)``.

Which model is weaker: named by ``weak``/``strong``, else decided on dev (the pool's worst and best dev
accuracy; ties go to pool order). With ``alpha_candidates`` the extrapolation strength is chosen on dev too
(the highest dev accuracy, earlier candidate on ties).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import MergeContext, MethodError, register
from mocoflow.methods.common import pool_member
from mocoflow.methods.weight.common import (
    DevEvaluator,
    TensorFormulaMerge,
    coefficient_reliance,
    member_template,
    member_tensors,
    record,
)
from mocoflow.models import ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpoParams:
    """alpha: extrapolation strength (0.3, MoCo's default). weak/strong: pool model names (None = decided by
    dev accuracy: worst is weak, best is strong). alpha_candidates: if set, alpha is picked on dev among them.
    max_dev_items: dev items used for those choices (32)."""

    alpha: float = 0.3
    weak: str | None = None
    strong: str | None = None
    alpha_candidates: list[float] | None = None
    max_dev_items: int = 32


@register
class Expo(TensorFormulaMerge):
    name = "expo"
    Params = ExpoParams
    uses_dev = True

    def plan(self, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, Any]:
        """``{"weak", "strong", "alpha"}``."""
        from mocoflow.training.merging import expo, load_state

        p = self.params
        self.check_pool(pool)
        if len(pool) < 2:
            raise MethodError(f"{self.name} needs two models (weak and strong); pool has {len(pool)}")
        needs_dev = not (p.weak and p.strong) or bool(p.alpha_candidates)
        evaluator = None
        if needs_dev:
            evaluator = DevEvaluator(self.merge_context(ctx), member_template(pool[0]), p.max_dev_items)
        if p.weak and p.strong:
            weak, strong = (pool_member(pool, p.weak, f"{self.name}: weak"),
                            pool_member(pool, p.strong, f"{self.name}: strong"))
        else:
            assert evaluator is not None
            acc = {r.name: evaluator.accuracy(load_state(member_tensors(r))) for r in pool}
            order = sorted(range(len(pool)), key=lambda i: (-acc[pool[i].name], i))
            strong = pool_member(pool, p.strong, f"{self.name}: strong") if p.strong else pool[order[0]]
            rest = [i for i in order if pool[i].name != strong.name]
            weak = pool_member(pool, p.weak, f"{self.name}: weak") if p.weak else pool[rest[-1]]
            log.info("expo: dev accuracy %s -> strong %s, weak %s", acc, strong.name, weak.name)
        if weak.name == strong.name:
            raise MethodError(f"{self.name}: weak and strong are the same model {weak.name!r}")
        alpha = p.alpha
        if p.alpha_candidates:
            assert evaluator is not None
            ws, ss = load_state(member_tensors(weak)), load_state(member_tensors(strong))
            scores = [evaluator.accuracy({k: expo(ws[k], ss[k], a) for k in ss}) for a in p.alpha_candidates]
            alpha = p.alpha_candidates[max(range(len(scores)), key=lambda i: (scores[i], -i))]
            log.info("expo: dev accuracy by alpha %s -> %s",
                     list(zip(p.alpha_candidates, scores, strict=True)),
                     alpha)
        # theta = (1 + alpha) theta_strong - alpha theta_weak
        coefficients = {strong.name: 1.0 + alpha, weak.name: -alpha}
        record(ctx, weak=weak.name, strong=strong.name, alpha=alpha, coefficients=coefficients,
               reliance=coefficient_reliance(coefficients))
        return {"weak": weak.name, "strong": strong.name, "alpha": alpha}

    def formula(self, pool: list[ModelRef], plan: dict[str, Any]) -> tuple[list[ModelRef], Any]:
        from mocoflow.training.merging import expo

        alpha = plan["alpha"]
        return ([pool_member(pool, plan["weak"]), pool_member(pool, plan["strong"])],
                lambda _k, ts: expo(ts[0], ts[1], alpha))
