"""Run untrusted Python (model-written code) where it can neither see the host nor forge a pass.

Two entry points:

- ``run_check(solution, test, entry)``: the coding scorer's check. The candidate runs in one sandbox that loads
  the solution and serves calls of its entry point; the item's test program (``def check(candidate)``) runs in
  a second sandbox with a proxy candidate, and each call crosses between them as plain data over two pipes
  (the wire format is documented in ``sandbox_harness.py``). Supported argument and return types: None, bool,
  int, float, str, list, tuple, dict, set, frozenset, bytes, bytearray, complex, range, Fraction, Decimal,
  nested; subclasses travel as their base type, numbers registered as ``numbers.Integral``/``Real`` as
  int/float, iterators as iterators over their items. Another return type fails the item (``candidate_failed``:
  "unsupported return type"); another argument type is a ``harness_error`` (status ``error``). The
  verdict comes from the checker's sandbox on a third pipe that only this process reads. The candidate never
  sees the test, the expected values or the verdict, so trace hooks, patched builtins, ``exit(0)``, a custom
  ``__eq__`` or anything read from its own source cannot make it pass.
- ``run_sandboxed(code)``: run one program, return its exit status and output.

Isolation (backend ``bwrap``, bubblewrap): new user, pid, network, ipc, uts and cgroup namespaces (so no
network), no nested user namespaces, no capabilities, ``no_new_privs``. The sandbox's filesystem holds only
the system directories (``/usr`` and the ``/bin``, ``/lib*`` links to it) and the interpreter's own prefix
read-only, ``/etc/ld.so.cache``, a minimal ``/dev``, its program files read-only at ``/sandbox`` and a
size-capped private ``/tmp`` (cwd, ``HOME`` and ``TMPDIR``); no ``/proc``, no host home, no other ``/etc``, no
project, results or other repositories. Resource limits (``Limits``: CPU seconds, address space, file size,
open files, processes) are applied by the harness to itself before it reads untrusted code. When the scorer
runs as root each sandbox process runs under a random unprivileged uid of its own.

Without a working bubblewrap, ``select_backend`` raises ``SandboxUnavailable`` (coding scoring fails closed)
unless the caller opts into ``allow_unisolated`` (config ``sandbox: {allow_unisolated: true}``): then a plain
subprocess with the same limits and harness, a private cwd, an empty environment, and (as root) a uid of its
own and a private network namespace. It has no filesystem isolation: the code can read world-readable files
and, as a non-root scorer, signal or trace the scorer's other processes; use it only for trusted models.

Cleanup: nothing outlives the call. A bwrap sandbox is killed through its pid namespace (SIGKILL to its init,
whose exit kills every process in it) and, as root, through its uid (``kill -1`` as that uid, repeated); the
call then waits until no process of the sandbox is left and reports any that are (``leftover``). A non-root
unisolated run is killed by process group only (a daemon that calls ``setsid`` can escape it).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger("mocoflow.scoring.sandbox")

BACKENDS = ("bwrap", "subprocess")
_OUTPUT_TAIL = 64 * 1024
_UID_RANGE = (200_000, 299_999)  # unassigned uids; one per sandbox when the scorer is root
_CLONE_NEWNET = 0x40000000
_MIN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_INSIDE = "/sandbox"  # where a bwrap sandbox sees its program files
_REAP_S = 5.0  # seconds to wait for a killed sandbox's processes to be gone


class SandboxUnavailable(RuntimeError):
    """No isolating sandbox works here and the configuration does not allow an unisolated one."""


@dataclass(frozen=True)
class SandboxPolicy:
    """How model-written code may be run: the study config's ``sandbox:`` mapping.

    ``allow_unisolated``: without a working bubblewrap, run the code in a plain subprocess (resource limits,
    private cwd, empty environment, but no filesystem or network isolation) instead of failing. Default off.
    """

    allow_unisolated: bool = False

    @classmethod
    def from_config(cls, value: Mapping[str, Any] | None, where: str = "sandbox") -> SandboxPolicy:
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; valid: {sorted(known)}")
        flag = value.get("allow_unisolated", False)
        if not isinstance(flag, bool):
            raise ValueError(f"{where}.allow_unisolated: expected a boolean, got {type(flag).__name__} {flag!r}")
        return cls(allow_unisolated=flag)


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits of a sandbox (sizes in bytes)."""

    address_space: int = 1 << 30
    file_size: int = 10 << 20
    nproc: int = 16
    nofile: int = 256
    cpu_s: int | None = None  # default: the wall timeout rounded up, plus one second
    tmpfs_size: int = 64 << 20  # the private /tmp (bwrap)


@dataclass(frozen=True)
class SandboxResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    backend: str
    detail: str = field(default="")
    leftover: tuple[int, ...] = ()  # pids of sandbox processes still alive after cleanup (should be empty)
    uids: tuple[int, ...] = ()  # the private uid the program ran as (root only), to check from outside


@dataclass(frozen=True)
class CheckResult:
    """The verdict of ``run_check``. ``kind`` is ``passed``, ``assertion``, ``test_raised``,
    ``candidate_raised``, ``candidate_failed`` (did not load, exited or crashed during a call, broke the
    protocol, returned an unsupported type), ``harness_error`` (the test needs what the boundary cannot do),
    ``checker_failed`` (no verdict from the checker) or ``timeout``."""

    passed: bool
    kind: str
    detail: str
    backend: str
    calls: int = 0
    candidate_stdout: str = ""
    candidate_stderr: str = ""
    checker_stderr: str = ""
    leftover: tuple[int, ...] = ()
    uids: tuple[int, ...] = ()  # the candidate's and the checker's private uids (root only)

    @property
    def timed_out(self) -> bool:
        return self.kind == "timeout"


# --------------------------------------------------------------------------- host helpers


@functools.cache
def _harness_source() -> str:
    return Path(__file__).with_name("sandbox_harness.py").read_text(encoding="utf-8")


def _proc_uids() -> dict[int, int]:
    """pid -> owner uid of every live (non-zombie) process."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{name}").st_uid
            with open(f"/proc/{name}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":
            out[int(name)] = uid
    return out


def _own_task_count(uid: int) -> int:
    """Tasks (threads) owned by ``uid``; RLIMIT_NPROC counts these for a non-root user."""
    total = 0
    for pid, owner in _proc_uids().items():
        if owner == uid:
            try:
                total += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                continue
    return total


def _free_uids(count: int) -> list[int | None]:
    """``count`` distinct random uids from the private range that no process uses now (root only; else Nones)."""
    if os.geteuid() != 0:
        return [None] * count
    used = set(_proc_uids().values())
    chosen: list[int | None] = []
    while len(chosen) < count:
        uid = _UID_RANGE[0] + secrets.randbelow(_UID_RANGE[1] - _UID_RANGE[0] + 1)
        if uid not in used:
            used.add(uid)
            chosen.append(uid)
    return chosen


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int, start: int | None) -> bool:
    """Whether ``pid`` is still the process that started at ``start`` and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            rest = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    return rest[0] != b"Z" and (start is None or int(rest[19]) == start)


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid``: ``kill -KILL -1`` run as that uid (one sweep, so a fork bomb cannot
    outrun it), then each process of the uid still listed in /proc (the scorer is root here)."""
    try:
        subprocess.run([shutil.which("kill") or "/bin/kill", "-KILL", "-1"], user=uid, group=uid, extra_groups=[],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=10, check=False, close_fds=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("kill -1 as uid %d failed: %s", uid, exc)
    for pid, owner in _proc_uids().items():
        if owner == uid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``proc`` to exit (a pidfd wakes at once; ``Popen.wait`` polls at 50 ms)."""
    if proc.returncode is None:
        try:
            pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            pidfd = None
        if pidfd is not None:
            try:
                if not select.select([pidfd], [], [], max(0.0, timeout_s))[0]:
                    return False
            finally:
                os.close(pidfd)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def _tail(path: str) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - _OUTPUT_TAIL))
        return fh.read().decode("utf-8", errors="replace")


@functools.cache
def _bwrap_options() -> frozenset[str]:
    """The options this bubblewrap understands (``--disable-userns`` and ``--size`` are newer than 0.4)."""
    try:
        text = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(word for word in text.split() if word.startswith("--"))


def _interpreter_dirs(python: str) -> list[str]:
    """Directories the interpreter needs besides the system ones: its prefix when that is not under /usr."""
    prefix = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    if prefix in ("", "/") or any(prefix == d or prefix.startswith(d + "/") for d in _SYSTEM_DIRS):
        return []
    return [prefix]


def _bwrap_argv(bundle: str, python: str, limits: Limits, info_fd: int) -> list[str]:
    known = _bwrap_options()
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "sandbox", "--info-fd", str(info_fd)]
    if "--disable-userns" in known:
        argv.append("--disable-userns")
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _interpreter_dirs(python):
        argv += ["--ro-bind", path, path]
    sized = (lambda n: ["--size", str(n)]) if "--size" in known else (lambda n: [])
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--dev", "/dev"]
    argv += [*sized(1 << 20), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    argv += [*sized(limits.tmpfs_size), "--tmpfs", "/tmp", "--ro-bind", bundle, _INSIDE, "--remount-ro", "/"]
    argv += ["--chdir", "/tmp", "--clearenv", "--setenv", "PATH", _MIN_ENV["PATH"], "--setenv", "LANG",
             _MIN_ENV["LANG"], "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp", "--"]
    return argv


def _unshare_net_then(uid: int) -> Any:
    """preexec for an unisolated run as root: a private network namespace (best effort), then the run's uid."""

    def apply() -> None:
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).unshare(_CLONE_NEWNET)
        except (OSError, AttributeError):
            pass
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    return apply


# --------------------------------------------------------------------------- one sandboxed process


class _Box:
    """One sandboxed process: a private folder with its program files, its own uid as root, kill + verify."""

    def __init__(self, backend: str, python: str, limits: Limits, timeout_s: float, files: Mapping[str, str],
                 uid: int | None):
        self.backend, self.python, self.limits = backend, python, limits
        self.cpu_s = limits.cpu_s or math.ceil(timeout_s) + 1
        self.uid = uid
        self.stopped = False
        self.dir = tempfile.mkdtemp(prefix="mocoflow-sbx-")
        self.out = tempfile.mkdtemp(prefix="mocoflow-sbx-out-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.ns_pid: int | None = None
        self.ns_start: int | None = None
        for name, text in {"harness.py": _harness_source(), **files}.items():
            path = os.path.join(self.dir, name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(path, 0o600)
            if self.uid is not None:
                os.chown(path, self.uid, self.uid)
        os.chmod(self.dir, 0o700)
        if self.uid is not None:
            os.chown(self.dir, self.uid, self.uid)

    def path(self, name: str) -> str:
        """``name``'s path as the sandboxed process sees it."""
        return f"{_INSIDE}/{name}" if self.backend == "bwrap" else os.path.join(self.dir, name)

    def start(self, role: Sequence[str], pass_fds: Sequence[int] = (), site: bool = True) -> None:
        """Start the harness in ``role``; ``site=False`` skips site-packages (the checker needs the stdlib only)."""
        nproc = self.limits.nproc if self.uid is not None else _own_task_count(os.getuid()) + self.limits.nproc
        nnp = int(self.backend != "bwrap")  # bwrap sets no_new_privs itself
        spec = f"{self.cpu_s},{self.limits.address_space},{self.limits.file_size},{self.limits.nofile},{nproc},{nnp}"
        argv = [self.python, "-I", "-B", *([] if site else ["-S"]), self.path("harness.py"), spec, *role]
        info_r = info_w = None
        preexec = None
        if self.backend == "bwrap":
            info_r, info_w = os.pipe()
            argv = _bwrap_argv(self.dir, self.python, self.limits, info_w) + argv
        elif self.uid is not None:
            preexec = _unshare_net_then(self.uid)
        as_uid = self.uid is not None and preexec is None
        try:
            out_path, err_path = os.path.join(self.out, "stdout"), os.path.join(self.out, "stderr")
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                self.proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.dir,
                    env={**_MIN_ENV, "HOME": self.dir, "TMPDIR": self.dir}, start_new_session=True, close_fds=True,
                    pass_fds=(*pass_fds, *([info_w] if info_w is not None else [])),
                    user=self.uid if as_uid else None, group=self.uid if as_uid else None,
                    extra_groups=[] if as_uid else None, preexec_fn=preexec,
                )
        except BaseException:
            if info_r is not None:
                os.close(info_r)
            raise
        finally:
            if info_w is not None:
                os.close(info_w)
        if info_r is not None:
            self._read_info(info_r)

    def _read_info(self, fd: int) -> None:
        """The host pid of the sandbox's pid-namespace init, from bwrap's ``--info-fd`` (EOF if bwrap failed)."""
        data = b""
        try:
            while chunk := os.read(fd, 4096):
                data += chunk
                try:
                    info = json.loads(data)
                except ValueError:
                    continue
                self.ns_pid = int(info["child-pid"])
                self.ns_start = _start_time(self.ns_pid)
                return
        finally:
            os.close(fd)

    def wait(self, timeout_s: float) -> bool:
        """Wait for the process to exit; False on timeout."""
        assert self.proc is not None
        return _wait_exit(self.proc, timeout_s)

    def kill(self) -> None:
        """SIGKILL the sandbox: its pid namespace's init (the kernel then kills everything inside), its uid's
        processes when it has no namespace, its process group; then reap the process we started."""
        if self.proc is None:
            return
        if self.ns_pid is not None and _alive(self.ns_pid, self.ns_start):
            try:
                os.kill(self.ns_pid, signal.SIGKILL)
            except OSError:
                pass
        elif self.uid is not None and self.proc.returncode is None:
            _kill_uid(self.uid)
        if not self.wait(_REAP_S):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # strays left in the group after a normal exit
        except OSError:
            pass

    def left(self, uids_now: Mapping[int, int]) -> list[int]:
        """Pids of this sandbox still alive, given ``uids_now`` (pid -> uid of every live process)."""
        left = [self.ns_pid] if self.ns_pid is not None and _alive(self.ns_pid, self.ns_start) else []
        if self.uid is not None:
            left += [pid for pid, owner in uids_now.items() if owner == self.uid]
        return left

    def outputs(self) -> tuple[str, str]:
        return _tail(os.path.join(self.out, "stdout")), _tail(os.path.join(self.out, "stderr"))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.out, ignore_errors=True)


def _stop(boxes: Sequence[_Box]) -> tuple[int, ...]:
    """Kill the sandboxes and wait until none of their processes is left; the pids still alive after
    ``_REAP_S`` seconds (logged as an error; none expected)."""
    boxes = [box for box in boxes if not box.stopped]
    if not boxes:
        return ()
    deadline = time.monotonic() + _REAP_S
    for box in boxes:
        box.kill()
        box.stopped = True
    while True:
        uids_now = _proc_uids() if any(box.uid is not None for box in boxes) else {}
        left = {box: box.left(uids_now) for box in boxes}
        if not any(left.values()):
            return ()
        if time.monotonic() > deadline:
            pids = tuple(sorted({pid for pids in left.values() for pid in pids}))
            log.error("sandbox processes %s still alive %.0f s after the kill", pids, _REAP_S)
            return pids
        for box, pids in left.items():
            if pids and box.uid is not None:
                _kill_uid(box.uid)
        time.sleep(0.01)


# --------------------------------------------------------------------------- backends


def _interpreters() -> list[str]:
    """Interpreters to probe, as real paths: this process's base Python, then the system's ``python3``. Never
    one inside a virtualenv: its folder (often in the project) would have to be visible in the sandbox."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    seen: list[str] = []
    for cand in (os.path.join(sys.base_prefix, "bin", version), sys.executable, "/usr/bin/python3",
                 shutil.which("python3")):
        real = os.path.realpath(cand) if cand else ""
        venv = os.path.exists(os.path.join(os.path.dirname(os.path.dirname(real)), "pyvenv.cfg"))
        if real and os.path.exists(real) and not venv and real not in seen:
            seen.append(real)
    return seen


def _run_program(code: str, timeout_s: float, limits: Limits, backend: str, python: str) -> SandboxResult:
    box = _Box(backend, python, limits, timeout_s, {"program.py": code}, _free_uids(1)[0])
    try:
        box.start(["run", box.path("program.py")])
        timed_out = not box.wait(timeout_s)
        leftover = _stop([box])
        assert box.proc is not None
        rc = box.proc.returncode
        if rc in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            timed_out = True
        stdout, stderr = box.outputs()
        return SandboxResult(returncode=None if timed_out else rc, stdout=stdout, stderr=stderr,
                             timed_out=timed_out, backend=backend, leftover=leftover,
                             uids=(box.uid,) if box.uid is not None else (),
                             detail=f"timeout after {timeout_s:g}s" if timed_out else "")
    finally:
        _stop([box])
        box.remove()


def _bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.cache
def _working_interpreter(backend: str) -> tuple[str | None, str]:
    """(the first interpreter a probe run succeeds with, the last failure's reason)."""
    if backend == "bwrap" and _bwrap_path() is None:
        return None, "bubblewrap (bwrap) is not installed"
    reason = "no Python interpreter found"
    for python in _interpreters():
        try:
            r = _run_program("print('sandbox-probe-ok')", 20.0, Limits(), backend, python)
        except OSError as exc:
            reason = f"{backend} with {python}: {exc}"
            continue
        if r.returncode == 0 and "sandbox-probe-ok" in r.stdout:
            log.info("sandbox backend %s with %s", backend, python)
            return python, ""
        reason = f"{backend} with {python}: exit {r.returncode}: {r.stderr.strip()[-300:]}"
        log.debug("sandbox probe failed: %s", reason)
    return None, reason


@functools.cache
def _warn_unisolated() -> None:
    log.warning("running model-written code UNISOLATED (sandbox.allow_unisolated): a plain subprocess with "
                "resource limits only; it can read world-readable host files and, run as non-root, signal the "
                "scorer's processes")


def select_backend(preferred: str | None = None, allow_unisolated: bool = False) -> tuple[str, str]:
    """(backend, interpreter): bwrap when it works here; else a plain subprocess if ``allow_unisolated`` or
    ``preferred == "subprocess"``; else ``SandboxUnavailable`` with what to do about it."""
    if preferred is not None and preferred not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {preferred!r}; valid: {BACKENDS}")
    if preferred in (None, "bwrap"):
        python, reason = _working_interpreter("bwrap")
        if python is not None:
            return "bwrap", python
        if preferred == "bwrap" or not allow_unisolated:
            raise SandboxUnavailable(
                f"coding scoring runs model-written code only inside bubblewrap, which does not work here "
                f"({reason}). Install it (`make setup` does, as root on Debian; or `apt-get install bubblewrap`), "
                f"or set `sandbox: {{allow_unisolated: true}}` in the study config to run the code in a plain "
                f"subprocess with resource limits only (no filesystem or network isolation: trusted models only)")
    python, reason = _working_interpreter("subprocess")
    if python is None:
        raise SandboxUnavailable(f"no working sandbox: {reason}")
    if preferred is None:
        _warn_unisolated()
    return "subprocess", python


def run_sandboxed(code: str, timeout_s: float = 10.0, *, limits: Limits | None = None,
                  backend: str | None = None, allow_unisolated: bool = False) -> SandboxResult:
    """Run the Python program ``code`` sandboxed; never raises for anything the program does.

    ``backend`` forces "bwrap" or "subprocess" (default: bwrap, or ``SandboxUnavailable``; see
    ``select_backend``). A run past ``timeout_s`` seconds of wall time (or its CPU limit) has ``timed_out=True``
    and ``returncode=None``."""
    chosen, python = select_backend(backend, allow_unisolated)
    return _run_program(code, timeout_s, limits or Limits(), chosen, python)


def run_check(solution: str, test: str, entry: str, *, prompt: str | None = None, timeout_s: float = 10.0,
              limits: Limits | None = None, backend: str | None = None,
              allow_unisolated: bool = False) -> CheckResult:
    """Check the function ``entry`` of ``solution`` with ``test`` (which defines ``check(candidate)``), the
    candidate and the checker each in a sandbox of its own; ``prompt`` is code the test may use (HumanEval's
    helpers), run on the checker's side. Never raises for anything the code does."""
    chosen, python = select_backend(backend, allow_unisolated)
    limits = limits or Limits()
    files = {"test.py": test, **({"prompt.py": prompt} if prompt else {})}
    cand_uid, check_uid = _free_uids(2)
    candidate = _Box(chosen, python, limits, timeout_s, {"solution.py": solution}, cand_uid)
    checker = _Box(chosen, python, limits, timeout_s, files, check_uid)
    req_r, req_w = os.pipe()  # checker -> candidate: calls
    rep_r, rep_w = os.pipe()  # candidate -> checker: replies
    ver_r, ver_w = os.pipe()  # checker -> this process: the verdict
    try:
        try:
            candidate.start(["serve", candidate.path("solution.py"), entry, str(req_r), str(rep_w)], (req_r, rep_w))
            checker.start(["check", checker.path("prompt.py") if prompt else "-", checker.path("test.py"), entry,
                           str(rep_r), str(req_w), str(ver_w)], (rep_r, req_w, ver_w), site=False)
        finally:
            for fd in (req_r, req_w, rep_r, rep_w, ver_w):
                os.close(fd)
        finished = checker.wait(timeout_s)
        leftover = _stop([candidate, checker])
        verdict = _read_verdict(ver_r) if finished else None
        cand_out, cand_err = candidate.outputs()
        _, check_err = checker.outputs()
        common = {"backend": chosen, "candidate_stdout": cand_out, "candidate_stderr": cand_err,
                  "checker_stderr": check_err, "leftover": leftover,
                  "uids": tuple(uid for uid in (cand_uid, check_uid) if uid is not None)}
        if not finished:
            return CheckResult(False, "timeout", f"timeout after {timeout_s:g}s", **common)
        assert checker.proc is not None
        if verdict is None or checker.proc.returncode != 0:
            last = check_err.strip().splitlines()[-1:] or ["no verdict"]
            detail = f"the checker gave no verdict (exit {checker.proc.returncode}): {last[0][:300]}"
            return CheckResult(False, "checker_failed", detail, **common)
        passed = verdict.get("passed") is True and verdict.get("kind") == "passed"
        return CheckResult(passed, str(verdict.get("kind")), str(verdict.get("detail", ""))[:2000],
                           calls=int(verdict.get("calls", 0) or 0), **common)
    finally:
        os.close(ver_r)
        _stop([candidate, checker])  # again, in case of an error above (quick when already done)
        candidate.remove()
        checker.remove()


def _read_verdict(fd: int) -> dict[str, Any] | None:
    """The checker's verdict: one JSON object line (the checker has exited, so this does not block)."""
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    try:
        verdict = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return verdict if isinstance(verdict, dict) else None
