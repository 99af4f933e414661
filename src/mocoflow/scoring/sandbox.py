"""Run untrusted Python (model-written code plus its tests) in a restricted child process.

Layers, all applied by ``run_sandboxed``:
  - a fresh session / process group (``start_new_session``); a wall-clock timeout kills the whole group;
  - resource limits set in the child (``resource.setrlimit``): CPU seconds, address space, file size, open
    files, processes (``RLIMIT_NPROC``), no core dumps;
  - when the scorer runs as root, the child drops to a random unprivileged uid/gid first: root ignores
    ``RLIMIT_NPROC`` and could write anywhere, and a per-run uid makes the process count per run;
  - bubblewrap (``bwrap``) when present and a probe run succeeds: new user/pid/net/ipc/uts namespaces
    (``--unshare-all``, so no network), read-only root, private ``/tmp``, only the run's work dir
    writable, ``--die-with-parent``, cleared environment. Otherwise a plain subprocess (logged warning);
    as root it still tries a private network namespace.
  - the environment is empty except PATH/LANG/HOME; cwd is a private temporary dir removed afterwards.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("mocoflow.scoring.sandbox")

BACKENDS = ("bwrap", "subprocess")
_OUTPUT_TAIL = 64 * 1024
_UID_RANGE = (200_000, 299_999)  # unassigned uids; one per run
_CLONE_NEWNET = 0x40000000
_MIN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits (address space and file size in bytes)."""

    address_space: int = 1 << 30
    file_size: int = 10 << 20
    nproc: int = 32
    nofile: int = 256
    cpu_s: int | None = None  # default: the wall timeout rounded up, plus one second


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    backend: str
    detail: str = field(default="")


def _own_task_count(uid: int) -> int:
    """Tasks (threads) owned by ``uid``; RLIMIT_NPROC counts these for a non-root user."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid == uid:
                total += len(os.listdir(f"/proc/{name}/task"))
        except OSError:
            continue
    return total


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _preexec(limits: Limits, cpu_s: int, nproc: int, uid: int | None, netns: bool) -> Callable[[], None]:
    def apply() -> None:
        def cap(kind: int, value: int) -> None:
            soft, hard = resource.getrlimit(kind)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(kind, (value, value))

        if netns and _LIBC is not None:
            _LIBC.unshare(_CLONE_NEWNET)  # best effort; bwrap does this properly
        cap(resource.RLIMIT_CPU, cpu_s)
        cap(resource.RLIMIT_AS, limits.address_space)
        cap(resource.RLIMIT_FSIZE, limits.file_size)
        cap(resource.RLIMIT_NOFILE, limits.nofile)
        cap(resource.RLIMIT_NPROC, nproc)
        cap(resource.RLIMIT_CORE, 0)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return apply


def _bwrap_argv(workdir: str) -> list[str]:
    fixed = "bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --ro-bind / / --tmpfs /tmp"
    env = ["--clearenv", "--setenv", "PATH", _MIN_ENV["PATH"], "--setenv", "LANG", _MIN_ENV["LANG"]]
    env += ["--setenv", "HOME", workdir, "--setenv", "TMPDIR", workdir]
    mounts = ["--bind", workdir, workdir, "--dev", "/dev", "--proc", "/proc", "--chdir", workdir]
    return fixed.split() + mounts + env


def _kill_uid(uid: int) -> None:
    """Kill every process of the run's private uid (stragglers that left the process group)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _tail(path: str) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - _OUTPUT_TAIL))
        return fh.read().decode("utf-8", errors="replace")


def _run(code: str, timeout_s: float, limits: Limits, backend: str, python: str) -> SandboxResult:
    root = os.geteuid() == 0
    uid = random.randint(*_UID_RANGE) if root else None
    nproc = limits.nproc if root else _own_task_count(os.getuid()) + limits.nproc
    cpu_s = limits.cpu_s or math.ceil(timeout_s) + 1
    workdir = tempfile.mkdtemp(prefix="mocoflow-sbx-")
    outdir = tempfile.mkdtemp(prefix="mocoflow-sbx-out-")
    try:
        prog = os.path.join(workdir, "program.py")
        with open(prog, "w", encoding="utf-8") as fh:
            fh.write(code)
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chown(prog, uid, uid)
        os.chmod(workdir, 0o700)
        argv = [python, "-I", "-B", prog]
        if backend == "bwrap":
            argv = _bwrap_argv(workdir) + argv
        out_path, err_path = os.path.join(outdir, "stdout"), os.path.join(outdir, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=workdir,
                env={**_MIN_ENV, "HOME": workdir, "TMPDIR": workdir},
                start_new_session=True,
                close_fds=True,
                preexec_fn=_preexec(limits, cpu_s, nproc, uid, root and backend != "bwrap"),
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group, also after a normal exit (stray children)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        if uid is not None and backend != "bwrap":
            _kill_uid(uid)
        rc = proc.returncode
        if rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            timed_out = True
        return SandboxResult(
            returncode=None if timed_out else rc,
            stdout=_tail(out_path),
            stderr=_tail(err_path),
            timed_out=timed_out,
            backend=backend,
            detail=f"timeout after {timeout_s:g}s" if timed_out else "",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(outdir, ignore_errors=True)


def _interpreters() -> list[str]:
    seen: list[str] = []
    for cand in (
        sys.executable,
        os.path.realpath(sys.executable),
        "/usr/bin/python3",
        shutil.which("python3"),
    ):
        if cand and cand not in seen and os.path.exists(cand):
            seen.append(cand)
    return seen


def _probe(backend: str, python: str) -> bool:
    try:
        r = _run("print('sandbox-probe-ok')", 20.0, Limits(), backend, python)
    except OSError as exc:
        log.debug("sandbox probe %s/%s failed: %s", backend, python, exc)
        return False
    ok = r.returncode == 0 and "sandbox-probe-ok" in r.stdout
    if not ok:
        log.debug(
            "sandbox probe %s/%s failed: rc=%s stderr=%s", backend, python, r.returncode, r.stderr[-500:]
        )
    return ok


@functools.cache
def select_backend(preferred: str | None = None) -> tuple[str, str]:
    """(backend, interpreter) to use: bwrap when installed and a probe run works, else a plain subprocess.

    The interpreter is the first of this process's Python and the system ``python3`` that the (possibly
    unprivileged) child can start."""
    if preferred is not None and preferred not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {preferred!r}; valid: {BACKENDS}")
    order = (
        [preferred] if preferred else (["bwrap", "subprocess"] if shutil.which("bwrap") else ["subprocess"])
    )
    for backend in order:
        for python in _interpreters():
            if _probe(backend, python):
                if backend == "subprocess" and preferred is None:
                    log.warning(
                        "bubblewrap (bwrap) unavailable or not working here: running untrusted code in a "
                        "plain subprocess with resource limits only (no filesystem/network isolation)"
                    )
                log.info("sandbox backend %s with %s", backend, python)
                return backend, python
    raise RuntimeError(f"no working sandbox backend among {order} with interpreters {_interpreters()}")


def run_sandboxed(
    code: str, timeout_s: float = 10.0, *, limits: Limits | None = None, backend: str | None = None
) -> SandboxResult:
    """Run the Python program ``code`` sandboxed; never raises for anything the program does.

    ``backend`` forces "bwrap" or "subprocess" (default: bwrap when it works). A run past ``timeout_s``
    seconds of wall time (or its CPU limit) has ``timed_out=True`` and ``returncode=None``."""
    chosen, python = select_backend(backend)
    return _run(code, timeout_s, limits or Limits(), chosen, python)
