"""Sandbox and coding scorer: isolation of one program, the backend policy (fail closed without bubblewrap),
the coding scorer's pass criterion, and reference solutions for MoCo HumanEval/MBPP.

The escape suite (hostile programs against the two-sandbox check) is tests/test_sandbox_escapes.py; the wire
format and HumanEval/MBPP-style tests across it are tests/test_sandbox_wire.py. Wall timeouts are kept small
(a few seconds) so the file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mocoflow.data.schema import Item
from mocoflow.scoring import coding, run_sandboxed, score_item
from mocoflow.scoring import sandbox as sbx
from mocoflow.scoring.coding import CodingScorer
from mocoflow.scoring.sandbox import SandboxPolicy, SandboxUnavailable, select_backend

REPO = Path(__file__).resolve().parents[1]
MOCO = Path("/work/shared/benchmarks/moco")
SHORT = 5.0


def backend() -> str:
    return select_backend(None)[0]


def needs_bwrap() -> None:
    try:
        select_backend("bwrap")
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(params=["bwrap", "subprocess"])
def sandbox(request: pytest.FixtureRequest) -> str:
    """Each escape test runs on both backends (bwrap skipped where it does not work)."""
    try:
        select_backend(request.param)
    except SandboxUnavailable as exc:
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


def live_cmdlines_with(token: str) -> list[str]:
    """Command lines of live processes that contain ``token`` (a process a sandbox left behind)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if token in cmd and state != b"Z":
                found.append(f"{name}: {cmd}")
    return found


# -- run_sandboxed: isolation of one program ---------------


def test_bwrap_is_used_where_installed() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bwrap not installed here")
    assert backend() == "bwrap"


def test_plain_run_works() -> None:
    r = run_sandboxed("print('hello')", SHORT)
    assert r.returncode == 0 and r.stdout.strip() == "hello" and not r.timed_out and r.leftover == ()


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
        print(sorted(name for _, name in socket.if_nameindex()))
    """)
    r = run_sandboxed(code, SHORT, backend=sandbox)
    assert "CONNECTED" not in r.stdout and "blocked" in r.stdout
    if sandbox == "bwrap" or os.geteuid() == 0:
        assert r.stdout.strip().splitlines()[-1] in ("['lo']", "[]")  # no interface but loopback


@pytest.mark.parametrize("where", ["repo", "root", "tests"])
def test_cannot_write_outside_its_tmp(where: str, sandbox: str) -> None:
    base = {"repo": REPO, "root": Path("/root"), "tests": Path(__file__).parent}[where]
    target = base / f"sandbox-escape-{uuid.uuid4().hex}.txt"
    code = f"open({str(target)!r}, 'w').write('pwned')\nprint('WROTE')"
    try:
        r = run_sandboxed(code, SHORT, backend=sandbox)
        assert not target.exists()
        assert r.returncode != 0 and "WROTE" not in r.stdout
    finally:
        target.unlink(missing_ok=True)


def test_host_tmp_is_private() -> None:
    needs_bwrap()
    target = Path("/tmp") / f"sandbox-escape-{uuid.uuid4().hex}.txt"
    try:
        r = run_sandboxed(f"open({str(target)!r}, 'w').write('x')\nprint('WROTE')", SHORT, backend="bwrap")
        assert "WROTE" in r.stdout  # the sandbox's own /tmp is writable ...
        assert not target.exists()  # ... but it is not the host's
    finally:
        target.unlink(missing_ok=True)


def test_sandbox_sees_only_what_it_needs(tmp_path: Path) -> None:
    """The filesystem holds the system dirs, the interpreter, ld.so.cache, /dev, its files and /tmp: no /proc,
    no other /etc, no home, no project; a marker file in the project, $HOME and host /tmp cannot be read."""
    needs_bwrap()
    secret, name = uuid.uuid4().hex, uuid.uuid4().hex
    markers = [REPO / f".sandbox-secret-{name}", Path.home() / f".sandbox-secret-{name}",
               Path(tempfile.gettempdir()) / f"sandbox-secret-{name}"]
    for m in markers:
        m.write_text(secret)
    code = textwrap.dedent(f"""
        import json, os
        seen = {{"root": sorted(os.listdir("/")), "etc": sorted(os.listdir("/etc")),
                "proc": os.path.exists("/proc"), "repo": os.path.exists({str(REPO)!r}),
                "home": os.path.exists({str(Path.home() / ".bashrc")!r}), "work": os.path.exists("/work")}}
        for path in {[str(m) for m in markers]!r} + ["/etc/passwd", "/etc/hostname", "/proc/self/environ"]:
            try:
                print(open(path).read())
            except OSError as e:
                print("denied", path, type(e).__name__)
        print(json.dumps(seen))
    """)
    try:
        r = run_sandboxed(code, SHORT, backend="bwrap")
    finally:
        for m in markers:
            m.unlink()
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(seen["root"]) <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev", "tmp",
                                 "sandbox", *[p.split("/")[1] for p in sbx._interpreter_dirs(select_backend()[1])]}
    assert seen["etc"] == ["ld.so.cache"]
    assert not seen["proc"] and not seen["repo"] and not seen["home"] and not seen["work"]
    assert secret not in r.stdout and "root:x:0:0" not in r.stdout
    assert r.stdout.count("denied") == 6


def test_root_dev_and_usr_are_read_only_and_tmp_is_capped() -> None:
    needs_bwrap()
    code = textwrap.dedent("""
        for path in ["/x", "/dev/x", "/usr/x", "/etc/x", "/sandbox/x"]:
            try:
                open(path, "w").write("x"); print("WROTE", path)
            except OSError as e:
                print("denied", path)
        written = 0
        try:
            for i in range(20):
                with open(f"/tmp/f{i}", "wb") as fh:
                    fh.write(b"x" * (8 << 20))
                written += 8
        except OSError as e:
            print("full", type(e).__name__)
        print("MB", written)
    """)
    r = run_sandboxed(code, SHORT, backend="bwrap")
    assert "WROTE" not in r.stdout and r.stdout.count("denied") == 5, r.stdout + r.stderr
    assert "full" in r.stdout and int(r.stdout.split("MB")[-1]) <= sbx.Limits().tmpfs_size >> 20


def test_cwd_is_a_private_dir_removed_afterwards(sandbox: str) -> None:
    name = f"sandbox-cwd-{uuid.uuid4().hex}"
    r = run_sandboxed(f"import os\nopen({name!r}, 'w').write('x')\nprint(os.getcwd())", SHORT, backend=sandbox)
    assert r.returncode == 0, r.stderr
    cwd = r.stdout.strip()
    if sandbox == "bwrap":
        assert cwd == "/tmp" and not (Path("/tmp") / name).exists()  # its own tmpfs, not the host's /tmp
    else:
        assert not Path(cwd).exists()  # removed afterwards


def test_environment_is_empty(sandbox: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCOFLOW_TEST_SECRET", "s3cr3t")
    r = run_sandboxed("import json, os\nprint(json.dumps(dict(os.environ)))", SHORT, backend=sandbox)
    assert r.returncode == 0
    env = json.loads(r.stdout)
    assert set(env) <= {"PATH", "LANG", "HOME", "TMPDIR", "PWD", "LC_CTYPE"} and "s3cr3t" not in r.stdout


def test_fork_bomb_is_bounded(sandbox: str) -> None:
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.monotonic()
    r = run_sandboxed(code, 3.0, backend=sandbox)
    elapsed = time.monotonic() - start
    assert r.timed_out or r.returncode != 0
    assert elapsed < 15 and r.leftover == ()
    after = run_sandboxed("print('alive')", SHORT, backend=sandbox)  # the machine (and the sandbox) still work
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
    assert r.returncode == 0 and int(r.stdout.strip()) <= sbx.Limits().nproc


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


def test_no_process_outlives_the_call(sandbox: str) -> None:
    """A double-forked, setsid daemon that ignores SIGTERM and SIGHUP is gone when run_sandboxed returns."""
    token = f"sbx-daemon-{uuid.uuid4().hex}"
    code = textwrap.dedent(f"""
        import os, signal, sys
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGHUP, signal.SIG_IGN)
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", {token!r}])
            os._exit(0)
        print("parent done")
    """)
    if sandbox == "subprocess" and os.geteuid() != 0:
        pytest.skip("a non-root unisolated run kills by process group only (documented)")
    r = run_sandboxed(code, SHORT, backend=sandbox)
    assert "parent done" in r.stdout, r.stderr
    assert r.leftover == () and live_cmdlines_with(token) == []


# -- backend policy: fail closed without bubblewrap ---------------


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As on a machine without bubblewrap."""
    sbx._working_interpreter.cache_clear()
    monkeypatch.setattr(sbx, "_bwrap_path", lambda: None)
    yield
    sbx._working_interpreter.cache_clear()


def test_without_bwrap_coding_scoring_fails_closed(no_bwrap: None) -> None:
    with pytest.raises(SandboxUnavailable, match=r"bubblewrap.*not installed.*allow_unisolated: true"):
        score_item(add_item(), "def add(x, y):\n    return x + y\n")
    with pytest.raises(SandboxUnavailable):
        run_sandboxed("print(1)", SHORT)
    with pytest.raises(SandboxUnavailable):
        select_backend("bwrap", allow_unisolated=True)  # asked for bwrap explicitly


def test_without_bwrap_the_opt_in_runs_unisolated(no_bwrap: None, caplog: pytest.LogCaptureFixture) -> None:
    sbx._warn_unisolated.cache_clear()
    scorer = CodingScorer(SandboxPolicy(allow_unisolated=True))
    good = scorer.score(add_item(), "def add(x, y):\n    return x + y\n")
    bad = scorer.score(add_item(), "def add(x, y):\n    return x - y\n")
    assert good.correct and "[subprocess]" in good.detail
    assert not bad.correct and bad.status == "ok"
    assert "UNISOLATED" in caplog.text


def test_policy_from_config_names_the_bad_key() -> None:
    assert SandboxPolicy.from_config(None) == SandboxPolicy()
    assert SandboxPolicy.from_config({"allow_unisolated": True}).allow_unisolated
    with pytest.raises(ValueError, match=r"sandbox.allow_unisolated: expected a boolean, got str 'yes'"):
        SandboxPolicy.from_config({"allow_unisolated": "yes"})
    with pytest.raises(ValueError, match=r"sandbox: unknown key\(s\) \['allow_network'\]"):
        SandboxPolicy.from_config({"allow_network": True})


def test_schema_accepts_the_sandbox_key_and_rejects_bad_values() -> None:
    import yaml
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(REPO / "schemas" / "config.schema.yaml")
    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    validate({**cfg, "sandbox": {"allow_unisolated": True}}, schema)
    for bad in ({"allow_unisolated": "yes"}, {"allow_network": True}, True):
        with pytest.raises(WorkflowError):
            validate({**cfg, "sandbox": bad}, schema)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_stage_passes_the_sandbox_key_to_the_scorer(no_bwrap: None, tmp_path: Path) -> None:
    import pandas as pd

    from mocoflow.stages import score

    items = _write_jsonl(tmp_path / "items.jsonl", [add_item().to_dict()])
    preds = _write_jsonl(tmp_path / "preds.jsonl", [{"id": "c", "output": "def add(x, y):\n    return x + y\n"}])
    (tmp_path / "usage.json").write_text("{}")
    argv = ["--items", str(items), "--predictions", str(preds), "--usage", str(tmp_path / "usage.json"),
            "--labels", '{"run": "r", "pool": "p", "model": ""}', "--out", str(tmp_path / "s.parquet")]
    with pytest.raises(SandboxUnavailable):
        score.main(argv)
    score.main([*argv, "--sandbox", '{"allow_unisolated": true}'])
    df = pd.read_parquet(tmp_path / "s.parquet")
    assert df["correct"].tolist() == [True]


def test_score_rules_pass_the_sandbox_key(tmp_path: Path) -> None:
    """A dry run of the smoke study with ``sandbox:`` set shows the key on every score job's command line."""
    import yaml

    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    cfg["sandbox"] = {"allow_unisolated": True}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(configfile), "--cores", "1", "--until", "score_single"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    commands = [line for line in proc.stdout.splitlines() if "mocoflow.stages.score " in line]
    assert commands and all("""--sandbox '{"allow_unisolated": true}'""" in c for c in commands), commands[:2]


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
