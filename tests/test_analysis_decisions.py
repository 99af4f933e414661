"""Decisions in the tables: the main table's ``degenerate`` column and the routers' RouteLLM metrics
(strong-call share, PGR, APGR, CPT(50 %), CPT(80 %)), checked against hand computations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mocoflow.analysis import efficiency as eff
from mocoflow.analysis.decisions import degenerate_runs, is_degenerate, mean_reliance, read_decisions, router_runs
from mocoflow.analysis.main_table import main_table, single_scores
from mocoflow.analysis.routing import apgr, cpt, pgr, router_metrics

POOLS = {"P": ["a", "b", "c"]}
# singles on task t (10 items): a 9/10 (strong), b 5/10 (weak), c 7/10
SINGLE = {"a": [1] * 9 + [0], "b": [1] * 5 + [0] * 5, "c": [1] * 7 + [0] * 3}
# router R: answers 4 of 10 items with a, score 7/10 -> PGR (0.7 - 0.5) / (0.9 - 0.5) = 0.5
ROUTER = {"answered_by": ["a"] * 4 + ["b"] * 3 + ["c"] * 3, "correct": [1] * 7 + [0] * 3}


def scores() -> tuple[pd.DataFrame, pd.DataFrame]:
    singles = pd.DataFrame([{"run": "single", "pool": m, "model": m, "task": "t", "id": f"i{k}",
                             "correct": bool(c), "generated_tokens": 1} for m, cs in SINGLE.items()
                            for k, c in enumerate(cs)])
    rows = [{"run": "R", "pool": "P", "model": "", "task": "t", "id": f"i{k}", "correct": bool(c),
             "answered_by": by, "generated_tokens": 1, "new_generated_tokens": 0}
            for k, (by, c) in enumerate(zip(ROUTER["answered_by"], ROUTER["correct"], strict=True))]
    rows += [{**r, "run": "V", "answered_by": "a"} for r in rows]  # a vote: not a router
    return pd.DataFrame(rows), singles


def decisions_file(root: Path, run: str, by_seed: dict) -> Path:
    path = root / "runs" / run / "P" / "t" / "decisions.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"run": run, "method": run, "pool": "P", "task": "t",
                                "seeds": [int(s) for s in by_seed], "by_seed": by_seed}))
    return path


# ---- RouteLLM's metrics --------------------------------------------------------------------------------------

def test_routellm_metrics_by_hand():
    assert pgr(0.7, 0.5, 0.9) == pytest.approx(0.5)
    # curve (0, 0)-(0.4, 0.5)-(1, 1): area 0.4 * 0.5 / 2 + 0.6 * 1.5 / 2 = 0.55
    assert apgr(0.4, 0.5) == pytest.approx(0.55)
    assert cpt(0.4, 0.5, 0.5) == pytest.approx(0.4)  # reached at the operating point
    assert cpt(0.4, 0.5, 0.8) == pytest.approx(0.4 + 0.6 * 0.3 / 0.5)  # on the second segment: 0.76
    # a router that beats the strong model with few strong calls reaches 80 % early
    assert cpt(0.2, 1.25, 0.8) == pytest.approx(0.2 * 0.8 / 1.25)
    # all-weak, all-strong and random routers score 0.5, as in RouteLLM
    assert apgr(0.0, 0.0) == apgr(1.0, 1.0) == apgr(0.5, 0.5) == pytest.approx(0.5)
    assert np.isnan(pgr(0.5, 0.6, 0.6)) and np.isnan(apgr(0.3, float("nan"))) and np.isnan(cpt(0.3, np.nan, 0.5))
    with pytest.raises(ValueError, match="CPT target"):
        cpt(0.4, 0.5, 0.0)


def test_router_metrics_from_per_item_decisions_and_scores():
    runs, singles = scores()
    table = router_metrics(runs, single_scores(singles), POOLS, {("R", "P", "t")})
    (row,) = table.to_dict("records")
    assert (row["run"], row["strong_model"], row["weak_model"]) == ("R", "a", "b")
    assert row["strong_share"] == pytest.approx(0.4) and row["pgr"] == pytest.approx(0.5)
    assert row["apgr"] == pytest.approx(0.55)
    assert row["cpt50"] == pytest.approx(0.4) and row["cpt80"] == pytest.approx(0.76)
    # seeds: a second seed sending every item to a doubles nothing but the share's denominator
    seeded = pd.concat([runs.assign(seed=0), runs.assign(seed=1, answered_by="a")], ignore_index=True)
    (row2,) = router_metrics(seeded, single_scores(singles), POOLS, {("R", "P", "t")}).to_dict("records")
    assert row2["strong_share"] == pytest.approx(0.7)


def test_efficiency_table_carries_router_metrics_on_router_rows_only():
    runs, singles = scores()
    table = main_table(runs, singles, POOLS, {"R": "cascade", "V": "majority_vote"}, {}, n_boot=50)
    routers = router_metrics(runs, single_scores(singles), POOLS, {("R", "P", "t")})
    e = eff.efficiency_table(table, single_scores(singles), POOLS, {}, {}, {}, {}, routers)
    r = e[(e["run"] == "R") & (e["task"] == "t")].iloc[0]
    assert r["apgr"] == pytest.approx(0.55) and r["strong_model"] == "a" and r["cpt80"] == pytest.approx(0.76)
    others = e[~((e["run"] == "R") & (e["task"] == "t"))]
    assert others["apgr"].isna().all() and set(eff.ROUTER_COLUMNS) <= set(e.columns)


# ---- degenerate runs -----------------------------------------------------------------------------------------

def test_degenerate_means_at_most_one_model_has_a_share(tmp_path: Path):
    paths = [
        decisions_file(tmp_path, "R", {"0": {"kind": "router", "reliance": {"a": 0.4, "b": 0.3, "c": 0.3}}}),
        decisions_file(tmp_path, "S", {"0": {"kind": "router", "reliance": {"a": 1.0, "b": 0.0, "c": 0.0}},
                                       "1": {"kind": "router", "reliance": {"a": 1.0, "b": 0.0, "c": 0.0}}}),
        # each seed uses one model, but not the same one: the run as a whole relies on two
        decisions_file(tmp_path, "T", {"0": {"reliance": {"a": 1.0, "b": 0.0}},
                                       "1": {"reliance": {"a": 0.0, "b": 1.0}}}),
        decisions_file(tmp_path, "F", {"0": {"graph": {"order": ["a", "b"]}}}),  # no reliance: no verdict
    ]
    decisions = read_decisions(paths)
    assert mean_reliance(decisions[("T", "P", "t")]) == {"a": 0.5, "b": 0.5}
    assert degenerate_runs(decisions) == {("R", "P", "t"): False, ("S", "P", "t"): True,
                                          ("T", "P", "t"): False}
    assert router_runs(decisions) == {("R", "P", "t"), ("S", "P", "t")}
    assert is_degenerate({"a": 0.0, "b": 0.0}) and not is_degenerate({"a": 0.01, "b": 0.99})
    bad = tmp_path / "runs" / "X" / "P" / "t" / "decisions.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("[]")
    with pytest.raises(ValueError, match="not a decisions file"):
        read_decisions([bad])


def test_main_table_marks_degenerate_runs():
    runs, singles = scores()
    methods = {"R": "cascade", "V": "majority_vote"}
    table = main_table(runs, singles, POOLS, methods, {}, n_boot=50, degenerate={("V", "P", "t"): True,
                                                                                  ("R", "P", "t"): False})
    flags = dict(zip(table["run"], table["degenerate"], strict=True))
    assert flags == {"R": False, "V": True}
    unknown = main_table(runs, singles, POOLS, methods, {}, n_boot=50)
    assert unknown["degenerate"].isna().all()


def test_analyze_stage_reads_decisions(tmp_path: Path):
    from mocoflow.stages.analyze import main

    runs, singles = scores()
    rfiles, sfiles = [], []
    for (run, task), g in runs.groupby(["run", "task"]):
        f = tmp_path / "scores" / "runs" / run / "P" / f"{task}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        g.to_parquet(f)
        rfiles.append(str(f))
    for (m, task), g in singles.groupby(["model", "task"]):
        f = tmp_path / "scores" / "single" / m / f"{task}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        g.to_parquet(f)
        sfiles.append(str(f))
    decisions = [decisions_file(tmp_path, "R", {"0": {"kind": "router", "reliance": {"a": 0.4, "b": 0.3,
                                                                                      "c": 0.3}}}),
                 decisions_file(tmp_path, "V", {"0": {"reliance": {"a": 1.0, "b": 0.0, "c": 0.0}}})]
    params = {"pools": POOLS, "methods": {"R": "cascade", "V": "majority_vote"}, "levels": {}, "n_boot": 50}
    out = tmp_path / "tables"
    main(["--singles", *sfiles, "--runs", *rfiles, "--decisions", *map(str, decisions), "--params",
          json.dumps(params), "--main", str(out / "main.csv"), "--singles-out", str(out / "singles.csv"),
          "--efficiency", str(out / "efficiency.csv")])
    main_csv = pd.read_csv(out / "main.csv").set_index("run")
    assert bool(main_csv.loc["V", "degenerate"]) and not bool(main_csv.loc["R", "degenerate"])
    e = pd.read_csv(out / "efficiency.csv")
    assert e.loc[(e["run"] == "R") & (e["task"] == "t"), "apgr"].item() == pytest.approx(0.55)
    assert e.loc[(e["run"] == "V") & (e["task"] == "t"), "apgr"].isna().all()
