"""Multiple-choice answer parsing.

Rules, in order (only the item's own choice keys are valid letters):
  1. explicit statements -- the **last one in the text wins**: ``Answer: B``, ``the answer is (c)``,
     ``final answer: **D**``, ``the correct one is C``, ``the best option is C``, ``option C is correct``,
     ``I would choose C``, ``I'd say C``, ``I think it's C.``, ``C is the answer``, ``final choice: C``,
     ``\\boxed{C}``, a "## Answer" header over a
     letter; after such a marker a lower-case letter counts when nothing but punctuation follows it (``the
     answer is c.``), and so does an option's full text or a label with its text (``Answer: Berlin``,
     ``Final answer: C. Berlin``). A statement naming two letters ("the answer is A or C", "I would choose
     A or B") states none;
  2. a response (or its first line, when no other line is a bare letter) that is only a letter, in either
     case: ``b``, ``B.``, ``(c)``, ``**D**``, ``Option B``, ``C\\n\\nBecause ...``;
     or one that starts with a capital letter and a delimiter (``B. London``, ``(B) London``), or with a
     lower-case one followed by that option's own text (``b) London``);
  3. a response that is exactly one option's text (``Berlin``; case-sensitive first, as in ARC's
     genotypes ``Rr`` / ``RR``, then case-free, then without punctuation: ``E coli`` for ``E. coli``);
  4. fallback: exactly one option's text occurs in the response (word-bounded, case-free; an option found
     only inside a longer option's occurrence, like ``8 lb`` inside ``0.8 lb``, does not count; an
     occurrence right after a negation -- "not London", "isn't supported" -- does not count; when no option
     occurs as written, a one-word option counts in its inflected forms: "supported", "refutes" for
     ``support`` / ``refute``).
Letters in prose are not answers: a sentence-initial article "A" never parses as option A. A response
naming several options without committing (all letters, all texts, "A or B") parses as none, so it is
never credited; so does one that lists two or more labelled options ("A. Paris\\nB. London ...", what small
models often write back) without an explicit statement (rule 1): only rule 3 (the whole response is one
option's text) still applies to a listing. Responses are read after
:func:`~mocoflow.scoring.answer_text.canonical_text` (fullwidth letters and colons are ASCII).

Options with identical text (``duplicate_options``: MMLU-Redux, CulturalBench, AGIEval carry a few) are one
answer: the parsed letter is the first of its group, and it is correct when the gold is in that group.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate

from mocoflow.data.schema import Item
from mocoflow.scoring.answer_text import canonical_text, explicit_spans
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
    # "C is correct." / "C is the answer." at the start of a sentence (a capital letter only)
    r"(?:^|(?<=[\n.!?])\s*)" + _BOLD + r"\(?([A-Z])\)?" + _BOLD + r"\s+(?i:is)\s+(?i:the\s+)?"
    r"(?i:correct|right|(?:correct\s+|right\s+|best\s+)?answer)\b",
    # "Final choice: C", "my choice is (B)", "selected option: D"
    r"(?i:\b(?:final|my)\s+(?:choice|selection|pick)|\bselected\s+(?:option|answer))\s*(?i:is|:|=|-)\s*"
    + _OPTION_WORD + _LETTER,
    # "I choose C", "I would go with option B", "I'd say C"
    r"(?i:\bI(?:'d|'ll|\s+would|\s+will)?\s+(?:choose|pick|select|go\s+with|say))\s+" + _OPTION_WORD + _LETTER,
    # "I think it's C.", "so it is (B)" (a capital or bracketed letter that ends its clause)
    r"(?i:\bit(?:'s|\s+is))\s+" + _OPTION_WORD + _BOLD + r"(?:\(([A-Za-z])\)|([A-Z]))" + _BOLD
    + r"(?=[ \t]*(?:$|\n|[.,;:!?]))",
    r"\\boxed\{\s*(?:\\text\{)?\s*\(?([A-Za-z])\)?\s*\}?\s*\}",
]))
_ONLY = re.compile(r"^\s*" + _BOLD + r"(?i:option\s+|choice\s+)?[(\[]?([A-Za-z])[)\]]?[.):]?" + _BOLD + r"\s*$")
_LEADING = re.compile(r"^\s*" + _BOLD + r"(?:\(([A-Za-z])\)|([A-Za-z])[.):])" + _BOLD + r"\s+(.+?)\s*$", re.S)
_TRAILING = re.compile(r"[\s.,;:!?]+$")
_BOLD_WRAP = re.compile(r"^(\*\*|\*)(.+)\1$")
_BARE_LETTER = re.compile(r"^\s*[(\[]?[A-Za-z][)\]]?[.):]?\s*$")
# right after a letter statement: another letter offered as an alternative ("A or C", "A, B")
_ALTERNATIVE = re.compile(r"[ \t]*(?:,|/|\bor\b|\band\b|\band/or\b)[ \t]*"
                          r"(?i:(?:maybe|possibly|perhaps|probably)[ \t]+)?(?i:option\s+)?" + _BOLD
                          + r"[(\[]?([A-Z])[)\]]?(?![A-Za-z0-9])|[ \t]*(?:,|/|\bor\b)[ \t]*[(\[]([a-z])[)\]]")
_LABEL = re.compile(r"(?:^|(?<=\s))[(\[]?([A-Z])[)\].:](?=\s)")
_NEGATED_BEFORE = re.compile(r"(?:\bnot|n't|\bnever|\bnor|\bneither|\binstead\s+of|\brather\s+than)\s+(?:\w+\s+)?$",
                             re.IGNORECASE)
_PUNCT = re.compile(r"[^\w\s]")


def _letters(item: Item) -> dict[str, str]:
    return {k.strip().upper(): canonical_text(str(v)) for k, v in (item.choices or {}).items()}


def _squash(text: str) -> str:
    """Whitespace collapsed, a surrounding markdown bold and trailing punctuation removed."""
    t = " ".join(text.split())
    m = _BOLD_WRAP.match(t)
    return _TRAILING.sub("", m.group(2) if m else t)


def _bare_words(text: str) -> str:
    """Case-free, punctuation-free words: ``"E. coli"`` -> ``"e coli"``."""
    return " ".join(_PUNCT.sub(" ", text).casefold().split())


def _option_pattern(option: str) -> str:
    """A word-bounded pattern for an option's inflected forms: a one-word option of 4+ letters ("support" ->
    supports/supported/supporting, "refute" -> refutes/refuted/refuting); other options as written."""
    if option.isalpha() and len(option) >= 4:
        stem = option[:-1] + "(?:e|es|ed|ing)" if option.endswith("e") else re.escape(option) + "(?:s|es|ed|ing)?"
        return r"(?<!\w)" + stem + r"(?!\w)"
    return r"(?<!\w)" + re.escape(option) + r"(?!\w)"


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
    rules = [lambda a, b: a == b] + ([lambda a, b: a.casefold() == b.casefold(),
                                      lambda a, b: _bare_words(a) == _bare_words(b)] if case_free else [])
    for same in rules:
        hits = {_squash(v) for k, v in valid.items() if same(_squash(v), target)}
        if len(hits) == 1:  # one option, or identical duplicates (resolved by canonical_letter)
            return next(k for k, v in valid.items() if _squash(v) in hits)
    return None


def _occurring(low: str, valid: dict[str, str], inflected: bool) -> set[str]:
    """Letters whose option text occurs in ``low`` (see :func:`_by_option_text`)."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for letter, option in valid.items():
        opt = _squash(option).casefold()
        if opt:
            pattern = _option_pattern(opt) if inflected else r"(?<!\w)" + re.escape(opt) + r"(?!\w)"
            found = [(m.start(), m.end()) for m in re.finditer(pattern, low)
                     if not _NEGATED_BEFORE.search(low, max(0, m.start() - 40), m.start())]
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
    return kept


def _by_option_text(text: str, valid: dict[str, str]) -> str | None:
    """The one option whose text occurs in ``text`` (word-bounded, case-free), ignoring occurrences that lie
    inside an occurrence of a longer option (``8 lb`` inside ``0.8 lb``) or right after a negation; when no
    option occurs as written, a one-word option's inflected forms count ("supported" for ``support``)."""
    low = text.casefold()
    kept = _occurring(low, valid, inflected=False) or _occurring(low, valid, inflected=True)
    texts = {_squash(valid[k]) for k in kept}
    return min(kept) if len(texts) == 1 else None


def _segment_letter(segment: str, valid: dict[str, str]) -> str | None:
    """The option an explicit answer's text names: a bare letter, a label with its option's text, or an
    option's whole text; None for anything else (a hedge "A or C" included)."""
    m = _ONLY.match(segment)
    if m:
        return m.group(1).upper() if m.group(1).upper() in valid else None
    m = _LEADING.match(segment)
    if m:
        lead = (m.group(1) or m.group(2)).upper()
        if lead in valid and ((m.group(1) or m.group(2)).isupper() or _by_whole_text(m.group(3), {lead: valid[lead]})):
            return lead
    return _by_whole_text(segment, valid)


def _explicit(output: str, valid: dict[str, str]) -> str | None:
    """The last explicit letter statement (a statement naming two letters is none), or an explicit answer
    (marker, header, commitment) whose text is a letter, a labelled option or an option's full text."""
    found: list[tuple[int, str]] = []
    for m in _EXPLICIT.finditer(output):
        letter = next((g for g in m.groups() if g), None)
        if not letter or letter.upper() not in valid:
            continue
        alt = _ALTERNATIVE.match(output, m.end())
        if alt and (alt.group(1) or alt.group(2)).upper() != letter.upper():
            continue  # "the answer is A or C": no choice
        found.append((m.start(), letter.upper()))
    for start, _, segment in explicit_spans(output):
        letter = _segment_letter(segment, valid)
        if letter:
            found.append((start, letter))
    return max(found)[1] if found else None


def parse_choice(item: Item, output: str) -> str | None:
    """The chosen letter (canonical among identical options), or None when no rule applies unambiguously."""
    valid = _letters(item)
    output = canonical_text(output)
    if not valid or not output.strip():
        return None
    letter = _explicit(output, valid)
    if letter is None and not _BARE_LETTER.match(output):  # "a*" is option text, "b" is a letter
        letter = _by_whole_text(output, valid, case_free=False)
    if letter is None and len({k for k in _LABEL.findall(output) if k in valid}) >= 2:
        return _by_whole_text(output, valid)  # "A. Paris\nB. London ...": a listing states no choice
    if letter is None:
        lines = [ln for ln in output.split("\n") if ln.strip()]
        bare = [m.group(1).upper() for m in map(_ONLY.match, lines) if m]
        m = _ONLY.match(lines[0])  # the whole response, or its first line ("C\n\nBecause ...")
        if m and m.group(1).upper() in valid and len(set(bare)) == 1:
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
