"""Symbolic equivalence of math answers through Hugging Face's ``math-verify`` (sympy underneath).

Used for golds that are math but not a plain number: ``\\frac{\\sqrt{2}}{2}`` vs ``\\sqrt{2}/2``, ``x^2+2x+1``
vs ``(x+1)^2``, sets ``\\{1,2\\}`` (order-free), intervals ``[0,1)`` / ``(0,\\infty)``, tuples ``(2,1)``,
equations ``x=5`` vs ``5``. Plain numbers never reach it (:mod:`mocoflow.scoring.numeric` compares them
exactly), and neither do word answers: math-verify reads ``abc`` as the product ``a*b*c`` (so ``abc ==
cba``), which is why :func:`looks_mathematical` gates it.

What is done around it, because plain math-verify gets these wrong: every answer is wrapped in ``$...$``
before parsing (bare ``[1, 6]`` parses as ``6``, bare ``[1,6]`` as nothing, ``(1,2)`` as nothing);
scientific notation is converted by :func:`mocoflow.scoring.numeric.parse_number` first (math-verify reads
``3.54e-07`` as ``3.54`` or ``3.54*e - 7``). math-verify's own float rounding (6 decimals) applies only to
the symbolic comparisons made here. Its timeouts use ``signal.alarm``, which only works in the main thread;
elsewhere parsing runs without a timeout.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from fractions import Fraction
from typing import Any

from mocoflow.scoring.answer_text import strip_latex
from mocoflow.scoring.numeric import number_key

log = logging.getLogger("mocoflow.scoring.math")

MATH_TIMEOUT_S = 5
"""Seconds math-verify may spend parsing or comparing one answer (main thread only)."""

_FUNCTION_WORDS = frozenset({"sin", "cos", "tan", "sec", "csc", "cot", "log", "ln", "exp", "sqrt", "pi",
                             "infty", "oo", "arcsin", "arccos", "arctan", "frac", "dfrac", "cdot", "times",
                             "le", "ge", "leq", "geq", "cup", "cap", "in", "mid", "pm", "circ", "deg"})
_WORD = re.compile(r"[A-Za-z]{2,}")


def _timeout() -> int | None:
    return MATH_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def looks_mathematical(text: str) -> bool:
    """True for math expressions (LaTeX commands, operators, numbers, brackets with commas, numbers with
    ``\\text{}`` units); False for words (``valid``, ``Monday``), a lone letter (``A``, ``(A)``) and
    bracket-only strings (``) )``)."""
    raw = text.strip().strip("$")
    if re.search(r"\\(?!text|textbf|textit|mathrm|mbox)[A-Za-z{]", raw):
        return True
    if re.search(r"\\(?:text|textbf|textit|mathrm|mbox)\s*\{", raw) and re.search(r"\d", raw):
        return True  # a number with units: 5\text{ cm}
    plain = strip_latex(raw)
    if any(w.lower() not in _FUNCTION_WORDS for w in _WORD.findall(plain)):
        return False
    if not re.search(r"[\dA-Za-z]", plain) or re.fullmatch(r"\(?\s*[A-Za-z]\s*\)?", plain):
        return False
    return bool(re.search(r"[\d+\-*/^=<>]|[(\[{].*,", plain))


@functools.lru_cache(maxsize=8192)
def math_parse(text: str) -> tuple[Any, ...]:
    """math-verify's parse of one answer (wrapped in ``$...$``); ``()`` when it finds nothing."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    body = text.strip().strip("$").strip()
    if not body:
        return ()
    wrapped = body if "\\boxed" in body else f"${body}$"
    found = parse(wrapped, extraction_config=[LatexExtractionConfig()], parsing_timeout=_timeout())
    if not found:
        found = parse(body, extraction_config=[ExprExtractionConfig()], parsing_timeout=_timeout())
    return tuple(found)


def math_equal(pred: str, gold: str) -> bool | None:
    """Whether math-verify finds ``pred`` equivalent to ``gold``; None when either does not parse."""
    from math_verify import verify

    gold_parsed, pred_parsed = math_parse(gold), math_parse(pred)
    if not gold_parsed or not pred_parsed:
        return None
    return bool(verify(list(gold_parsed), list(pred_parsed), timeout_seconds=_timeout()))


def math_key(text: str) -> str | None:
    """A canonical text of a math answer for grouping equal answers (sympy's form), or None."""
    parsed = math_parse(text)
    if not parsed:
        return None
    expr = parsed[0]
    if getattr(expr, "is_Number", False) and getattr(expr, "is_finite", False):
        value = Fraction(int(expr.p), int(expr.q)) if getattr(expr, "is_Rational", False) else Fraction(str(expr))
        return number_key(value)
    return str(expr)
