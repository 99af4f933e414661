"""End to end: the smoke study through Snakemake on tiny models, then the rerun semantics."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.e2e


def snakemake(workdir: Path, configfile: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MOCOFLOW_PYTHON": sys.executable}
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
           str(configfile), "--cores", "2", *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in (workdir / "results" / "logs").rglob("*.log")
                         if p.stat().st_size) if (workdir / "results" / "logs").exists() else ""
        pytest.fail(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n{logs}")
    return proc


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run: rule -> count."""
    counts = {}
    in_table = False
    for line in dry_run_output.splitlines():
        if line.startswith("job") and "count" in line:
            in_table = True
            continue
        if in_table:
            m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
            if m and m.group(1) != "total":
                counts[m.group(1)] = int(m.group(2))
            elif line.strip().startswith("total"):
                break
    return counts


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp("smoke")
    configfile = workdir / "smoke.yaml"
    shutil.copy(REPO / "configs" / "smoke.yaml", configfile)
    snakemake(workdir, configfile)
    return workdir, configfile


def test_smoke_study_produces_tables_and_figures(smoke_run: tuple[Path, Path]):
    workdir, configfile = smoke_run
    cfg = yaml.safe_load(configfile.read_text())
    main = pd.read_csv(workdir / "results" / "tables" / "main.csv")
    expected_runs = set(cfg["methods"])
    assert set(main["run"]) == expected_runs
    assert main["score"].between(0, 1).all() and main["best_single_score"].between(0, 1).all()
    assert (main["gain"] - (main["score"] - main["best_single_score"])).abs().max() < 1e-9
    singles = pd.read_csv(workdir / "results" / "tables" / "singles.csv")
    assert set(singles["model"]) == set(cfg["models"])
    for name in ("main", "scaling", "efficiency", "emergence"):
        for ext in ("pdf", "png"):
            assert (workdir / "figures" / f"{name}.{ext}").stat().st_size > 1000
    for table in ("win_share", "emergence", "scaling", "efficiency"):
        assert len(pd.read_csv(workdir / "results" / "tables" / f"{table}.csv")) > 0
    # scaling pools generated from the trio: majority vote ran on pools of size 1..3
    scaling = pd.read_csv(workdir / "results" / "tables" / "scaling_pools.csv")
    assert set(scaling.loc[scaling["run"] == "majority_vote", "pool_size"]) == {1, 2, 3}
    scores = pd.read_parquet(workdir / "results" / "scores" / "runs" / "cascade" / "trio" / "arith.parquet")
    for col in ("correct", "status", "prompt_tokens", "generated_tokens", "new_generated_tokens", "job_model_loads"):
        assert col in scores.columns
    # seeds: the stochastic random router ran per seed and its score is averaged per item; greedy runs once
    routed = pd.read_parquet(workdir / "results" / "scores" / "runs" / "random_router" / "trio" / "arith.parquet")
    assert sorted(routed["seed"].unique()) == cfg["seeds"] and len(routed) == 5 * len(cfg["seeds"])
    n_seeds = main.set_index("run")["n_seeds"]
    assert (n_seeds["random_router"] == len(cfg["seeds"])).all() and (n_seeds["majority_vote"] == 1).all()
    # generation jobs wrote their cost accounting next to their outputs
    usage = workdir / "results" / "generations" / "tiny-a" / "arith" / "test.usage.json"
    assert '"model_loads": 1' in usage.read_text()
    # every rule wrote a benchmark file
    assert list((workdir / "results" / "benchmarks" / "generate").rglob("*.tsv"))


def test_rerun_has_nothing_to_do(smoke_run: tuple[Path, Path]):
    workdir, configfile = smoke_run
    proc = snakemake(workdir, configfile, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_one_hyperparameter_reruns_only_that_methods_nodes(smoke_run: tuple[Path, Path]):
    workdir, configfile = smoke_run
    cfg = yaml.safe_load(configfile.read_text())
    cfg["methods"]["cascade"]["params"] = {"target_precision": 0.9}
    changed = workdir / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    proc = snakemake(workdir, changed, "-n")
    counts = job_counts(proc.stdout)
    n_cascade = len(cfg["tasks"])  # cascade runs on one pool, every task
    plots = {f"plot_{name}": 1 for name in ("main", "scaling", "efficiency", "emergence")}
    assert counts == {"collaborate": n_cascade, "score_run": n_cascade, "analyze": 1, **plots, "all": 1}


def test_changing_one_figure_setting_reruns_only_that_figure(smoke_run: tuple[Path, Path]):
    workdir, configfile = smoke_run
    cfg = yaml.safe_load(configfile.read_text())
    cfg["plots"] = {**cfg.get("plots", {}), "scaling": {"width": 5.0}}
    changed = workdir / "plot_changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    counts = job_counts(snakemake(workdir, changed, "-n").stdout)
    assert counts == {"plot_scaling": 1, "all": 1}
    cfg["plots"] = {**cfg["plots"], "dpi": 90}  # a global plot setting reaches every figure, nothing upstream
    changed.write_text(yaml.safe_dump(cfg))
    counts = job_counts(snakemake(workdir, changed, "-n").stdout)
    assert counts == {f"plot_{name}": 1 for name in ("main", "scaling", "efficiency", "emergence")} | {"all": 1}


def test_report_collects_every_table_and_figure(smoke_run: tuple[Path, Path]):
    workdir, configfile = smoke_run
    report = workdir / "report.html"
    snakemake(workdir, configfile, "--report", str(report))
    html = report.read_text(errors="replace")
    for category in ("Main results", "Emergence", "Scaling", "Efficiency"):
        assert category in html
    for name in ("main.png", "scaling.png", "efficiency.png", "emergence.png", "main.csv", "emergence.csv"):
        assert name in html


def test_a_moved_or_copied_study_resumes_elsewhere(smoke_run: tuple[Path, Path], tmp_path: Path):
    """Cards store weights paths relative to their folder: a copy of the study has nothing to do, and jobs that
    read cards (generate, a LoRA build, a merge and a collaboration) run there while the original is gone."""
    import json

    workdir, configfile = smoke_run
    away = workdir.with_name(workdir.name + "-away")
    copy = tmp_path / "copied-study"
    workdir.rename(away)  # nothing in the copy may reach the original
    try:
        shutil.copytree(away, copy, symlinks=True)  # copy2 keeps modification times
        cards = list((copy / "results").rglob("card.json"))
        # model cards store relative weights paths; merged cards hold a recipe and no path
        assert cards and all(not os.path.isabs(json.loads(c.read_text()).get("path", "")) for c in cards)
        dry = snakemake(copy, copy / configfile.name, "-n")
        assert "Nothing to be done" in dry.stdout + dry.stderr
        targets = ["results/generations/tiny-a/arith/test.jsonl", "results/models/tiny-lora-arith/card.json",
                   "results/merged/linear_merge/trio/card.json", "results/runs/linear_merge/trio/arith/test.jsonl"]
        snakemake(copy, copy / configfile.name, "--force", *targets)  # exactly these jobs run again
        shutil.rmtree(copy / "results" / "models" / "tiny-b" / "weights")
        cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(copy), "--configfile",
               str(copy / configfile.name), "--cores", "1", "--force", "results/merged/linear_merge/trio/card.json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "MOCOFLOW_PYTHON": sys.executable})
        log = (copy / "results" / "logs" / "merge" / "linear_merge" / "trio.log").read_text()
        assert proc.returncode != 0
        assert (f"weights of tiny-b missing at {copy / 'results' / 'models' / 'tiny-b' / 'weights'}" in log
                and "rerun with --forcerun build_model" in log), log[-2000:]
    finally:
        away.rename(workdir)
