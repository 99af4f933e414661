"""Sandbox and coding scorer: one test per escape attempt, plus reference solutions for MoCo HumanEval/MBPP.

Wall timeouts are kept small (a few seconds) so the whole file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import socket
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from mocoflow.data.schema import Item
from mocoflow.scoring import coding, run_sandboxed, score_item
from mocoflow.scoring.sandbox import select_backend

MOCO = Path("/work/shared/benchmarks/moco")
SHORT = 5.0


def backend() -> str:
    return select_backend(None)[0]


@pytest.fixture(params=["bwrap", "subprocess"])
def sandbox(request: pytest.FixtureRequest) -> str:
    """Each escape test runs on both backends (bwrap skipped where it does not work)."""
    try:
        select_backend(request.param)
    except RuntimeError as exc:
        pytest.skip(str(exc))
    return request.param


def add_item(test: str | None = None, entry: str = "add") -> Item:
    test = (
        test or "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
    )
    return Item(
        id="c",
        task="t",
        split="test",
        task_type="coding",
        question="Write add(x, y).",
        gold=test,
        metadata={"entry_point": entry},
    )


# -- run_sandboxed: escape attempts ---------------


def test_bwrap_is_used_where_installed() -> None:
    import shutil

    if shutil.which("bwrap") is None:
        pytest.skip("bwrap not installed here")
    assert backend() == "bwrap"


def test_plain_run_works() -> None:
    r = run_sandboxed("print('hello')", SHORT)
    assert r.returncode == 0 and r.stdout.strip() == "hello" and not r.timed_out


def test_no_network_to_host_loopback_listener(sandbox: str) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        code = textwrap.dedent(f"""
            import socket
            s = socket.socket(); s.settimeout(2)
            try:
                s.connect(("127.0.0.1", {port})); print("CONNECTED")
            except OSError as e:
                print("blocked", e)
        """)
        r = run_sandboxed(code, SHORT, backend=sandbox)
    finally:
        srv.close()
    assert "CONNECTED" not in r.stdout and "blocked" in r.stdout


def test_no_network_to_internet(sandbox: str) -> None:
    code = textwrap.dedent("""
        import socket
        s = socket.socket(); s.settimeout(2)
        try:
            s.connect(("1.1.1.1", 53)); print("CONNECTED")
        except OSError as e:
            print("blocked", e)
        print(sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]))
    """)
    r = run_sandboxed(code, SHORT, backend=sandbox)
    assert "CONNECTED" not in r.stdout and "blocked" in r.stdout
    assert r.stdout.strip().splitlines()[-1] in ("['lo']", "[]")  # no interface but loopback


@pytest.mark.parametrize("where", ["repo", "root", "tests"])
def test_cannot_write_outside_its_tmp(where: str, sandbox: str) -> None:
    base = {
        "repo": Path(__file__).resolve().parents[1],
        "root": Path("/root"),
        "tests": Path(__file__).parent,
    }[where]
    target = base / f"sandbox-escape-{uuid.uuid4().hex}.txt"
    code = f"open({str(target)!r}, 'w').write('pwned')\nprint('WROTE')"
    try:
        r = run_sandboxed(code, SHORT, backend=sandbox)
        assert not target.exists()
        assert r.returncode != 0 and "WROTE" not in r.stdout
    finally:
        target.unlink(missing_ok=True)


def test_host_tmp_is_private() -> None:
    if backend() != "bwrap":
        pytest.skip("a private /tmp needs bwrap")
    target = Path("/tmp") / f"sandbox-escape-{uuid.uuid4().hex}.txt"
    try:
        r = run_sandboxed(f"open({str(target)!r}, 'w').write('x')\nprint('WROTE')", SHORT)
        assert "WROTE" in r.stdout  # the sandbox's own /tmp is writable ...
        assert not target.exists()  # ... but it is not the host's
    finally:
        target.unlink(missing_ok=True)


def test_cwd_is_writable_private_tmp(sandbox: str) -> None:
    r = run_sandboxed("import os\nopen('f.txt', 'w').write('x')\nprint(os.getcwd())", SHORT, backend=sandbox)
    assert r.returncode == 0
    assert not Path(r.stdout.strip()).exists()  # removed afterwards


def test_environment_is_empty(sandbox: str) -> None:
    r = run_sandboxed("import json, os\nprint(json.dumps(sorted(os.environ)))", SHORT, backend=sandbox)
    assert r.returncode == 0
    assert set(json.loads(r.stdout)) <= {"PATH", "LANG", "HOME", "TMPDIR", "PWD", "LC_CTYPE"}


def test_fork_bomb_is_bounded(sandbox: str) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.monotonic()
    r = run_sandboxed(code, 3.0, backend=sandbox)
    elapsed = time.monotonic() - start
    assert r.timed_out or r.returncode != 0
    assert elapsed < 15
    after = run_sandboxed(
        "print('alive')", SHORT, backend=sandbox
    )  # the machine (and the sandbox) still work
    assert after.returncode == 0 and "alive" in after.stdout


def test_fork_count_is_limited(sandbox: str) -> None:
    code = textwrap.dedent("""
        import os, time
        n = 0
        try:
            for _ in range(500):
                if os.fork() == 0:
                    time.sleep(2); os._exit(0)
                n += 1
        except OSError:
            pass
        print(n)
    """)
    r = run_sandboxed(code, SHORT, backend=sandbox)
    assert r.returncode == 0 and int(r.stdout.strip()) < 100


def test_infinite_loop_times_out(sandbox: str) -> None:
    start = time.monotonic()
    r = run_sandboxed("while True:\n    pass\n", 2.0, backend=sandbox)
    assert r.timed_out and r.returncode is None
    assert time.monotonic() - start < 10


def test_memory_bomb_fails(sandbox: str) -> None:
    r = run_sandboxed("x = bytearray(4 * 1024 ** 3)\nprint('ALLOCATED')", SHORT, backend=sandbox)
    assert r.returncode != 0 and "ALLOCATED" not in r.stdout


def test_big_file_is_cut_by_fsize_limit(sandbox: str) -> None:
    code = "f = open('big', 'wb')\nfor _ in range(100):\n    f.write(b'x' * 1024 ** 2)\nprint('DONE')"
    r = run_sandboxed(code, SHORT, backend=sandbox)
    assert r.returncode != 0 and "DONE" not in r.stdout


# -- coding scorer: the pass criterion ---------------


def test_correct_solution_passes() -> None:
    result = score_item(add_item(), "```python\ndef add(x, y):\n    return x + y\n```")
    assert result.status == "ok" and result.correct, result


def test_wrong_solution_fails() -> None:
    result = score_item(add_item(), "```python\ndef add(x, y):\n    return x - y\n```")
    assert result.status == "ok" and not result.correct and "AssertionError" in result.detail


def test_function_is_found_by_entry_point_not_first_def() -> None:
    good = "```python\ndef helper(x, y):\n    return x - y\n\ndef add(x, y):\n    return x + y\n```"
    assert score_item(add_item(), good).correct
    misnamed = "```python\ndef plus(x, y):\n    return x + y\n```"
    assert not score_item(add_item(), misnamed).correct


@pytest.mark.parametrize(
    "escape",
    [
        "import sys\nsys.exit(0)",
        "import os\nos._exit(0)",
        "import os\nos.execv('/bin/true', ['true'])",
        "raise SystemExit(0)",
    ],
)
def test_exiting_before_the_checks_fails(escape: str) -> None:
    solution = f"```python\ndef add(x, y):\n    return x - y\n\n{escape}\n```"
    result = score_item(add_item(), solution)
    assert not result.correct, result


def test_infinite_loop_is_a_timeout_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coding, "TIMEOUT_S", 2.0)
    result = score_item(add_item(), "```python\ndef add(x, y):\n    while True:\n        pass\n```")
    assert result.status == "timeout" and not result.correct


def test_no_code_is_unparseable() -> None:
    assert score_item(add_item(), "   ").status == "unparseable"


def test_function_named_check_is_not_shadowed_by_the_test() -> None:
    test = (
        "def check(candidate):\n    assert candidate('aeiou') == 'yes'\n    assert candidate('b') == 'no'\n"
    )
    sol = "def check(s):\n    return 'yes' if set('aeiou') <= set(s) else 'no'\n"
    assert score_item(add_item(test, entry="check"), sol).correct


# -- MoCo HumanEval / MBPP reference solutions ---------------
# The solutions below are written by hand for these specific items (not taken from the data) and must pass.

HUMANEVAL_SOLUTIONS = {
    "HumanEval/0": (  # full function in a fenced block, as the prompt asks
        "```python\nfrom typing import List\n\n\n"
        "def has_close_elements(numbers: List[float], threshold: float)"
        " -> bool:\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
        " for b in numbers[i + 1:])\n```"
    ),
    "HumanEval/38": (  # uses the prompt's helper encode_cyclic, which the reply does not repeat
        "Decoding is encoding twice.\n```python\ndef decode_cyclic(s: str):\n"
        "    return encode_cyclic(encode_cyclic(s))\n```"
    ),
    "HumanEval/53": "    return x + y\n",  # a bare continuation of the prompt's function body
    "HumanEval/23": "def strlen(string: str) -> int:\n    return len(string)\n",  # unfenced code
}
MBPP_SOLUTIONS = {
    "967": (
        "```python\ndef check(string):\n    if len(set(string).intersection('AEIOUaeiou')) >= 5:\n"
        "        return 'accepted'\n    return 'not accepted'\n```"
    ),  # entry point named check
    "818": "```python\ndef lower_ctr(s):\n    return sum(1 for c in s if c.islower())\n```",
    "893": "Here you go:\n```python\ndef Extract(lst):\n    return [x[-1] for x in lst]\n```\nDone.",
    "76": (
        "```python\ndef count_Squares(m, n):\n    if n < m:\n        m, n = n, m\n"
        "    return m * (m + 1) * (2 * m + 1) // 6 + (n - m) * m * (m + 1) // 2\n```"
    ),
    "688": "```python\ndef len_complex(a, b):\n    return abs(complex(a, b))\n```",
}


def _moco_items(name: str) -> dict[str, Item]:
    path = MOCO / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    from mocoflow.data.moco import load_moco_file

    splits = load_moco_file(path)
    return {str(i.metadata.get("source_id", i.id)): i for items in splits.values() for i in items}


@pytest.mark.parametrize("item_id", sorted(HUMANEVAL_SOLUTIONS))
def test_humaneval_reference_solutions_pass(item_id: str) -> None:
    item = _moco_items("humaneval")[item_id]
    result = score_item(item, HUMANEVAL_SOLUTIONS[item_id])
    assert result.status == "ok" and result.correct, result


@pytest.mark.parametrize("item_id", sorted(MBPP_SOLUTIONS))
def test_mbpp_reference_solutions_pass(item_id: str) -> None:
    item = _moco_items("mbpp")[item_id]
    result = score_item(item, MBPP_SOLUTIONS[item_id])
    assert result.status == "ok" and result.correct, result


def test_humaneval_wrong_continuation_fails() -> None:
    item = _moco_items("humaneval")["HumanEval/53"]
    assert not score_item(item, "    return x * y\n").correct


def test_mbpp_entry_point_from_prompt_without_metadata() -> None:
    item = _moco_items("mbpp")["818"]
    bare = Item(
        id=item.id,
        task=item.task,
        split=item.split,
        task_type="coding",
        question=item.question,
        gold=item.gold,
        metadata={},
    )
    assert coding.entry_point(bare) == "lower_ctr"
    assert score_item(bare, MBPP_SOLUTIONS["818"]).correct


def test_humaneval_entry_point_from_prompt_without_metadata() -> None:
    item = _moco_items("humaneval")["HumanEval/38"]
    bare = Item(
        id=item.id,
        task=item.task,
        split=item.split,
        task_type="coding",
        question=item.question,
        gold=item.gold,
        metadata={},
    )
    assert coding.entry_point(bare) == "decode_cyclic"
    assert score_item(bare, HUMANEVAL_SOLUTIONS["HumanEval/38"]).correct
