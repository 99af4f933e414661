"""prepare records what the data could not give: short splits, empty splits that were asked for, null golds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mocoflow.data.moco import count_dropped_golds
from mocoflow.data.prepare import count_null_golds, prepare_task
from mocoflow.data.schema import Item
from mocoflow.data.sources import DataError, load_task
from mocoflow.io import write_jsonl


def _byo(tmp_path: Path, dev: int, test: int, **extra) -> dict:
    """A jsonl task with ``dev`` dev items and ``test`` test items (canonical rows)."""
    rows = [Item(id=f"{s}-{i}", task="t", split=s, task_type="exact_match", question=f"{i}+1?", gold=str(i + 1))
            .to_dict() for s, n in (("dev", dev), ("test", test)) for i in range(n)]
    write_jsonl(tmp_path / "items.jsonl", rows)
    return {"source": "jsonl", "path": str(tmp_path / "items.jsonl"), **extra}


def test_a_short_split_is_recorded_in_meta(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    meta = prepare_task("t", _byo(tmp_path, dev=2, test=3, n_test=1000000, n_dev=2), tmp_path, tmp_path / "out")
    assert meta["counts"] == {"train": 0, "dev": 2, "test": 3}
    assert meta["short"] == {"test": {"requested": 1000000, "available": 3}}
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["short"] == meta["short"]
    assert "task t: n_test asked for 1000000 items, the data has 3" in caplog.text


def test_a_split_asked_for_that_comes_out_empty_fails(tmp_path: Path):
    with pytest.raises(DataError, match=r"task 't': n_dev: 50 dev items asked for, the data gives none "
                                        r"\(counts: train=0, dev=0, test=3\)"):
        prepare_task("t", _byo(tmp_path, dev=0, test=3, n_dev=50), tmp_path, tmp_path / "out")
    assert not (tmp_path / "out" / "dev.jsonl").exists()


def test_pypi_partition_cannot_silently_empty_dev(tmp_path: Path):
    """Test is carved first from one source split: n_test larger than the data used to leave dev empty."""
    from mocoflow.data.pypi import _partition

    parts = _partition(10, ["test", "dev"], {"n_test": 1000000, "n_dev": 4})
    splits = {"train": [], "test": parts["test"], "dev": parts["dev"]}
    assert len(splits["dev"]) == 0  # what the source gives
    from mocoflow.data.prepare import shortfalls

    with pytest.raises(DataError, match="n_dev: 4 dev items asked for, the data gives none"):
        shortfalls("arc", {"n_test": 1000000, "n_dev": 4}, splits)


def test_null_golds_are_counted_kept_or_dropped(tmp_path: Path):
    kept = [Item(id="a", task="t", split="test", task_type="exact_match", question="q", gold=None).to_dict(),
            Item(id="b", task="t", split="test", task_type="exact_match", question="q", gold="1").to_dict(),
            Item(id="c", task="t", split="test", task_type="exact_match", question="q", gold="").to_dict()]
    write_jsonl(tmp_path / "kept" / "test.jsonl", kept)
    meta = prepare_task("t", {"source": "jsonl", "path": str(tmp_path / "kept")}, tmp_path, tmp_path / "o1")
    assert meta["null_gold"] == {"test": 2}
    by_design = Item(id="n", task="t", split="test", task_type="noncompliance", question="q", gold=None)
    assert count_null_golds([by_design]) == 0  # noncompliance items have no gold by design
    moco_like = [{"input": "2+2?", "output": "4"}, {"input": "3+3?", "output": None},
                 {"input": "4+4?", "output": "", "split": "dev"}]
    write_jsonl(tmp_path / "mine.jsonl", moco_like)
    spec = {"source": "jsonl", "path": str(tmp_path / "mine.jsonl"), "task_type": "exact_match"}
    meta = prepare_task("m", spec, tmp_path, tmp_path / "o2")
    assert meta["counts"]["test"] == 1 and meta["dropped_without_gold"] == {"dev": 1, "test": 1}


def test_dropped_golds_are_counted_only_inside_the_block(tmp_path: Path):
    write_jsonl(tmp_path / "mine.jsonl", [{"input": "q", "output": None}, {"input": "r", "output": "1"}])
    spec = {"source": "jsonl", "path": str(tmp_path / "mine.jsonl"), "task_type": "exact_match"}
    with count_dropped_golds() as outer:
        with count_dropped_golds() as inner:
            load_task("m", spec, cache_dir=tmp_path)
        load_task("m", spec, cache_dir=tmp_path)
    assert inner == {"test": 1} and outer == {"test": 1}
    load_task("m", spec, cache_dir=tmp_path)  # no counter active: nothing recorded, nothing raised
