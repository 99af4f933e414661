"""Multiple-choice answer parsing.

Rules, in order (only the item's own choice keys are valid letters):
  1. explicit statements -- the **last one in the text wins**: ``Answer: B``, ``the answer is (c)``,
     ``final answer: **D**``, ``the correct one is C``, ``the best option is C``, ``option C is correct``,
     ``I would choose C``, ``\\boxed{C}``; after such a marker a lower-case letter counts when nothing but
     punctuation follows it (``the answer is c.``), and an option's full text counts too (``Answer:
     Berlin``);
  2. a response that is only a letter, in either case: ``b``, ``B.``, ``(c)``, ``**D**``, ``Option B``;
     or one that starts with a capital letter and a delimiter (``B. London``, ``(B) London``), or with a
     lower-case one followed by that option's own text (``b) London``);
  3. a response that is exactly one option's text (``Berlin``; case-sensitive first, as in ARC's
     genotypes ``Rr`` / ``RR``, then case-free);
  4. fallback: exactly one option's text occurs in the response (word-bounded, case-free; an option found
     only inside a longer option's occurrence, like ``8 lb`` inside ``0.8 lb``, does not count).
Letters in prose are not answers: a sentence-initial article "A" never parses as option A.

Options with identical text (``duplicate_options``: MMLU-Redux, CulturalBench, AGIEval carry a few) are one
answer: the parsed letter is the first of its group, and it is correct when the gold is in that group.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate

from mocoflow.data.schema import Item
from mocoflow.scoring.answer_text import final_answer
from mocoflow.scoring.base import SCORERS, Scorer, ScoreResult, graded, unparseable

_BOLD = r"(?:\*\*|\*)?"
# a letter: parenthesised/bracketed in either case, a capital standing alone, or a lower-case letter that
# nothing but punctuation or the end follows
_LETTER = (_BOLD + r"[ \t]*(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z])(?![A-Za-z0-9])"
           r"|([a-z])(?=[ \t]*(?:$|\n|[.,;:!?)\]*])))" + _BOLD)
_OPTION_WORD = r"(?:(?i:option|choice|letter)\s+)?"
_EXPLICIT = re.compile("|".join([
    # "Answer: B", "the answer is (C)", "final answer would be option D"
    r"(?i:answer)" + _BOLD + r"\s*(?i:is|was|would\s+be|should\s+be|will\s+be|:|=|-)\s*[:\-]?" + _BOLD + r"\s*"
    + _OPTION_WORD + _LETTER,
    # "the correct one is C", "the best option is C", "right answer: C"
    r"(?i:correct|right|best|true)\s+(?i:one|option|choice|answer|letter)\s*(?i:is|would\s+be|should\s+be|:|=)"
    r"\s*:?\s*" + _OPTION_WORD + _LETTER,
    # "option C is correct", "choice (B) is the right one"
    r"(?i:option|choice|answer|letter)\s+" + _LETTER + r"\s+(?i:is|would\s+be|seems)\s+(?i:the\s+)?"
    r"(?i:correct|right|best|true)",
    # "C is correct." at the start of a sentence (a capital letter only)
    r"(?:^|(?<=[\n.!?])\s*)" + _BOLD + r"\(?([A-Z])\)?" + _BOLD + r"\s+(?i:is)\s+(?i:the\s+)?(?i:correct|right)\b",
    # "I choose C", "I would go with option B"
    r"(?i:\bI(?:'d|\s+would|\s+will)?\s+(?:choose|pick|select|go\s+with))\s+" + _OPTION_WORD + _LETTER,
    r"\\boxed\{\s*(?:\\text\{)?\s*\(?([A-Za-z])\)?\s*\}?\s*\}",
]))
_ONLY = re.compile(r"^\s*" + _BOLD + r"(?i:option\s+|choice\s+)?[(\[]?([A-Za-z])[)\]]?[.):]?" + _BOLD + r"\s*$")
_LEADING = re.compile(r"^\s*" + _BOLD + r"(?:\(([A-Za-z])\)|([A-Za-z])[.):])" + _BOLD + r"\s+(.+?)\s*$", re.S)
_TRAILING = re.compile(r"[\s.,;:!?]+$")
_BOLD_WRAP = re.compile(r"^(\*\*|\*)(.+)\1$")
_BARE_LETTER = re.compile(r"^\s*[(\[]?[A-Za-z][)\]]?[.):]?\s*$")


def _letters(item: Item) -> dict[str, str]:
    return {k.strip().upper(): str(v) for k, v in (item.choices or {}).items()}


def _squash(text: str) -> str:
    """Whitespace collapsed, a surrounding markdown bold and trailing punctuation removed."""
    t = " ".join(text.split())
    m = _BOLD_WRAP.match(t)
    return _TRAILING.sub("", m.group(2) if m else t)


def canonical_letter(item: Item, letter: str) -> str:
    """The first letter whose option text is identical to ``letter``'s (itself when its text is unique)."""
    valid = _letters(item)
    text = _squash(valid.get(letter, ""))
    return next((k for k, v in valid.items() if _squash(v) == text), letter) if letter in valid else letter


def _by_whole_text(text: str, valid: dict[str, str], case_free: bool = True) -> str | None:
    """The option whose text the whole of ``text`` is: case-sensitive first, then (``case_free``) case-free."""
    target = _squash(text)
    if not target:
        return None
    rules = [lambda a, b: a == b] + ([lambda a, b: a.casefold() == b.casefold()] if case_free else [])
    for same in rules:
        hits = {_squash(v) for k, v in valid.items() if same(_squash(v), target)}
        if len(hits) == 1:  # one option, or identical duplicates (resolved by canonical_letter)
            return next(k for k, v in valid.items() if _squash(v) in hits)
    return None


def _by_option_text(text: str, valid: dict[str, str]) -> str | None:
    """The one option whose text occurs in ``text`` (word-bounded, case-free), ignoring occurrences that lie
    inside an occurrence of a longer option (``8 lb`` inside ``0.8 lb``)."""
    low = text.casefold()
    spans: dict[str, list[tuple[int, int]]] = {}
    for letter, option in valid.items():
        opt = _squash(option).casefold()
        if opt:
            found = [(m.start(), m.end()) for m in re.finditer(r"(?<!\w)" + re.escape(opt) + r"(?!\w)", low)]
            if found:
                spans[letter] = found
    kept = set()
    for letter, occurrences in spans.items():
        size = len(_squash(valid[letter]))
        longer = sorted(sp for other, sps in spans.items() if len(_squash(valid[other])) > size for sp in sps)
        starts = [st for st, _ in longer]
        reach = list(accumulate((en for _, en in longer), max))  # furthest end among spans starting so far
        for start, end in occurrences:
            k = bisect_right(starts, start)
            if k == 0 or reach[k - 1] < end:  # not inside any longer option's occurrence
                kept.add(letter)
                break
    texts = {_squash(valid[k]) for k in kept}
    return min(kept) if len(texts) == 1 else None


def _explicit(output: str, valid: dict[str, str]) -> str | None:
    """The last explicit letter statement, or an explicit marker followed by an option's full text."""
    found: list[tuple[int, str]] = []
    for m in _EXPLICIT.finditer(output):
        letter = next((g for g in m.groups() if g), None)
        if letter and letter.upper() in valid:
            found.append((m.start(), letter.upper()))
    segment = final_answer(output)
    if segment is not None:
        by_text = _by_whole_text(segment, valid)
        if by_text and not _ONLY.match(segment):
            found.append((output.rfind(segment), by_text))
    return max(found)[1] if found else None


def parse_choice(item: Item, output: str) -> str | None:
    """The chosen letter (canonical among identical options), or None when no rule applies unambiguously."""
    valid = _letters(item)
    if not valid or not output.strip():
        return None
    letter = _explicit(output, valid)
    if letter is None and not _BARE_LETTER.match(output):  # "a*" is option text, "b" is a letter
        letter = _by_whole_text(output, valid, case_free=False)
    if letter is None:
        m = _ONLY.match(output)
        if m and m.group(1).upper() in valid:
            letter = m.group(1).upper()
    if letter is None:
        m = _LEADING.match(output)
        if m:
            lead = (m.group(1) or m.group(2)).upper()
            if lead in valid and ((m.group(1) or m.group(2)).isupper()
                                  or _by_whole_text(m.group(3), {lead: valid[lead]})):
                letter = lead
    if letter is None:
        letter = _by_whole_text(output, valid) or _by_option_text(output, valid)
    return canonical_letter(item, letter) if letter else None


class MultipleChoiceScorer(Scorer):
    def score(self, item: Item, output: str) -> ScoreResult:
        letter = parse_choice(item, output)
        if letter is None:
            return unparseable("no answer letter found")
        gold = canonical_letter(item, str(item.gold).strip().strip("()").upper())
        same = [g for g in item.metadata.get("duplicate_options", []) if gold in g]
        detail = f"options {', '.join(same[0])} have identical text" if same else ""
        return graded(letter == gold, letter, detail=detail)

    def extract(self, item: Item, output: str) -> str | None:
        return parse_choice(item, output)


SCORERS.register("multiple_choice")(MultipleChoiceScorer())
