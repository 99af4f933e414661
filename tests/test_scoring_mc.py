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
