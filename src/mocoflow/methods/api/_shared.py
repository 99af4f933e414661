"""Helpers the API-level methods share.

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
- ``Cursor``: one model decoding one answer with its own KV cache (batch of one). Text written by other
  models is fed in with ``sync`` (re-tokenised with this model's tokenizer, so cross-tokenizer methods work on
  text); ``snapshot``/``restore`` crop the cache to roll back tentative patches. Cost accounting goes into the
  engine's ``usage``.
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
from mocoflow.methods.common import dev_accuracy, reliance_from_counts, reused_costs
from mocoflow.models import card_weights

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


# -- decoding with a KV cache, one answer at a time -----------------------------------------------------


class Cursor:
    """One model writing (part of) one answer, with its own KV cache.

    ``text`` given to ``sync`` is the whole answer so far; only the part not yet consumed is tokenised and
    fed. ``choose`` feeds one of this model's own tokens (a token it generated)."""

    def __init__(self, engine: Any, prompt: str, *, hidden: bool = False) -> None:
        from mocoflow.engines.loader import encode_prompts

        self.engine = engine
        self.tok = engine.tokenizer
        self.hidden_wanted = hidden
        self.past: Any = None
        self.logp: Any = None
        self.hidden: Any = None
        self.length = 0
        self.consumed = 0  # characters of the answer text already in the cache
        self.spent_prompt = 0  # tokens run through the model that it did not choose (never rolled back)
        self.spent_generated = 0  # tokens this model chose itself, eos included (never rolled back)
        ids = encode_prompts(self.tok, [prompt])[0]
        self.prompt_tokens = len(ids)
        self.eos = self._eos_ids()
        self._forward(ids)

    def _eos_ids(self) -> set[int]:
        ids = {self.tok.eos_token_id}
        cfg = getattr(getattr(self.engine.model, "generation_config", None), "eos_token_id", None)
        ids.update(cfg if isinstance(cfg, list) else [cfg])
        return {int(i) for i in ids if i is not None}

    def _forward(self, ids: list[int]) -> None:
        import torch

        if not ids:
            return
        t0 = time.perf_counter()
        with torch.no_grad():
            x = torch.tensor([ids], dtype=torch.long, device=self.engine.device)
            out = self.engine.model(
                input_ids=x,
                past_key_values=self.past,
                use_cache=True,
                output_hidden_states=self.hidden_wanted,
            )
        self.past = out.past_key_values
        self.logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        if self.hidden_wanted:
            self.hidden = out.hidden_states[-1][0, -1].float()
        self.length += len(ids)
        self.spent_prompt += len(ids)
        usage = self.engine.usage
        usage.prompt_tokens += len(ids)
        usage.generate_seconds += time.perf_counter() - t0

    def top(self) -> tuple[int, float]:
        p, i = self.logp.max(-1)
        return int(i), float(p.exp())

    def piece(self, token: int) -> str:
        return self.tok.decode([token], skip_special_tokens=True)

    def choose(self, token: int, text_after: int) -> None:
        """Feed a token this model generated; ``text_after`` is the answer's length including it."""
        self.count_generated()
        self._forward([token])
        self.spent_prompt -= 1  # counted as generated, not as prompt
        self.engine.usage.prompt_tokens -= 1
        self.consumed = text_after

    def emit(self, token: int, text: str) -> str | None:
        """Append this model's own ``token`` to ``text`` and feed it; None (counted as generated) at eos."""
        if token in self.eos:
            self.count_generated()
            return None
        text = text + self.piece(token)
        self.choose(token, len(text))
        return text

    def feed_token(self, token: int, text_after: int) -> None:
        """Feed a token another model (same tokenizer) chose."""
        self._forward([token])
        self.consumed = text_after

    def logprobs_of(self, continuation: str) -> list[float]:
        """Log-probabilities of ``continuation``'s tokens, fed one at a time (the cache advances)."""
        out = []
        for tok in self.tok(continuation, add_special_tokens=False)["input_ids"]:
            out.append(float(self.logp[tok]))
            self._forward([tok])
        self.consumed += len(continuation)
        return out

    def count_generated(self) -> None:
        self.spent_generated += 1
        self.engine.usage.generated_tokens += 1

    def sync(self, text: str) -> None:
        new = text[self.consumed :]
        if new:
            self._forward(list(self.tok(new, add_special_tokens=False)["input_ids"]))
        self.consumed = len(text)

    def snapshot(self) -> tuple:
        return (self.length, self.logp, self.hidden, self.consumed)

    def restore(self, snap: tuple) -> None:
        """Roll the cache back to ``snap`` (work done since still counts as cost)."""
        length, self.logp, self.hidden, self.consumed = snap
        if self.length != length:
            self.past.crop(length - self.length)  # negative: tokens to remove
            self.length = length

    def cost(self) -> dict[str, int]:
        """Tokens this cursor ran: prompt and fed text (prompt side), own tokens (generated side)."""
        return {"prompt_tokens": self.spent_prompt, "generated_tokens": self.spent_generated}


def greedy_patch(cursor: Cursor, text: str, n_tokens: int) -> tuple[str, bool, list[float]]:
    """Let ``cursor`` append up to ``n_tokens`` greedy tokens to ``text``. Returns (new text, hit eos,
    log-probs of the chosen tokens)."""
    cursor.sync(text)
    logps = []
    for _ in range(n_tokens):
        tok, p = cursor.top()
        logps.append(math.log(max(p, 1e-30)))
        after = cursor.emit(tok, text)
        if after is None:
            return text, True, logps
        text = after
    return text, False, logps


def finish_costs(cursors: list[Cursor], calls: int = 1) -> dict[str, int]:
    """Summed cost of several cursors as prediction columns (all of it is new work)."""
    prompt = sum(c.cost()["prompt_tokens"] for c in cursors)
    gen = sum(c.cost()["generated_tokens"] for c in cursors)
    for c in cursors:
        c.engine.usage.calls += calls
    return {"prompt_tokens": prompt, "generated_tokens": gen, "new_generated_tokens": gen}


def pool_ref(ctx: RunContext, name: str | None, default: str) -> Any:
    wanted = name or default
    for ref in ctx.pool:
        if ref.name == wanted:
            return ref
    raise MethodError(f"model {wanted!r} is not in pool {ctx.pool_name!r}: {[r.name for r in ctx.pool]}")


def by_size(ctx: RunContext) -> list[str]:
    """Pool model names from fewest to most parameters (ties: pool order)."""
    names = [r.name for r in ctx.pool]
    size = {r.name: float(r.card.get("parameters") or 0) for r in ctx.pool}
    return sorted(names, key=lambda n: (size[n], names.index(n)))
