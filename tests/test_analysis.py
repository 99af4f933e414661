"""Analysis statistics on constructed score matrices, checked against hand computations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mocoflow.analysis import efficiency as eff
from mocoflow.analysis.emergence import emergence_table
from mocoflow.analysis.main_table import main_table, render_latex, render_markdown, single_scores, win_share
from mocoflow.analysis.scaling import disagreement, pool_diversity, scaling_pool_rows, scaling_table
from mocoflow.analysis.stats import bootstrap_mean_ci, item_means, paired_bootstrap_ci, pareto_front

POOLS = {"P": ["a", "b"]}
METHODS = {"X": "majority_vote", "Y": "cascade"}
LEVELS = {"majority_vote": "text", "cascade": "api"}
DOMAINS = {"t": "reasoning"}  # task u has no domain -> "other"

# items t1..t5 on task t, u1..u2 on task u; 1 = correct
CORRECT = {
    ("a", "t"): [1, 1, 0, 0, 0],
    ("b", "t"): [1, 0, 1, 1, 0],
    ("X", "t"): [0, 1, 1, 0, 1],
    ("Y", "t"): [1, 1, 1, 1, 1],
    ("a", "u"): [0, 0],
    ("b", "u"): [1, 0],
    ("X", "u"): [1, 1],
    ("Y", "u"): [0, 0],
}


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def make_scores(correct=CORRECT, pool="P", methods=METHODS) -> tuple[pd.DataFrame, pd.DataFrame]:
    singles, runs = [], []
    for (who, task), vals in correct.items():
        for i, c in enumerate(vals):
            row = {
                "task": task,
                "id": f"{task}{i + 1}",
                "correct": bool(c),
                "parsed": f"{who}{i}",
                "generated_tokens": 10,
                "new_generated_tokens": 0 if who in methods else 10,
                "job_model_loads": 0,
                "job_wall_seconds": 1.0,
            }
            if who in methods:
                runs.append({"run": who, "pool": pool, "model": "", **row})
            else:
                singles.append({"run": "single", "pool": who, "model": who, **row})
    return frame(runs), frame(singles)


@pytest.fixture
def scores():
    return make_scores()


def test_main_table_score_best_single_and_gain(scores):
    runs, singles = scores
    t = main_table(runs, singles, POOLS, METHODS, LEVELS, n_boot=500).set_index(["run", "task"])
    # task t: a = 0.4, b = 0.6 -> best b; X 0.6 (gain 0), Y 1.0 (gain 0.4)
    assert t.loc[("X", "t"), "best_single"] == "b"
    assert t.loc[("X", "t"), "best_single_score"] == pytest.approx(0.6)
    assert t.loc[("X", "t"), "gain"] == pytest.approx(0.0)
    assert t.loc[("Y", "t"), "gain"] == pytest.approx(0.4)
    # task u: a = 0, b = 0.5 -> best b; X 1.0 (+0.5), Y 0 (-0.5)
    assert t.loc[("X", "u"), "gain"] == pytest.approx(0.5)
    assert t.loc[("Y", "u"), "gain"] == pytest.approx(-0.5)
    assert t.loc[("Y", "t"), "level"] == "api" and t.loc[("X", "t"), "method"] == "majority_vote"
    # CI brackets the gain; Y - b on t has diffs [0, 1, 0, 0, 1]: never below 0, never above 1
    lo, hi = t.loc[("Y", "t"), ["gain_ci_lo", "gain_ci_hi"]]
    assert 0.0 <= lo <= 0.4 <= hi <= 1.0
    assert t.loc[("Y", "t"), "generated_tokens"] == 50


def test_best_single_tie_goes_to_first_pool_member():
    runs, singles = make_scores({("a", "t"): [1, 0], ("b", "t"): [0, 1], ("X", "t"): [1, 1]})
    t = main_table(runs, singles, {"P": ["b", "a"]}, METHODS, LEVELS, n_boot=100)
    assert t.loc[0, "best_single"] == "b"


def test_win_share_counts_settings_with_positive_gain(scores):
    runs, singles = scores
    w = win_share(main_table(runs, singles, POOLS, METHODS, LEVELS, n_boot=200)).set_index("run")
    # X: gain 0 on t (not a win), +0.5 on u -> 1/2; Y: +0.4 on t, -0.5 on u -> 1/2; all: 2/4
    assert w.loc["X", "wins"] == 1 and w.loc["X", "n_settings"] == 2
    assert w.loc["X", "win_share"] == pytest.approx(0.5)
    assert w.loc["Y", "win_share"] == pytest.approx(0.5)
    assert w.loc["all", "win_share"] == pytest.approx(0.5) and w.loc["all", "n_settings"] == 4
    assert w.loc["Y", "max_gain"] == pytest.approx(0.4)
    assert w.loc["X", "mean_gain"] == pytest.approx(0.25)
    # Wilson 95 % interval of 1/2 and 2/4 (hand-computed: centre (p + z^2/2n) / (1 + z^2/n))
    assert w.loc["X", ["win_share_ci_lo", "win_share_ci_hi"]].tolist() == pytest.approx([0.0945, 0.9055], abs=1e-4)
    assert w.loc["all", ["win_share_ci_lo", "win_share_ci_hi"]].tolist() == pytest.approx([0.1500, 0.8500], abs=1e-4)


def test_renderings_contain_every_row(scores):
    runs, singles = scores
    t = main_table(runs, singles, POOLS, METHODS, LEVELS, n_boot=100)
    w = win_share(t)
    md, tex = render_markdown(t, w), render_latex(t, w)
    assert md.count("\n| X |") == 3  # two settings + its win-share row and "| all |" in md
    assert r"\begin{tabular}" in tex and r"best\_single" in tex and tex.count(r"\toprule") == 2


def test_emergence_and_reverse(scores):
    runs, singles = scores
    em = emergence_table(runs, singles, POOLS, METHODS, DOMAINS)
    s = em[em["scope"] == "setting"].set_index(["run", "task"])
    # task t: some single solves t1..t4; t5 unsolved. X solves t5 (emergent 1/1) and loses t1, t4 (2/4)
    assert s.loc[("X", "t"), ["n_unsolved", "emergent", "n_single_solved", "lost"]].tolist() == [1, 1, 4, 2]
    assert s.loc[("X", "t"), "emergence_share"] == pytest.approx(1.0)
    assert s.loc[("X", "t"), "loss_share"] == pytest.approx(0.5)
    assert s.loc[("X", "t"), "oracle_score"] == pytest.approx(0.8)
    assert s.loc[("Y", "t"), "lost"] == 0
    # task u (domain other): u2 unsolved; X solves it, Y does not and loses u1
    assert s.loc[("X", "u"), "domain"] == "other"
    assert s.loc[("Y", "u"), ["emergent", "lost"]].tolist() == [0, 1]
    d = em[em["scope"] == "domain_all_runs"].set_index("domain")
    # reasoning: emergent (1 + 1) / unsolved (1 + 1); lost (2 + 0) / (4 + 4)
    assert d.loc["reasoning", "emergence_share"] == pytest.approx(1.0)
    assert d.loc["reasoning", "loss_share"] == pytest.approx(0.25)
    assert d.loc["other", "emergence_share"] == pytest.approx(0.5)
    r = em[em["scope"] == "run"].set_index("run")
    # X over both tasks: emergent 2 of 2 unsolved; lost 2 of 5 single-solved
    assert r.loc["X", "emergence_share"] == pytest.approx(1.0)
    assert r.loc["X", "loss_share"] == pytest.approx(0.4)
    # Wilson 95 % intervals: 2/2 emergent -> [0.342, 1]; 2/5 lost -> [0.118, 0.769]
    assert r.loc["X", ["emergence_ci_lo", "emergence_ci_hi"]].tolist() == pytest.approx([0.3424, 1.0], abs=1e-4)
    assert r.loc["X", ["loss_ci_lo", "loss_ci_hi"]].tolist() == pytest.approx([0.1176, 0.7693], abs=1e-4)


def test_emergence_share_is_nan_without_unsolved_items():
    runs, singles = make_scores({("a", "t"): [1, 1], ("b", "t"): [0, 0], ("X", "t"): [1, 0]})
    em = emergence_table(runs, singles, POOLS, METHODS, {})
    row = em[em["scope"] == "setting"].iloc[0]
    assert row["n_unsolved"] == 0 and np.isnan(row["emergence_share"]) and row["loss_share"] == 0.5
    assert np.isnan(row["emergence_ci_lo"]) and np.isnan(row["emergence_ci_hi"])


def test_seeds_are_averaged_per_item_before_statistics():
    runs, singles = make_scores({("a", "t"): [1, 0], ("b", "t"): [0, 0], ("X", "t"): [1, 1]})
    runs2 = runs.assign(seed=1, correct=[False, True])
    runs = pd.concat([runs.assign(seed=0), runs2], ignore_index=True)
    items = item_means(runs, ["run", "pool", "task"])
    assert items["correct"].tolist() == [0.5, 1.0] and items["n_seeds"].tolist() == [2, 2]
    t = main_table(runs, singles, POOLS, METHODS, LEVELS, n_boot=100)
    assert t.loc[0, "score"] == pytest.approx(0.75) and t.loc[0, "n_seeds"] == 2
    assert t.loc[0, "gain"] == pytest.approx(0.25)
    assert t.loc[0, "generated_tokens"] == 20  # per seed
    # emergence with seeds: solved = correct in more than half the seeds; t1 (1 of 2) is not solved
    em = emergence_table(runs, singles, POOLS, METHODS, {})
    assert em[em["scope"] == "setting"].iloc[0][["n_unsolved", "emergent", "lost"]].tolist() == [1, 1, 1]


def test_bootstrap_is_seeded_and_degenerate_cases():
    x = np.array([0, 1, 1, 0, 1, 1, 1, 0])
    assert bootstrap_mean_ci(x, seed=3) == bootstrap_mean_ci(x, seed=3)
    assert bootstrap_mean_ci(np.ones(5)) == (1.0, 1.0, 1.0)
    assert all(np.isnan(bootstrap_mean_ci([])))
    mean, lo, hi = paired_bootstrap_ci([1, 1, 1, 0], [0, 0, 0, 0])
    assert mean == 0.75 and lo < 0.75 < hi
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1, 0], [1])
    # chunking gives the same distribution size: small chunks still work
    m2, lo2, hi2 = bootstrap_mean_ci(x, chunk_cells=10)
    assert lo2 <= m2 <= hi2


def _coverage(alpha: float, reps: int = 2500, n: int = 150, n_boot: int = 500) -> float:
    """Share of ``reps`` simulated studies (seeded) whose paired bootstrap CI covers the known true gain."""
    rng = np.random.default_rng(123)
    p_ref, agree, true_gain = 0.6, 0.7, 0.1
    p_other = p_ref + true_gain / (1 - agree)  # the system's accuracy where it does not copy the reference
    expected = agree * p_ref + (1 - agree) * p_other - p_ref
    assert expected == pytest.approx(true_gain)
    hits = 0
    for r in range(reps):
        ref = rng.random(n) < p_ref
        # the system agrees with the reference on most items, so the pairing matters for the width
        sys = np.where(rng.random(n) < agree, ref, rng.random(n) < p_other)
        _, lo, hi = paired_bootstrap_ci(sys, ref, n_boot=n_boot, seed=r, alpha=alpha)
        hits += lo <= expected <= hi
    return hits / reps


def test_paired_bootstrap_ci_covers_the_true_gain_95_percent_and_a_92_percent_interval_fails():
    """2500 simulated studies of 150 paired items with a known gain: the 95 % interval covers it in
    [93.5 %, 96.5 %] of them (binomial s.e. 0.45 points), and the same check rejects a 92 % interval, so an
    interval that is too narrow (or too wide: 99 % covers ~98.6 %) cannot pass."""
    assert 0.935 <= _coverage(0.05) <= 0.965
    assert _coverage(0.08) < 0.935


def test_significance_needs_a_ci_that_excludes_zero_not_one_that_touches_it():
    """``significant`` and ``significant_wins`` count a gain only when its CI excludes 0: a run that differs
    from the best single model on one item out of 40 has a CI that reaches exactly 0 (most resamples miss that
    item), so it is a win (gain > 0) but not a significant one, and its mirror image is not a significant loss."""
    n = 40
    best = [1] * 20 + [0] * 20
    correct = {("a", "t"): best, ("b", "t"): [1] * 10 + [0] * 30,
               ("X", "t"): best[:20] + [1] + best[21:],  # one more item right: CI [0, >0]
               ("Y", "t"): [0] + best[1:],  # one item fewer: CI [<0, 0]
               ("Z", "t"): [1] * n}  # every item right: CI above 0
    methods = {"X": "majority_vote", "Y": "cascade", "Z": "cascade"}
    runs, singles = make_scores(correct, methods=methods)
    table = main_table(runs, singles, POOLS, methods, LEVELS, n_boot=2000).set_index("run")
    assert table.loc["X", "gain_ci_lo"] == 0.0 and table.loc["X", "gain_ci_hi"] > 0 and table.loc["X", "gain"] > 0
    assert table.loc["Y", "gain_ci_hi"] == 0.0 and table.loc["Y", "gain_ci_lo"] < 0
    assert table.loc["X", "significant"] == "" and table.loc["Y", "significant"] == ""
    assert table.loc["Z", "significant"] == "+" and table.loc["Z", "gain_ci_lo"] > 0
    wins = win_share(table.reset_index()).set_index("run")
    assert wins.loc["X", "wins"] == 1 and wins.loc["X", "significant_wins"] == 0
    assert wins.loc["Y", "wins"] == 0 and wins.loc["Z", "significant_wins"] == 1
    assert wins.loc["all", "significant_wins"] == 1


def test_pareto_front():
    cost = [1, 2, 3, 2, 4, np.nan, 5]
    score = [0.5, 0.6, 0.55, 0.6, 0.9, 1.0, 0.9]
    assert pareto_front(cost, score).tolist() == [True, True, False, True, True, False, False]
    assert pareto_front([1], [0.0]).tolist() == [True]


def test_diversity_is_mean_pairwise_disagreement():
    answers = {
        ("a", "t"): pd.Series(["A", "B", "C"], index=[1, 2, 3]),
        ("b", "t"): pd.Series(["A", "C", "C"], index=[1, 2, 3]),
        ("c", "t"): pd.Series([np.nan, "B", "C"], index=[1, 2, 3]),
    }
    assert disagreement(answers[("a", "t")], answers[("b", "t")]) == pytest.approx(1 / 3)
    assert disagreement(answers[("a", "t")], answers[("c", "t")]) == pytest.approx(1 / 3)  # missing differs
    assert pool_diversity(answers, ["a", "b", "c"], "t") == pytest.approx((1 / 3 + 1 / 3 + 2 / 3) / 3)
    assert pool_diversity(answers, ["a"], "t") == 0.0


def test_scaling_tables_by_pool_size():
    pools = {"scale-k1-0": ["a"], "scale-k1-1": ["b"], "scale-k2-0": ["a", "b"]}
    correct = {("a", "t"): [1, 1, 0, 0], ("b", "t"): [1, 0, 1, 0]}
    runs, singles = [], []
    r0, s0 = make_scores({**correct, ("X", "t"): [1, 1, 0, 0]}, pool="scale-k1-0")
    r1, _ = make_scores({**correct, ("X", "t"): [1, 0, 1, 0]}, pool="scale-k1-1")
    r2, _ = make_scores({**correct, ("X", "t"): [1, 1, 1, 1]}, pool="scale-k2-0")
    runs = pd.concat([r0, r1, r2], ignore_index=True)
    singles = s0.assign(parsed=["A", "B", "C", "D", "A", "X", "C", "Y"])
    rows = scaling_pool_rows(runs, singles, pools, METHODS).set_index("pool")
    assert rows.loc["scale-k2-0", "pool_size"] == 2 and rows.loc["scale-k2-0", "diversity"] == pytest.approx(
        0.5
    )
    assert rows.loc["scale-k2-0", "oracle_score"] == pytest.approx(0.75)
    assert rows.loc["scale-k2-0", "gain"] == pytest.approx(0.5)
    table = scaling_table(runs, singles, rows.reset_index(), pools, n_boot=300)
    t = table[table["task"] == "t"].set_index("pool_size")
    assert t.loc[1, "n_pools"] == 2 and t.loc[1, "score"] == pytest.approx(0.5)
    assert t.loc[1, "gain"] == pytest.approx(0.0) and t.loc[2, "score"] == pytest.approx(1.0)
    assert t.loc[1, "diversity"] == 0.0
    assert t.loc[2, "score_ci_lo"] == t.loc[2, "score_ci_hi"] == 1.0
    assert t.loc[1, "score_ci_lo"] < 0.5 < t.loc[1, "score_ci_hi"]
    allt = table[table["task"] == "all"].set_index("pool_size")
    assert allt.loc[2, "score"] == pytest.approx(1.0)
    # restricting to some pools
    only = scaling_pool_rows(runs, singles, pools, METHODS, ["scale-k2-0"])
    assert only["pool"].tolist() == ["scale-k2-0"]


def test_efficiency_costs_and_front(tmp_path):
    bench = tmp_path / "b.tsv"
    bench.write_text("s\th:m:s\tmax_rss\n12.0\t0:00:12\t100\n14.0\t0:00:14\t100\n")
    assert eff.read_benchmark_seconds(bench) == 13.0
    assert np.isnan(eff.read_benchmark_seconds(tmp_path / "missing.tsv"))
    run_usage = {
        "model_loads": 2,
        "prompt_tokens": 5,
        "generated_tokens": 5,
        "parameters": {"a": 100, "b": 100},
        "device": "cuda:0",
        "wall_seconds": 9.0,
        "training_seconds": 1.5,
    }
    gen_usage = {
        "model_loads": 1,
        "prompt_tokens": 10,
        "generated_tokens": 10,
        "parameters": {"a": 100},
        "device": "cpu",
        "wall_seconds": 3.0,
    }
    job = eff.job_cost(run_usage, 10.0)
    assert job == {
        "model_loads": 2.0,
        "wall_seconds": 10.0,
        "gpu_seconds": 10.0,
        "flops": 4000.0,
        "training_seconds": 1.5,
    }
    assert eff.job_cost(gen_usage)["wall_seconds"] == 3.0  # no benchmark -> engine wall seconds
    runs, singles = make_scores()
    main = main_table(runs, singles, POOLS, METHODS, LEVELS, n_boot=50)
    gen = {(m, t, s): eff.job_cost(gen_usage) for m in "ab" for t in "tu" for s in ("test", "dev")}
    run_jobs = {("X", "P", t): eff.job_cost(run_usage, 10.0) for t in "tu"}
    e = eff.efficiency_table(
        main,
        single_scores(singles),
        POOLS,
        run_jobs,
        gen,
        {("Y", "P"): 7.0},
        {"X": ["test"], "Y": ["test", "dev"]},
    )
    x = e[(e["run"] == "X") & (e["task"] == "t")].iloc[0]
    # own job + a's and b's test generations
    assert x["flops"] == 4000 + 2 * 4000 and x["wall_seconds"] == 10 + 2 * 3
    assert x["model_loads"] == 2 + 2 and x["gpu_seconds"] == 10 and x["training_seconds"] == 1.5
    y = e[(e["run"] == "Y") & (e["task"] == "t")].iloc[0]
    assert y["wall_seconds"] == 4 * 3 and y["training_seconds"] == 7.0 and y["flops"] == 4 * 4000
    a = e[(e["run"] == "a") & (e["task"] == "t")].iloc[0]
    assert a["kind"] == "model" and a["wall_seconds"] == 3.0 and a["score"] == pytest.approx(0.4)
    # over all tasks: costs summed, score item-weighted ((0.6 * 5 + 1.0 * 2) / 7)
    xa = e[(e["run"] == "X") & (e["task"] == "all")].iloc[0]
    assert xa["score"] == pytest.approx(5 / 7) and xa["wall_seconds"] == 32
    # front on task t by wall seconds: a (3 s, 0.4) b (3 s, 0.6) X (16 s, 0.6) Y (12 s, 1.0)
    front = e[e["task"] == "t"].set_index("run")["on_front_wall_seconds"]
    assert front.to_dict() == {"a": False, "b": True, "X": False, "Y": True}


def _bench(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\n{seconds}\t0:00:{seconds:02.0f}\n")
    return path


def test_only_declared_benchmarks_are_read_and_dev_merges_count_as_training(tmp_path):
    """The analyze rule declares every benchmark it reads (``index_benchmarks``); a merge that chose its weights
    on a task's dev split (``merge/{run}/{pool}/{task}``) is that task's training time, as a per-pool merge is."""
    root = tmp_path / "benchmarks"
    declared = [_bench(root / "collaborate" / "X" / "P" / "t.tsv", 10.0),
                _bench(root / "merge" / "Y" / "P" / "t.tsv", 7.0),  # merge_dev of Y on task t
                _bench(root / "merge" / "Y" / "P" / "u.tsv", 5.0)]
    _bench(root / "collaborate" / "X" / "P" / "u.tsv", 99.0)  # exists, not declared: never read
    benchmarks = eff.index_benchmarks(declared)
    assert set(benchmarks) == {("collaborate", "X", "P", "t"), ("merge", "Y", "P", "t"), ("merge", "Y", "P", "u")}
    usage = {"model_loads": 1, "wall_seconds": 2.0}
    paths = []
    for task in "tu":
        p = tmp_path / "runs" / "X" / "P" / task / "usage.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(usage))
        paths.append(p)
    jobs = eff.load_run_jobs(paths, benchmarks)
    assert jobs[("X", "P", "t")]["wall_seconds"] == 10.0 and jobs[("X", "P", "u")]["wall_seconds"] == 2.0
    merges = eff.load_merge_seconds(benchmarks)
    assert merges == {("Y", "P", "t"): 7.0, ("Y", "P", "u"): 5.0}
    runs, singles = make_scores()
    main = main_table(runs, singles, POOLS, METHODS, LEVELS, n_boot=50)
    e = eff.efficiency_table(main, single_scores(singles), POOLS, jobs, {}, merges, {"X": [], "Y": []})
    training = e[e["run"] == "Y"].set_index("task")["training_seconds"]
    assert training.to_dict() == {"t": 7.0, "u": 5.0, "all": 12.0}
    with pytest.raises(ValueError, match="expected"):
        eff.index_benchmarks([root / "generate" / "m" / "t.tsv"])


def test_analyze_stage_writes_every_table(tmp_path, scores):
    from mocoflow.stages.analyze import main

    runs, singles = scores
    files = []
    for (run, task), g in runs.groupby(["run", "task"]):
        f = tmp_path / "scores" / "runs" / run / "P" / f"{task}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        g.to_parquet(f)
        files.append(str(f))
    sfiles = []
    for (m, task), g in singles.groupby(["model", "task"]):
        f = tmp_path / "scores" / "single" / m / f"{task}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        g.to_parquet(f)
        sfiles.append(str(f))
    usage = tmp_path / "runs" / "X" / "P" / "t" / "usage.json"
    usage.parent.mkdir(parents=True)
    usage.write_text(json.dumps({"model_loads": 0, "wall_seconds": 2.0}))
    out = tmp_path / "tables"
    params = {
        "pools": POOLS,
        "methods": METHODS,
        "levels": LEVELS,
        "domains": DOMAINS,
        "shared_splits": {"X": ["test"]},
        "scaling_pools": None,
        "n_boot": 100,
    }
    names = [
        "main",
        "main-md",
        "main-tex",
        "win-share",
        "singles-out",
        "emergence",
        "scaling",
        "scaling-pools",
        "efficiency",
    ]
    argv = [
        "--singles",
        *sfiles,
        "--runs",
        *files,
        "--run-usage",
        str(usage),
        "--benchmarks",
        "--params",
        json.dumps(params),
    ]
    for n in names:
        argv += [
            f"--{n}",
            str(out / f"{n}.{'md' if n.endswith('md') else 'tex' if n.endswith('tex') else 'csv'}"),
        ]
    main(argv)
    assert set(pd.read_csv(out / "main.csv")["run"]) == {"X", "Y"}
    assert {"run", "score", "best_single_score", "gain", "gain_ci_lo"} <= set(pd.read_csv(out / "main.csv"))
    assert "model" in pd.read_csv(out / "singles-out.csv")
    assert set(pd.read_csv(out / "emergence.csv")["scope"]) == {"setting", "domain", "run", "domain_all_runs"}
    assert set(pd.read_csv(out / "scaling.csv")["pool_size"]) == {2}
    e = pd.read_csv(out / "efficiency.csv")
    assert e.loc[(e["run"] == "X") & (e["task"] == "t"), "wall_seconds"].item() == 2.0
    assert (out / "main-md.md").read_text().startswith("## Main results")


def test_cached_generations_still_cost_flops(tmp_path: Path):
    """A generation job answered from the response cache processed no tokens itself, but its answers are not
    free: FLOPs come from the tokens of the records it wrote."""
    d = tmp_path / "generations" / "m" / "mini"
    d.mkdir(parents=True)
    usage = {"prompt_tokens": 0, "generated_tokens": 0, "cache_hits": 2, "parameters": {"m": 1000},
             "model_loads": 1}
    (d / "test.usage.json").write_text(json.dumps(usage))
    (d / "test.jsonl").write_text(
        "\n".join(json.dumps({"id": str(i), "prompt_tokens": 10, "generated_tokens": 5, "cached": True})
                  for i in range(2)) + "\n"
    )
    jobs = eff.load_gen_jobs([d / "test.usage.json"], {})
    assert jobs[("m", "mini", "test")]["flops"] == 2.0 * 1000 * (2 * 15)
    assert eff.job_cost(usage)["flops"] == 0.0  # the engine's own count: nothing processed in this job


def test_single_scores_give_accuracy_cis_and_a_specialists_gain_over_its_base() -> None:
    _, singles = make_scores()
    table = single_scores(singles, {"b": "a"}, n_boot=500, seed=0).set_index(["model", "task"])
    row = table.loc[("b", "t")]
    assert row["score"] == pytest.approx(0.6) and row["base"] == "a"
    assert row["ci_lo"] <= 0.6 <= row["ci_hi"] and row["ci_hi"] - row["ci_lo"] > 0.2  # 5 items: a wide CI
    # b - a on t: [0, -1, 1, 1, 0] -> mean 0.2, the paired interval of those differences
    gain, lo, hi = paired_bootstrap_ci([1, 0, 1, 1, 0], [1, 1, 0, 0, 0], n_boot=500, seed=0)
    assert row["gain_vs_base"] == pytest.approx(gain) == pytest.approx(0.2)
    assert (row["gain_ci_lo"], row["gain_ci_hi"]) == pytest.approx((lo, hi))
    assert row["significant"] == ("+" if lo > 0 else "-" if hi < 0 else "")
    assert table.loc[("b", "u"), "gain_vs_base"] == pytest.approx(0.5)
    assert pd.isna(table.loc[("a", "t"), "base"]) and pd.isna(table.loc[("a", "t"), "gain_vs_base"])
