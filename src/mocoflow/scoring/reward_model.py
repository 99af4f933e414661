"""reward_model task type: needs a judge/reward model, which is not configured, so items are skipped."""

from __future__ import annotations

from mocoflow.data.schema import Item
from mocoflow.scoring.base import SCORERS, Scorer, ScoreResult


class RewardModelScorer(Scorer):
    """Reward-model tasks need a judge model; without one, every item is skipped (never faked)."""

    DETAIL = "reward-model scoring needs judge weights; none configured"

    def score(self, item: Item, output: str) -> ScoreResult:
        return ScoreResult(correct=False, score=0.0, parsed=None, status="skipped", detail=self.DETAIL)

    def extract(self, item: Item, output: str) -> str | None:
        return None


SCORERS.register("reward_model")(RewardModelScorer())
