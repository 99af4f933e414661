"""The escape suite: hostile programs (tests/escapes/programs.py) against the two-sandbox coding check.

Each program is checked for: not passed, nothing written outside, nothing read from the host (no secret or the
checker's test in any output), no process left (the result's leftover, the sandbox's uids and the program's
token in /proc). All programs run once, in parallel, in a module fixture; one test per program reads its
outcome, so a failure names the program. The forging programs run on the unisolated backend too: the
two-process check does not rely on the filesystem isolation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from escapes.programs import (
    DEFAULT_TEST,
    ENTRY,
    FLOAT_TEST,
    PROGRAMS,
    Context,
    Hostile,
    checker_test,
    cleanup_written,
    contained,
    hostile_context,
    render,
)

from mocoflow.scoring.sandbox import CheckResult, Limits, SandboxUnavailable, run_check, select_backend

TIMEOUT_S = 4.0
LIMITS = Limits(address_space=512 << 20, nproc=8, tmpfs_size=16 << 20)
FORGERIES = [p for p in PROGRAMS[:PROGRAMS.index(next(p for p in PROGRAMS if p.name == "read_host_files"))]]


@dataclass
class Outcome:
    result: CheckResult
    problems: list[str]
    seconds: float


def _run_all(programs: list[Hostile], ctx: Context, backend: str) -> dict[str, Outcome]:
    def one(program: Hostile) -> tuple[str, Outcome]:
        token = f"escape-{uuid.uuid4().hex}"
        start = time.monotonic()
        result = run_check(render(program, ctx, token), checker_test(ctx.checker_secret, program.test), ENTRY,
                           timeout_s=TIMEOUT_S, limits=LIMITS, backend=backend)
        problems = contained(result, ctx, token, program)
        cleanup_written(ctx, token)
        return program.name, Outcome(result, problems, time.monotonic() - start)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, programs))


def _backend(name: str) -> str:
    try:
        select_backend(name)
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    return name


@pytest.fixture(scope="module")
def hostile() -> Iterator[Context]:
    with hostile_context() as ctx:
        yield ctx


@pytest.fixture(scope="module")
def bwrap_outcomes(hostile: Context) -> dict[str, Outcome]:
    return _run_all(list(PROGRAMS), hostile, _backend("bwrap"))


@pytest.fixture(scope="module")
def unisolated_outcomes(hostile: Context) -> dict[str, Outcome]:
    return _run_all(FORGERIES, hostile, _backend("subprocess"))


def test_the_suite_has_at_least_30_programs() -> None:
    assert len(PROGRAMS) >= 30 and len({p.name for p in PROGRAMS}) == len(PROGRAMS)


@pytest.mark.parametrize("name", [p.name for p in PROGRAMS])
def test_hostile_program_is_contained(name: str, bwrap_outcomes: dict[str, Outcome]) -> None:
    outcome = bwrap_outcomes[name]
    assert outcome.problems == [], f"{name}: {outcome.problems} ({outcome.result.kind}: {outcome.result.detail})"


@pytest.mark.parametrize("name", [p.name for p in FORGERIES])
def test_forgery_fails_unisolated_too(name: str, unisolated_outcomes: dict[str, Outcome]) -> None:
    result = unisolated_outcomes[name].result
    assert not result.passed, f"{name}: {result.kind}: {result.detail}"
    assert result.leftover == ()


def test_no_network_contact_reached_the_host(bwrap_outcomes: dict[str, Outcome], hostile: Context) -> None:
    time.sleep(0.3)  # let the listener thread see anything in flight
    assert hostile.contacts == []
    assert not any("CONNECTED" in o.result.candidate_stdout or "RESOLVED" in o.result.candidate_stdout
                   for o in bwrap_outcomes.values())


def test_privileged_syscalls_fail(bwrap_outcomes: dict[str, Outcome]) -> None:
    """setuid(0), unshare of user+mount and of network namespaces, mount and chroot all fail (ptrace, 5th,
    can only reach the sandbox's own init, the one process of its pid namespace besides itself)."""
    out = bwrap_outcomes["ctypes_syscalls"].result.candidate_stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("SYSCALLS"))
    codes = [int(v) for v in line.split("[")[1].rstrip("]").split(",")]
    assert [c for i, c in enumerate(codes) if i != 4] == [-1] * 5, line


@pytest.mark.parametrize(("test", "calls"), [(DEFAULT_TEST, 3), (FLOAT_TEST, 2)], ids=["default", "float"])
def test_a_correct_solution_still_passes_next_to_them(hostile: Context, test: str, calls: int) -> None:
    """Control: the same items and limits pass with a real solution (the suite's failures are not vacuous)."""
    result = run_check("def add(x, y):\n    return x + y\n", checker_test(hostile.checker_secret, test), ENTRY,
                       timeout_s=TIMEOUT_S, limits=LIMITS)
    assert result.passed and result.kind == "passed" and result.calls == calls, result
