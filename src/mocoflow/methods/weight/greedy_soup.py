"""Greedy soup (Wortsman et al. 2022): rank the pool by dev accuracy, start from the best model, and add each
next model to the uniform average only if the soup's dev accuracy does not drop (>=, as in the paper)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import MergeContext, register
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
class GreedySoupParams:
    """max_dev_items: dev items used to rank models and accept ingredients (32)."""

    max_dev_items: int = 32


@register
class GreedySoup(TensorFormulaMerge):
    name = "greedy_soup"
    Params = GreedySoupParams
    uses_dev = True

    def plan(self, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, Any]:
        """``{"ingredients", "history"}``: the soup is the uniform average of the ingredients (in the order
        they were added; the first is the best single model on dev)."""
        from mocoflow.training.merging import combine_states, load_state

        self.check_pool(pool)
        evaluator = DevEvaluator(self.merge_context(ctx), member_template(pool[0]), self.params.max_dev_items)
        states = [load_state(member_tensors(r)) for r in pool]
        acc = [evaluator.accuracy(s) for s in states]
        order = sorted(range(len(pool)), key=lambda i: (-acc[i], i))
        soup, best = [order[0]], acc[order[0]]
        history = [{"model": pool[order[0]].name, "dev_accuracy": best, "kept": True}]
        for i in order[1:]:
            trial = soup + [i]
            uniform = [1 / len(trial)] * len(trial)
            score = evaluator.accuracy(combine_states([states[j] for j in trial], uniform))
            kept = score >= best
            if kept:
                soup, best = trial, score
            history.append({"model": pool[i].name, "dev_accuracy": score, "kept": kept})
        log.info("greedy soup: %s", json.dumps(history))
        coefficients = {r.name: (1 / len(soup) if i in soup else 0.0) for i, r in enumerate(pool)}
        record(ctx, ingredients=[pool[j].name for j in soup], dev_accuracy=best, coefficients=coefficients,
               reliance=coefficient_reliance(coefficients))
        return {"ingredients": [pool[j].name for j in soup], "history": history}

    def formula(self, pool: list[ModelRef], plan: dict[str, Any]) -> tuple[list[ModelRef], Any]:
        from mocoflow.training.merging import linear

        members = [pool_member(pool, n) for n in plan["ingredients"]]
        uniform = [1 / len(members)] * len(members)
        return members, lambda _k, ts: linear(ts, uniform)
