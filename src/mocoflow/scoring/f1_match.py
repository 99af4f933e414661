"""SQuAD-style token F1 against a list of gold aliases.

The answer segment is the text after the last ``Answer:`` marker (else the whole output). Normalisation:
lower case, punctuation removed, articles (a/an/the) removed, whitespace collapsed. ``score`` is the max
F1 over aliases; ``correct`` is an exact normalised match with any alias, or ``score >=
F1_CORRECT_THRESHOLD``.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter

from mocoflow.data.schema import Item
from mocoflow.scoring.base import SCORERS, Scorer, ScoreResult, graded, unparseable

F1_CORRECT_THRESHOLD = 0.8
"""Token F1 at or above which an f1_match answer counts as correct (exact alias matches always do)."""

_MARKER = re.compile(r"answer\s*(?:is|:)\s*:?", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise(s: str) -> str:
    s = s.lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def aliases(gold: object) -> list[str]:
    """Gold aliases: a list, or a JSON-encoded list string (never split on commas), or one string."""
    if isinstance(gold, str):
        text = gold.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                return [str(a) for a in parsed]
        return [gold]
    if isinstance(gold, list | tuple):
        return [str(a) for a in gold]
    return [] if gold is None else [str(gold)]


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def answer_segment(output: str) -> str:
    parts = _MARKER.split(output)
    seg = parts[-1] if len(parts) > 1 else output
    return seg.strip().splitlines()[0].strip() if seg.strip() else ""


class F1Scorer(Scorer):
    def score(self, item: Item, output: str) -> ScoreResult:
        seg = answer_segment(output)
        if not normalise(seg):
            return unparseable("empty answer")
        golds = aliases(item.gold)
        if not golds:
            return ScoreResult(False, 0.0, normalise(seg), status="error", detail="item has no gold aliases")
        exact = any(normalise(seg) == normalise(g) for g in golds)
        best = max(token_f1(seg, g) for g in golds)
        return graded(
            exact or best >= F1_CORRECT_THRESHOLD, normalise(seg), detail=f"max F1 {best:.3f}", score=best
        )

    def extract(self, item: Item, output: str) -> str | None:
        return normalise(answer_segment(output)) or None


SCORERS.register("f1_match")(F1Scorer())
