"""Single-model baseline: the pool's best model on dev answers every test item (no test-set peeking)."""

from __future__ import annotations

from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.common import best_on_dev, reliance_from_counts, reused_costs


@register
class SingleBest(Method):
    """Reads shared generations; picks the model with the highest dev accuracy (ties: pool order)."""

    name = "single"
    level = "baseline"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS})

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        chosen = best_on_dev(ctx)
        out = []
        for item in ctx.items["test"]:
            rec = ctx.gen(chosen, "test", item.id)
            out.append(prediction(item.id, rec["output"], answered_by=chosen, **reused_costs([rec])))
        ctx.decide(reliance=reliance_from_counts([r.name for r in ctx.pool], [chosen] * len(out)), chosen=chosen)
        return out
