"""Multiple-choice answer parsing.

Precedence (the last match of the highest tier wins):
  1. an explicit answer statement: ``Answer: B``, ``the answer is (C)``, ``final answer: **D**``;
  2. other explicit markers: ``option C is correct``, ``\\boxed{C}``, ``correct choice: C``;
  3. a response that is only the letter (``B``, ``B.``, ``(B)``) or starts with ``B.``/``B)``/``(B)``;
  4. fallback: exactly one option's full text occurs in the response (case-insensitive).
Letters must be upper case (or parenthesised), so the article "a"/"A" inside prose never parses as option A.
Only the item's own choice keys are valid letters.
"""

from __future__ import annotations

import re

from mocoflow.data.schema import Item
from mocoflow.scoring.base import SCORERS, Scorer, ScoreResult, graded, unparseable

_END = r"(?![A-Za-z0-9])"
# letter as a capital (optionally bold/bracketed) or a parenthesised lower-case letter
_LETTER = r"(?:\*\*|\*)?(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z]))(?:\*\*|\*)?" + _END


def _tier1() -> re.Pattern[str]:
    lead = r"(?i:answer)\s*(?i:is|would be|should be|will be|:|=)\s*(?i:option|choice)?\s*[:\-]?\s*"
    return re.compile(lead + _LETTER)


def _tier2() -> re.Pattern[str]:
    a = (
        r"(?i:option|choice)\s+"
        + _LETTER
        + r"\s+(?i:is|would be|seems)\s+(?i:the\s+)?(?i:correct|right|best)"
    )
    b = r"(?i:correct|right|best)\s+(?i:option|choice|answer)\s*(?i:is|:)?\s*(?i:option|choice)?\s*" + _LETTER
    c = r"\\boxed\{\s*\(?([A-Za-z])\)?\s*\}"
    return re.compile(f"{a}|{b}|{c}")


_TIER1 = _tier1()
_TIER2 = _tier2()
_ONLY = re.compile(r"^\s*(?:\*\*)?\(?([A-Z])\)?[.):]?(?:\*\*)?\s*$")
_LEADING = re.compile(r"^\s*(?:\*\*)?(?:\(([A-Z])\)|([A-Z])[.):])(?:\*\*)?\s")


def _letters(item: Item) -> dict[str, str]:
    return {k.strip().upper(): str(v) for k, v in (item.choices or {}).items()}


def _last_valid(pattern: re.Pattern[str], text: str, valid: dict[str, str]) -> str | None:
    found = None
    for m in pattern.finditer(text):
        letter = next((g for g in m.groups() if g), None)
        if letter and letter.upper() in valid:
            found = letter.upper()
    return found


def _by_option_text(text: str, valid: dict[str, str]) -> str | None:
    low = text.lower()
    hits = []
    for letter, option in valid.items():
        opt = option.strip().lower()
        if opt and re.search(r"(?<!\w)" + re.escape(opt) + r"(?!\w)", low):
            hits.append(letter)
    return hits[0] if len(hits) == 1 else None


def parse_choice(item: Item, output: str) -> str | None:
    """The chosen letter, or None when no rule applies unambiguously."""
    valid = _letters(item)
    if not valid or not output.strip():
        return None
    for pattern in (_TIER1, _TIER2):
        letter = _last_valid(pattern, output, valid)
        if letter:
            return letter
    for pattern in (_ONLY, _LEADING):
        m = pattern.match(output)
        letter = next((g for g in m.groups() if g), None) if m else None
        if letter and letter in valid:
            return letter
    return _by_option_text(output, valid)


class MultipleChoiceScorer(Scorer):
    def score(self, item: Item, output: str) -> ScoreResult:
        letter = parse_choice(item, output)
        if letter is None:
            return unparseable("no answer letter found")
        gold = str(item.gold).strip().strip("()").upper()
        return graded(letter == gold, letter)

    def extract(self, item: Item, output: str) -> str | None:
        return parse_choice(item, output)


SCORERS.register("multiple_choice")(MultipleChoiceScorer())
