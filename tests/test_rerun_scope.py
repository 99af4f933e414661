"""prepare's params carry only the keys that change a task's data: its area, decoding or prompt style rerun
nothing upstream of the jobs that use them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STUDY = {
    "device": "cpu",
    "models": {"a": {"source": "tiny"}},
    "pools": {"p": ["a"]},
    "tasks": {"arith": {"source": "builtin", "generator": "arithmetic", "n_test": 3, "area": "reasoning"}},
    "methods": {"single": {}},
}
TARGET = "results/data/arith/meta.json"


def _snakemake(workdir: Path, study: dict, *extra: str) -> str:
    configfile = workdir / "study.yaml"
    configfile.write_text(yaml.safe_dump(study))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "1", TARGET, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src"), "MOCOFLOW_PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout + proc.stderr


@pytest.mark.e2e
def test_area_decoding_and_prompt_style_do_not_rerun_prepare(tmp_path: Path):
    _snakemake(tmp_path, STUDY)
    task = STUDY["tasks"]["arith"]
    change = {"area": "general_qa", "decoding": {"max_new_tokens": 99}, "prompt_style": "cot"}
    changed = {**STUDY, "tasks": {"arith": {**task, **change}}}
    assert "Nothing to be done" in _snakemake(tmp_path, changed, "-n")
    data_change = {**STUDY, "tasks": {"arith": {**task, "n_test": 4}}}
    assert "prepare" in _snakemake(tmp_path, data_change, "-n")  # a key that changes the data still does
