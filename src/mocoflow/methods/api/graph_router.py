"""Graph router (the GraphRouter idea, in plain torch): a small GNN over query, task/domain and model nodes.

Edges: query-domain (the item's ``metadata["domain"]``, else the task) and query-model edges from the dev
split carrying the model's correctness on that query (shared dev generations scored by the gold scorer).
Two rounds of mean message passing: a model node aggregates the queries it got right and those it got wrong
separately; a query node aggregates its domain; a domain node aggregates its queries. An MLP on
(query, model) node states predicts P(correct) for an edge. Training masks edges: each epoch, half of the
dev queries send messages and the other half's edges are the loss (so no edge predicts its own label).
At test time all dev edges send messages and every test query gets an edge to every model; the router
picks ``P(correct) - cost_weight * normalised cost`` with real per-model costs (card parameters x mean
tokens of the model's dev generations). GraphRouter's scenarios: performance_first / balance / cost_first.

Backend: plain torch. ``torch-geometric`` 2.8.1 would install beside the pinned torch (a dry run pulls no
other torch), but mean aggregation over three node types is a few lines of index arithmetic, so we do not
add the dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mocoflow.methods.api.common import (
    Featurizer,
    Timer,
    cost_weight,
    question_text,
    route_by_probability,
)
from mocoflow.methods.base import Method, MethodError, Need, RunContext, register
from mocoflow.methods.common import dev_correctness


@dataclass(frozen=True)
class GraphRouterParams:
    """embedder: as trained_router (default "minilm", fallback tfidf). hidden: node state width.
    epochs / lr: Adam training on dev edges. seed: initialisation and edge masking.
    scenario / cost_weight: as trained_router."""

    embedder: str = "minilm"
    models_dir: str = "results/models"
    hidden: int = 32
    epochs: int = 200
    lr: float = 0.01
    seed: int = 0
    scenario: str = "performance_first"
    cost_weight: float | None = None


def _mean_into(n_dst: int, dst: Any, src_states: Any, weight: Any | None = None) -> Any:
    """Mean of ``src_states`` rows scattered into ``n_dst`` rows by index ``dst`` (zeros where none)."""
    import torch

    w = torch.ones(len(dst)) if weight is None else weight
    total = torch.zeros(n_dst, src_states.shape[1]).index_add(0, dst, src_states * w[:, None])
    count = torch.zeros(n_dst).index_add(0, dst, w)
    return total / count.clamp(min=1.0)[:, None]


class _GNN:
    def __init__(self, in_dim: int, n_models: int, n_domains: int, hidden: int) -> None:
        import torch
        from torch import nn

        self.q_in = nn.Linear(in_dim, hidden)
        self.model_emb = nn.Embedding(n_models, hidden)
        self.domain_emb = nn.Embedding(n_domains, hidden)
        self.q_upd = nn.Linear(2 * hidden, hidden)
        self.m_upd = nn.Linear(3 * hidden, hidden)
        self.d_upd = nn.Linear(2 * hidden, hidden)
        self.q_upd2 = nn.Linear(2 * hidden, hidden)
        self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.modules = nn.ModuleList(
            [
                self.q_in,
                self.model_emb,
                self.domain_emb,
                self.q_upd,
                self.m_upd,
                self.d_upd,
                self.q_upd2,
                self.head,
            ]
        )
        self.torch = torch

    def parameters(self) -> Any:
        return self.modules.parameters()

    def logits(
        self, xq: Any, q_domain: Any, msg_q: Any, msg_m: Any, msg_y: Any, ask_q: Any, ask_m: Any
    ) -> Any:
        torch = self.torch
        n_q, n_m, n_d = xq.shape[0], self.model_emb.num_embeddings, self.domain_emb.num_embeddings
        hq = torch.relu(self.q_in(xq))
        hm = self.model_emb.weight
        hd = self.domain_emb.weight
        q_ids = torch.arange(n_q)
        # round 1
        d_agg = _mean_into(n_d, q_domain, hq)
        hd1 = torch.relu(self.d_upd(torch.cat([hd, d_agg], -1)))
        hq1 = torch.relu(self.q_upd(torch.cat([hq, hd[q_domain]], -1)))
        right = _mean_into(n_m, msg_m, hq[msg_q], msg_y)
        wrong = _mean_into(n_m, msg_m, hq[msg_q], 1.0 - msg_y)
        hm1 = torch.relu(self.m_upd(torch.cat([hm, right, wrong], -1)))
        # round 2: queries see their updated domain
        hq2 = torch.relu(self.q_upd2(torch.cat([hq1, hd1[q_domain[q_ids]]], -1)))
        a, b = hq2[ask_q], hm1[ask_m]
        return self.head(torch.cat([a, b, a * b], -1)).squeeze(-1)


@register
class GraphRouter(Method):
    name = "graph_router"
    level = "api"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS})
    Params = GraphRouterParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        import torch

        p = self.params
        dev, test = ctx.items["dev"], ctx.items["test"]
        if not dev:
            raise MethodError("graph_router needs a non-empty dev split to learn from")
        names = [r.name for r in ctx.pool]
        weight = cost_weight(p.scenario, p.cost_weight)
        with Timer() as timer, torch.random.fork_rng(devices=[]):
            torch.manual_seed(p.seed)
            feats = Featurizer(p.embedder, p.models_dir).fit([question_text(i) for i in dev])
            items = dev + test
            xq = torch.tensor(feats.transform([question_text(i) for i in items]), dtype=torch.float32)
            domains = sorted({str(i.metadata.get("domain") or ctx.task) for i in items})
            q_domain = torch.tensor([domains.index(str(i.metadata.get("domain") or ctx.task)) for i in items])
            correct = {n: dev_correctness(ctx, n) for n in names}
            eq, em, ey = [], [], []
            for qi, item in enumerate(dev):
                for mi, n in enumerate(names):
                    eq.append(qi)
                    em.append(mi)
                    ey.append(float(correct[n][item.id]))
            eq_t, em_t, ey_t = torch.tensor(eq), torch.tensor(em), torch.tensor(ey)
            gnn = _GNN(xq.shape[1], len(names), len(domains), p.hidden)
            opt = torch.optim.Adam(gnn.parameters(), lr=p.lr, weight_decay=1e-4)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            gen = np.random.default_rng(p.seed)
            for _ in range(p.epochs):
                half = gen.random(len(dev)) < 0.5
                if half.all() or not half.any():
                    half[0] = not half[0]
                send = torch.tensor(half[eq_t.numpy()])
                logits = gnn.logits(
                    xq, q_domain, eq_t[send], em_t[send], ey_t[send], eq_t[~send], em_t[~send]
                )
                loss = loss_fn(logits, ey_t[~send])
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                ask_q = torch.tensor(
                    [len(dev) + t for t in range(len(test)) for _ in names], dtype=torch.long
                )
                ask_m = torch.tensor(
                    [m for _ in range(len(test)) for m in range(len(names))], dtype=torch.long
                )
                probs = torch.sigmoid(gnn.logits(xq, q_domain, eq_t, em_t, ey_t, ask_q, ask_m))
                probs = probs.view(len(test), len(names)).numpy()
        return route_by_probability(ctx, probs, weight, feats.kind, timer.seconds)
