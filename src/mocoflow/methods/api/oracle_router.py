"""Oracle router (UPPER BOUND, uses the gold answers of the test items): per item, the first pool model
(pool order) whose shared test generation the task's scorer marks correct; when none is, the first model.

Its accuracy is the fraction of test items that at least one pool model answers correctly ("any-correct"),
the ceiling of every router over this pool. It is a reference row, not a method one could deploy. Costs
are those of the chosen model's generation (a perfect router would run only that model). It is the one
method that declares ``Need.TEST_GOLD``: the collaborate stage gives every other method test items without gold.
"""

from __future__ import annotations

from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import reliance_from_counts, reused_costs


@register
class OracleRouter(Method):
    name = "oracle_router"
    level = "api"
    needs = frozenset({Need.TEST_GENERATIONS, Need.TEST_GOLD})

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        out = []
        for item in ctx.items["test"]:
            if item.gold is None and item.task_type not in ("noncompliance", "reward_model"):
                raise MethodError(f"oracle_router: test item {item.id!r} has no gold (Need.TEST_GOLD not honoured)")
            recs = [(ref.name, ctx.gen(ref.name, "test", item.id)) for ref in ctx.pool]
            right = [(name, rec) for name, rec in recs if ctx.score(item, rec["output"])]
            name, rec = right[0] if right else recs[0]
            out.append(prediction(item.id, rec["output"], answered_by=name, reference="upper_bound_uses_gold",
                                  models_correct=len(right), **reused_costs([rec])))
        ctx.decide(kind="router", reliance=reliance_from_counts([r.name for r in ctx.pool],
                                                                [p["answered_by"] for p in out]))
        return out
