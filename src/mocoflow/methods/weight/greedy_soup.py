"""Greedy soup (Wortsman et al. 2022): rank the pool by dev accuracy, start from the best model, and add each
next model to the uniform average only if the soup's dev accuracy does not drop (>=, as in the paper)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from mocoflow.methods.base import MergeContext, MergeMethod, register
from mocoflow.methods.weight.common import DevEvaluator, coefficient_reliance, record
from mocoflow.models import ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GreedySoupParams:
    """max_dev_items: dev items used to rank models and accept ingredients (32)."""

    max_dev_items: int = 32


@register
class GreedySoup(MergeMethod):
    name = "greedy_soup"
    Params = GreedySoupParams
    uses_dev = True

    def merge(self, pool: list[ModelRef], out_dir: Path, ctx: MergeContext | None = None) -> Path:
        from mocoflow.training.merging import combine_states, load_state, save_state

        self.check_pool(pool)
        evaluator = DevEvaluator(self.merge_context(ctx), pool[0].path, self.params.max_dev_items)
        states = [load_state(Path(r.path)) for r in pool]
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
        merged = combine_states([states[j] for j in soup], [1 / len(soup)] * len(soup))
        coefficients = {r.name: (1 / len(soup) if i in soup else 0.0) for i, r in enumerate(pool)}
        record(ctx, ingredients=[pool[j].name for j in soup], dev_accuracy=best, coefficients=coefficients,
               reliance=coefficient_reliance(coefficients))
        return save_state(merged, Path(pool[soup[0]].path), out_dir, sources=[pool[j].path for j in soup],
                          info={"method": self.name, "ingredients": [pool[j].name for j in soup],
                                "dev_accuracy": best, "history": history})
