"""generation_diversity (MoCo's ``infinite_chat_diversity``): how far an output is from the reference responses.

MoCo's score (``get_scores`` in ``model_collaboration/data/eval.py``): embed the output and each reference,
take the cosine similarity of the output to each reference, and score ``1 - mean(similarities)``; higher
is more diverse. MoCo embeds with ``FacebookAI/roberta-base`` through a feature-extraction pipeline,
padding to 512 tokens and averaging the hidden states over all 512 positions, padding included --
:class:`MeanPoolEmbedder` reproduces that recipe from a local model folder.

The embedder is pluggable (:class:`Embedder`: a name and ``texts -> (n, d) array``). The registered scorer
uses :class:`HashingEmbedder`, a word uni/bigram hashing vector (scikit-learn's ``HashingVectorizer``):
offline, deterministic and weight-free, so the offline default never downloads a model; its numbers are
*lexical* diversity and are not comparable with MoCo's roberta numbers (the detail names the embedder).
``score`` is ``1 - mean cosine`` clipped to [0, 1] (the raw value is in ``detail``); ``correct`` is
``score >= DIVERSITY_CORRECT_THRESHOLD``, a convention for the accuracy column -- the metric is ``score``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mocoflow.data.schema import Item
from mocoflow.scoring.base import SCORERS, Scorer, ScoreResult, graded, unparseable

DIVERSITY_CORRECT_THRESHOLD = 0.5
"""``correct`` when the output is at least this far (1 - mean cosine) from the references."""


class Embedder(Protocol):
    name: str

    def __call__(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class HashingEmbedder:
    """Word uni- and bigram counts hashed into ``n_features`` dimensions, L2-normalised (no weights)."""

    n_features: int = 2**18
    name: str = "hashing-tf (word 1-2 grams)"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        vec = HashingVectorizer(n_features=self.n_features, ngram_range=(1, 2), alternate_sign=False, norm="l2")
        return vec.transform(list(texts)).toarray()


@dataclass
class MeanPoolEmbedder:
    """MoCo's recipe: a local encoder (e.g. a roberta-base folder), inputs padded to ``max_length``, hidden
    states averaged over every position (padding included, as MoCo's pipeline call does)."""

    model_dir: str | Path
    max_length: int = 512
    device: str = "cpu"
    name: str = "mean-pooled encoder"
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if not self._loaded:
            self._loaded["tok"] = AutoTokenizer.from_pretrained(str(self.model_dir))
            self._loaded["model"] = AutoModel.from_pretrained(str(self.model_dir)).to(self.device).eval()
        tok, model = self._loaded["tok"], self._loaded["model"]
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        out = []
        with torch.no_grad():
            for text in texts:
                enc = tok(text, truncation=True, max_length=self.max_length, padding="max_length",
                          return_tensors="pt").to(self.device)
                hidden = model(**enc).last_hidden_state[0]
                out.append(hidden.float().mean(dim=0).cpu().numpy())
        return np.stack(out)


def diversity(output: str, references: Sequence[str], embedder: Embedder) -> float:
    """``1 - mean cosine similarity`` of ``output`` to each reference (MoCo's formula, unclipped)."""
    vectors = np.asarray(embedder([output, *references]), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    unit = vectors / norms[:, None]
    return float(1.0 - np.mean(unit[1:] @ unit[0]))


class GenerationDiversityScorer(Scorer):
    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder: Embedder = embedder or HashingEmbedder()

    def score(self, item: Item, output: str) -> ScoreResult:
        refs = [r for r in (item.gold or []) if isinstance(r, str) and r.strip()]
        if not refs:
            return ScoreResult(False, 0.0, None, status="error", detail="item has no reference responses")
        if not output.strip():
            return unparseable("empty output")
        raw = diversity(output, refs, self.embedder)
        score = min(1.0, max(0.0, raw))
        return graded(score >= DIVERSITY_CORRECT_THRESHOLD, None, score=score,
                      detail=f"1 - mean cosine {raw:.4f} over {len(refs)} references ({self.embedder.name})")

    def extract(self, item: Item, output: str) -> str | None:
        return None


SCORERS.register("generation_diversity")(GenerationDiversityScorer())
