"""Numbers in answers: exact values, scientific notation, and the tolerance convention.

Values are exact rationals, so sign and decimals are kept (``-3 != 3``, ``3.5 != 35``) and ``0.1 + 0.2``
rounding never decides a grade. Accepted forms: ``1,000`` (thousands separators in groups of three only, so
``1,000,000 != 1000`` and ``1,5`` is not a number), ``$5``, ``50%`` (the number as written: ``50``),
``\\frac{1}{2}``, ``1/2``, ``-0.5``, ``.5``, ``3.54e-07``, ``3.54 \\times 10^{-7}``, ``3.54 \\cdot 10^{-7}``,
``3.54×10^-7``, ``3.54*10**-7``.

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
from fractions import Fraction

from mocoflow.scoring.answer_text import strip_latex

APPROX_REL_TOL = Fraction(1, 100)
"""Relative tolerance for approximate golds (declared floats, scientific notation); MoCo uses 1 %."""

_MANTISSA = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)"
_EXP_E = r"[eE][+-]?\d+"
_EXP_TIMES = (r"\s*(?:\\times|\\cdot|×|x|\*)\s*10\s*(?:\^|\*\*)\s*"
              r"(?:\{\s*([+-]?\d+)\s*\}|\(\s*([+-]?\d+)\s*\)|([+-]?\d+))")
_FRACTION_TOKEN = r"\\[dt]?frac\{\s*-?\d+\s*\}\{\s*-?\d+\s*\}|(?<![\d./])\d+\s*/\s*\d+(?![\d./])"
_NUMBER = re.compile(
    rf"(?:(?<![\w.)\]}}])-)?(?:{_FRACTION_TOKEN}|{_MANTISSA}(?:{_EXP_E}|{_EXP_TIMES})?(?![\d]))"
)
_WHOLE = re.compile(rf"^(-?)({_MANTISSA})(?:({_EXP_E})|{_EXP_TIMES})?$")
_FRAC = re.compile(r"^(-?)\\frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}$")
_SLASH = re.compile(r"^(-?\d+)\s*/\s*(-?\d+)$")
_SCI_GOLD = re.compile(rf"{_EXP_E}|{_EXP_TIMES}")


def _mantissa(text: str) -> Fraction:
    return Fraction(text.replace(",", "").rstrip(".") or "0")


def parse_number(s: str) -> Fraction | None:
    """Exact value of a whole string that is one number (see the module doc), else None."""
    t = strip_latex(s).replace("\\ ", "").strip()
    t = t.rstrip(".").strip().lstrip("$").rstrip("%").strip()
    if t.startswith("-$"):
        t = "-" + t[2:]
    if t.startswith("+"):
        t = t[1:]
    m = _FRAC.match(t.replace(" ", "")) or _SLASH.match(t)
    if m:
        groups = m.groups()
        sign = -1 if len(groups) == 3 and groups[0] == "-" else 1
        num, den = int(groups[-2]), int(groups[-1])
        return sign * Fraction(num, den) if den else None
    m = _WHOLE.match(t)
    if not m:
        return None
    sign, mantissa, e_exp, *times = m.groups()
    value = _mantissa(mantissa)
    exponent = int(e_exp[1:]) if e_exp else next((int(g) for g in times if g is not None), 0)
    value *= Fraction(10) ** exponent
    return -value if sign else value


def numbers_in(text: str) -> list[Fraction]:
    """Every number written in ``text`` (LaTeX wrappers removed), in order; ``\\frac{3}{4}`` and ``3/4`` are
    one number each."""
    clean = strip_latex(text)
    out = []
    for m in _NUMBER.finditer(clean):
        value = parse_number(m.group(0))
        if value is not None:
            out.append(value)
    return out


def number_in(segment: str) -> Fraction | None:
    """The number an answer segment states: the whole segment, else after its last ``=``, else its first."""
    for candidate in (segment, segment.rsplit("=", 1)[-1]):
        value = parse_number(candidate)
        if value is not None:
            return value
    found = numbers_in(segment.rsplit("=", 1)[-1])
    return found[0] if found else None


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
