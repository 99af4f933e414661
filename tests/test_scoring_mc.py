"""Multiple-choice parsing: one test per rule (each of these is a case MoCo's parser gets wrong)."""

from __future__ import annotations

import pytest

from mocoflow.data.schema import Item
from mocoflow.scoring import SCORERS, extract_answer, score_item
from mocoflow.scoring.multiple_choice import parse_choice

CHOICES = {"A": "Paris", "B": "London", "C": "Berlin", "D": "Madrid"}


def mc(gold: str = "C", choices: dict[str, str] | None = None) -> Item:
    return Item(
        id="q1",
        task="t",
        split="test",
        task_type="multiple_choice",
        question="Capital of Germany?",
        choices=choices or CHOICES,
        gold=gold,
    )


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Answer: B", "B"),  # explicit "Answer:" line
        ("The answer is (C).", "C"),  # parenthesised letter after "answer is"
        ("I first thought A, but the answer is C", "C"),  # the last explicit answer wins
        (
            "Answer: A\nOn reflection, the final answer is D.",
            "D",
        ),  # last explicit answer wins over an earlier one
        (
            "Paris is tempting, and London too, but the answer is C.",
            "C",
        ),  # option text before the answer loses
        ("B", "B"),  # bare letter
        ("B.", "B"),  # bare letter with a period
        ("(B)", "B"),  # bare parenthesised letter
        ("**Answer: D**", "D"),  # markdown bold
        ("the answer is (d)", "D"),  # parenthesised lower-case letter
        ("Option C is correct because Berlin is the capital.", "C"),
        ("The capital of Germany is Berlin.", "C"),  # fallback: exactly one option's text occurs
        ("It is definitely berlin", "C"),  # option text match is case-insensitive
    ],
)
def test_parses(output: str, expected: str) -> None:
    assert parse_choice(mc(), output) == expected


@pytest.mark.parametrize(
    "output",
    [
        "The answer depends on context, based on the data.",  # bare article "a" in prose is not option A
        "A good answer would need more data.",  # sentence-initial article "A"
        "It's either Paris or Berlin.",  # two options' texts occur: ambiguous, no fallback
        "",  # empty
        "Answer: F",  # F is not one of the item's choice keys
        "I am not sure.",
    ],
)
def test_unparseable(output: str) -> None:
    assert parse_choice(mc(), output) is None
    result = score_item(mc(), output)
    assert result.status == "unparseable" and not result.correct and result.score == 0.0


def test_valid_letters_are_the_items_choice_keys() -> None:
    two = mc(gold="B", choices={"A": "yes", "B": "no"})
    assert parse_choice(two, "Answer: C") is None
    assert parse_choice(two, "Answer: B") == "B"


@pytest.mark.parametrize(("output", "correct"), [("Answer: C", True), ("Answer: B", False)])
def test_score_item_grades_against_gold(output: str, correct: bool) -> None:
    result = score_item(mc("C"), output)
    assert result.status == "ok" and result.correct is correct and result.score == float(correct)
    assert result.parsed == output[-1]


def test_extract_answer_key_is_the_letter_for_equal_answers() -> None:
    item = mc()
    assert (
        extract_answer(item, "Answer: C")
        == extract_answer(item, "(C)")
        == extract_answer(item, "Berlin")
        == "C"
    )
    assert extract_answer(item, "no idea") is None


def test_registry_has_every_task_type() -> None:
    from mocoflow.data.schema import TASK_TYPES

    assert SCORERS.names() == sorted(TASK_TYPES)


def test_reward_model_is_skipped_not_faked() -> None:
    item = Item(id="r", task="t", split="test", task_type="reward_model", question="Write a post.")
    result = score_item(item, "A fine post.")
    assert result.status == "skipped" and not result.correct
    assert result.detail == "reward-model scoring needs judge weights; none configured"
    assert extract_answer(item, "A fine post.") is None


# --------------------------------------------------------------------------- issue 15


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("I think the correct one is C, based on the data.", "C"),
        ("The best option is (B).", "B"),
        ("The correct option is:\n\nB", "B"),
        ("b", "B"),  # a whole response that is one letter, either case
        ("c.", "C"),
        ("(c)", "C"),
        ("**Answer:** D", "D"),
        ("Answer - C", "C"),
        ("the answer is c.", "C"),  # lower case after a marker, nothing but punctuation after it
        ("Answer: Berlin", "C"),  # a marker followed by an option's text
        ("Berlin", "C"),  # the option's text alone
        ("Madrid.", "D"),
        ("c) Berlin", "C"),  # lower-case lead followed by that option's own text
        ("B is correct.", "B"),
        ("I would go with option D", "D"),
        ("The answer is (A). Actually, the answer is (D).", "D"),  # the last explicit answer wins
        ("Answer: A\nOn reflection, option D is correct.", "D"),
    ],
)
def test_parses_more_forms(output: str, expected: str) -> None:
    assert parse_choice(mc(), output) == expected


@pytest.mark.parametrize("output", [
    "the answer is a bit unclear",  # lower-case article after "answer is" followed by a word
    "Vitamin C is correct for scurvy.",  # a capital inside a name is not a letter statement
    "a",  # 'a' is a letter here, but not a valid key of a two-option item (see below)
])
def test_letters_in_prose_are_not_answers(output: str) -> None:
    two = mc(gold="B", choices={"B": "yes", "C": "no"})
    assert parse_choice(two, output) is None


def test_option_text_that_looks_like_a_letter() -> None:
    # BLEnD Th-en-48: option B's text is "a*"; the response "a*" is that text, not letter A in bold
    blend = mc(gold="B", choices={"A": "1", "B": "a*", "C": "a+", "D": "certificate of merit"})
    assert parse_choice(blend, "a*") == "B" and parse_choice(blend, "a") == "A"
    # an option whose text is itself a letter: a bare letter stays a letter
    odd = mc(gold="A", choices={"A": "B", "B": "C", "C": "D"})
    assert parse_choice(odd, "B") == "B"


def test_case_sensitive_option_texts() -> None:
    # ARC Mercury_7238945: genotypes differ only by case
    arc = mc(gold="C", choices={"A": "R", "B": "rr", "C": "Rr", "D": "RR"})
    assert parse_choice(arc, "Rr") == "C" and parse_choice(arc, "RR") == "D" and parse_choice(arc, "rr") == "B"


def test_option_text_inside_a_longer_option_does_not_count() -> None:
    item = mc(gold="A", choices={"A": "0.8 lb", "B": "8 lb", "C": "80 lb"})
    assert parse_choice(item, "The weight is 0.8 lb in total.") == "A"


def test_duplicate_option_texts_are_one_answer() -> None:
    # CulturalBench-Hard 671: options B and C are both "Madrid"
    item = Item(id="q", task="t", split="test", task_type="multiple_choice", question="?",
                choices={"A": "Andalusian", "B": "Madrid", "C": "Madrid", "D": "Pais Vasco"}, gold="C",
                metadata={"duplicate_options": [["B", "C"]]})
    for output in ("Madrid", "Answer: B", "Answer: C"):
        result = score_item(item, output)
        assert result.correct and result.parsed == "B", (output, result)
        assert "identical text" in result.detail
    assert not score_item(item, "Answer: A").correct
    assert extract_answer(item, "Answer: C") == extract_answer(item, "Madrid") == "B"
