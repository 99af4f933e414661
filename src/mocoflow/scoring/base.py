"""Scoring core: the result record, the scorer registry keyed by task type, and the two entry points.

``score_item(item, output)`` grades one model output; ``extract_answer(item, output)`` returns the normalised
answer key that voting methods group by (equal answers give equal keys, ``None`` when unparseable).
"""

from __future__ import annotations

from dataclasses import dataclass

from mocoflow.data.schema import Item
from mocoflow.registry import Registry

STATUSES = ("ok", "unparseable", "timeout", "error", "skipped")


@dataclass(frozen=True)
class ScoreResult:
    """The grade of one output.

    ``score`` is in [0, 1] (token F1 for f1_match, else 0/1); ``parsed`` is the extracted answer (or None);
    ``status`` is one of ``STATUSES``; ``detail`` is a short human-readable reason.
    """

    correct: bool
    score: float
    parsed: str | None
    status: str = "ok"
    detail: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown score status {self.status!r}; valid: {STATUSES}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score {self.score!r} outside [0, 1]")


class Scorer:
    """One task type's grader. Subclasses implement both methods."""

    def score(self, item: Item, output: str) -> ScoreResult:
        raise NotImplementedError

    def extract(self, item: Item, output: str) -> str | None:
        raise NotImplementedError


SCORERS: Registry[Scorer] = Registry("scorer")


def unparseable(detail: str, parsed: str | None = None) -> ScoreResult:
    return ScoreResult(correct=False, score=0.0, parsed=parsed, status="unparseable", detail=detail)


def graded(correct: bool, parsed: str | None, detail: str = "", score: float | None = None) -> ScoreResult:
    return ScoreResult(
        correct=correct,
        score=float(correct) if score is None else score,
        parsed=parsed,
        status="ok",
        detail=detail,
    )


def score_item(item: Item, output: str) -> ScoreResult:
    """Grade ``output`` for ``item`` with the scorer registered for ``item.task_type``."""
    return SCORERS.get(item.task_type).score(item, output if isinstance(output, str) else "")


def extract_answer(item: Item, output: str) -> str | None:
    """The normalised answer key of ``output`` (for majority vote); None when unparseable."""
    return SCORERS.get(item.task_type).extract(item, output if isinstance(output, str) else "")
