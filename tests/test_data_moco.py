"""MoCo-format JSON: the 16 shared sets, the defects they carry, and malformed files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mocoflow.data.moco import DataError, find_entry_point, load_moco_file, moco_to_items
from mocoflow.data.sources import load_task


def _mirror() -> Path:
    env = os.environ.get("MOCOFLOW_MOCO_MIRROR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "moco"


MIRROR = _mirror()
needs_mirror = pytest.mark.skipif(not (MIRROR / "SHA256SUMS").is_file(),
                                  reason=f"MoCo mirror not found at {MIRROR} (set MOCOFLOW_MOCO_MIRROR)")


def _sums() -> dict[str, str]:
    if not (MIRROR / "SHA256SUMS").is_file():
        return {}
    out = {}
    for line in (MIRROR / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, fname = line.split()
            out[Path(fname).stem] = digest
    return out


SUMS = _sums()
NAMES = sorted(SUMS) or ["<no mirror>"]
GOLD_FIELD = {"exact_match": "output", "f1_match": "output", "coding": "test"}


def _expected_count(task_type: str, rows: list[dict[str, Any]]) -> int:
    """Rows the converter keeps: all, except rows whose gold field is null/empty (dropped by default)."""
    field = GOLD_FIELD.get(task_type)
    return sum(1 for r in rows if field is None or r.get(field) not in (None, "", []))


@needs_mirror
def test_mirror_has_16_sets() -> None:
    assert len(SUMS) == 16
    assert all((MIRROR / f"{n}.json").is_file() for n in SUMS)


@needs_mirror
@pytest.mark.parametrize("name", NAMES)
def test_load_shared_set(name: str, tmp_path: Path) -> None:
    spec = {"source": "moco", "name": name, "url": str(MIRROR), "sha256": SUMS[name]}
    splits = load_task(name, spec, cache_dir=tmp_path)
    raw = json.loads((MIRROR / f"{name}.json").read_text())
    task_type = raw["task_type"]
    assert splits["train"] == []
    for split in ("dev", "test"):
        items = splits[split]
        assert len(items) == _expected_count(task_type, raw[split]) > 0
        assert len({i.id for i in items}) == len(items)
        assert {i.task for i in items} == {name} and {i.split for i in items} == {split}
        assert {i.task_type for i in items} == {task_type}
        for item in items:
            if task_type == "multiple_choice":
                assert item.gold in item.choices and list(item.choices) == sorted(item.choices)
                assert list(item.choices)[0] == "A"
            elif task_type == "coding":
                assert "def check(" in item.gold
                assert item.metadata["entry_point"] in item.question
            elif task_type == "noncompliance":
                assert item.gold is None and item.metadata["category"]
            elif task_type == "reward_model":
                assert item.gold is None
            else:
                assert isinstance(item.gold, str) and item.gold


@needs_mirror
def test_shared_defects_are_handled(tmp_path: Path) -> None:
    blend = load_moco_file(MIRROR / "blend.json")
    renamed = [i for i in blend["dev"] if "source_id" in i.metadata]
    assert len(renamed) == 762
    assert all(i.id == f"{i.metadata['source_id']}#{i.id.rsplit('#', 1)[1]}" for i in renamed)
    assert all("Without any explanation" not in i.question for i in blend["dev"])
    math = load_moco_file(MIRROR / "math.json")
    assert (len(math["dev"]), len(math["test"])) == (949, 951)
    with pytest.raises(DataError, match=r"math\.json: dev\[100\]: field 'output' is empty"):
        load_moco_file(MIRROR / "math.json", on_missing_gold="error")
    arc = load_moco_file(MIRROR / "arc_challenge.json")
    remapped = [i for i in arc["test"] if "original_choice_keys" in i.metadata]
    assert len(remapped) == 22 and all(set(i.choices) <= set("ABCD") for i in remapped)
    humaneval = load_moco_file(MIRROR / "humaneval.json")
    entry = {i.metadata["source_id"] if "source_id" in i.metadata else i.id: i.metadata["entry_point"]
             for s in ("dev", "test") for i in humaneval[s]}
    assert entry["HumanEval/38"] == "decode_cyclic" and entry["HumanEval/10"] == "make_palindrome"
    assert entry["HumanEval/32"] == "find_zero"
    mbpp = load_moco_file(MIRROR / "mbpp.json")
    assert len(mbpp["test"]) == 485
    assert all("prompt_code" not in i.metadata for i in mbpp["test"])


# --------------------------------------------------------------------------- constructed files


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def _mc(rows: list[dict[str, Any]], name: str = "arc_challenge") -> dict[str, Any]:
    return {"name": name, "task_type": "multiple_choice", "dev": [], "test": rows}


def test_arc_numeric_keys_are_remapped(tmp_path: Path) -> None:
    four = {"1": "one", "2": "two", "3": "three", "4": "four"}
    rows = [{"id": "q1", "question": "Pick three.", "choices": four, "answer": "3"},
            {"id": "q2", "question": "Pick one.", "choices": {"2": "two", "1": "one"}, "answer": "1"},
            {"id": "q3", "question": "Pick B.", "choices": {"A": "a", "B": "b", "C": "c"}, "answer": "B"}]
    items = load_moco_file(_write(tmp_path / "arc_challenge.json", _mc(rows)))["test"]
    assert items[0].choices == {"A": "one", "B": "two", "C": "three", "D": "four"} and items[0].gold == "C"
    assert items[0].metadata["original_choice_keys"] == ["1", "2", "3", "4"]
    assert items[1].choices == {"A": "one", "B": "two"} and items[1].gold == "A"
    assert items[2].gold == "B" and "original_choice_keys" not in items[2].metadata


def test_duplicate_and_missing_ids(caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"id": i, "input": f"q{k}", "output": str(k)} for k, i in enumerate(["a", "a", "a#1", "b", "a"])]
    rows.append({"input": "no id", "output": "x"})
    data = {"name": "math", "task_type": "exact_match", "test": rows}
    items = moco_to_items(data, label="math.json")["test"]
    assert [i.id for i in items] == ["a", "a#2", "a#1", "b", "a#3", "test-5"]
    assert items[1].metadata["source_id"] == "a" and "source_id" not in items[0].metadata
    assert "2 duplicate id(s)" in caplog.text


AB = {"A": "x", "B": "y"}


@pytest.mark.parametrize(("row", "message"), [
    ({"id": 1, "question": "q", "choices": AB}, r"bad\.json: test\[1\]: field 'answer' missing"),
    ({"id": 1, "question": "q", "choices": {"A": "w", "B": "x", "C": "y", "D": "z"}, "answer": "E"},
     r"bad\.json: test\[1\]: field 'answer': answer 'E' not among choices A-D"),
    ({"id": 1, "question": "q", "answer": "A"}, r"test\[1\]: field 'choices' missing"),
    ({"id": 1, "choices": AB, "answer": "A"}, r"test\[1\]: field 'question' missing"),
    ({"id": 1, "question": "q", "choices": {"A": "x", "b": "y"}, "answer": "A"},
     r"test\[1\]: field 'choices'"),
    ("not a row", r"test\[1\]: row must be a JSON object"),
])
def test_malformed_rows_name_file_index_field(tmp_path: Path, row: Any, message: str) -> None:
    good = {"id": 0, "question": "q", "choices": {"A": "x", "B": "y"}, "answer": "A"}
    path = _write(tmp_path / "bad.json", _mc([good, row], name="bad"))
    with pytest.raises(DataError, match=message):
        load_moco_file(path)


@pytest.mark.parametrize(("data", "message"), [
    ("{not json", r"bad\.json: not valid JSON"),
    ([1, 2], r"bad\.json: top level must be a JSON object"),
    ({"name": "bad", "dev": []}, r"bad\.json: field 'task_type' missing"),
    ({"name": "bad", "task_type": "essay", "dev": []}, r"bad\.json: field 'task_type': unknown 'essay'"),
    ({"name": "bad", "task_type": "exact_match"}, r"bad\.json: no split found"),
    ({"name": "bad", "task_type": "exact_match", "dev": {"a": 1}}, r"bad\.json: dev: must be a list"),
    ({"name": "bad", "task_type": "noncompliance", "dev": [{"input": "x"}]}, r"dev\[0\]: field 'category'"),
    ({"name": "bad", "task_type": "coding",
      "dev": [{"input": "Do it.", "test": "def check(candidate):\n    assert candidate(1)\n"}]},
     r"dev\[0\]: field 'entry_point'"),
    ({"name": "bad", "task_type": "coding", "dev": [{"input": "x", "test": "assert 1"}]},
     r"dev\[0\]: field 'test'"),
])
def test_malformed_files(tmp_path: Path, data: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_moco_file(_write(tmp_path / "bad.json", data))


def test_missing_gold_policies(caplog: pytest.LogCaptureFixture) -> None:
    data = {"name": "m", "task_type": "exact_match", "dev": [{"id": 1, "input": "q", "output": None},
                                                            {"id": 2, "input": "q2", "output": 7}]}
    items = moco_to_items(data, label="m.json")["dev"]
    assert [(i.id, i.gold) for i in items] == [("2", "7")]
    assert items[0].metadata["source_index"] == 1
    assert "dropped 1 row(s)" in caplog.text
    with pytest.raises(DataError, match=r"m\.json: dev\[0\]: field 'output' is empty"):
        moco_to_items(data, label="m.json", on_missing_gold="error")


def test_other_task_types() -> None:
    rows: list[dict[str, Any]] = [{"id": "r", "input": "Tell me.", "output": "ref"},
                                  {"id": "s", "input": "More."}]
    data: dict[str, Any] = {"name": "x", "task_type": "reward_model", "test": rows}
    items = moco_to_items(data)["test"]
    assert [i.gold for i in items] == [None, None] and items[0].metadata["reference"] == "ref"
    rows = [{"id": 1, "input": "Who?", "output": ["Ann", "Anna"]},
            {"id": 2, "input": "Where?", "output": "Rome"}]
    data = {"name": "x", "task_type": "f1_match", "test": rows}
    assert [i.gold for i in moco_to_items(data)["test"]] == [["Ann", "Anna"], ["Rome"]]
    data = {"name": "c", "task_type": "coding", "test": [{"id": 1, "input": "Write f.", "entry_point": "f",
                                                          "test": "def check(candidate):\n    pass\n"}]}
    assert moco_to_items(data)["test"][0].metadata["entry_point"] == "f"


def test_find_entry_point() -> None:
    humaneval = ("from typing import List\n\n\ndef helper(x):\n    pass\n\n\n"
                 "def target(xs: List[int]) -> int:\n")
    assert find_entry_point(humaneval) == "target"
    mbpp = "Write a function.\nYour code should pass this test case: assert (Diff([1, 2], [2])) == [1]"
    assert find_entry_point(mbpp) == "Diff"
    assert find_entry_point("assert is_ok(3) == True") == "is_ok"
    assert find_entry_point("no function here") is None


# --------------------------------------------------------------------------- issue 15: loader errors


def _set(task_type: str, row: dict[str, Any]) -> dict[str, Any]:
    good = {"exact_match": {"id": 0, "input": "q", "output": "1"},
            "f1_match": {"id": 0, "input": "q", "output": ["a"]},
            "multiple_choice": {"id": 0, "question": "q", "choices": {"A": "x", "B": "y"}, "answer": "A"},
            "generation_diversity": {"id": 0, "input": "q", "reference": ["r"]}}[task_type]
    return {"name": "s", "task_type": task_type, "dev": [], "test": [good, row]}


@pytest.mark.parametrize(("task_type", "row", "message"), [
    ("exact_match", {"input": "q", "output": float("nan")},
     r"s\.json: test\[1\]: field 'output' is nan, not a usable value"),
    ("exact_match", {"input": "q", "output": float("inf")}, r"test\[1\]: field 'output' is inf"),
    ("exact_match", {"input": "q", "output": {"value": 3}}, r"test\[1\]: field 'output' must be a string or number"),
    ("exact_match", {"input": "q", "output": [[1, 2], 3]}, r"test\[1\]: field 'output\[0\]' must be a string"),
    ("f1_match", {"input": "q", "output": ["Ann", None]}, r"test\[1\]: field 'output\[1\]' is null"),
    ("f1_match", {"input": "q", "output": ["Ann", ["Anna"]]}, r"test\[1\]: field 'output\[1\]' must be a string"),
    ("f1_match", {"input": "q", "output": ["Ann", float("nan")]}, r"test\[1\]: field 'output\[1\]' is nan"),
    ("f1_match", {"input": "q", "output": '["Ann", null]'}, r"test\[1\]: field 'output \(list literal\)\[1\]'"),
    ("multiple_choice", {"question": "q", "choices": {"A": "x", "B": None}, "answer": "B"},
     r"test\[1\]: field 'choices\.B' is None but it is the answer"),
    ("multiple_choice", {"question": "q", "choices": {"A": "x", "B": ["y"]}, "answer": "A"},
     r"test\[1\]: field 'choices\.B' must be a string or number"),
    ("multiple_choice", {"question": "q", "choices": {"A": "x", "B": float("nan")}, "answer": "A"},
     r"test\[1\]: field 'choices\.B' is nan"),
    ("multiple_choice", {"question": "q", "choices": {"A": "x", "B": "y"}, "answer": 1},
     r"test\[1\]: field 'answer': integer 1 is not a choice key \(A-B\)\. MoCo compares .* never an index"),
    ("multiple_choice", {"question": "q", "choices": {"A": "x", "B": "y"}, "answer": True},
     r"test\[1\]: field 'answer' must be a choice key"),
    ("multiple_choice", {"question": "q", "choices": {"A": "x", "id": "y"}, "answer": "A"},
     r"test\[1\]: field 'choices' must hold at least 2 options"),
    ("multiple_choice", {"question": "q", "choices": {"A": "x", "B": "y", "id": 7}, "answer": "id"},
     r"test\[1\]: field 'answer': answer 'id' not among choices A-B"),
    ("generation_diversity", {"input": "q", "reference": "one string"}, r"test\[1\]: field 'reference' must be a list"),
    ("generation_diversity", {"input": "q", "reference": ["r", None]}, r"test\[1\]: field 'reference\[1\]' is null"),
    ("exact_match", {"input": "q", "output": "1", "id": {"a": 1}}, r"test\[1\]: field 'id' must be a string"),
])
def test_bad_values_name_file_split_index_field(tmp_path: Path, task_type: str, row: dict[str, Any],
                                                message: str) -> None:
    path = _write(tmp_path / "s.json", json.dumps(_set(task_type, row)))  # json writes NaN/Infinity literals
    with pytest.raises(DataError, match=message):
        load_moco_file(path)


def test_numbers_and_booleans_are_written_as_python_writes_them() -> None:
    rows = [{"id": k, "input": "q", "output": v} for k, v in enumerate([7, 0.5, 1e-07, True, [1, 6]])]
    items = moco_to_items({"name": "s", "task_type": "exact_match", "test": rows})["test"]
    assert [i.gold for i in items] == ["7", "0.5", "1e-07", "True", "[1, 6]"]


def test_null_gold_follows_the_missing_gold_policy() -> None:
    data = {"name": "s", "task_type": "f1_match", "test": [{"id": 1, "input": "q", "output": None},
                                                          {"id": 2, "input": "q", "output": ["a"]}]}
    assert [i.id for i in moco_to_items(data)["test"]] == ["2"]
    with pytest.raises(DataError, match=r"test\[0\]: field 'output' is empty"):
        moco_to_items(data, on_missing_gold="error")


def test_integer_answer_names_a_digit_key() -> None:
    row = {"id": 1, "question": "q", "choices": {"1": "one", "2": "two", "3": "three"}, "answer": 2}
    item = moco_to_items(_mc([row]))["test"][0]
    assert item.gold == "B" and item.choices == {"A": "one", "B": "two", "C": "three"}


def test_extra_non_letter_choice_keys_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"id": 1, "question": "q", "choices": {"A": "x", "B": "y", "C": "z", "id": "c-17"}, "answer": "C"},
            {"id": 2, "question": "q", "choices": {"a": "x", "b": "y", "explanation": "..."}, "answer": "b"}]
    items = moco_to_items(_mc(rows), label="mc.json")["test"]
    assert items[0].choices == {"A": "x", "B": "y", "C": "z"} and items[0].gold == "C"
    assert items[0].metadata["ignored_choice_keys"] == ["id"]
    assert items[1].choices == {"A": "x", "B": "y"} and items[1].gold == "B"
    assert "mc.json: test: 2 row(s) with ignored non-option key(s) in 'choices'" in caplog.text


def test_blank_option_that_is_not_the_answer_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    row = {"id": 1, "question": "q", "choices": {"A": "x", "B": "y", "C": "z", "D": None}, "answer": "A"}
    item = moco_to_items(_mc([row]), label="mc.json")["test"][0]
    assert item.choices == {"A": "x", "B": "y", "C": "z"} and item.metadata["dropped_blank_options"] == ["D"]
    assert "null or blank options dropped" in caplog.text


def test_duplicate_option_texts_are_recorded() -> None:
    row = {"id": 1, "question": "q", "choices": {"A": "Madrid", "B": "Madrid ", "C": "madrid"}, "answer": "A"}
    item = moco_to_items(_mc([row]))["test"][0]
    assert item.metadata["duplicate_options"] == [["A", "B"]]  # case matters (ARC genotypes Rr / RR)


def test_generation_diversity_rows() -> None:
    data = {"name": "icd", "task_type": "generation_diversity",
            "dev": [{"id": 0, "input": "Write a joke.", "output": "", "reference": ["j1", "j2"]}]}
    item = moco_to_items(data)["dev"][0]
    assert item.task_type == "generation_diversity" and item.gold == ["j1", "j2"]
    assert "output" not in item.metadata


def test_deep_nesting_is_a_data_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    path = _write(tmp_path / "deep.json", '{"name": "d", "task_type": "exact_match", "dev": ' + deep + "}")
    with pytest.raises(DataError, match=r"deep\.json: JSON nested too deeply .*line 1 column"):
        load_moco_file(path)
    row = {"id": 1, "input": "q", "output": "1", "extra": json.loads("[" * 40 + "]" * 40)}
    path = _write(tmp_path / "deep.json", {"name": "d", "task_type": "exact_match", "dev": [row]})
    with pytest.raises(DataError, match=r"deep\.json: dev\[0\]: field 'extra' nests lists/objects deeper"):
        load_moco_file(path)


def test_bad_bytes_name_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    data = b'{"name": "b",\n "task_type": "exact_match", "dev": [{"input": "caf\xe9"}]}'
    path.write_bytes(data)
    offset, column = data.index(b"\xe9"), data.index(b"\xe9") - data.index(b"\n")
    with pytest.raises(DataError, match=rf"bad\.json: not UTF-8 text: byte 0xe9 at byte offset {offset} \(line 2, "
                                        rf"column {column}\)"):
        load_moco_file(path)


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"input": "q1", "output": "1"}\n\n{"input": "q2", "output": NaN}\n')
    with pytest.raises(DataError, match=r"rows\.jsonl: test\[1\] \(line 3\): field 'output' is nan"):
        load_task("rows", {"source": "jsonl", "path": str(path), "task_type": "exact_match"}, cache_dir=tmp_path)
    path.write_bytes(b'{"input": "q1", "output": "1"}\n{"input": "\xff"}\n')
    with pytest.raises(DataError, match=r"rows\.jsonl: not UTF-8 text: byte 0xff at byte offset 42 "
                                        r"\(line 2, column 12\)"):
        load_task("rows", {"source": "jsonl", "path": str(path), "task_type": "exact_match"}, cache_dir=tmp_path)


def test_multi_answer_rows_follow_the_missing_gold_policy(caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"id": 1, "question": "q", "choices": {"A": "x", "B": "y", "C": "z"}, "answer": ["A", "C"]},
            {"id": 2, "question": "q", "choices": {"A": "x", "B": "y"}, "answer": ["B"]}]
    items = moco_to_items(_mc(rows), label="agieval.json")["test"]
    assert [(i.id, i.gold) for i in items] == [("2", "B")]
    assert "dropped 1 row(s) whose field 'answer' lists 2 answer keys" in caplog.text
    with pytest.raises(DataError, match=r"agieval\.json: test\[0\]: field 'answer' lists 2 answer keys"):
        moco_to_items(_mc(rows), label="agieval.json", on_missing_gold="error")
