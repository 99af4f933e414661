"""Run the hostile programs against whichever mocoflow is on PYTHONPATH and print one line per program.

Before/after measurement of the sandbox (not a test): with this checkout's code the programs go through
``sandbox.run_check``; with a checkout that predates it (one sandboxed program that prints a random token after
``check(...)``), through that checkout's ``build_test_program`` and ``run_sandboxed``, the way its scorer ran them.

    PYTHONPATH=/work/main/src python tests/escapes/compare.py            # before
    PYTHONPATH=$PWD/src python tests/escapes/compare.py                  # after
    ... compare.py --backend subprocess                                  # the plain-subprocess fallback
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from programs import (  # noqa: E402
    ENTRY,
    PROGRAMS,
    Hostile,
    checker_test,
    cleanup_written,
    contained,
    hostile_context,
    render,
)

TIMEOUT_S = 4.0


@dataclass
class OldResult:
    """The fields ``contained`` reads, filled from a single-program run."""

    passed: bool
    kind: str
    detail: str
    candidate_stdout: str
    candidate_stderr: str
    checker_stderr: str = ""
    leftover: tuple[int, ...] = ()
    uids: tuple[int, ...] = ()


def runner(backend: str) -> Any:
    from mocoflow.scoring import coding, sandbox

    if hasattr(sandbox, "run_check"):
        return lambda code, test: sandbox.run_check(code, test, ENTRY, timeout_s=TIMEOUT_S, backend=backend)

    def old(code: str, test: str) -> OldResult:
        token = secrets.token_hex(16)
        run = sandbox.run_sandboxed(coding.build_test_program(code, test, ENTRY, token), TIMEOUT_S, backend=backend)
        passed = run.returncode == 0 and token in run.stdout
        return OldResult(passed, "token" if passed else f"exit {run.returncode}", "", run.stdout, run.stderr)

    return old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["bwrap", "subprocess"], default="bwrap")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    check = runner(args.backend)
    with hostile_context() as ctx:
        def one(program: Hostile) -> tuple[Hostile, Any, list[str], float]:
            token = f"escape-{uuid.uuid4().hex}"
            start = time.monotonic()
            result = check(render(program, ctx, token), checker_test(ctx.checker_secret, program.test))
            problems = contained(result, ctx, token, program)
            cleanup_written(ctx, token)
            return program, result, problems, time.monotonic() - start

        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            outcomes = list(pool.map(one, PROGRAMS))
        time.sleep(0.3)
        contacts = list(ctx.contacts)
    print(f"{'program':28s} {'passed':6s} {'s':>5s}  problems")
    for program, result, problems, seconds in outcomes:
        print(f"{program.name:28s} {result.passed!s:6s} {seconds:5.1f}  {'; '.join(problems)[:160] or 'contained'}")
    bad = [p.name for p, _, problems, _ in outcomes if problems]
    passed = [p.name for p, r, _, _ in outcomes if r.passed]
    print(f"\n{len(PROGRAMS)} programs, backend {args.backend}: {len(passed)} passed the check, "
          f"{len(bad)} not contained; network contacts on the host: {contacts or 'none'}")


if __name__ == "__main__":
    main()
