"""Structured interaction (MoCo ``structured_interaction``): agents revise over a fixed communication graph.

Agent k is pool model k. ``topology`` says whose answers each agent reads (row k of the adjacency matrix:
``adjacency[k][j] = 1`` means agent k reads agent j):

- ``chain``: k reads k-1 (information flows along the pool order; agent 0 reads nobody and keeps its answer);
- ``circle``: k reads k-1, and agent 0 reads the last agent;
- ``star``: the hub (agent 0) reads everyone, every other agent reads the hub;
- ``tree``: a binary tree in pool order (parent of k is (k-1)//2); each agent reads its parent and children;
- ``complete``: everyone reads everyone (= debate);
- a list of lists: the adjacency matrix itself (n x n, 0/1; the diagonal is ignored).

Round 0 is the shared generations; ``num_rounds`` revision rounds follow (one batched ``generate`` call per
model per round). Final answer: ``final: "vote"`` (majority over the last round, ties to the better model
on dev), ``"last"`` (the last agent, e.g. the end of a chain) or ``"first"`` (agent 0, e.g. the hub).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.text.common import Ledger, decide_winners, exchange_round, final_vote, round0

TOPOLOGIES = ("chain", "circle", "star", "tree", "complete")


@dataclass(frozen=True)
class StructuredParams:
    """topology: one of chain, circle, star, tree, complete, or an n x n 0/1 adjacency matrix
    (row k = whom agent k reads; default "chain").
    num_rounds: revision rounds after the shared round 0 (default 2).
    final: "vote" (default), "last" or "first".
    max_chars: characters kept of each peer answer (default 400).
    """

    topology: str | list[list[int]] = "chain"
    num_rounds: int = 2
    final: str = "vote"
    max_chars: int = 400


def readers_for(topology: str | list[list[int]], n: int) -> list[list[int]]:
    """Per agent, the agents whose answers it reads."""
    if isinstance(topology, list):
        if len(topology) != n or any(len(row) != n for row in topology):
            raise MethodError(f"structured_interaction: adjacency must be {n} x {n} for a pool of {n}")
        return [[j for j in range(n) if j != k and int(topology[k][j])] for k in range(n)]
    if topology == "chain":
        return [[k - 1] if k > 0 else [] for k in range(n)]
    if topology == "circle":
        return [[(k - 1) % n] if n > 1 else [] for k in range(n)]
    if topology == "star":
        return [list(range(1, n)) if k == 0 else [0] for k in range(n)]
    if topology == "tree":
        out = []
        for k in range(n):
            links = ([(k - 1) // 2] if k > 0 else []) + [c for c in (2 * k + 1, 2 * k + 2) if c < n]
            out.append(sorted(links))
        return out
    if topology == "complete":
        return [[j for j in range(n) if j != k] for k in range(n)]
    raise MethodError(f"structured_interaction: unknown topology {topology!r}; valid: {', '.join(TOPOLOGIES)} "
                      "or an adjacency matrix")


@register
class StructuredInteraction(Method):
    name = "structured_interaction"
    level = "text"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = StructuredParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: StructuredParams = self.params
        if p.final not in ("vote", "last", "first"):
            raise MethodError(f"structured_interaction: final must be vote, last or first, not {p.final!r}")
        agents = list(ctx.pool)
        readers = readers_for(p.topology, len(agents))
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        first = round0(ctx, "test", items, ledger)
        answers = [first[a.name] for a in agents]
        for r in range(p.num_rounds):
            answers = exchange_round(ctx, items, agents, answers, readers, ledger, p.max_chars,
                                     progress=f"{ctx.run} round {r + 1}")
        if p.final == "vote":
            chosen = final_vote(ctx, items, agents, answers)
        else:
            k = len(agents) - 1 if p.final == "last" else 0
            chosen = [(answers[k][i], agents[k].name) for i in range(len(items))]
        return decide_winners(ctx, [prediction(item.id, text, answered_by=by, **ledger[item.id])
                                    for item, (text, by) in zip(items, chosen, strict=True)],
                              voted=p.final == "vote")
