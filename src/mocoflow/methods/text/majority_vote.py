"""Majority vote over the pool's shared generations.

Each model's answer is reduced to a canonical key by the task's scorer (``extract_answer``), so
"1,000" and "1000" vote together. Unparseable answers never win. Ties are broken deterministically:
by the earliest model in pool order among the tied answers' supporters.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.common import reused_costs


def vote(keys: list[str | None]) -> int | None:
    """Index of the model whose answer wins (first supporter of the winning key), or None if all are
    unparseable."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    top = max(counts.values())
    for i, k in enumerate(keys):
        if k is not None and counts[k] == top:
            return i
    return None  # unreachable


@register
class MajorityVote(Method):
    name = "majority_vote"
    level = "text"
    needs = frozenset({Need.TEST_GENERATIONS})

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        from mocoflow.scoring import extract_answer

        out = []
        for item in ctx.items["test"]:
            recs = [ctx.gen(ref.name, "test", item.id) for ref in ctx.pool]
            keys = [extract_answer(item, r["output"]) for r in recs]
            winner = vote(keys)
            # all unparseable: pass the first model's output through (it scores as unparseable)
            chosen = recs[winner if winner is not None else 0]
            votes = sum(1 for k in keys if winner is not None and k == keys[winner])
            out.append(prediction(item.id, chosen["output"], votes=votes,
                                  answered_by=ctx.pool[winner if winner is not None else 0].name,
                                  **reused_costs(recs)))
        return out
