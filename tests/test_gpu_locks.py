"""Local GPU jobs claim free device ids through lock files; no two jobs hold the same id at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mocoflow.gpu import claim_devices

JOB = textwrap.dedent("""
    import json, os, sys, time
    from mocoflow.gpu import claim_devices
    with claim_devices(1, poll_seconds=0.05) as ids:
        start = time.time()
        time.sleep(0.6)
        print(json.dumps({"ids": ids, "cvd": os.environ["CUDA_VISIBLE_DEVICES"], "start": start,
                          "end": time.time()}))
""")


def test_four_concurrent_jobs_on_two_devices_never_share_an_id(tmp_path: Path):
    env = {**os.environ, "MOCOFLOW_GPU_IDS": "0,1", "MOCOFLOW_GPU_LOCK_DIR": str(tmp_path)}
    env.pop("SLURM_JOB_ID", None)
    procs = [subprocess.Popen([sys.executable, "-c", JOB], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(len(r["ids"]) == 1 and r["cvd"] == str(r["ids"][0]) for r in results)
    for dev in (0, 1):
        spans = sorted((r["start"], r["end"]) for r in results if r["ids"][0] == dev)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, f"device {dev} held by two jobs at once: {spans}"
    # four jobs of 0.6 s on two devices: the second wave must have waited for the first
    assert max(r["end"] for r in results) - min(r["start"] for r in results) >= 1.2


def test_slurm_leaves_devices_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("MOCOFLOW_GPU_IDS", "0,1")
    monkeypatch.setenv("MOCOFLOW_GPU_LOCK_DIR", str(tmp_path))
    with claim_devices(1) as ids:
        assert ids == []
    assert not list(tmp_path.iterdir())


def test_too_many_gpus_requested_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("MOCOFLOW_GPU_IDS", "0")
    monkeypatch.setenv("MOCOFLOW_GPU_LOCK_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="needs 2 GPUs but only 1"), claim_devices(2):
        pass


def test_lock_released_when_holder_is_killed(tmp_path: Path):
    env = {**os.environ, "MOCOFLOW_GPU_IDS": "0", "MOCOFLOW_GPU_LOCK_DIR": str(tmp_path)}
    env.pop("SLURM_JOB_ID", None)
    holder = subprocess.Popen([sys.executable, "-c", "from mocoflow.gpu import claim_devices\n"
                               "import time\nwith claim_devices(1):\n    print('held', flush=True)\n"
                               "    time.sleep(60)"], env=env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    t0 = time.time()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            if k.startswith("MOCOFLOW"):
                mp.setenv(k, v)
        mp.delenv("SLURM_JOB_ID", raising=False)
        with claim_devices(1, timeout=5) as ids:
            assert ids == [0]
    assert time.time() - t0 < 5
