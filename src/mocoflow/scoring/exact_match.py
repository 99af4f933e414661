"""Exact-match scoring, numeric-aware.

Final-answer extraction: the last ``\\boxed{...}`` (balanced braces, nested braces kept), else the last
``answer is X`` / ``Answer: X`` / ``#### X``, else (numeric golds) the last number in the text, else
(other golds) a short whole response. Numbers compare as exact rationals (sign and decimals kept): ``1,000
== 1000 == 1000.0``, ``$5 == 5``, ``50% == 50``, ``\\frac{1}{2} == 1/2 == 0.5``, ``-3 != 3``, ``3.5 !=
35``. Other golds (BBH ``(A)``, ``True``, ``valid``) compare as normalised strings: whitespace collapsed,
lower case, simple LaTeX wrappers and one pair of surrounding parentheses removed, trailing ``.`` dropped.
"""

from __future__ import annotations

import re
from fractions import Fraction

from mocoflow.data.schema import Item
from mocoflow.scoring.base import SCORERS, Scorer, ScoreResult, graded, unparseable

_NUM = r"(?:(?<![\w.)])-)?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
_NUM_RE = re.compile(_NUM)
_MARKER = re.compile(r"(?:answer\s*(?:is|:)|####)\s*:?\s*(.+)", re.IGNORECASE)
_FRAC = re.compile(r"^(-?)\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}$")
_SLASH = re.compile(r"^(-?\d+)\s*/\s*(-?\d+)$")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_SHORT_WORDS = 6


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces (nested braces kept)."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end() : i - 1])
    return out


def _strip_latex(s: str) -> str:
    s = s.strip().strip("$").strip()
    s = _TEXT.sub(r"\1", s)
    for tok in ("\\left", "\\right", "\\!", "\\,", "\\;", "\\ ", "^\\circ", "^{\\circ}", "\\%", "\\$"):
        s = s.replace(tok, "")
    return s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").strip()


def parse_number(s: str) -> Fraction | None:
    """Exact value of a number string: ``1,000``, ``$5``, ``50%``, ``-0.5``, ``\\frac{1}{2}``, ``1/2``."""
    t = _strip_latex(s).replace(" ", "")
    t = t.rstrip(".").lstrip("$").rstrip("%")
    if t.startswith("-$"):
        t = "-" + t[2:]
    m = _FRAC.match(t) or _SLASH.match(t)
    if m:
        groups = m.groups()
        sign = -1 if len(groups) == 3 and groups[0] == "-" else 1
        num, den = int(groups[-2]), int(groups[-1])
        return sign * Fraction(num, den) if den else None
    if re.fullmatch(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+", t):
        return Fraction(t.replace(",", ""))
    return None


def _number_in(segment: str) -> Fraction | None:
    """A number inside a short answer segment: the whole segment, else after the last '=', else the first."""
    whole = parse_number(segment)
    if whole is not None:
        return whole
    tail = segment.rsplit("=", 1)[-1]
    whole = parse_number(tail)
    if whole is not None:
        return whole
    nums = _NUM_RE.findall(_strip_latex(tail))
    return parse_number(nums[0]) if nums else None


def final_answer(output: str) -> str | None:
    """The final-answer segment: last boxed, else last answer marker (to end of line), else None."""
    boxed = boxed_contents(output)
    if boxed:
        return boxed[-1].strip()
    marked = _MARKER.findall(output)
    if marked:
        seg = marked[-1].strip().strip("*").strip()
        return seg.rstrip(".").strip() or None
    return None


def normalise_text(s: str) -> str:
    t = " ".join(_strip_latex(s).split()).lower().strip("*").strip()
    t = t.rstrip(".").strip()
    if len(t) >= 2 and t[0] == "(" and t[-1] == ")" and "(" not in t[1:-1] and ")" not in t[1:-1]:
        t = t[1:-1].strip()
    return t


def number_key(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _gold_number(item: Item) -> Fraction | None:
    return parse_number(str(item.gold))


def extract_key(item: Item, output: str) -> str | None:
    """Canonical answer key: a reduced rational for numeric golds, else the normalised string."""
    seg = final_answer(output)
    if _gold_number(item) is not None:
        if seg is not None:
            value = _number_in(seg)
        else:
            nums = _NUM_RE.findall(_strip_latex(output))
            value = parse_number(nums[-1]) if nums else None
        if value is not None:
            return number_key(value)
        return (normalise_text(seg) or None) if seg is not None else None
    if seg is None:
        stripped = output.strip()
        lines = [ln for ln in stripped.splitlines() if ln.strip()]
        if stripped and len(stripped.split()) <= _SHORT_WORDS:
            seg = stripped
        elif lines and len(lines[-1].split()) <= _SHORT_WORDS:
            seg = lines[-1]
    if seg is None:
        return None
    value = parse_number(seg)
    return number_key(value) if value is not None else (normalise_text(seg) or None)


class ExactMatchScorer(Scorer):
    def score(self, item: Item, output: str) -> ScoreResult:
        key = extract_key(item, output)
        if key is None:
            return unparseable("no final answer found")
        gold_num = _gold_number(item)
        gold_key = number_key(gold_num) if gold_num is not None else normalise_text(str(item.gold))
        return graded(key == gold_key, key, detail=f"gold {gold_key!r}")

    def extract(self, item: Item, output: str) -> str | None:
        return extract_key(item, output)


SCORERS.register("exact_match")(ExactMatchScorer())
