"""Gold round-trip: every set's own gold, written as a model would write it, scores correct."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mocoflow.data.check import TEXT_ALONE, format_table, main, run_check


def _mirror() -> Path:
    env = os.environ.get("MOCOFLOW_MOCO_MIRROR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "moco"


MIRROR = _mirror()


def test_all_16_shared_sets_round_trip() -> None:
    if not (MIRROR / "SHA256SUMS").is_file():
        pytest.skip(f"MoCo mirror not found at {MIRROR} (set MOCOFLOW_MOCO_MIRROR)")
    results = run_check(MIRROR, show=5)
    assert len(results) == 16
    for r in results:
        assert not r.error, r.error
        assert r.passed, (r.name, r.columns, r.failures)
        if r.task_type in ("multiple_choice", "exact_match", "f1_match"):
            required = {c: v for c, v in r.columns.items() if c != TEXT_ALONE}
            assert len(required) >= 2 and all(c == t > 0 for c, t in required.values()), (r.name, r.columns)
        if r.task_type == "multiple_choice":  # option text alone: reported; a few options are one letter
            correct, total = r.columns[TEXT_ALONE]
            assert correct / total >= 0.99, (r.name, r.failures.get(TEXT_ALONE))
    by_type = {r.task_type for r in results if not r.columns}
    assert by_type == {"coding", "noncompliance", "reward_model"}


def _write(folder: Path, name: str, data: object) -> None:
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_cli_passes_fails_and_reports_load_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good"
    good.mkdir()
    _write(good, "em", {"task_type": "exact_match", "test": [{"input": "q", "output": "3.54e-07"},
                                                            {"input": "q", "output": "[1, 6]"}]})
    _write(good, "f1", {"task_type": "f1_match",
                        "test": [{"input": "q", "output": '["association football", "football", "soccer"]'}]})
    _write(good, "mc", {"task_type": "multiple_choice",
                        "test": [{"question": "q", "choices": {"A": "x", "B": "y", "id": 3}, "answer": "B"}]})
    assert main([str(good)]) == 0
    out = capsys.readouterr().out
    assert "f1" in out and "100.0% (3/3)" in out and "pass" in out and "FAIL" not in out
    bad = tmp_path / "bad"
    bad.mkdir()
    _write(bad, "nan", {"task_type": "exact_match", "test": [{"input": "q", "output": float("nan")}]})
    assert main([str(bad)]) == 1
    assert "LOAD ERROR: nan.json: test[0]: field 'output' is nan" in capsys.readouterr().out
    assert main([str(tmp_path / "nowhere")]) == 2


def test_missing_target_and_markdown(tmp_path: Path) -> None:
    from mocoflow.data.errors import DataError

    with pytest.raises(DataError, match="no such folder or config file"):
        run_check(tmp_path / "nowhere")
    _write(tmp_path, "em", {"task_type": "exact_match", "test": [{"input": "q", "output": "1,000"}]})
    table = format_table(run_check(tmp_path), markdown=True)
    assert table.splitlines()[1].startswith("|---") and "| em | exact_match | 1 |" in table


def test_config_target(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"input": "2+2?", "output": "4"}) + "\n")
    config = tmp_path / "study.yaml"
    config.write_text(f"cache_dir: {tmp_path / 'cache'}\ntasks:\n"
                      f"  arith: {{source: jsonl, path: {rows}, task_type: exact_match}}\n")
    (result,) = run_check(config)
    assert result.name == "arith" and result.passed and result.columns["Answer: X"] == [1, 1]
