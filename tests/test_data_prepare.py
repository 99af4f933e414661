"""The prepare CLI end to end: split files, meta.json, error exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mocoflow.data.prepare import main, prepare_task
from mocoflow.data.schema import Item
from mocoflow.io import read_jsonl

SPEC = {"source": "builtin", "generator": "arithmetic", "seed": 0, "n_train": 20, "n_dev": 0, "n_test": 10,
        "n_terms": 2}


def test_prepare_task_writes_every_split(tmp_path: Path) -> None:
    meta = prepare_task("arith", SPEC, tmp_path / "cache", tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["dev.jsonl", "meta.json", "test.jsonl", "train.jsonl"]
    assert (out / "dev.jsonl").read_text() == ""  # an empty split is an empty file
    items = [Item.from_dict(r) for r in read_jsonl(out / "test.jsonl")]
    assert len(items) == 10 and {i.task for i in items} == {"arith"} and {i.split for i in items} == {"test"}
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk == meta
    assert meta["counts"] == {"train": 20, "dev": 0, "test": 10}
    assert meta["task_type"] == "exact_match" and meta["source"] == "builtin" and meta["spec"] == SPEC
    assert set(meta["files"]) == {"train", "dev", "test"}


def test_cli_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "mocoflow.data.prepare", "--task", "arith", "--spec-json", json.dumps(SPEC),
           "--cache-dir", str(tmp_path / "cache"), "--out-dir", str(tmp_path / "out")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "task arith (builtin, exact_match): train=20, dev=0, test=10" in result.stderr
    assert len(read_jsonl(tmp_path / "out" / "train.jsonl")) == 20


def test_cli_reports_data_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    args = ["--task", "x", "--spec-json", json.dumps({"source": "builtin", "generator": "nope"}),
            "--cache-dir", str(tmp_path), "--out-dir", str(tmp_path / "out")]
    assert main(args) == 1
    assert "unknown builtin generator 'nope'" in caplog.text
    assert not (tmp_path / "out").exists()
    bad = {"source": "moco", "name": "m", "url": str(tmp_path / "none.json")}
    assert main(["--task", "m", "--spec-json", json.dumps(bad), "--cache-dir", str(tmp_path),
                 "--out-dir", str(tmp_path / "out")]) == 1
    assert "no such file" in caplog.text
