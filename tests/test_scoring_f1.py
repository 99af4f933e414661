"""f1_match: SQuAD-style token F1 over aliases; the correctness threshold; alias parsing."""

from __future__ import annotations

import json

import pytest

from mocoflow.data.schema import Item
from mocoflow.scoring import extract_answer, score_item
from mocoflow.scoring.f1_match import F1_CORRECT_THRESHOLD, aliases, token_f1


def f1(gold: object) -> Item:
    return Item(id="q", task="t", split="test", task_type="f1_match", question="?", gold=gold)


def test_threshold_is_documented_value() -> None:
    assert F1_CORRECT_THRESHOLD == 0.8


@pytest.mark.parametrize(
    ("pred", "ref", "value"),
    [
        ("The Eiffel Tower", "eiffel tower", 1.0),  # case, article
        ("Eiffel Tower!", "the eiffel tower.", 1.0),  # punctuation
        ("Eiffel", "Eiffel Tower", 2 * 1.0 * 0.5 / 1.5),  # partial overlap
        ("Louvre", "Eiffel Tower", 0.0),
    ],
)
def test_token_f1(pred: str, ref: str, value: float) -> None:
    assert token_f1(pred, ref) == pytest.approx(value)


@pytest.mark.parametrize(
    ("gold", "output", "correct"),
    [
        (["Eiffel Tower"], "Answer: the Eiffel Tower.", True),  # exact after normalisation
        (["Barack Obama", "Obama"], "Answer: Obama", True),  # max over aliases
        (["Barack Hussein Obama II"], "Answer: Barack Obama", False),  # F1 0.67 < 0.8
        (["the United States of America"], "Answer: United States of America today", True),  # F1 0.89 >= 0.8
        (["Paris"], "Answer: London", False),
    ],
)
def test_correctness(gold: list[str], output: str, correct: bool) -> None:
    result = score_item(f1(gold), output)
    assert result.status == "ok" and result.correct is correct
    assert 0.0 <= result.score <= 1.0


def test_score_is_max_f1_over_aliases() -> None:
    result = score_item(f1(["New York City", "New York"]), "Answer: New York")
    assert result.score == 1.0


def test_json_encoded_aliases_are_not_split_on_commas() -> None:
    gold = json.dumps(["Washington, D.C.", "DC"])
    assert aliases(gold) == ["Washington, D.C.", "DC"]
    result = score_item(f1(gold), "Answer: Washington, D.C.")
    assert result.correct and result.score == 1.0
    assert not score_item(f1(gold), "Answer: Washington state").correct


def test_plain_string_gold_with_comma_is_one_alias() -> None:
    assert aliases("Paris, France") == ["Paris, France"]


@pytest.mark.parametrize("output", ["", "   ", "Answer: ...", "Answer: the"])
def test_empty_output_is_unparseable(output: str) -> None:
    result = score_item(f1(["Paris"]), output)
    assert result.status == "unparseable" and not result.correct


def test_extract_key_normalises() -> None:
    item = f1(["x"])
    assert (
        extract_answer(item, "Answer: The Eiffel Tower.")
        == extract_answer(item, "eiffel tower")
        == "eiffel tower"
    )


# --------------------------------------------------------------------------- issue 15


def _loaded(gold_field: object) -> Item:
    """An f1_match item as the MoCo loader builds it from a row's gold field."""
    from mocoflow.data.moco import moco_to_items

    data = {"name": "popqa", "task_type": "f1_match", "test": [{"id": 1, "input": "?", "answers": gold_field}]}
    return moco_to_items(data, label="popqa.json")["test"][0]


FOOTBALL = ["association football", "football", "soccer"]


@pytest.mark.parametrize("stored", [json.dumps(FOOTBALL), str(FOOTBALL), FOOTBALL])
def test_each_alias_alone_scores_one(stored: object) -> None:
    item = _loaded(stored)  # a list literal inside one string (JSON or Python syntax), or a list
    assert item.gold == FOOTBALL
    for alias in FOOTBALL:
        for output in (alias, f"Answer: {alias}", f"The answer is {alias}.", f"\\box{{{alias}}}"):
            result = score_item(item, output)
            assert result.correct and result.score == 1.0, (output, result)


def test_scorer_parses_list_literal_gold_too() -> None:
    item = f1(str(FOOTBALL))  # an item built without the loader
    assert score_item(item, "soccer").score == 1.0
    assert aliases("[citation needed]") == ["[citation needed]"]  # not a list literal: one alias


def test_alias_with_a_newline() -> None:
    stored = json.dumps(["New\nYork", "NYC"]).replace("\\n", "\n")  # a raw newline inside the literal
    item = _loaded(stored)
    assert item.gold == ["New\nYork", "NYC"]
    for output in ("New\nYork", "Answer: New\nYork", "New York", "NYC"):
        assert score_item(item, output).score == 1.0, output


def test_sentence_after_the_answer_is_cut() -> None:
    result = score_item(f1(["Paris"]), "Answer: Paris. It is the capital of France.")
    assert result.correct and result.score == 1.0
