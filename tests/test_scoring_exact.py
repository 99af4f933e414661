"""Exact-match scoring: final-answer extraction and numeric / string comparison, one test per rule."""

from __future__ import annotations

import pytest

from mocoflow.data.schema import Item
from mocoflow.scoring import extract_answer, score_item
from mocoflow.scoring.exact_match import boxed_contents, parse_number


def em(gold: str) -> Item:
    return Item(id="q", task="t", split="test", task_type="exact_match", question="?", gold=gold)


def test_boxed_keeps_nested_braces() -> None:
    assert boxed_contents(r"so \boxed{\frac{1}{2}} done") == [r"\frac{1}{2}"]


@pytest.mark.parametrize(
    ("gold", "output", "correct"),
    [
        ("12", r"First 7, then \boxed{12}. Check: 3 more.", True),  # boxed wins over later numbers
        ("12", r"\boxed{7} was wrong; \boxed{12}", True),  # the last boxed
        ("0.5", r"\boxed{\frac{1}{2}}", True),  # LaTeX fraction == decimal
        ("1/2", "Answer: 0.5", True),  # slash fraction == decimal
        ("42", "The answer is 42.", True),
        ("42", "Answer: 41\nWait, recount. Answer: 42", True),  # last marker wins
        ("18", "Janet sells 16 - 3 - 4 = 9 eggs... \n#### 18", True),  # GSM8K marker
        ("7", "She has 3 apples and buys 4 more, so 7 in total", True),  # fallback: last number
        ("-3", "Answer: -3", True),
        ("3", "Answer: -3", False),  # sign kept
        ("-3", "Answer: 3", False),
        ("35", "Answer: 3.5", False),  # decimals kept
        ("1000", "Answer: 1,000", True),  # thousands separator
        ("1000", "Answer: 1000.0", True),
        ("5", "Answer: $5", True),  # currency
        ("5", "Answer: 5.0", True),
        ("50", "Answer: 50%", True),  # percent
        ("2", "x = 5-3 = 2, so Answer: 2", True),
        ("10", "Answer: 10 apples", True),  # units after the number
        ("A", "Answer: (A)", True),  # BBH letter golds
        ("(A)", "Answer: A", True),
        ("(A)", "Answer: (A)", True),
        ("(A)", "Answer: (B)", False),
        ("True", "Answer: true.", True),
        ("valid", "The argument is valid.\nAnswer: invalid", False),
        ("valid", "Answer: valid", True),
        (r"4\sqrt{5}", r"\boxed{4\sqrt{5}}", True),  # non-numeric LaTeX compares as normalised text
        ("maybe", "maybe", True),  # a short whole response
    ],
)
def test_grading(gold: str, output: str, correct: bool) -> None:
    result = score_item(em(gold), output)
    assert result.status == "ok", result
    assert result.correct is correct, result


@pytest.mark.parametrize(
    ("gold", "output"),
    [
        ("12", "I could not work this out."),  # numeric gold, no number at all
        (
            "valid",
            "This is a long response that never states any final answer in a recognisable form at all.",
        ),
        ("12", ""),
    ],
)
def test_unparseable(gold: str, output: str) -> None:
    result = score_item(em(gold), output)
    assert result.status == "unparseable" and not result.correct and result.parsed is None


@pytest.mark.parametrize(
    ("a", "b"),
    [("Answer: 1,000", "Answer: 1000.0"), (r"\boxed{\frac{1}{2}}", "Answer: 0.5"), ("Answer: $5", "#### 5")],
)
def test_equal_answers_give_equal_keys(a: str, b: str) -> None:
    item = em("7")
    assert extract_answer(item, a) == extract_answer(item, b) is not None


def test_different_answers_give_different_keys() -> None:
    item = em("7")
    assert extract_answer(item, "Answer: -3") != extract_answer(item, "Answer: 3")
    assert extract_answer(item, "Answer: 3.5") != extract_answer(item, "Answer: 35")


@pytest.mark.parametrize(
    ("text", "value"), [("-0.5", -0.5), (r"-\frac{3}{4}", -0.75), ("1,234.5", 1234.5), ("12abc", None)]
)
def test_parse_number(text: str, value: float | None) -> None:
    got = parse_number(text)
    assert (got is None) if value is None else (got is not None and float(got) == value)
