"""Heterogeneous swarms (Feng et al. 2025, "Heterogeneous Swarms: Jointly Optimizing Model Roles and Weights
for Multi-LLM Systems"; MoCo ``heterogeneous_swarms``), role step: the graph of who passes to whom is
optimised with particle swarm optimisation (PSO) on dev, then the best graph runs on test.

A particle is a vector in [-1, 1]^(n + n*n): n priorities and an n x n edge-weight matrix. It decodes to a
DAG over ALL n pool models (as MoCo's graphs, which always use every model): nodes are ordered by priority
(ascending), j passes to k when j comes before k and ``W[j, k] > 0``, and a node other than the last that
passes to nobody passes to its later node with the largest ``W[j, k]``, so every node reaches the last one.
Nodes that nobody passes to answer with their shared round-0 generation (reused); every other node, in
topological order, revises given its predecessors' answers (one batched ``generate`` call per node over all
items). The output is the last node's answer. Fitness is dev accuracy against gold (node outputs are
memoised by upstream subgraph and whole graphs by their edges, so equal graphs are never evaluated twice).
PSO: inertia 0.5, c1 = c2 = 1.5, seeded ``numpy`` RNG; ties in fitness go to the earlier-found graph.
The paper's weight step (swarm over LoRA weights) is covered by the weight-level ``model_swarms`` method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.text.common import Ledger, generate_by_model, refine_prompt, round0

Graph = tuple[tuple[int, ...], frozenset[tuple[int, int]]]  # (order, edges j->k)


@dataclass(frozen=True)
class SwarmParams:
    """particles: swarm size (default 4). iterations: PSO steps after initialisation (default 3).
    inertia / c1 / c2: PSO velocity weights (0.5, 1.5, 1.5). max_chars: characters of each passed answer (400).
    """

    particles: int = 4
    iterations: int = 3
    inertia: float = 0.5
    c1: float = 1.5
    c2: float = 1.5
    max_chars: int = 400


def decode(x: Any, n: int) -> Graph:
    """Particle -> (node order, edges) over all ``n`` nodes. Every node but the last passes to at least one
    later node (its positive-weight edges, else its largest-weight one), so every node is upstream of the
    last node and contributes to the answer."""
    import numpy as np

    order = tuple(int(k) for k in np.argsort(x[:n], kind="stable"))
    w = np.asarray(x[n:]).reshape(n, n)
    edges = set()
    for i, j in enumerate(order[:-1]):
        later = order[i + 1:]
        out = [k for k in later if w[j, k] > 0]
        edges |= {(j, k) for k in (out or [max(later, key=lambda k: (w[j, k], -order.index(k)))])}
    return order, frozenset(edges)


class GraphRunner:
    """Runs DAGs on one split, memoising node outputs by the node's upstream subgraph."""

    def __init__(self, ctx: RunContext, split: str, ledger: Ledger | None, max_chars: int) -> None:
        self.ctx, self.split, self.ledger, self.max_chars = ctx, split, ledger, max_chars
        self.items = ctx.items[split]
        self.first = round0(ctx, split, self.items, ledger)
        self.refs = {r.name: r for r in ctx.pool}
        self.names = [r.name for r in ctx.pool]
        self.memo: dict[Any, list[str]] = {}

    def _signature(self, k: int, edges: frozenset[tuple[int, int]]) -> Any:
        preds = sorted(j for j, t in edges if t == k)
        return (k, tuple(self._signature(j, edges) for j in preds))

    def run(self, graph: Graph) -> list[str]:
        order, edges = graph
        for k in order:
            sig = self._signature(k, edges)
            if sig in self.memo:
                continue
            preds = sorted(j for j, t in edges if t == k)
            if not preds:
                self.memo[sig] = self.first[self.names[k]]
                continue
            peer = [self.memo[self._signature(j, edges)] for j in preds]
            prompts = [refine_prompt(item, self.first[self.names[k]][i], [p[i] for p in peer], self.max_chars)
                       for i, item in enumerate(self.items)]
            gens = generate_by_model(self.ctx, self.refs, {self.names[k]: prompts},
                                     progress=f"{self.ctx.run} {self.split} node {self.names[k]}")
            self.memo[sig] = [g.text for g in gens[self.names[k]]]
            if self.ledger is not None:
                for item, g in zip(self.items, gens[self.names[k]], strict=True):
                    self.ledger.new(item.id, g)
        return self.memo[self._signature(order[-1], edges)]

    def accuracy(self, graph: Graph) -> float:
        outs = self.run(graph)
        return sum(self.ctx.score(i, o) for i, o in zip(self.items, outs, strict=True)) / max(1, len(self.items))


def optimise(runner: GraphRunner, n: int, p: SwarmParams, seed: int) -> tuple[Graph, float, int]:
    """PSO over particles; returns (best graph, its dev accuracy, distinct graphs evaluated)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dim = n + n * n
    x = rng.uniform(-1, 1, size=(p.particles, dim))
    v = np.zeros_like(x)
    fitness: dict[Graph, float] = {}

    def f(vec: Any) -> float:
        g = decode(vec, n)
        if g not in fitness:
            fitness[g] = runner.accuracy(g)
        return fitness[g]

    pbest, pfit = x.copy(), np.array([f(row) for row in x])
    g_idx = int(np.argmax(pfit))
    gbest, gfit = pbest[g_idx].copy(), float(pfit[g_idx])
    for _ in range(p.iterations):
        r1, r2 = rng.random(x.shape), rng.random(x.shape)
        v = p.inertia * v + p.c1 * r1 * (pbest - x) + p.c2 * r2 * (gbest - x)
        x = np.clip(x + v, -1, 1)
        for k in range(p.particles):
            fk = f(x[k])
            if fk > pfit[k]:
                pbest[k], pfit[k] = x[k].copy(), fk
            if fk > gfit:
                gbest, gfit = x[k].copy(), fk
    return decode(gbest, n), gfit, len(fitness)


@register
class HeterogeneousSwarms(Method):
    name = "heterogeneous_swarms"
    level = "text"
    stochastic = True
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = SwarmParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: SwarmParams = self.params
        n = len(ctx.pool)
        dev = GraphRunner(ctx, "dev", None, p.max_chars)
        graph, dev_acc, evaluated = optimise(dev, n, p, ctx.seed)
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        test = GraphRunner(ctx, "test", None, p.max_chars)
        test.ledger = ledger  # new generations of the chosen graph's nodes
        outs = test.run(graph)
        order, edges = graph
        names = [r.name for r in ctx.pool]
        for k in order:  # reused round 0 of the graph's nodes
            for item in items:
                ledger.reuse(item.id, ctx.gen(names[k], "test", item.id))
        graph_desc = {"order": [names[k] for k in order],
                      "edges": sorted(f"{names[j]}->{names[k]}" for j, k in edges)}
        ctx.decide(graph=graph_desc, dev_accuracy=dev_acc, graphs_evaluated=evaluated)
        return [prediction(item.id, out, answered_by=names[order[-1]], graph=graph_desc,
                           dev_accuracy=dev_acc, graphs_evaluated=evaluated, **ledger[item.id])
                for item, out in zip(items, outs, strict=True)]
