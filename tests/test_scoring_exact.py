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


# --------------------------------------------------------------------------- issue 15: equivalence, markers


def em_typed(gold: str, answer_type: str) -> Item:
    return Item(id="q", task="t", split="test", task_type="exact_match", question="?", gold=gold,
                metadata={"answer_type": answer_type})


@pytest.mark.parametrize(
    ("gold", "output", "correct"),
    [
        # the last explicit answer wins, also when two markers share a line
        ("13", "The answer is 12. Wait, I made an error: the answer is 13.", True),
        ("12", "The answer is 12. Wait, I made an error: the answer is 13.", False),
        ("13", r"\boxed{12} is what I first wrote; the final answer is 13", True),
        ("13", "Answer:\n13", True),  # the answer on the line after a bare marker
        ("13", "The answer is not 12, it is 13.", True),  # a negated marker states no answer
        ("12", "Final Answer: The final answer is $12$. I hope it is correct.", True),  # Minerva's format
        ("0.75", r"Answer: $\frac{3}{4}$ or 0.75", True),  # a LaTeX fraction is one number
        # scientific notation (math-verify alone reads 3.54e-07 as 3.54)
        ("3.54e-07", "Answer: 0.000000354", True),
        ("3.54e-07", r"Answer: 3.54 \times 10^{-7}", True),
        ("3.54e-07", r"The answer is $3.54 \cdot 10^{-7}$.", True),
        ("3.54e-07", "Answer: 3.54E-7", True),
        ("0.000000354", "Answer: 3.54e-07", True),
        ("3.54e-07", "Answer: 3.54", False),
        ("3.54e-07", "Answer: 3.6e-07", False),  # 1.7 % off: outside the 1 % tolerance
        ("3.54e-07", "Answer: 3.53e-07", True),  # 0.3 % off: inside
        ("1e-07", "Answer: -1e-07", False),  # sign kept
        # thousands separators
        ("1000", "Answer: 1,000,000", False),
        ("1000000", "Answer: 1,000,000", True),
        ("1000", "Answer: 1,000", True),
        ("15", "Answer: 1,5", False),
        # fractions and boxes
        (r"\frac{3}{4}", r"\boxed{0.75}", True),
        ("0.75", r"\boxed{\dfrac{3}{4}}", True),
        (r"\frac{\sqrt{2}}{2}", r"\boxed{\sqrt{2}/2}", True),
        (r"2\sqrt{3}", r"\boxed{\sqrt{12}}", True),
        (r"\frac{1}{3}", "Answer: 0.33", False),  # exact golds are exact
        ("5", r"\box{5}", True),  # MoCo's prompt format
        # lists (TheoremQA), tuples, sets, intervals
        ("[1, 6]", "Answer: [1,6]", True),
        ("[1, 6]", "Answer: [6, 1]", False),
        (r"\{1,2\}", r"Answer: \{2, 1\}", True),  # sets are unordered
        ("(2, 1)", "Answer: (2,1)", True),
        ("(2, 1)", "Answer: (1, 2)", False),  # tuples are ordered
        ("[0,1)", r"The answer is $[0, 1)$.", True),
        ("[0,1)", "Answer: (0, 1]", False),
        (r"(0,\infty)", r"Answer: (0, \infty)", True),
        ("x^2 + 12x + 35", "Answer: (x+5)(x+7)", True),
        ("x^2 + 12x + 35", "Answer: (x+5)(x+6)", False),
        ("5", "Answer: x = 5", True),
        # booleans
        ("True", "Answer: yes", True),
        ("False", "Answer: True", False),
        ("True", "The statement is true.", True),
        ("True", "It is not true.", False),
        ("yes", "Answer: maybe", False),  # not a boolean: graded as text, not unparseable
        # words are never compared as products of symbols (math-verify reads "abc" as a*b*c)
        ("abc", "Answer: cba", False),
        ("Monday", r"Answer: \text{Mondya}", False),
        ("valid", "Answer: invalid", False),
    ],
)
def test_equivalence(gold: str, output: str, correct: bool) -> None:
    result = score_item(em(gold), output)
    assert result.status == "ok", result
    assert result.correct is correct, result


@pytest.mark.parametrize(
    ("gold", "answer_type", "output", "correct"),
    [
        ("8.9", "float", "Answer: 8.95", True),  # declared float: 1 % tolerance
        ("8.9", "float", "Answer: 9.1", False),
        ("0.8356488482647211", "float", "Answer: 0.836", True),
        ("0.0", "float", "Answer: 0.001", False),  # an exact zero needs an exact zero
        ("108610", "integer", "Answer: 108611", False),
        ("[4, 6, 7]", "list of integer", "Answer: [4,6,7]", True),
        ("[4, 6, 7]", "list of integer", "The answer is (4, 6, 7).", True),
        ("[4, 6, 7]", "list of integer", "Answer: 4, 6, 7", True),
        ("[4, 6, 7]", "list of integer", "Answer: [4, 7, 6]", False),
        ("[0.5, 1.25]", "list of float", "Answer: [0.501, 1.25]", True),
        ("False", "bool", "Answer: no", True),
    ],
)
def test_declared_answer_types(gold: str, answer_type: str, output: str, correct: bool) -> None:
    result = score_item(em_typed(gold, answer_type), output)
    assert result.status == "ok" and result.correct is correct, result


def test_plain_decimal_gold_is_exact() -> None:
    assert not score_item(em("8.9"), "Answer: 8.95").correct


@pytest.mark.parametrize("text", ["3.54e-07", "3.54E-7", r"3.54 \times 10^{-7}", r"3.54\cdot10^{-7}",
                                  "3.54×10^-7", "3.54*10**-7", "0.000000354"])
def test_parse_scientific_notation(text: str) -> None:
    from fractions import Fraction

    assert parse_number(text) == Fraction(354, 10**9)


def test_answer_key_mode_never_comes_from_the_gold() -> None:
    from mocoflow.scoring.exact_match import answer_key, declared_mode

    assert declared_mode({}) == "auto" and declared_mode({"answer_type": "list of integer"}) == "list"
    numeric, text = em("7"), em("valid")
    for output in ("Answer: 12", "Answer: valid", "She has 3 apples and buys 4 more, so 7 in total"):
        assert extract_answer(numeric, output) == extract_answer(text, output) == answer_key(output)
    assert answer_key("Answer: 1,000") == answer_key(r"\boxed{1000.0}") == "1000"
    assert answer_key(r"\boxed{\frac{1}{2}}") == answer_key("Answer: 0.5")
    assert answer_key("Answer: yes") == answer_key("Answer: True") == "True"
    assert answer_key("Answer: [1,6]", "list") == answer_key("Answer: (1, 6)", "list") == "[1, 6]"
    assert answer_key(r"Answer: \{2,1\}") == answer_key(r"Answer: \{1, 2\}")
    assert answer_key("Answer: 3.54e-07") == answer_key("Answer: 0.000000354")
    assert answer_key("no answer here at all, just words and more words") is None
    with pytest.raises(ValueError, match="unknown answer mode"):
        answer_key("Answer: 1", "fuzzy")


def test_number_keys_are_canonical() -> None:
    from fractions import Fraction

    from mocoflow.scoring.numeric import number_key

    keys = {v: number_key(v) for v in (Fraction(3, 4), Fraction(-1, 2), Fraction(177, 500000000), Fraction(1, 3))}
    assert keys == {Fraction(3, 4): "0.75", Fraction(-1, 2): "-0.5", Fraction(177, 500000000): "0.000000354",
                    Fraction(1, 3): "1/3"}
    assert all(parse_number(k) == v for v, k in keys.items())
