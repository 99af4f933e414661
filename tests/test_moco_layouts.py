"""MoCo's other data sets, offline: one anonymised fixture per layout (tests/data/moco_layouts/, sources in its
README) loads, keeps its layout's fields, round-trips its golds at 100 %, and scores the answers a model
would write for that layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mocoflow.data.check import TEXT_ALONE, check_items, run_check
from mocoflow.data.moco import load_moco_file
from mocoflow.data.moco_remote import checksums
from mocoflow.data.schema import Item
from mocoflow.scoring import score_item

LAYOUTS = Path(__file__).parent / "data" / "moco_layouts"
FILES = sorted(LAYOUTS.glob("*.json"))


def _items(name: str) -> list[Item]:
    return [i for items in load_moco_file(LAYOUTS / f"{name}.json").values() for i in items]


def test_every_fixture_names_its_source() -> None:
    assert len(FILES) == 12
    for path in FILES:
        assert "model_collaboration" in json.loads(path.read_text())["_source"], path.name


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_layout_loads_as_its_pinned_task_type(path: Path) -> None:
    data = json.loads(path.read_text())
    splits = load_moco_file(path)
    items = [i for s in splits.values() for i in s]
    assert len(items) == sum(len(data.get(s, [])) for s in ("dev", "test"))
    assert {i.task for i in items} == {path.stem}  # the file's name, whatever the name inside says
    assert {i.task_type for i in items} == {checksums()[path.stem].task_type}


def test_round_trip_is_complete_on_every_layout() -> None:
    results = run_check(LAYOUTS, show=5)
    assert [r.name for r in results] == [p.stem for p in FILES]
    for r in results:
        assert not r.error and r.passed, (r.name, r.error, r.failures)
        if r.task_type in ("multiple_choice", "exact_match", "f1_match"):
            assert all(c == t > 0 for col, (c, t) in r.columns.items()), (r.name, r.columns)
            assert (TEXT_ALONE in r.columns) == (r.task_type == "multiple_choice")


def test_culturebench_is_named_by_its_file_not_its_inner_name() -> None:
    assert json.loads((LAYOUTS / "culturebench.json").read_text())["name"] == "culturebench_hard"
    items = _items("culturebench")
    assert {i.task for i in items} == {"culturebench"}
    assert items[0].metadata["question_id"] == "614" and items[0].metadata["country"] == "Country A"


def test_layout_fields_reach_metadata_and_gold() -> None:
    theorem = {i.id: i for i in _items("theoremqa")}
    assert {i.metadata["answer_type"] for i in theorem.values()} == {
        "bool", "integer", "float", "list of integer", "list of float", "option"}
    assert theorem["7"].gold == "(c)"
    wiki = _items("wikidyk")
    assert wiki[0].gold == ["Example Island"] and wiki[0].metadata["year"] == "2023"
    popqa = _items("popqa")
    assert popqa[1].gold == ["Akkineni Example", "Example Akkineni, Jr."]  # never split on the comma
    diversity = _items("infinite_chat_diversity")
    assert len(diversity[1].gold) == 3 and "output" not in diversity[1].metadata
    assert _items("human_interest")[0].metadata["reference"] == "Tax policy can ..."
    science = _items("sciencemeter")
    assert science[0].choices == {"A": "support", "B": "refute"}
    assert science[0].metadata["domain"] == "political_science"
    med = _items("medmcqa")
    assert med[0].id == "d015dc8c-7306-41b3-9db5-60973de1697c" and med[0].gold == "B"


def _by_id(name: str, item_id: str) -> Item:
    return next(i for i in _items(name) if i.id == item_id)


# (set, item id, response a model could write, correct)
RESPONSES = [
    ("theoremqa", "1", r"\boxed{3.54 \times 10^{-7}\ \text{C}}", True),
    ("theoremqa", "1", "Answer: 0.000000354", True),
    ("theoremqa", "2", "No, it does not.", True),
    ("theoremqa", "5", "Answer: 0.0001", False),  # an exact zero gold needs zero
    ("theoremqa", "6", "Answer: 0.836", True),  # unstated precision: within 1 %
    ("theoremqa", "7", r"The answer is (C) three.", True),
    ("theoremqa", "7", "Answer: (b) or (c)", False),
    ("theoremqa", "8", "Answer: [0.667, -0.667]", True),
    ("theoremqa", "9", "The expected rate of return is 10.92%.", True),
    ("theoremqa", "10", "The holding period return is 23%.", True),
    ("theoremqa", "11", "Answer: 1,750 m/s", True),
    ("theoremqa", "12", r"\boxed{(-1, 3, 1)}", True),
    ("tablemwp_free_text", "16", "Answer: $4,656.00", True),
    ("tablemwp_free_text", "16", "Answer: 4656 or 4756", False),
    ("tablemwp_free_text", "123", "Answer: 0.3", True),
    ("tablemwp_free_text", "82", "The rate of change is \u22121 per year.", True),
    ("tablemwp_free_text", "462", r"\boxed{\$3.30}", True),
    ("culturebench", "2457", "Answer: Dish two\nTrue", True),
    ("culturebench", "2457", "True or False", False),
    ("culturebench", "2484", "false.", True),
    ("wikidyk", "684", "Jorg Muhlback", True),
    ("wikidyk", "5317", r"\box{desert in the region}", True),
    ("wikidyk", "7409", "Joy of Sound", True),
    ("popqa", "1", "Soccer.", True),
    ("popqa", "2", "Example Akkineni, Jr.", True),
    ("medmcqa", "44849fd1-7c11-4756-805f-48d34ee2cd05", "point b", True),
    ("medmcqa", "76e1d3a2-90b6-4735-be99-004263456619", "None of the above", False),
    ("kaleidoscope", "18319", "The duty opposes the situation.", True),
    ("kaleidoscope", "13325", "It could either support or oppose it.", True),
    ("kaleidoscope", "12041", "Support or oppose.", False),
    ("sciencemeter", "5919", "The claim is supported by the paper.", True),
    ("sciencemeter", "5919", "The claim is not supported by the paper.", False),
    ("sciencemeter", "491", "Refuted", True),
    ("agieval", "1095", "60% of 30% of 1400 = 252 gms. Answer: C", True),
    ("agieval", "1589", "This means the median is unchanged.", True),
    ("agieval", "1473", r"Answer: $50,000(0.9)^{\frac{t}{20}}$", True),
]


@pytest.mark.parametrize(("name", "item_id", "response", "correct"), RESPONSES)
def test_layout_answers_score_by_the_sets_convention(name: str, item_id: str, response: str, correct: bool) -> None:
    result = score_item(_by_id(name, item_id), response)
    assert result.correct is correct, result


def test_diversity_and_reward_rows_score_without_a_gold_answer() -> None:
    item = _items("infinite_chat_diversity")[1]
    near = score_item(item, "Why did the electric car stop? \u26a1")
    far = score_item(item, "A completely different poem about mountains and rivers at dawn.")
    assert near.status == far.status == "ok" and near.score < far.score
    assert check_items("alpacaeval", _items("alpacaeval")).columns == {}
