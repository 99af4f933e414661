"""The study's sandbox policy reaches the methods: a method grades outputs (dev selection, rewards, merge
candidates) with ``ctx.score``, the task's scorer under the config's ``sandbox:`` policy, which the collaborate
and merge stages build from ``params["sandbox"]``. Without bubblewrap, a coding run fails closed unless the
config opts into unisolated execution, exactly as the score stage does."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from mocoflow.data.schema import Item
from mocoflow.io import read_json, read_jsonl, write_json, write_jsonl
from mocoflow.scoring import sandbox as sbx
from mocoflow.scoring.sandbox import SandboxUnavailable
from mocoflow.stages.collaborate import collaborate
from mocoflow.stages.merge import merge_context

METHODS_DIR = Path(__file__).resolve().parents[1] / "src" / "mocoflow" / "methods"
CHECK = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
RIGHT = "```python\ndef add(x, y):\n    return x + y\n```"
WRONG = "```python\ndef add(x, y):\n    return x - y\n```"
UNISOLATED = {"allow_unisolated": True}


@pytest.fixture
def no_bwrap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As on a machine without bubblewrap (the sandbox's probe finds no bwrap)."""
    sbx._working_interpreter.cache_clear()
    monkeypatch.setattr(sbx, "_bwrap_path", lambda: None)
    yield
    sbx._working_interpreter.cache_clear()


def add_item(i: int, split: str) -> Item:
    return Item(id=f"{split}{i}", task="code", split=split, task_type="coding", question="Write add(x, y).",
                gold=CHECK, metadata={"entry_point": "add"})


@pytest.fixture
def coding_run(tmp_path: Path) -> dict:
    """Two models with shared generations on a coding task: ``right`` solves both dev items, ``wrong`` none.
    ``wrong`` comes first in the pool, so a run whose scorer failed every item would pick it."""
    dev, test = [add_item(i, "dev") for i in range(2)], [add_item(0, "test")]
    write_jsonl(tmp_path / "dev.jsonl", [i.to_dict() for i in dev])
    write_jsonl(tmp_path / "test.jsonl", [i.to_dict() for i in test])
    cards, gens = [], {}
    for model, program in (("wrong", WRONG), ("right", RIGHT)):
        write_json(tmp_path / f"{model}.json", {"name": model, "path": str(tmp_path)})
        cards.append(tmp_path / f"{model}.json")
        for split, items in (("dev", dev), ("test", test)):
            path = tmp_path / "gens" / model / f"{split}.jsonl"
            write_jsonl(path, [{"id": i.id, "output": f"{model}: {program}", "prompt_tokens": 5,
                                "generated_tokens": 9} for i in items])
            gens[f"{model}/{split}"] = str(path)
    return {"root": tmp_path, "cards": cards, "gens": gens}


def run_single(setting: dict, **extra: object) -> tuple[list[dict], dict]:
    root = setting["root"]
    params = {"run": "single", "method": "single", "pool": "pair", "task": "code", "cache_dir": str(root / "cache"),
              "decoding": {"temperature": 0.0, "seed": 0}, **extra}
    out = root / "run" / "test.jsonl"
    collaborate(params, setting["cards"], {"dev": root / "dev.jsonl", "test": root / "test.jsonl"}, setting["gens"],
                None, out, root / "usage.json")
    return read_jsonl(out), read_json(out.with_name("decisions.json"))


def test_collaborate_on_a_coding_task_runs_unisolated_when_the_config_opts_in(no_bwrap: None, coding_run: dict):
    preds, decisions = run_single(coding_run, sandbox=UNISOLATED)
    assert decisions["by_seed"]["0"]["chosen"] == "right"  # dev programs were run and graded
    assert [p["output"] for p in preds] == [f"right: {RIGHT}"]


def test_collaborate_on_a_coding_task_fails_closed_without_the_opt_in(no_bwrap: None, coding_run: dict):
    for params in ({}, {"sandbox": {"allow_unisolated": False}}):
        with pytest.raises(SandboxUnavailable, match=r"bubblewrap.*sandbox: \{allow_unisolated: true\}"):
            run_single(coding_run, **params)


def test_a_bad_sandbox_policy_names_its_key_before_the_method_runs(coding_run: dict):
    with pytest.raises(ValueError, match=r"sandbox: unknown key\(s\) \['allow_network'\]"):
        run_single(coding_run, sandbox={"allow_network": True})


def test_merge_candidates_are_graded_under_the_sandbox_policy(no_bwrap: None):
    item = add_item(0, "dev")
    score = merge_context({"sandbox": UNISOLATED}, None).score
    assert score(item, RIGHT) and not score(item, WRONG)
    with pytest.raises(SandboxUnavailable):
        merge_context({}, None).score(item, RIGHT)


def test_methods_grade_only_through_the_run_context():
    """No method module grades with a scorer of its own (``score_item``, ``CodingScorer``, ``SCORERS``):
    only ``methods/base.py`` builds the context's scorer, so the sandbox policy cannot be bypassed."""
    graders = {"score_item", "CodingScorer", "SCORERS"}
    offenders = []
    for path in sorted(METHODS_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mocoflow.scoring"):
                used = graders & {alias.name for alias in node.names}
                if used and path.name != "base.py":
                    offenders.append(f"{path.relative_to(METHODS_DIR)}: {sorted(used)}")
    assert not offenders, "grade with ctx.score instead:\n" + "\n".join(offenders)
