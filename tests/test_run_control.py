"""Runs and the working directory: one run at a time (a kernel lock), and Ctrl-C stops a run within seconds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from mocoflow import interrupts, runlock

REPO = Path(__file__).resolve().parents[1]
REFUSAL = "another run holds this directory"


# --- the lock itself ---

_HOLDER = textwrap.dedent("""
    import sys, time
    from mocoflow import runlock
    runlock.acquire(sys.argv[1])
    print("held", flush=True)
    time.sleep(300)
""")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "MOCOFLOW_PYTHON": sys.executable}


def test_a_held_lock_refuses_a_second_process_and_kill_9_releases_it(tmp_path: Path):
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(runlock.RunLockError, match=rf"^{REFUSAL} \({tmp_path}\): pid {holder.pid} on "):
            runlock.acquire(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    lock = runlock.acquire(tmp_path)  # the kernel dropped the dead holder's lock: nothing to clean up
    assert lock.held
    with pytest.raises(runlock.RunLockError):  # one holder at a time, within a process too
        runlock.acquire(tmp_path)
    lock.release()
    runlock.acquire(tmp_path).release()


@pytest.mark.parametrize(
    ("argv", "runs"),
    [
        (["snakemake", "--cores", "2"], True),
        (["/venv/bin/snakemake", "--touch"], True),
        (["/venv/lib/python3.11/site-packages/snakemake/__main__.py", "--cores", "1", "--configfile", "x.yaml"], True),
        (["snakemake", "-n"], False),
        (["snakemake", "--cores", "1", "-np"], False),
        (["snakemake", "--dry-run"], False),
        (["snakemake", "--unlock"], False),
        (["snakemake", "--report", "report.html"], False),
        (["snakemake", "--lint"], False),
        (["snakemake", "--summary"], False),
        (["snakemake", "--list-rules"], False),
        (["/usr/bin/pytest", "-q"], None),  # Snakemake's Python API: the onstart hook takes the lock
    ],
)
def test_which_command_lines_take_the_lock(argv: list[str], runs: bool | None):
    assert runlock.runs_jobs(argv) is runs


def test_job_processes_never_take_the_lock(tmp_path: Path):
    assert runlock.claim(False, ["snakemake", "--cores", "1"], tmp_path) is None
    assert not (tmp_path / runlock.LOCK_FILE).exists()
    lock = runlock.claim(True, ["snakemake", "--cores", "1"], tmp_path)
    assert lock is not None and lock.held
    assert runlock.ensure_held(lock, tmp_path) is lock
    lock.release()


# --- through Snakemake ---

SLOW_STUDY = {
    "device": "cpu",
    # a model whose build trains for minutes: the run is still going when the test acts on it
    "models": {"slow": {"source": "tiny", "seed": 0, "train_texts": ["Answer: A"], "train_steps": 200000}},
    "pools": {"p": ["slow"]},
    "tasks": {"arith": {"source": "builtin", "generator": "arithmetic", "n_test": 2}},
    "methods": {"single": {}},
}
TARGET = "results/models/slow/card.json"


def _snakemake(workdir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(workdir / "study.yaml"), "--cores", "1", *extra]


def _start(workdir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_snakemake(workdir, *extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(), start_new_session=True)


def _kill_tree(proc: subprocess.Popen) -> None:
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        tree = []
    for p in tree:
        try:
            p.kill()
        except psutil.Error:
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)


def _wait_for_job(proc: subprocess.Popen, timeout: float = 240) -> None:
    """Until the run has a job process (the model build) running."""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"snakemake exited early ({proc.returncode}):\n{proc.stdout.read()[-3000:]}")
        if any("mocoflow.stages.build_model" in " ".join(c.cmdline()) for c in _descendants(proc.pid)):
            return
        time.sleep(0.5)
    pytest.fail("no job started")


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


@pytest.fixture
def slow_study(tmp_path: Path) -> Path:
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(SLOW_STUDY))
    return tmp_path


@pytest.mark.e2e
def test_two_runs_started_at_once_in_one_directory_one_refuses(slow_study: Path):
    runs = [_start(slow_study, TARGET), _start(slow_study, TARGET)]
    try:
        deadline = time.monotonic() + 240
        while all(r.poll() is None for r in runs) and time.monotonic() < deadline:
            time.sleep(0.2)
        loser = next((r for r in runs if r.poll() is not None), None)
        assert loser is not None, "neither run refused"
        winner = runs[1 - runs.index(loser)]
        out = loser.stdout.read()
        assert loser.returncode != 0 and REFUSAL in out, out[-3000:]
        _wait_for_job(winner)  # the other run goes on
        # read-only invocations work while it runs
        for extra in (["-n", TARGET], ["--summary"]):
            proc = subprocess.run(_snakemake(slow_study, *extra), capture_output=True, text=True, env=_env(),
                                  timeout=300)
            assert proc.returncode == 0 and REFUSAL not in proc.stdout + proc.stderr, proc.stderr[-3000:]
        # kill -9: the kernel drops mocoflow's lock; Snakemake's own lock files stay until --unlock
        _kill_tree(winner)
        runlock.acquire(slow_study).release()
        stale = subprocess.run(_snakemake(slow_study, TARGET), capture_output=True, text=True, env=_env(),
                               timeout=300)
        assert stale.returncode != 0 and "--unlock" in stale.stdout + stale.stderr
        assert REFUSAL not in stale.stdout + stale.stderr
        unlock = subprocess.run(_snakemake(slow_study, "--unlock"), capture_output=True, text=True, env=_env(),
                                timeout=300)
        assert unlock.returncode == 0, unlock.stderr[-3000:]
    finally:
        for r in runs:
            _kill_tree(r)


@pytest.mark.e2e
def test_sigint_stops_a_run_and_its_jobs_within_seconds(slow_study: Path):
    run = _start(slow_study, TARGET)
    try:
        _wait_for_job(run)
        jobs = _descendants(run.pid)
        run.send_signal(signal.SIGINT)  # to Snakemake only, as `kill -INT`; a terminal's Ctrl-C reaches the jobs too
        try:
            run.wait(timeout=30)  # before: Snakemake waited for the job to finish (minutes here), then up to 60 s
        except subprocess.TimeoutExpired:
            pytest.fail("snakemake still running 30 s after SIGINT")
        time.sleep(interrupts.KILL_AFTER_SECONDS + 1)
        assert not [j for j in jobs if j.is_running() and j.status() != "zombie"], "a job outlived the run"
        out = run.stdout.read()
        assert run.returncode != 0 and "Terminating processes on user request" in out, out[-3000:]
    finally:
        _kill_tree(run)


def test_cancel_pending_timers_lets_the_interpreter_exit_now(tmp_path: Path):
    code = textwrap.dedent("""
        import threading
        from mocoflow import interrupts
        threading.Timer(120, lambda: None).start()
        daemon = threading.Timer(120, lambda: None); daemon.daemon = True; daemon.start()
        print(interrupts.cancel_pending_timers())
    """)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.stdout.strip() == "1" and time.monotonic() - start < 30
