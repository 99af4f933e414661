"""profiles/slurm: a real (non-dry) Snakemake run with the SLURM executor against stub ``sbatch``/``sacct``/...
commands on PATH; the submitted resources of a GPU rule (generate) are read from the stub's argv."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm"

pytest.importorskip("snakemake_executor_plugin_slurm")

STUB = r"""#!/bin/sh
# Records its argv (NUL-separated) in $STUB_LOG/<name>.<pid>, then answers like SLURM would, minimally.
name=$(basename "$0")
printf '%s\0' "$@" > "$STUB_LOG/$name.$$"
case "$name" in
  sbatch) echo "4242" ;;
  sinfo) printf 'gpu*\ncpu\n' ;;
  sacctmgr|sshare) echo "testacct" ;;
  scontrol) echo "MinJobAge = 300 sec" ;;
  *) : ;;
esac
exit 0
"""
COMMANDS = ("sbatch", "sacct", "squeue", "sinfo", "scancel", "scontrol", "sacctmgr", "sshare", "srun")

TINY = {
    "study": "slurm-test",
    "device": "cpu",
    "models": {"tiny-a": {"source": "tiny", "arch": "gpt2", "seed": 0, "gpus": 2}},
    "pools": {"solo": ["tiny-a"]},
    "tasks": {"arith": {"source": "builtin", "generator": "arithmetic", "n_dev": 2, "n_test": 2}},
    "methods": {"single": {}},
}


def _calls(log: Path, name: str) -> list[list[str]]:
    out = []
    for f in sorted(log.glob(f"{name}.*")):
        out.append([a for a in f.read_bytes().decode().split("\0") if a])
    return out


@pytest.fixture
def stub_path(tmp_path: Path) -> tuple[Path, Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    log.mkdir()
    for name in COMMANDS:
        script = bin_dir / name
        script.write_text(STUB)
        script.chmod(0o755)
    return bin_dir, log


def test_gpu_rule_is_submitted_with_its_resources(stub_path: tuple[Path, Path], tmp_path: Path):
    bin_dir, log = stub_path
    work = tmp_path / "work"
    # the generate job's inputs exist already, so the first job Snakemake submits is the GPU rule itself
    for rel in ("results/models/tiny-a/card.json", "results/data/arith/test.jsonl"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text("{}\n")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STUB_LOG": str(log),
           "PYTHONPATH": str(ROOT / "src")}
    for var in [v for v in env if v.startswith("SLURM_")]:
        env.pop(var)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
           "--workflow-profile", str(PROFILE), "--configfile", str(config), "--jobs", "1",
           "results/generations/tiny-a/arith/test.jsonl"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _calls(log, "sbatch") and proc.poll() is None:
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        output = proc.stdout.read() if proc.stdout else ""
    submissions = _calls(log, "sbatch")
    assert submissions, f"no sbatch call; snakemake said:\n{output[-4000:]}"
    argv = " ".join(submissions[0])
    assert "rule_generate" in argv, argv
    assert "--gpus=2" in argv or "--gres=gpu:2" in argv, argv  # gpu=<model gpus>
    assert "-p gpu" in argv or "--partition=gpu" in argv or "--partition gpu" in argv, argv
    assert "--mem 64000" in argv or "--mem=64000" in argv, argv
    assert "-t 360" in argv or "--time=360" in argv or "--time 360" in argv, argv
    assert "--cpus-per-gpu=8" in argv or "--cpus-per-gpu 8" in argv, argv


def test_profile_declares_gpu_partitions_for_every_gpu_rule():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    for rule in ("generate", "collaborate", "merge_dev", "build_model", "judge_single", "judge_run"):
        res = profile["set-resources"][rule]
        assert res["slurm_partition"] == "gpu" and res["runtime"] > 0 and res["mem_mb"] > 0, rule
    assert profile["default-resources"]["gpu"] == 0

