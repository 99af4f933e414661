"""Exact-match scoring: the final answer, read in an *answer mode*, compared with the gold.

Final answer (:mod:`mocoflow.scoring.answer_text`): the last explicit answer (``\\boxed{}``, an answer
marker, a "Final Answer" header, a short commitment such as "I'd say 12") by position; without one, a short
whole response (or its short last line); in number modes, else the last number in the text -- unless the
sentence holding it offers alternatives ("it might be 11 or 12"). An explicit answer that cannot be read in
the gold's mode does not hide a later short line that can (a response that echoes the question's
"Answer: Kimchi" line and then says "True"). A long marker-less boolean or option answer is read from its
lead ("False. The system has a pole ...", "(c) because ..."). A response naming several candidates without committing
("12 or 13", "True or False", "(b) or (c)") is not credited whichever candidate is gold (see
:mod:`mocoflow.scoring.numeric` for numbers and percentages).

Answer modes (:data:`MODES`) say how to read and compare it:

- ``number`` -- exact rational comparison (:mod:`mocoflow.scoring.numeric`): sign and decimals kept,
  ``1,000 == 1000 == 1000.0``, ``$5 == 5``, ``\\frac{1}{2} == 0.5``, ``3.54e-07 == 0.000000354 ==
  3.54 \\times 10^{-7}``, ``1,000,000 != 1000``;
- ``float`` -- as ``number`` with the 1 % relative tolerance of approximate golds (see that module for the
  convention and why);
- ``bool`` -- ``True``/``False``/``yes``/``no``, case-free;
- ``list`` / ``float_list`` -- ordered lists element by element (``[1,6] == [1, 6] == (1, 6) == 1, 6``);
- ``math`` -- symbolic equivalence by math-verify (:mod:`mocoflow.scoring.math_equivalence`): fractions,
  roots, sets, intervals, tuples, equations;
- ``option`` -- an option label (TheoremQA's ``answer_type: option``, and golds written ``(a)``/``(B)`` such as
  BBH's): ``(c)``, ``c``, ``(C) <the option's text>``, ``option c`` are ``c``; two labels ("(b) or (c)") are
  none;
- ``text`` -- normalised strings (whitespace collapsed, lower case, LaTeX wrappers, one pair of surrounding
  parentheses and a trailing period removed): ``valid``, Dyck ``) )``;
- ``auto`` -- for grouping answers without a gold: bool, number, math or text, whichever the answer is.

Where the mode comes from: :func:`declared_mode` reads the task's own ``metadata["answer_type"]``
(TheoremQA's ``integer``/``float``/``bool``/``list of integer``/``list of float``/``option``) and is
``auto`` otherwise -- it never looks at the gold, so voting methods can use it (:func:`answer_key`).
Grading (:func:`grade`) uses the declared mode, else infers it from the gold (:func:`gold_mode`). When an
answer cannot be read in the mode (a "maybe" for a yes/no gold), it is compared as text: graded, not
unparseable. ``unparseable`` means no final answer at all.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction
from typing import Any

from mocoflow.data.schema import Item
from mocoflow.scoring.answer_text import (
    boxed_contents,
    canonical_text,
    final_answer,
    final_answer_span,
    normalise_text,
    short_response,
    strip_latex,
)
from mocoflow.scoring.base import SCORERS, Scorer, ScoreResult, graded, unparseable
from mocoflow.scoring.math_equivalence import looks_mathematical, math_equal, math_key
from mocoflow.scoring.numeric import (
    is_scientific,
    last_number,
    lists_alternatives,
    number_in,
    number_key,
    numbers_in,
    numbers_match,
    parse_number,
    readings,
)

__all__ = ["MODES", "ExactMatchScorer", "answer_key", "boxed_contents", "declared_mode", "extract_key",
           "final_answer", "gold_mode", "grade", "normalise_text", "number_key", "parse_bool", "parse_number",
           "parse_option"]

MODES = ("auto", "number", "float", "bool", "list", "float_list", "math", "option", "text")
ANSWER_TYPE_MODES = {"integer": "number", "float": "float", "bool": "bool", "list of integer": "list",
                     "list of float": "float_list", "option": "option"}
"""TheoremQA-style ``answer_type`` values (MoCo's exact-match metadata) -> answer mode."""

_TRUE, _FALSE = frozenset({"true", "yes"}), frozenset({"false", "no"})
_NUMBER_MODES = ("number", "float")
_LIST_MODES = ("list", "float_list")
_FIRST_WORD = re.compile(r"[a-z]+")
_NEGATION = re.compile(r"\b(?:not|never|neither|nor)\b|n't\b")
_NEGATED_BOOL = re.compile(r"(?:\bnot|\bnever|n't)\s+(?:really\s+|entirely\s+)?(true|false)\b")
_BOOL_HEDGE = re.compile(r"\b(true|false|yes|no)\b\s*(?:,|/|\bor\b|\band\b|\band/or\b)\s*(true|false|yes|no)\b")
_OPTION_GOLD = re.compile(r"^\(\s*([A-Za-z])\s*\)$")
_BRACKETED_LABEL = re.compile(r"^\s*\(\s*[A-Za-z]\s*\)(?:\s|$)")
_OPTION_LABEL = re.compile(r"^\**\s*(?:(?:option|choice)\s+[(\[]?([a-z])\b|[(\[]\s*([a-z])\s*[)\]]|([a-z])(?:[).:]|$))"
                           r"\**(?=\s|$)")
_OPTION_HEDGE = re.compile(r"\(\s*[a-z]\s*\)\s*(?:,|/|\bor\b|\band\b)\s*(?:option\s+)?\(\s*[a-z]\s*\)"
                           r"|\b(?:option\s+)?[a-z]\s+or\s+(?:option\s+)?[a-z]\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n")


def declared_mode(metadata: dict[str, Any] | None) -> str:
    """The answer mode a task declares (``metadata["answer_type"]``), else ``"auto"``; never uses the gold."""
    answer_type = (metadata or {}).get("answer_type")
    return ANSWER_TYPE_MODES.get(str(answer_type).strip().lower(), "auto") if answer_type else "auto"


def parse_bool(text: str) -> bool | None:
    """``True``/``yes`` -> True, ``False``/``no`` -> False: the first word (case-free); else the one of
    ``true``/``false`` the answer contains, flipped when negated ("not true" is False) and None when some
    other negation makes it unclear; None when the answer offers both ("True or False", "yes and no")."""
    t = normalise_text(text)
    hedge = _BOOL_HEDGE.search(t)
    if hedge and (hedge.group(1) in _TRUE) != (hedge.group(2) in _TRUE):
        return None
    m = _FIRST_WORD.match(t)
    word = m.group(0) if m else ""
    if word in _TRUE | _FALSE:
        return word in _TRUE
    words = re.findall(r"\b(?:true|false)\b", t)
    if len(set(words)) != 1:
        return None
    negated = _NEGATED_BOOL.findall(t)
    if negated and len(negated) == len(words):
        return words[0] != "true"
    return words[0] == "true" if not _NEGATION.search(t) else None


def parse_option(text: str) -> str | None:
    """The option label an answer names (``(c)``, ``C``, ``(c) <its text>``, ``option c`` -> ``"c"``); None
    when it names none or several ("(b) or (c)")."""
    t = " ".join(strip_latex(text).split()).lower().strip()
    if _OPTION_HEDGE.search(t):
        return None
    m = _OPTION_LABEL.match(t)
    return next((g for g in m.groups() if g), None) if m else None


def parse_list(text: str) -> list[Fraction | str] | None:
    """An ordered list written ``[a, b]``, ``(a, b)`` or ``a, b``: numbers exact, other elements as text."""
    t = strip_latex(text).strip()
    if len(t) >= 2 and t[0] in "[(" and t[-1] in "])":
        t = t[1:-1]
    parts = [p.strip() for p in t.split(",")]
    if not parts or not all(parts):
        return None
    out: list[Fraction | str] = []
    for part in parts:
        value = parse_number(part)
        out.append(value if value is not None else normalise_text(part))
    return out


def gold_mode(gold: str, metadata: dict[str, Any] | None = None) -> str:
    """The mode to grade ``gold`` in: the declared one, else inferred from the gold's own form."""
    mode = declared_mode(metadata)
    if mode != "auto":
        return mode
    if normalise_text(gold) in _TRUE | _FALSE:
        return "bool"
    if _OPTION_GOLD.match(gold.strip()):
        return "option"
    if parse_number(gold) is not None:
        return "float" if is_scientific(gold) else "number"
    return "math" if looks_mathematical(gold) else "text"


def _readable(seg: str, mode: str) -> bool:
    if mode in _NUMBER_MODES:
        return _number(seg) is not None
    if mode == "bool":
        return parse_bool(seg) is not None
    if mode == "option":
        return parse_option(seg) is not None
    return True


def _last_number_sentence(output: str) -> str | None:
    """The last number of a worked solution, as the answer; the sentence (or line) holding it instead when
    that sentence offers it as an alternative ("it might be 11 or 12"), so nothing is credited."""
    found = last_number(output)
    if found is None:
        return None
    sentences = _SENTENCE.split(output.strip())
    last = next((s for s in reversed(sentences) if any(ch.isdigit() for ch in s)), output)
    return last.strip() if lists_alternatives(last, last_only=True) else found


def _segment(output: str, mode: str) -> str | None:
    span = final_answer_span(output)
    if span is not None:
        seg = span[2]
        if mode not in ("auto", "text", "math") and not _readable(seg, mode):
            later = short_response(output[span[1]:])  # "Answer: Kimchi\nTrue": a later bare answer
            if later is not None and _readable(later, mode):
                return later
        return seg
    seg = short_response(output)
    if seg is None and mode in ("bool", "option"):  # "False. The system has a pole outside ...": its lead
        first = _SENTENCE.split(output.strip(), maxsplit=1)[0]
        lead = re.split(r"[,;:]\s", first, maxsplit=1)[0]
        return lead if _readable(lead, mode) else None
    if mode in (*_NUMBER_MODES, "auto") and (seg is None or not numbers_in(seg)):
        found = _last_number_sentence(output)  # a worked solution without a marker: its last number
        return found if found is not None else (seg if mode == "auto" else None)
    return seg


@functools.lru_cache(maxsize=64)
def _number(seg: str) -> Fraction | None:
    value = number_in(seg)
    if value is None and looks_mathematical(seg) and not lists_alternatives(seg):
        key = math_key(seg)
        value = parse_number(key) if key else None
    return value


def _key_in_mode(seg: str, mode: str) -> str | None:
    if mode in _NUMBER_MODES:
        value = _number(seg)
        return number_key(value) if value is not None else normalise_text(seg) or None
    if mode == "bool":
        flag = parse_bool(seg)
        return str(flag) if flag is not None else normalise_text(seg) or None
    if mode in _LIST_MODES:
        items = parse_list(seg)
        if items is None:
            return normalise_text(seg) or None
        return "[" + ", ".join(number_key(x) if isinstance(x, Fraction) else x for x in items) + "]"
    if mode == "math":
        value = parse_number(seg, lenient=True)
        if value is not None:
            return number_key(value)
        return (math_key(seg) if looks_mathematical(seg) else None) or normalise_text(seg) or None
    if mode == "option":
        return parse_option(seg) or normalise_text(seg) or None
    if mode == "text":
        return normalise_text(seg) or None
    # auto: whichever the answer itself is
    if _BRACKETED_LABEL.match(seg):  # "(A) Yes" and "(A)" are one answer (BBH-style options)
        return parse_option(seg) or normalise_text(seg) or None
    if parse_bool(seg) is not None and len(normalise_text(seg).split()) == 1:
        return str(parse_bool(seg))
    value = parse_number(seg, lenient=True)
    if value is None and not looks_mathematical(seg) and len(seg.split()) <= 3:
        value = number_in(seg)  # "10 apples", "$5 each"
    if value is not None:
        return number_key(value)
    return _key_in_mode(seg, "math")


def answer_key(text: str, mode: str = "auto") -> str | None:
    """The canonical key of the final answer in ``text`` read in ``mode`` (for grouping equal answers, e.g.
    majority vote): equal answers give equal keys; None when the text states no answer.

    Take ``mode`` from :func:`declared_mode` (the task's metadata), not from the gold."""
    if mode not in MODES:
        raise ValueError(f"unknown answer mode {mode!r}; valid: {', '.join(MODES)}")
    seg = _segment(canonical_text(text), mode)
    return _key_in_mode(seg, mode) if seg is not None else None


def _lists_match(pred: list[Fraction | str], gold: list[Fraction | str], approximate: bool) -> bool:
    if len(pred) != len(gold):
        return False
    for p, g in zip(pred, gold, strict=True):
        if isinstance(p, Fraction) and isinstance(g, Fraction):
            if not numbers_match(p, g, approximate=approximate):
                return False
        elif (number_key(p) if isinstance(p, Fraction) else p) != (number_key(g) if isinstance(g, Fraction) else g):
            return False
    return True


def _compare(seg: str, gold: str, mode: str) -> bool | None:
    """Whether ``seg`` equals ``gold`` in ``mode``; None when ``seg`` cannot be read in that mode."""
    if mode in _NUMBER_MODES:
        pred, want = _number(seg), parse_number(gold)
        if pred is None or want is None:
            return None
        approximate = mode == "float" or is_scientific(gold)
        return any(numbers_match(p, g, approximate=approximate)
                   for p in readings(seg, pred) for g in readings(gold, want))
    if mode == "option":
        label, want_label = parse_option(seg), parse_option(gold)
        return None if label is None or want_label is None else label == want_label
    if mode == "bool":
        flag, want_flag = parse_bool(seg), parse_bool(gold)
        return None if flag is None or want_flag is None else flag == want_flag
    if mode in _LIST_MODES:
        items, want_items = parse_list(seg), parse_list(gold)
        if items is None or want_items is None:
            return None
        return _lists_match(items, want_items, approximate=mode == "float_list")
    if mode == "math":
        pred, want = parse_number(seg, lenient=True), parse_number(gold)
        if pred is not None and want is not None:
            return numbers_match(pred, want, approximate=is_scientific(gold))
        return math_equal(seg, gold)
    return None


def grade(output: str, gold: str, metadata: dict[str, Any] | None = None) -> ScoreResult:
    """Grade ``output`` against ``gold`` (mode: declared by ``metadata``, else inferred from the gold)."""
    gold = gold.strip().rstrip(".").strip() or gold  # a gold written as a sentence ("...\end{pmatrix}.")
    mode = gold_mode(gold, metadata)
    seg = _segment(canonical_text(output), mode)
    if seg is None:
        return unparseable("no final answer found")
    verdict = _compare(seg, gold, mode)
    if verdict is None:
        verdict = normalise_text(seg) == normalise_text(gold)
    key = _key_in_mode(seg, mode)
    return graded(verdict, key, detail=f"{mode}: gold {gold!r:.80}")


def extract_key(item: Item, output: str) -> str | None:
    """The answer key of ``output`` in the item's declared mode (never derived from the gold)."""
    return answer_key(output, declared_mode(item.metadata))


class ExactMatchScorer(Scorer):
    def score(self, item: Item, output: str) -> ScoreResult:
        return grade(output, str(item.gold), item.metadata)

    def extract(self, item: Item, output: str) -> str | None:
        return extract_key(item, output)


SCORERS.register("exact_match")(ExactMatchScorer())
