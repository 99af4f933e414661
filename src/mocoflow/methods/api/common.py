"""Helpers the API-level methods share (``methods/<level>/common.py``, as every level).

- ``question_text``: the text a router sees for an item (question plus options).
- ``Featurizer``: router features. ``embedder`` is a sentence-transformers model directory, or a model name
  resolved through ``results/models/{name}/card.json`` (e.g. ``minilm``, built by the
  ``pypi_sentence_transformer`` model source), or one of the deterministic fallbacks ``tfidf`` (scikit-learn
  TF-IDF fitted on dev questions; hashed bag-of-words when scikit-learn is missing) and ``hash`` (hashed
  bag-of-words in numpy). A named embedder that cannot be found falls back to ``tfidf`` with a warning; the
  features actually used are recorded in every prediction (``router_features``).
- ``model_costs``: real per-model cost of answering one item: the card's parameter count times the mean
  prompt + generated tokens of the model's shared dev generations (FLOPs ~ 2 x that), i.e. the engine's
  own accounting, never a constant.
- ``SCENARIOS``: GraphRouter's cost/performance trade-offs (weight on normalised cost).
- ``fit_logistic``: a small deterministic L2 logistic regression (full-batch gradient descent in numpy).
- ``route_by_probability``: a learned router's predictions (argmax of p - weight x normalised cost).
- ``stepped_costs`` / ``chunks``: prediction cost columns of a row decoded through ``Stepper``s (the stepping
  API in :mod:`mocoflow.engines.stepper`, which token-level methods use to decode many items in lockstep) and
  the lockstep batches of a method's items.
- ``pool_ref`` / ``by_size``: pool models by name (with a default) and from smallest to largest.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from mocoflow.data.schema import Item
from mocoflow.methods.base import MethodError, RunContext, prediction
from mocoflow.methods.common import dev_accuracy, pool_member, reliance_from_counts, reused_costs
from mocoflow.models import ModelRef, card_weights

log = logging.getLogger(__name__)

SCENARIOS = {"performance_first": 0.0, "balance": 0.5, "cost_first": 0.8}
FALLBACKS = ("tfidf", "hash")


def question_text(item: Item) -> str:
    if item.choices:
        return item.question + "\n" + "\n".join(f"{k}. {v}" for k, v in item.choices.items())
    return item.question


def cost_weight(scenario: str, explicit: float | None) -> float:
    if explicit is not None:
        return float(explicit)
    if scenario not in SCENARIOS:
        raise MethodError(f"unknown cost scenario {scenario!r}; valid: {sorted(SCENARIOS)}")
    return SCENARIOS[scenario]


# -- features -----------------------------------------------------------------------------------------


def _hashed_bow(texts: list[str], dim: int = 512) -> np.ndarray:
    out = np.zeros((len(texts), dim), dtype=np.float64)
    for row, text in enumerate(texts):
        for tok in re.findall(r"\w+", text.lower()):
            h = int.from_bytes(hashlib.sha256(tok.encode()).digest()[:8], "big")
            out[row, h % dim] += 1.0 if (h >> 63) == 0 else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1.0, norms)


def resolve_embedder(embedder: str, models_dir: str | Path = "results/models") -> str | None:
    """A sentence-transformers directory for ``embedder``, or None when it names a fallback or is missing."""
    if embedder in FALLBACKS:
        return None
    path = Path(embedder)
    if path.is_dir():
        return str(path)
    card = Path(models_dir) / embedder / "card.json"
    if card.exists():
        return str(card_weights(card))
    log.warning("embedder %r: no directory and no %s; using TF-IDF features instead", embedder, card)
    return None


class Featurizer:
    """Fit on dev texts, transform any texts; ``kind`` says which features were used."""

    def __init__(self, embedder: str = "minilm", models_dir: str | Path = "results/models") -> None:
        self.path = resolve_embedder(embedder, models_dir)
        self.kind = "hash" if embedder == "hash" else "tfidf"
        self._model: Any = None
        self._tfidf: Any = None
        if self.path is not None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.path, device="cpu")
            self.kind = f"sentence_transformers:{Path(self.path).name}"

    def fit(self, texts: list[str]) -> Featurizer:
        if self.kind == "tfidf":
            try:
                from sklearn.feature_extraction.text import TfidfVectorizer
            except ImportError:
                self.kind = "hash"
                return self
            self._tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit(
                texts or ["empty"]
            )
        return self

    def transform(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1))
        if self._model is not None:
            return np.asarray(self._model.encode(texts, normalize_embeddings=True), dtype=np.float64)
        if self.kind == "tfidf":
            return np.asarray(self._tfidf.transform(texts).toarray(), dtype=np.float64)
        return _hashed_bow(texts)


# -- costs --------------------------------------------------------------------------------------------


def model_costs(ctx: RunContext, split: str = "dev") -> dict[str, float]:
    """Per model: parameters x mean (prompt + generated) tokens per item on ``split``'s shared generations."""
    out = {}
    for ref in ctx.pool:
        params = float(ref.card.get("parameters") or 0)
        if params <= 0:
            raise MethodError(
                f"model {ref.name!r}: its card has no parameter count; cost-aware routing needs it"
            )
        recs = [ctx.gen(ref.name, split, i.id) for i in ctx.items[split]]
        tokens = (
            np.mean([int(r["prompt_tokens"]) + int(r["generated_tokens"]) for r in recs]) if recs else 1.0
        )
        out[ref.name] = params * float(tokens)
    return out


def normalised(costs: dict[str, float]) -> dict[str, float]:
    top = max(costs.values()) if costs else 1.0
    return {k: v / top if top > 0 else 0.0 for k, v in costs.items()}


# -- classifiers --------------------------------------------------------------------------------------


def fit_logistic(
    x: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, steps: int = 500, lr: float = 0.5
) -> tuple[np.ndarray, float]:
    """L2 logistic regression by full-batch gradient descent (deterministic). Returns (w, b)."""
    n, d = x.shape
    w = np.zeros(d)
    b = 0.0
    if n == 0:
        return w, b
    p = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    b = math.log(p / (1 - p))
    for _ in range(steps):
        z = x @ w + b
        pred = 1.0 / (1.0 + np.exp(-z))
        g = pred - y
        w -= lr * (x.T @ g / n + l2 * w)
        b -= lr * float(g.mean())
    return w, b


def predict_logistic(x: np.ndarray, wb: tuple[np.ndarray, float]) -> np.ndarray:
    w, b = wb
    return 1.0 / (1.0 + np.exp(-(x @ w + b)))


def pick(scores: dict[str, float], tiebreak: dict[str, float], order: list[str]) -> str:
    """argmax of scores (rounded to 1e-9); ties by ``tiebreak`` (higher first), then pool order."""
    return max(order, key=lambda n: (round(scores[n], 9), tiebreak.get(n, 0.0), -order.index(n)))


def route_by_probability(ctx: RunContext, probs: np.ndarray, weight: float, features: str,
                         training_seconds: float) -> list[dict[str, Any]]:
    """Predictions of a learned router: per test item (row of ``probs``, one column per pool model in pool
    order, the predicted probability that the model is right) the model maximising ``p - weight x normalised
    cost`` answers with its shared test generation; ties go to the better model on dev."""
    names = [r.name for r in ctx.pool]
    costs = normalised(model_costs(ctx)) if weight else {n: 0.0 for n in names}
    acc = dev_accuracy(ctx)
    out = []
    for row, item in enumerate(ctx.items["test"]):
        scores = {n: float(probs[row, m]) - weight * costs[n] for m, n in enumerate(names)}
        name = pick(scores, acc, names)
        rec = ctx.gen(name, "test", item.id)
        out.append(prediction(item.id, rec["output"], answered_by=name, router_features=features,
                              p_correct=round(float(probs[row, names.index(name)]), 4),
                              training_seconds=round(training_seconds, 4), **reused_costs([rec])))
    ctx.decide(kind="router", reliance=reliance_from_counts(names, [p["answered_by"] for p in out]),
               router_features=features, cost_weight=weight)
    return out


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.t0


# -- token-level decoding (through ``mocoflow.engines.stepper``) ---------------------------------------------


def stepped_costs(steppers: list[Any], row: int) -> dict[str, int]:
    """Prediction cost columns of one row decoded through several steppers (all of it is new work)."""
    prompt = sum(s.cost(row)["prompt_tokens"] for s in steppers)
    gen = sum(s.cost(row)["generated_tokens"] for s in steppers)
    return {"prompt_tokens": prompt, "generated_tokens": gen, "new_generated_tokens": gen}


def chunks(n: int, size: int) -> list[range]:
    """``range(n)`` cut into consecutive batches of ``size`` (lockstep batches of a method's items)."""
    size = max(1, size)
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


# -- pool models --------------------------------------------------------------------------------------


def pool_ref(ctx: RunContext, name: str | None, default: str) -> ModelRef:
    """The pool model ``name``, or ``default`` when no name is configured."""
    return pool_member(ctx.pool, name or default)


def by_size(ctx: RunContext) -> list[str]:
    """Pool model names from fewest to most parameters (ties: pool order)."""
    names = [r.name for r in ctx.pool]
    size = {r.name: float(r.card.get("parameters") or 0) for r in ctx.pool}
    return sorted(names, key=lambda n: (size[n], names.index(n)))
