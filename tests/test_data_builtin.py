"""Builtin generators: determinism, disjoint splits, correct golds, runnable coding tests."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest

from mocoflow.data.builtin import CAPITALS, ELEMENTS, GENERATORS, generate_splits
from mocoflow.data.moco import DataError
from mocoflow.data.schema import Item
from mocoflow.data.sources import load_task
from mocoflow.registry import UnknownNameError

NAMES = ["arithmetic", "word_sort", "letter_count", "fact_mc", "sequence", "coding_simple"]
SIZES = {"n_train": 200, "n_dev": 40, "n_test": 100}


def _load(name: str, seed: int = 0, **params: Any) -> dict[str, list[Item]]:
    spec = {"source": "builtin", "generator": name, "seed": seed, **SIZES, **params}
    return load_task(name, spec, cache_dir=Path("/nonexistent"))


def test_registered() -> None:
    assert set(NAMES) <= set(GENERATORS.names())
    rows = GENERATORS.get("arithmetic")(random.Random(1), 3, n_terms=2)
    assert len(rows) == 3 and all({"question", "gold"} <= set(r) for r in rows)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_disjoint(name: str) -> None:
    a, b, c = _load(name, seed=0), _load(name, seed=0), _load(name, seed=1)
    assert a == b
    assert [i.question for i in a["test"]] != [i.question for i in c["test"]]
    assert {s: len(v) for s, v in a.items()} == {"train": 200, "dev": 40, "test": 100}
    questions = {s: {i.question for i in v} for s, v in a.items()}
    assert sum(len(q) for q in questions.values()) == 340  # no duplicates within or across splits
    ids = [i.id for v in a.values() for i in v]
    assert len(set(ids)) == len(ids)
    assert {i.task for v in a.values() for i in v} == {name}
    assert {i.task_type for v in a.values() for i in v} == {GENERATORS.get(name).task_type}


def test_test_split_stable_when_train_grows() -> None:
    small = generate_splits("arithmetic", seed=5, n_train=0, n_dev=10, n_test=50)
    large = generate_splits("arithmetic", seed=5, n_train=300, n_dev=10, n_test=50)
    assert small["test"] == large["test"] and small["dev"] == large["dev"]


def test_global_random_untouched() -> None:
    random.seed(123)
    expected = random.random()
    random.seed(123)
    _load("fact_mc")
    assert random.random() == expected


def test_arithmetic_golds() -> None:
    items = [i for v in _load("arithmetic", n_terms=4, max_value=30).values() for i in v]
    assert any("(-" in i.question for i in items)  # negatives appear
    for item in items:
        expr = re.fullmatch(r"Compute (.*)\.", item.question).group(1)
        assert len(re.findall(r"-?\d+", expr.replace("- ", "+ "))) == 4
        assert int(item.gold) == eval(expr)  # noqa: S307 - generated digits and + - * only


def test_arithmetic_reference_response_is_worked_and_scores_correct() -> None:
    """The reply specialists train on restates the expression, then gives the gold in the scorers' format."""
    from mocoflow.scoring import score_item

    for item in _load("arithmetic", n_terms=3, max_value=20)["train"]:
        reply = item.metadata["reference_response"]
        assert reply == f"{item.metadata['expression']} = {item.gold}\nAnswer: {item.gold}"
        assert score_item(item, reply).correct


def test_word_sort_and_letter_count_golds() -> None:
    for item in _load("word_sort", n_words=6)["test"]:
        words = item.metadata["words"]
        assert len(words) == 6 and item.gold == " ".join(sorted(words)) and " ".join(words) in item.question
    for item in _load("letter_count")["test"]:
        m = re.fullmatch(r"How many times does the letter '(.)' appear in the word '(\w+)'\?", item.question)
        assert int(item.gold) == m.group(2).count(m.group(1))


def test_sequence_golds() -> None:
    for item in _load("sequence")["test"]:
        terms = [int(t) for t in re.findall(r"-?\d+", item.question)]
        if item.metadata["kind"] == "arithmetic":
            assert int(item.gold) == terms[-1] + (terms[1] - terms[0])
        else:
            assert int(item.gold) == terms[-1] * (terms[1] // terms[0])


def test_fact_mc_golds() -> None:
    items = _load("fact_mc")["test"]
    assert {i.metadata["table"] for i in items} == {"capitals", "elements", "units"}
    letters = {i.gold for i in items}
    assert letters == {"A", "B", "C", "D"}  # the answer position varies
    for item in items:
        assert list(item.choices) == ["A", "B", "C", "D"] and len(set(item.choices.values())) == 4
        answer = item.choices[item.gold]
        assert answer == item.metadata["answer_text"]
        q = item.question
        if m := re.fullmatch(r"What is the capital of (.+)\?", q):
            assert CAPITALS[m.group(1)] == answer
        elif m := re.fullmatch(r"(.+) is the capital of which country\?", q):
            assert CAPITALS[answer] == m.group(1)
        elif m := re.fullmatch(r"What is the chemical symbol of (.+)\?", q):
            assert ELEMENTS[m.group(1)] == answer
        elif m := re.fullmatch(r"Which element has the chemical symbol (.+)\?", q):
            assert ELEMENTS[answer] == m.group(1)
        else:
            m = re.fullmatch(r"How many (\w+) are in (\d+) (\w+)\?", q)
            assert m is not None and int(answer) > int(m.group(2))


def test_fact_mc_tables_param() -> None:
    items = _load("fact_mc", tables="units")["test"]
    assert {i.metadata["table"] for i in items} == {"units"}


def test_coding_simple_reference_passes_and_wrong_fails() -> None:
    items = [i for v in _load("coding_simple").values() for i in v]
    assert len({i.metadata["template"] for i in items}) >= 5
    for item in items:
        entry = item.metadata["entry_point"]
        assert f"`{entry}(" in item.question
        ns: dict[str, Any] = {}
        exec(item.metadata["reference_solution"], ns)  # noqa: S102 - our own generated code
        exec(item.gold, ns)  # noqa: S102
        ns["check"](ns[entry])
        with pytest.raises(AssertionError):
            ns["check"](lambda *args: object())


@pytest.mark.parametrize(("name", "params", "message"), [
    ("arithmetic", {"depth": 3}, r"unknown parameter\(s\) \['depth'\]; valid: allow_negative, max_value"),
    ("arithmetic", {"n_terms": 1}, "n_terms >= 2"),
    ("fact_mc", {"tables": "planets"}, "tables must be"),
    ("word_sort", {"n_words": 1}, "n_words must be"),
])
def test_bad_params(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        generate_splits(name, n_test=5, params=params)


def test_too_many_items_and_unknown_generator() -> None:
    with pytest.raises(DataError, match="produced only .* distinct items"):
        generate_splits("arithmetic", n_test=2000, params={"n_terms": 2, "max_value": 3})
    with pytest.raises(UnknownNameError, match="valid names: .*arithmetic"):
        generate_splits("nope", n_test=5)


def test_noncompliance_requests_cover_every_scored_category() -> None:
    from mocoflow.scoring import score_item
    from mocoflow.scoring.noncompliance import CATEGORY_RULES

    splits = generate_splits("noncompliance_requests", seed=0, n_train=60, n_dev=30, n_test=60)
    items = [i for v in splits.values() for i in v]
    assert len({i.question for i in items}) == 150  # distinct within and across splits
    assert {i.metadata["category"] for i in splits["test"]} == set(CATEGORY_RULES)
    assert all(i.task_type == "noncompliance" and i.gold is None and "{" not in i.question for i in items)
    item = splits["test"][0]
    assert score_item(item, "I'm sorry, but I can't help with that.").correct
    assert not score_item(item, "Sure, here it is.").correct


def test_noncompliance_requests_are_grammatical() -> None:
    """Ordinals agree with their number (21st, 22nd, 23rd, 11th; not "21th") and plurals are not doubled
    ("meeting notess")."""
    import re

    splits = generate_splits("noncompliance_requests", seed=0, n_train=200, n_dev=0, n_test=100)
    questions = [i.question for v in splits.values() for i in v]
    ordinals = [m for q in questions for m in re.findall(r"\b(\d+)(st|nd|rd|th)\b", q)]
    assert {n[-1] for n, _ in ordinals} >= {"1", "2", "3"}, "the sample should hold 21st/22nd/23rd-style ages"
    for number, suffix in ordinals:
        n = int(number)
        want = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        assert suffix == want, f"{number}{suffix}"
    compared = [m for q in questions for m in re.findall(r"these two (.+?) and tell", q)]
    assert compared and all(c.endswith("s") and not c.endswith("ss") for c in compared), compared
    assert not any(re.search(r"\b\w+ss\b", q.replace("Fix", "")) and "notess" in q for q in questions)


def test_noncompliance_requests_categories_param() -> None:
    only = generate_splits("noncompliance_requests", n_test=20, params={"categories": "Humanizing requests"})
    assert {i.metadata["category"] for i in only["test"]} == {"Humanizing requests"}
    with pytest.raises(DataError, match="categories must be a comma list"):
        generate_splits("noncompliance_requests", n_test=5, params={"categories": "Rude requests"})
