"""Trained router: learns, from every pool model's per-item correctness on the dev split (shared dev
generations scored by the task's gold scorer; no extra generation), which model answers a query best.

Each question (with its options) is embedded (``embedder``: a sentence-transformers model such as
all-MiniLM-L6-v2, by default the config's ``minilm`` model; ``tfidf``/``hash`` are deterministic fallbacks),
and one L2 logistic regression per model predicts P(model correct | query). A test item goes to the model
with the highest ``P(correct) - cost_weight * normalised cost``, where cost is the model's real per-item
cost (card parameters x its mean prompt+generated tokens on dev). Ties are broken by dev accuracy, then
pool order. Only the chosen model's shared test generation is used. ``training_seconds`` (features +
fitting) is in every prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mocoflow.methods.api.common import (
    Featurizer,
    Timer,
    cost_weight,
    fit_logistic,
    predict_logistic,
    question_text,
    route_by_probability,
)
from mocoflow.methods.base import Method, MethodError, Need, RunContext, register
from mocoflow.methods.common import dev_correctness


@dataclass(frozen=True)
class TrainedRouterParams:
    """embedder: sentence-transformers dir, a model name with results/models/{name}/card.json, or
    "tfidf"/"hash" (default "minilm"; falls back to tfidf when not built).
    models_dir: where model cards live (default "results/models").
    scenario: "performance_first" (cost weight 0), "balance" (0.5) or "cost_first" (0.8).
    cost_weight: explicit weight on normalised cost (overrides scenario).
    l2: logistic-regression L2 penalty."""

    embedder: str = "minilm"
    models_dir: str = "results/models"
    scenario: str = "performance_first"
    cost_weight: float | None = None
    l2: float = 0.01


@register
class TrainedRouter(Method):
    name = "trained_router"
    level = "api"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS})
    Params = TrainedRouterParams

    def train(self, ctx: RunContext) -> tuple[Featurizer, dict[str, Any], float]:
        dev = ctx.items["dev"]
        if not dev:
            raise MethodError("trained_router needs a non-empty dev split to learn from")
        with Timer() as timer:
            feats = Featurizer(self.params.embedder, self.params.models_dir).fit(
                [question_text(i) for i in dev]
            )
            x = feats.transform([question_text(i) for i in dev])
            models = {}
            for ref in ctx.pool:
                correct = dev_correctness(ctx, ref.name)
                y = np.array([float(correct[i.id]) for i in dev])
                models[ref.name] = fit_logistic(x, y, l2=self.params.l2)
        return feats, models, timer.seconds

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        weight = cost_weight(self.params.scenario, self.params.cost_weight)
        feats, models, seconds = self.train(ctx)
        x = feats.transform([question_text(i) for i in ctx.items["test"]])
        probs = np.column_stack([predict_logistic(x, models[r.name]) for r in ctx.pool])
        return route_by_probability(ctx, probs, weight, feats.kind, seconds)
