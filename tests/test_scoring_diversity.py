"""generation_diversity: MoCo's 1 - mean cosine similarity to the references, with a pluggable embedder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from mocoflow.data.schema import Item
from mocoflow.scoring import SCORERS, extract_answer, score_item
from mocoflow.scoring.generation_diversity import (
    DIVERSITY_CORRECT_THRESHOLD,
    GenerationDiversityScorer,
    HashingEmbedder,
    MeanPoolEmbedder,
    diversity,
)

REFS = ["A toad named Prism leapt into the wild meadow and outwitted a fox.",
        "Barnaby the violet toad hopped beyond his pond and found glowing mushrooms."]


def gd(refs: list[str] | None = None) -> Item:
    return Item(id="d", task="icd", split="dev", task_type="generation_diversity",
                question="Write a short story about a colorful toad.", gold=REFS if refs is None else refs)


class FixedEmbedder:
    """Texts map to given vectors (to check the formula, not an embedding)."""

    name = "fixed"

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.table[t] for t in texts], dtype=float)


def test_registered_for_moco_task_type() -> None:
    assert "generation_diversity" in SCORERS.names()


def test_formula_is_one_minus_mean_cosine() -> None:
    emb = FixedEmbedder({"o": [1.0, 0.0], "r1": [1.0, 0.0], "r2": [0.0, 2.0]})
    assert diversity("o", ["r1", "r2"], emb) == pytest.approx(1 - (1.0 + 0.0) / 2)
    result = GenerationDiversityScorer(emb).score(gd(["r1", "r2"]), "o")
    assert result.status == "ok" and result.score == pytest.approx(0.5) and result.correct
    assert "fixed" in result.detail


def test_repeating_a_reference_is_not_diverse() -> None:
    same = score_item(gd(), REFS[0])
    other = score_item(gd(), "Quarterly revenue rose on strong cloud demand, the company said on Tuesday.")
    assert same.score < 0.5 < 0.9 < other.score
    assert not same.correct and other.correct and DIVERSITY_CORRECT_THRESHOLD == 0.5
    assert extract_answer(gd(), REFS[0]) is None  # no voting key for free text


def test_empty_output_and_missing_references() -> None:
    assert score_item(gd(), "   ").status == "unparseable"
    assert score_item(gd([]), "text").status == "error"


def test_hashing_embedder_is_deterministic() -> None:
    emb = HashingEmbedder()
    assert np.array_equal(emb(REFS), emb(REFS)) and emb(REFS).shape[0] == 2


def test_mean_pool_embedder_follows_mocos_recipe(tiny_model_dir: Path) -> None:
    emb = MeanPoolEmbedder(tiny_model_dir, max_length=16)
    vectors = emb(["a toad", "a toad went on an adventure"])
    assert vectors.shape[0] == 2 and np.all(np.isfinite(vectors))
    result = GenerationDiversityScorer(emb).score(gd(), "a toad")
    assert result.status == "ok" and 0.0 <= result.score <= 1.0
