"""One run per working directory: a kernel lock that Snakemake's own lock files cannot replace.

Snakemake checks its lock files and then writes them, so two runs started at the same moment both pass the
check and run the same jobs. mocoflow therefore also takes an exclusive ``flock`` on
``.snakemake/mocoflow-run.lock`` in the working directory, in the Snakemake process that schedules jobs
(never in job processes), for every invocation that runs or touches jobs. The kernel holds it as long as
that process lives and drops it when the process ends, however it ends (``kill -9`` included), so the lock
can never go stale. A second run finds it taken and stops at once with "another run holds this directory".

Invocations that only read (``-n``/``--dry-run``, ``--unlock``, ``--report``, ``--lint``, ``--summary``,
``--list-*``, ``--dag``...) never take it, so they work while a run is going; ``--unlock`` after a killed
run clears Snakemake's own stale lock files and leaves a live run's kernel lock alone.

When Snakemake is driven through its Python API instead of its command line, the command line says nothing
about the invocation; the lock is then taken by the ``onstart`` hook, which Snakemake calls only when jobs
are about to run (see :func:`ensure_held`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE = Path(".snakemake") / "mocoflow-run.lock"

# Snakemake command-line options (argparse ``dest`` names) of invocations that run no job and change no
# output: they neither take the lock nor are refused by it. (--delete-all-output, --cleanup-metadata and
# --touch change outputs or their records, so they take it.)
READ_ONLY_OPTIONS = (
    "dryrun", "unlock", "report", "lint", "list_rules", "list_target_rules", "summary", "detailed_summary",
    "dag", "rulegraph", "filegraph", "d3dag", "print_compilation", "list_changes", "list_untracked",
    "list_input_changes", "list_params_changes", "containerize", "archive", "generate_unit_tests",
    "export_cwl", "cleanup_shadow", "list_conda_envs", "conda_create_envs_only",
)


class RunLockError(RuntimeError):
    """Another run holds this working directory."""


@dataclass
class RunLock:
    """A held run lock (released when the process ends, or by :meth:`release`)."""

    path: Path
    fd: int | None = field(default=None, repr=False)

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None


def acquire(directory: str | os.PathLike[str] = ".") -> RunLock:
    """Take the run lock of ``directory`` without waiting; RunLockError when another process holds it."""
    path = Path(directory) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by job processes (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(_read_holder(fd))
        os.close(fd)
        raise RunLockError(
            f"another run holds this directory ({Path(directory).resolve()}): {holder}. Wait for it to "
            "finish or stop it (Ctrl-C); dry runs (-n), --report and --unlock work meanwhile.") from None
    except BaseException:
        os.close(fd)
        raise
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": list(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    log.debug("run lock %s taken (pid %d)", path, os.getpid())
    return RunLock(path=path, fd=fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        return json.loads(os.pread(fd, 65536, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder.get("pid"):
        return "a process that is still starting"
    argv = " ".join(str(a) for a in holder.get("argv", [])[1:])
    return (f"pid {holder['pid']} on {holder.get('host', '?')} since {holder.get('started', '?')}"
            + (f" (snakemake {argv})" if argv else ""))


def runs_jobs(argv: list[str]) -> bool | None:
    """Whether a Snakemake command line runs (or touches) jobs: False for read-only invocations, None
    when ``argv`` is not a Snakemake command line (Snakemake driven through its Python API)."""
    program = Path(argv[0]).name if argv else ""
    if not (program == "snakemake" or (program == "__main__.py" and Path(argv[0]).parent.name == "snakemake")):
        return None
    from snakemake.cli import get_argument_parser

    try:
        args, _unknown = get_argument_parser().parse_known_args(argv[1:])
    except (SystemExit, Exception):  # an invalid command line: Snakemake itself reports it
        return None
    return not any(getattr(args, name, None) for name in READ_ONLY_OPTIONS)


def claim(is_main_process: bool, argv: list[str], directory: str | os.PathLike[str] = ".") -> RunLock | None:
    """Take the lock while the Snakefile is parsed, in the scheduling process of a run that executes
    jobs; None where no lock is due now (job processes, read-only invocations, API use: see
    :func:`ensure_held`). Raises RunLockError when another run holds the directory."""
    if not is_main_process or not runs_jobs(argv):
        return None
    return acquire(directory)


def ensure_held(lock: RunLock | None, directory: str | os.PathLike[str] = ".") -> RunLock:
    """From the ``onstart`` hook (jobs are about to run): the lock taken at parse time, or take it now.
    A lock taken here stays held until the process ends (its descriptor is never closed)."""
    return lock if lock is not None and lock.held else acquire(directory)
