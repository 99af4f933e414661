"""Per-task-type scoring: ``score_item`` grades one output, ``extract_answer`` gives the voting key.

Importing this package registers one scorer per task type in ``SCORERS``.
"""

from mocoflow.scoring import (  # noqa: F401
    coding,
    exact_match,
    f1_match,
    generation_diversity,
    multiple_choice,
    noncompliance,
    reward_model,
)
from mocoflow.scoring.base import SCORERS, STATUSES, Scorer, ScoreResult, extract_answer, score_item
from mocoflow.scoring.sandbox import Limits, SandboxResult, run_sandboxed

__all__ = [
    "SCORERS",
    "STATUSES",
    "Limits",
    "SandboxResult",
    "ScoreResult",
    "Scorer",
    "extract_answer",
    "run_sandboxed",
    "score_item",
]
