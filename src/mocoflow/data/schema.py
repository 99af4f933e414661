"""The canonical item record every stage reads and writes (one JSON object per line)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TASK_TYPES = ("multiple_choice", "exact_match", "f1_match", "coding", "noncompliance", "reward_model",
              "generation_diversity")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Item:
    """One evaluation item.

    Fields by task type:
      - multiple_choice: ``choices`` maps letters ("A".."E") to option text; ``gold`` is a letter.
      - exact_match: ``gold`` is the reference answer string (numbers compare numerically);
        ``metadata["answer_type"]`` (TheoremQA: integer, float, bool, list of integer, ...) when the source
        gives one.
      - f1_match: ``gold`` is a list of alias strings; F1 is the max over aliases.
      - coding: ``gold`` is the test program (defines ``check(candidate)``);
        ``metadata["entry_point"]`` names the function under test.
      - noncompliance: ``gold`` is None; ``metadata["category"]`` names the request category.
      - reward_model: ``gold`` may be None (judged by a reward model).
      - generation_diversity: ``gold`` is the list of reference responses; the score is how far the output is
        from them (1 - mean cosine similarity of embeddings, as MoCo scores it).
    ``id`` is unique within (task, split); duplicates in a source get a ``#k`` suffix.
    """

    id: str
    task: str
    split: str
    task_type: str
    question: str
    choices: dict[str, str] | None = None
    gold: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise ValueError(f"item {self.id!r}: unknown task_type {self.task_type!r}; valid: {TASK_TYPES}")
        if self.split not in SPLITS:
            raise ValueError(f"item {self.id!r}: unknown split {self.split!r}; valid: {SPLITS}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Item:
        return cls(**row)
