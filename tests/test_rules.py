"""The rules pass what the stages read, declare what they read, and carry the catalog's conventions.

One dry run of a smoke study (tiny models; one task with ``prompt_style: cot``, one that samples so jobs repeat
over seeds, ``threads_per_job: 2``, a sandbox policy, a judge without weights) gives every job's shell command;
one load of the workflow through Snakemake's API gives the rules' local flags and report captions. Both are
module fixtures (a DAG build each, ~10 s).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "src" / "mocoflow" / "stages"

# Snakemake's API in a fresh interpreter (the Snakefile edits PATH and imports the whole package): every rule's
# outputs with their report caption, and the localrules.
PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

root, configfile, workdir = map(Path, sys.argv[1:4])
with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(cores=2), snakefile=root / "Snakefile",
                            config_settings=ConfigSettings(configfiles=[configfile]), workdir=workdir)._workflow
    rules = {}
    for rule in workflow.rules:
        outputs = {}
        for f in rule.output:
            report = f.flags.get("report")
            outputs[str(f)] = str(report.caption.get_path_or_uri(secret_free=True)) if report else None
        rules[rule.name] = {"local": rule.name in workflow._localrules, "outputs": outputs}
print("PROBE" + json.dumps(rules))
"""


SANDBOX = {"allow_unisolated": True}


def study(tmp: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg["threads_per_job"] = 2
    cfg["tasks"]["arith"]["prompt_style"] = "cot"
    cfg["tasks"]["facts"]["decoding"] = {"temperature": 0.7}  # sampled: generations repeat over the seeds
    cfg["sandbox"] = SANDBOX
    # a judge whose weights are missing (HF_HUB_OFFLINE=1): its jobs are planned, asking for no GPU
    cfg["judges"] = {"verifier": {"kind": "verifier", "model": str(tmp / "no-verifier"), "tasks": ["arith"]}}
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return study(tmp_path_factory.mktemp("rules-study"))


@pytest.fixture(scope="module")
def dag(config_path: Path) -> list[dict]:
    """Every planned job of the dry run: rule, wildcards, input, benchmark and shell command."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "-s", str(ROOT / "Snakefile"), "-d",
                           str(config_path.parent), "--configfile", str(config_path), "--cores", "2"],
                          capture_output=True, text=True, env=env(), timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs: list[dict] = []
    for line in (proc.stdout + proc.stderr).splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            jobs.append({"rule": m.group(1), "input": [], "shell": ""})
        elif jobs and (m := re.match(r"^\s+(input|benchmark|wildcards): (.*)$", line)):
            jobs[-1][m.group(1)] = m.group(2).split(", ") if m.group(1) == "input" else m.group(2)
        elif jobs and line.startswith("Shell command: "):
            jobs[-1]["shell"] = line.removeprefix("Shell command: ")
    assert len(jobs) > 50
    return jobs


@pytest.fixture(scope="module")
def rules(config_path: Path) -> dict[str, dict]:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), str(config_path), str(config_path.parent)],
                          capture_output=True, text=True, env=env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE"))
    return json.loads(line.removeprefix("PROBE"))


# -- what a stage reads from its JSON arguments ------------------------------------------------------------


def _json_args(tree: ast.Module) -> set[str]:
    """Destinations of ``add_argument("--x", type=json_arg)``."""
    out = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument"
                and any(k.arg == "type" and isinstance(k.value, ast.Name) and k.value.id == "json_arg"
                        for k in node.keywords)):
            out.add(node.args[0].value.lstrip("-").replace("-", "_"))
    return out


def _keys(tree: ast.AST, names: set[str], dest: str | None = None) -> set[str]:
    """Constant keys read as ``x["k"]`` / ``x.get("k")`` from a name in ``names`` or ``args.<dest>``."""

    def bound(expr: ast.expr) -> bool:
        return _bound(expr, names, dest)

    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and bound(node.value) and isinstance(node.slice, ast.Constant):
            out.add(node.slice.value)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and bound(node.func.value) and node.args and isinstance(node.args[0], ast.Constant)):
            out.add(node.args[0].value)
    return out


def _bound(expr: ast.expr, names: set[str], dest: str | None) -> bool:
    """``expr`` is one of ``names`` or ``args.<dest>``."""
    return (isinstance(expr, ast.Name) and expr.id in names) or (
        dest is not None and isinstance(expr, ast.Attribute) and expr.attr == dest
        and isinstance(expr.value, ast.Name))


def _parameter_keys(tree: ast.Module) -> dict[str, list[set[str]]]:
    """For each top-level function of a module: the keys it reads from each of its positional parameters."""
    return {f.name: [_keys(f, {a.arg}) for a in f.args.args] for f in tree.body if isinstance(f, ast.FunctionDef)}


def keys_read(stage: str) -> dict[str, set[str]]:
    """For each JSON argument of ``mocoflow.stages.<stage>``: the keys the stage reads from it (aliases such as
    ``prm = args.params`` followed; keys read by the functions it is passed to, of the stage itself or of
    stages.common, included)."""
    tree = ast.parse((STAGES / f"{stage}.py").read_text())
    helpers = {**_parameter_keys(ast.parse((STAGES / "common.py").read_text())), **_parameter_keys(tree)}
    out = {}
    for dest in _json_args(tree):
        names = {dest} | {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                          and isinstance(node.value, ast.Attribute) and node.value.attr == dest
                          for t in node.targets if isinstance(t, ast.Name)}
        keys = _keys(tree, names, dest)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in helpers:
                for arg, read in zip(node.args, helpers[node.func.id], strict=False):
                    if _bound(arg, names, dest):
                        keys |= read
        out[dest] = keys
    return out


def passed(dag: list[dict], stage: str) -> dict[str, set[str]]:
    """For each JSON argument: the union of the keys its rule(s) pass over every job of the stage."""
    out: dict[str, set[str]] = {}
    for job in dag:
        argv = shlex.split(job["shell"])
        if f"mocoflow.stages.{stage}" not in argv:
            continue
        for flag, value in zip(argv, argv[1:], strict=False):
            if flag.startswith("--") and value.startswith("{"):
                out.setdefault(flag[2:].replace("-", "_"), set()).update(json.loads(value))
    return out


# every stage that takes a JSON argument (a new stage is covered without editing this list)
JSON_STAGES = sorted(p.stem for p in STAGES.glob("*.py") if p.stem != "common" and _json_args(ast.parse(p.read_text())))


def test_keys_read_finds_reads_through_aliases_and_helpers():
    assert {"prompt_style", "decoding", "cache_dir", "gpus", "seeds"} <= keys_read("generate")["params"]
    assert {"pools", "methods", "n_boot"} <= keys_read("analyze")["params"]  # via prm = args.params
    assert "model" in keys_read("score")["labels"]
    assert "name" in keys_read("judge")["judge"]  # through the stage's own judge_spec(args.judge)
    assert "sandbox" in keys_read("collaborate")["params"] and "sandbox" in keys_read("merge")["params"]
    assert {"generate", "collaborate", "merge", "analyze", "score", "build_model", "judge"} <= set(JSON_STAGES)


@pytest.mark.parametrize("stage", JSON_STAGES)
def test_every_key_a_stage_reads_from_its_json_arguments_is_passed_by_its_rule(dag, stage):
    """A key a stage reads but no rule passes is silently its default (tasks.*.prompt_style once was)."""
    read, given = keys_read(stage), passed(dag, stage)
    assert given, f"no job runs mocoflow.stages.{stage}"
    for dest, keys in read.items():
        if not keys:
            continue
        missing = keys - given.get(dest, set())
        assert not missing, f"stages/{stage}.py reads {sorted(missing)} from --{dest}, which no rule passes"


def job_params(dag: list[dict], rule: str, **wildcards: str) -> list[dict]:
    out = []
    for job in dag:
        if job["rule"] != rule or any(f"{k}={v}" not in job.get("wildcards", "") for k, v in wildcards.items()):
            continue
        argv = shlex.split(job["shell"])
        out.append(json.loads(argv[argv.index("--params") + 1]))
    return out


def test_prompt_style_reaches_every_job_that_builds_prompts(dag):
    """The cot task's shared generations, runs and dev-evaluated merges get its style; the default-style
    task's params carry no key (so adding the feature reruns nothing)."""
    for rule in ("generate", "collaborate", "merge_dev"):
        cot = job_params(dag, rule, task="arith")
        assert cot and all(p["prompt_style"] == "cot" for p in cot), rule
    for rule in ("generate", "collaborate"):
        default = job_params(dag, rule, task="facts")
        assert default and not any("prompt_style" in p for p in default), rule


def test_judge_rules_pass_every_key_of_a_judge_block(dag):
    """The judge stage hands ``--judge`` minus ``name`` to ``JudgeSpec.from_config``: every key a judge block
    may set must reach it (a key the rule drops would silently be its default)."""
    from mocoflow.scoring.judges import CONFIG_KEYS

    jobs = [j for j in dag if j["rule"] in ("judge_single", "judge_run")]
    assert {j["rule"] for j in jobs} == {"judge_single", "judge_run"}
    for job in jobs:
        argv = shlex.split(job["shell"])
        assert "mocoflow.stages.judge" in argv
        spec = json.loads(argv[argv.index("--judge") + 1])
        assert set(spec) == CONFIG_KEYS | {"name"}, job["rule"]
        assert spec["name"] == "verifier" and spec["tasks"] == ["arith"]


def test_sandbox_policy_reaches_every_job_that_grades_outputs(dag):
    """Methods grade dev outputs (selection, rewards, merge candidates) with the task's scorer, which runs
    model-written code under the config's sandbox policy: collaborate and dev-choosing merge jobs get it;
    merges planned without dev do not (so changing the policy does not rerun them)."""
    for rule in ("collaborate", "merge_dev"):
        params = job_params(dag, rule)
        assert params and all(p["sandbox"] == SANDBOX for p in params), rule
    merges = job_params(dag, "merge")
    assert merges and not any("sandbox" in p for p in merges)


def test_jobs_that_run_models_use_threads_per_job(dag):
    for rule in ("build_model", "generate", "merge_dev"):
        shells = [j["shell"] for j in dag if j["rule"] == rule]
        assert shells and all(s.startswith("OMP_NUM_THREADS=2 ") for s in shells), rule


def test_analyze_declares_every_file_it_reads(dag):
    """Benchmarks of every collaborate, generate and merge job whose cost the efficiency table counts, and the
    generations beside each usage file, are inputs of analyze (so Snakemake orders and reruns it)."""
    analyze = next(j for j in dag if j["rule"] == "analyze")
    inputs = set(analyze["input"])
    usage = {p for p in inputs if p.endswith(".usage.json")}
    assert usage
    assert {p.removesuffix(".usage.json") + ".jsonl" for p in usage} <= inputs
    benchmarks = {j["benchmark"] for j in dag if j["rule"] in ("collaborate", "merge", "merge_dev")}
    benchmarks |= {j["benchmark"] for j in dag if j["rule"] == "generate"
                   and j["benchmark"].replace("benchmarks/generate/", "generations/").removesuffix(".tsv")
                   + ".usage.json" in usage}
    assert any("/merge/" in b for b in benchmarks) and any(b.count("/") == 5 for b in benchmarks
                                                            if "/merge/" in b)  # merge_dev's
    assert benchmarks - inputs == set()
    argv = shlex.split(analyze["shell"])
    listed = argv[argv.index("--benchmarks") + 1:]
    assert benchmarks <= set(listed[: next((i for i, a in enumerate(listed) if a.startswith("--")), None)])


def test_light_rules_are_local(rules):
    light = ["prepare", "score_single", "score_run", "analyze", "plot_main", "plot_scaling", "plot_efficiency",
             "plot_emergence"]
    assert all(rules[r]["local"] for r in light)
    assert not any(rules[r]["local"] for r in ("generate", "collaborate", "build_model", "merge_dev"))


def test_every_table_and_figure_has_a_report_caption(rules):
    """Every output of analyze (tables) and one per figure (the PNG) is in ``snakemake --report`` with a
    caption file that exists and describes that output."""
    captions = {}
    for name, rule in rules.items():
        if name == "analyze" or name.startswith("plot_"):
            captions.update({out: cap for out, cap in rule["outputs"].items() if not out.endswith(".pdf")})
    assert len(captions) == 9 + 4
    missing = sorted(out for out, cap in captions.items() if cap is None)
    assert not missing, f"outputs without report(): {missing}"
    for out, cap in captions.items():
        assert Path(cap).is_file() and Path(cap).resolve().parent == ROOT / "report", (out, cap)
    assert len(set(captions.values())) == len(captions)  # one caption per output
    text = {Path(c).name: Path(c).read_text() for c in captions.values()}
    assert "degenerate" in text["main_table.rst"] and "heatmap" in text["main.rst"]
    assert all(k in text["efficiency_table.rst"] for k in ("apgr", "cpt50", "strong_share", "pgr"))


def test_twins_are_one_rule_used_twice():
    """score_single is score_run with other inputs, judge_single is judge_run, and the plots are one rule
    (``use rule ... with:``)."""
    judge = (ROOT / "rules" / "judge.smk").read_text()
    assert "use rule judge_run as judge_single with:" in judge and judge.count("shell:") == 1
    score = (ROOT / "rules" / "score.smk").read_text()
    plots = (ROOT / "rules" / "analyze.smk").read_text()
    assert "use rule score_run as score_single with:" in score and score.count("shell:") == 1
    assert plots.count("use rule plot_main as") == 3 and plots.count("shell:") == 2  # analyze, plot_main
