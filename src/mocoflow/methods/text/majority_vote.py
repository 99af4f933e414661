"""Majority vote over the pool's shared generations.

Each model's answer is reduced to a canonical key by the task's scorer (``methods.common.answer_key``: the
scorer's extraction in the task's answer format, never the test item's gold), so "1,000" and "1000" vote
together. Unparseable answers never win. Ties are broken deterministically:
by the earliest model in pool order among the tied answers' supporters (``tie_break: "pool_order"``, the
default), or by the supporter with the highest dev accuracy, then pool order (``tie_break: "dev_accuracy"``;
reads the shared dev generations).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import answer_key, dev_accuracy, reliance_from_counts, reused_costs
from mocoflow.methods.text.common import vote_index


@dataclass(frozen=True)
class MajorityVoteParams:
    """tie_break: "pool_order" (default: the earliest supporter in pool order) or "dev_accuracy" (the
    supporter with the highest dev accuracy; pool order among equals)."""

    tie_break: str = "pool_order"


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
    # dev generations are read only with tie_break="dev_accuracy"; needs are per class, so both are declared
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS})
    Params = MajorityVoteParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: MajorityVoteParams = self.params
        if p.tie_break not in ("pool_order", "dev_accuracy"):
            raise MethodError(f"majority_vote: tie_break must be 'pool_order' or 'dev_accuracy', "
                              f"not {p.tie_break!r}")
        acc = dev_accuracy(ctx) if p.tie_break == "dev_accuracy" else {r.name: 0.0 for r in ctx.pool}
        priority = [(acc[ref.name], -k) for k, ref in enumerate(ctx.pool)]
        out = []
        for item in ctx.items["test"]:
            recs = [ctx.gen(ref.name, "test", item.id) for ref in ctx.pool]
            keys = [answer_key(item, r["output"]) for r in recs]
            winner = vote(keys) if p.tie_break == "pool_order" else vote_index(keys, priority)
            # all unparseable: pass the first model's output through (it scores as unparseable)
            chosen = recs[winner if winner is not None else 0]
            votes = sum(1 for k in keys if winner is not None and k == keys[winner])
            out.append(prediction(item.id, chosen["output"], votes=votes,
                                  answered_by=ctx.pool[winner if winner is not None else 0].name,
                                  **reused_costs(recs)))
        names = [ref.name for ref in ctx.pool]
        # reliance: the share of items on which each model's answer won (its text is the prediction)
        ctx.decide(reliance=reliance_from_counts(names, [p["answered_by"] for p in out]),
                   unanimous=sum(p["votes"] == len(names) for p in out) / max(1, len(out)))
        return out
