"""Numbers in answers: exact values, scientific notation, locales, percentages, hedges, and the tolerance.

Values are exact rationals, so sign and decimals are kept (``-3 != 3``, ``3.5 != 35``) and ``0.1 + 0.2``
rounding never decides a grade. Accepted forms: ``1,000`` (thousands separators in groups of three only, so
``1,000,000 != 1000``), ``$5``, ``50%``, ``\\frac{1}{2}``, ``1/2``, ``-0.5``, ``.5``, ``3.54e-07``,
``3.54 \\times 10^{-7}``, ``3.54 \\cdot 10^{-7}``, ``3.54×10^-7``, ``3.54*10**-7``, mixed numbers
``2\\frac{1}{4}`` / ``2 1/4`` / ``2 and 1/4`` (MATH's "express as a mixed number" golds), and in a response
"negative 3" and a whole answer in number words ("twelve", "one hundred and five").

**Locales** (a response's number, ``lenient=True``; golds are read the English way only): ``1 000 000`` (plain,
no-break or narrow spaces), ``1.000.000`` and ``1.234,56`` (German), ``1'000`` (Swiss), ``1,00,000``
(Indian) and a decimal comma ``2,5`` / ``3,30``. A single dot group ``4.656`` is the decimal 4.656 and a
comma before exactly three digits (``2,500``) a thousands separator: the English reading wins where the
two conflict. Inside running text only the unambiguous forms are read (no plain-space grouping, no decimal
comma), so "12, 13" stays two numbers.

**Percentages.** A number written with ``%`` / ``\\%`` / "percent" has two readings: the number as written
(a percentage restated with its sign: TheoremQA's gold ``10.92`` for an expected return of "10.92%") and
its fraction (``23%`` for the gold ``0.23``, MoCo's own reading); :func:`readings` gives both and a
percent answer matches a plain gold under either. A plain number is read as written (``0.5 != 50``).

**Hedges.** A segment that offers several different numbers as alternatives -- joined by "or", "and",
"to", "between ... and", or (in its last part, after any ``=``) by commas, semicolons, slashes or a range
dash: "12 or 13", "x = 12 or x = 13", "10, 11, 12", "12-14", "12–14" (a hyphen with spaces around it,
"5 - 3", is a subtraction) -- states no number (:func:`number_in` returns
None), so it is never credited whichever alternative is gold. A rejected alternative ("12, not 13") and
one value in two units ("12 km/h (7.5 mph)") are not hedges.

**Tolerance.** Exact by default: integers, fractions and decimals as written in GSM8K/MATH-style golds
denote exact values, and "close" is not correct there. A gold is *approximate* when the source declares
it a float (TheoremQA's ``answer_type: float``) or writes it in scientific notation (a measured or
computed physical quantity); then a response within :data:`APPROX_REL_TOL` (1 %) of it is correct.
Why 1 %: TheoremQA golds are rounded to varying, unstated precision (``0.8356488482647211`` for "round to
the thousandth", ``1750.0`` for a computed speed), so exact comparison would fail right answers written at
another precision; 1 % is what MoCo's own ``calculate_exact_match`` uses (TheoremQA's original script
allows 4 %), which keeps our numbers comparable with MoCo's and still separates 3.54e-07 from 3.6e-07. An
exact zero gold needs an exact zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from fractions import Fraction
from itertools import pairwise

from mocoflow.scoring.answer_text import strip_latex

_TAIL_CHARS = 400
"""How far back from the end the last number of a long text is looked for first (the whole text after)."""

APPROX_REL_TOL = Fraction(1, 100)
"""Relative tolerance for approximate golds (declared floats, scientific notation); MoCo uses 1 %."""

_NARROW = "\u00a0\u2009\u202f"
_MANTISSA = (r"(?:\d{1,2}(?:,\d{2})+,\d{3}(?:\.\d+)?"  # Indian 1,00,000
             r"|\d{1,3}(?:\.\d{3}){2,}(?:,\d+)?|\d{1,3}\.\d{3},\d+"  # German 1.000.000, 1.234,56
             rf"|\d{{1,3}}(?:['{_NARROW}]\d{{3}})+(?:[.,]\d+)?"  # Swiss 1'000, French 1 000 (no-break spaces)
             r"|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)")
_EXP_E = r"[eE][+-]?\d+"
_EXP_TIMES = (r"\s*(?:\\times|\\cdot|×|x|\*)\s*10\s*(?:\^|\*\*)\s*"
              r"(?:\{\s*([+-]?\d+)\s*\}|\(\s*([+-]?\d+)\s*\)|([+-]?\d+))")
_MIXED_TOKEN = r"\d+\s*\\[dt]?frac\{\s*\d+\s*\}\{\s*\d+\s*\}|(?<![\d./])\d+\s+and\s+\d+\s*/\s*\d+(?![\d./])"
_FRACTION_TOKEN = (_MIXED_TOKEN + r"|\\[dt]?frac\{\s*-?\d+\s*\}\{\s*-?\d+\s*\}"
                   r"|(?<![\d./])\d+\s*/\s*\d+(?![\d./])")
_NUMBER = re.compile(
    rf"(?:(?<![\w.)\]}}])[-\u2013])?(?:{_FRACTION_TOKEN}|{_MANTISSA}(?:{_EXP_E}|{_EXP_TIMES})?(?![\d]))"
)
_EN_MANTISSA = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)"
_WHOLE = re.compile(rf"^(-?)({_EN_MANTISSA})(?:({_EXP_E})|{_EXP_TIMES})?$")
_MIXED = re.compile(r"^(-?)(\d+)(?:\s*\\frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}|\s+(?:and\s+)?(\d+)\s*/\s*(\d+))$")
_FRAC = re.compile(r"^(-?)\\frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}$")
_SLASH = re.compile(r"^(-?\d+)\s*/\s*(-?\d+)$")
_PLAIN = re.compile(r"-?(\d{1,15})(?:\.(\d{1,15}))?")
_SCI_GOLD = re.compile(rf"{_EXP_E}|{_EXP_TIMES}")
_CURRENCY = "$€£¥₹"
_PERCENT = re.compile(r"(?:\\?%|\bper\s?cent\b)\s*$", re.IGNORECASE)
_PERCENT_AFTER = re.compile(r"\s*(?:\\?%|per\s?cent\b)", re.IGNORECASE)
# what separates alternatives: words anywhere in a segment; symbols only in its last part (after any "=")
_ALT_WORDS = re.compile(r"^(?:or|and|and/or|to|through|or\s+(?:maybe|possibly|perhaps))$", re.IGNORECASE)
_ALT_SYMBOLS = re.compile(r"^(?:,|;|/|-|–|—|,\s*or|,\s*and)$", re.IGNORECASE)
_BETWEEN_NOISE = re.compile(rf"[{_CURRENCY}%()\[\]{{}}]|\\%|\b[A-Za-z]\w*\s*=|\b(?:either|between)\b", re.IGNORECASE)


def _grouping(t: str, lenient: bool) -> str:
    """``t`` (one number's text) with thousands separators removed and a decimal comma as a point."""
    sign, body = ("-", t[1:].lstrip()) if t.startswith("-") else ("", t)
    if not lenient:
        return sign + body
    if re.fullmatch(rf"\d{{1,3}}(?:[ '{_NARROW}]\d{{3}})+(?:[.,]\d+)?", body):  # 1 000 000, 1'000, 1 234,56
        body = re.sub(rf"[ '{_NARROW}]", "", body).replace(",", ".")
    elif re.fullmatch(r"\d{1,3}(?:\.\d{3}){2,}(?:,\d+)?|\d{1,3}\.\d{3},\d+", body):  # 1.000.000, 1.234,56
        body = body.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"\d{1,2}(?:,\d{2})+,\d{3}(?:\.\d+)?", body):  # 1,00,000
        body = body.replace(",", "")
    elif re.fullmatch(r"\d+,(?:\d{1,2}|\d{4,})", body):  # decimal comma 2,5 / 3,30 (never 2,500)
        body = body.replace(",", ".")
    return sign + body


def _bare(s: str) -> str:
    """One number's text without LaTeX, currency, a percent sign, a leading plus or a trailing period."""
    t = strip_latex(s).replace("\\ ", "").strip().rstrip(".").strip()
    if t[:1] in "\u2013\u2014":  # an en or em dash before a number is a minus sign ("–5")
        t = "-" + t[1:]
    t = re.sub(r"^(?:negative|minus)\s+(?=[\d.$])", "-", t, flags=re.IGNORECASE)
    t = _PERCENT.sub("", t).strip().strip(_CURRENCY).strip()
    if t[:1] == "-" and t[1:].lstrip()[:1] in tuple(_CURRENCY):
        t = "-" + t[1:].lstrip()[1:].lstrip()
    return t[1:] if t.startswith("+") else t


def parse_number(s: str, *, lenient: bool = False) -> Fraction | None:
    """Exact value of a whole string that is one number (see the module doc), else None; ``lenient`` reads
    the locale forms and number words a response may use."""
    bare = _bare(s)
    value = _value(bare, lenient)
    return _words_value(bare) if value is None and lenient else value


_WORD_UNITS = {w: k for k, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_WORD_TENS = {w: 10 * k for k, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
_WORD_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}


def _words_value(text: str) -> Fraction | None:
    """A whole answer written in English number words ("twelve", "one hundred and five", "negative three");
    None when any word is not a number word."""
    words = re.findall(r"[a-z]+", text.lower())
    if not words or re.sub(r"[a-z\s,-]", "", text.lower()):
        return None
    sign = -1 if words[0] in ("negative", "minus") else 1
    total = current = 0
    seen = False
    for word in words[1:] if sign < 0 else words:
        if word in _WORD_UNITS or word in _WORD_TENS:
            current += _WORD_UNITS.get(word, _WORD_TENS.get(word, 0))
        elif word == "hundred" and seen:
            current *= 100
        elif word in _WORD_SCALES and seen:
            total, current = total + current * _WORD_SCALES[word], 0
        elif word != "and" or not seen:
            return None
        seen = True
    return Fraction(sign * (total + current)) if seen else None


def _value(t: str, lenient: bool) -> Fraction | None:
    """Exact value of ``t``, a number's bare text (no LaTeX wrappers, currency or percent sign)."""
    m = _PLAIN.fullmatch(t)
    if m:  # the common case, fast: Fraction(str) parses slowly
        whole, frac = m.group(1), m.group(2) or ""
        value = Fraction(int(whole + frac), 10 ** len(frac)) if frac else Fraction(int(whole))
        return -value if t[0] == "-" else value
    m = _MIXED.match(t)
    if m:  # a mixed number: 2\frac{1}{4}, 2 1/4, 2 and 1/4 (a proper fraction after a whole number)
        sign, whole, *parts = m.groups()
        num, den = (int(x) for x in (parts[:2] if parts[0] is not None else parts[2:]))
        if not 0 < num < den:
            return None
        value = int(whole) + Fraction(num, den)
        return -value if sign else value
    m = _FRAC.match(t.replace(" ", "")) or _SLASH.match(t)
    if m:
        groups = m.groups()
        sign = -1 if len(groups) == 3 and groups[0] == "-" else 1
        num, den = int(groups[-2]), int(groups[-1])
        return sign * Fraction(num, den) if den else None
    m = _WHOLE.match(_grouping(t, lenient))
    if not m:
        return None
    sign, mantissa, e_exp, *times = m.groups()
    value = Fraction(mantissa.replace(",", "").rstrip(".") or "0")
    exponent = int(e_exp[1:]) if e_exp else next((int(g) for g in times if g is not None), 0)
    value *= Fraction(10) ** exponent
    return -value if sign else value


def _iter_tokens(text: str) -> Iterator[tuple[int, int, Fraction]]:
    """(start, end, value) of every number written in ``text`` (already LaTeX-stripped), in order."""
    for m in _NUMBER.finditer(text):
        token = m.group(0)
        value = _value("-" + token[1:] if token[:1] == "\u2013" else token, True)
        if value is not None:
            yield m.start(), m.end(), value


def _number_tokens(text: str) -> list[tuple[int, int, Fraction]]:
    return list(_iter_tokens(text))


def numbers_in(text: str) -> list[Fraction]:
    """Every number written in ``text`` (LaTeX wrappers removed), in order; ``\\frac{3}{4}`` and ``3/4`` are
    one number each."""
    return [value for _, _, value in _number_tokens(strip_latex(text))]


def _tail_tokens(clean: str, at_least: int) -> list[tuple[int, int, Fraction]]:
    """The number tokens of ``clean``'s end: from the last line or sentence break at least
    :data:`_TAIL_CHARS` before the end, when that holds ``at_least`` numbers; else of the whole text (a long
    response is not tokenised in full to find its last numbers)."""
    limit = len(clean) - _TAIL_CHARS
    cut = max(clean.rfind("\n", 0, limit), clean.rfind(". ", 0, limit) + 1) if limit > 0 else -1
    if cut > 0:
        tokens = [(a + cut, b + cut, v) for a, b, v in _iter_tokens(clean[cut:])]
        if len(tokens) >= at_least:
            return tokens
    return _number_tokens(clean)


def lists_alternatives(segment: str, *, last_only: bool = False) -> bool:
    """True when ``segment`` offers several different numbers as alternatives (see the module doc);
    ``last_only`` looks only at its last two numbers (the last number of a worked solution: "adding 5 and 3
    gives 8" is not a hedge, "it might be 11 or 12" is)."""
    clean = strip_latex(segment)
    tail_at = clean.rfind("=") + 1
    pairs: Iterable[tuple[tuple[int, int, Fraction], tuple[int, int, Fraction]]]
    if last_only:
        tokens = _tail_tokens(clean, 2)
        pairs = list(zip(tokens, tokens[1:], strict=False))[-1:]
    else:
        pairs = pairwise(_iter_tokens(clean))  # lazily: a hedge early in a long segment ends the scan
    for (_, end, value), (start, _, other) in pairs:
        if value == other:
            continue
        raw = clean[end:start]
        between = " ".join(_BETWEEN_NOISE.sub(" ", raw).split())
        if raw.strip() == "-" and raw != "-":
            continue  # "5 - 3" is a subtraction; "12-14" and "12–14" are ranges
        if _ALT_WORDS.match(between) or (end >= tail_at and _ALT_SYMBOLS.match(between)):
            return True
    return False


def number_in(segment: str) -> Fraction | None:
    """The number an answer segment states: the whole segment (locale forms read), else after its last ``=``,
    else its first; None when it states none or offers alternatives (:func:`lists_alternatives`)."""
    value = parse_number(segment, lenient=True)
    if value is not None:
        return value
    if lists_alternatives(segment):
        return None
    value = parse_number(segment.rsplit("=", 1)[-1], lenient=True)
    if value is not None:
        return value
    first = next(_iter_tokens(strip_latex(segment.rsplit("=", 1)[-1])), None)
    return first[2] if first else None


def last_number(text: str) -> str | None:
    """The last number written in ``text`` as a short answer: its canonical key, with ``%`` when it is
    written as a percentage (so :func:`readings` still sees it)."""
    clean = strip_latex(text.replace("\\%", "%"))
    tokens = _tail_tokens(clean, 1)
    if not tokens:
        return None
    _, end, value = tokens[-1]
    return number_key(value) + ("%" if _PERCENT_AFTER.match(clean, end) else "")


def readings(segment: str, value: Fraction) -> tuple[Fraction, ...]:
    """The values ``segment`` (stating ``value``) may mean: ``value``, and ``value / 100`` when that number is
    written as a percentage (see the module doc)."""
    clean = strip_latex(segment.replace("\\%", "%"))
    tokens = _number_tokens(clean) or [(0, len(clean), value)]
    for _, end, token in tokens:
        if token == value and _PERCENT_AFTER.match(clean, end):
            return value, value / 100
    return (value,)


def is_scientific(s: str) -> bool:
    """True when ``s`` writes a number in scientific notation (``3.54e-07``, ``3.54 \\times 10^{-7}``)."""
    return parse_number(s) is not None and _SCI_GOLD.search(strip_latex(s)) is not None


def numbers_match(pred: Fraction, gold: Fraction, *, approximate: bool) -> bool:
    """Exact equality, or within :data:`APPROX_REL_TOL` of a non-zero gold when ``approximate``."""
    if pred == gold:
        return True
    return approximate and gold != 0 and abs(pred - gold) <= APPROX_REL_TOL * abs(gold)


def number_key(value: Fraction) -> str:
    """Canonical text of an exact value: ``"12"``, ``"-0.5"``, ``"0.000000354"`` (terminating decimals written
    out), ``"1/3"`` (others as a reduced fraction)."""
    if value.denominator == 1:
        return str(value.numerator)
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = abs(value.numerator) * (10**places // value.denominator)
    digits = str(scaled).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")
    return f"-{text}" if value < 0 else text
