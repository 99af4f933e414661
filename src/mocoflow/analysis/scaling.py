"""Scaling: score against pool size (with bootstrap CIs) and against pool diversity.

Which pools: with a ``scaling:`` config, the generated ``scale-k{size}-{i}`` pools; without one, every
configured pool a run ran on (its size is its number of models), so the table and figure always exist.
Diversity of a pool on a task is the mean over member pairs of the share of test items on which the two
members' parsed answers differ; an unparseable (missing) answer differs from every answer. A one-model pool
has 0.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from mocoflow.analysis.main_table import best_single
from mocoflow.analysis.stats import DEFAULT_BOOT, bootstrap_mean_ci, item_means, paired_bootstrap_ci

POOL_COLUMNS = [
    "run",
    "method",
    "pool",
    "task",
    "pool_size",
    "members",
    "diversity",
    "n_items",
    "score",
    "best_single_score",
    "gain",
    "oracle_score",
]
SIZE_COLUMNS = [
    "run",
    "method",
    "task",
    "pool_size",
    "n_pools",
    "n_items",
    "score",
    "score_ci_lo",
    "score_ci_hi",
    "best_single_score",
    "gain",
    "gain_ci_lo",
    "gain_ci_hi",
    "oracle_score",
    "diversity",
]


def _answers(singles: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    """(model, task) -> answer per item id as strings; missing answers NaN; with seeds, the first seed's."""
    col = "parsed" if "parsed" in singles.columns else "correct"
    df = singles
    if "seed" in df.columns:
        df = df[df["seed"] == df.groupby(["model", "task"])["seed"].transform("min")]
    df = df.drop_duplicates(["model", "task", "id"])
    vals = df[col].map(lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    df = df.assign(_a=vals)
    return {k: g.set_index("id")["_a"] for k, g in df.groupby(["model", "task"])}


def disagreement(a: pd.Series, b: pd.Series) -> float:
    """Share of common items on which two answer series differ (a missing answer differs from everything)."""
    common = a.index.intersection(b.index)
    if len(common) == 0:
        return float("nan")
    x, y = a[common], b[common]
    differ = (x != y) | x.isna() | y.isna()
    return float(differ.mean())


def pool_diversity(answers: dict[tuple[str, str], pd.Series], members: list[str], task: str) -> float:
    """Mean pairwise disagreement of the members' answers on ``task`` (0 for one member)."""
    if len(members) < 2:
        return 0.0
    vals = [
        disagreement(answers[(a, task)], answers[(b, task)])
        for a, b in itertools.combinations(members, 2)
        if (a, task) in answers and (b, task) in answers
    ]
    return float(np.nanmean(vals)) if vals and not all(np.isnan(vals)) else float("nan")


def scaling_pool_rows(
    runs: pd.DataFrame,
    singles: pd.DataFrame,
    pools: dict[str, list[str]],
    methods: dict[str, str],
    pool_names: list[str] | None = None,
) -> pd.DataFrame:
    """One row per (run, pool, task) over ``pool_names`` (default: every pool in ``runs``): pool size,
    members, diversity, score, the best member's score, gain and the oracle score (share of items some member
    solves).
    """
    if runs.empty:
        return pd.DataFrame(columns=POOL_COLUMNS)
    if pool_names is not None:
        runs = runs[runs["pool"].isin(pool_names)]
    run_items = item_means(runs, ["run", "pool", "task"])
    single_items = item_means(singles, ["model", "task"])
    per_model = single_items.groupby(["model", "task"])["correct"].mean()
    solved = {k: g.set_index("id")["correct"] > 0.5 for k, g in single_items.groupby(["model", "task"])}
    answers = _answers(singles)
    rows = []
    for (run, pool, task), g in run_items.groupby(["run", "pool", "task"], sort=True):
        members = pools.get(pool, [pool])
        _, best = best_single(members, task, per_model)
        ids = pd.Index(g["id"])
        oracle = pd.Series(False, index=ids)
        for m in members:
            if (m, task) in solved:
                oracle |= solved[(m, task)].reindex(ids, fill_value=False)
        score = float(g["correct"].mean())
        rows.append(
            {
                "run": run,
                "method": methods.get(run, run),
                "pool": pool,
                "task": task,
                "pool_size": len(members),
                "members": ";".join(members),
                "diversity": pool_diversity(answers, members, task),
                "n_items": len(g),
                "score": score,
                "best_single_score": best,
                "gain": score - best,
                "oracle_score": float(oracle.mean()),
            }
        )
    return pd.DataFrame(rows, columns=POOL_COLUMNS)


def scaling_table(
    runs: pd.DataFrame,
    singles: pd.DataFrame,
    pool_rows: pd.DataFrame,
    pools: dict[str, list[str]],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (run, task, pool size), and per (run, pool size) over all tasks (task = "all"): mean score over the
    pools of that size with a bootstrap 95 % CI over items (each item's correctness averaged over the pools
    first), the mean best-member score, the mean gain with a paired CI, the mean oracle score and diversity.
    """
    if pool_rows.empty:
        return pd.DataFrame(columns=SIZE_COLUMNS)
    single_items = item_means(singles, ["model", "task"])
    per_model = single_items.groupby(["model", "task"])["correct"].mean()
    run_items = item_means(runs[runs["pool"].isin(set(pool_rows["pool"]))], ["run", "pool", "task"])
    best_of = pd.DataFrame(
        [
            (pool, task, best_single(pools.get(pool, [pool]), task, per_model)[0])
            for pool, task in pool_rows[["pool", "task"]].drop_duplicates().itertuples(index=False)
        ],
        columns=["pool", "task", "model"],
    )
    best_items = best_of.merge(single_items[["model", "task", "id", "correct"]], on=["model", "task"]).rename(
        columns={"correct": "best"}
    )[["pool", "task", "id", "best"]]
    run_items = run_items.merge(best_items, on=["pool", "task", "id"], how="left")
    run_items["pool_size"] = run_items["pool"].map(lambda p: len(pools.get(p, [p])))
    per_item = run_items.groupby(["run", "task", "pool_size", "id"], as_index=False).agg(
        correct=("correct", "mean"), best=("best", "mean")
    )
    meta = pool_rows.groupby(["run", "method", "task", "pool_size"], as_index=False).agg(
        n_pools=("pool", "nunique"),
        best_single_score=("best_single_score", "mean"),
        oracle_score=("oracle_score", "mean"),
        diversity=("diversity", "mean"),
    )
    all_tasks = (
        pool_rows.groupby(["run", "method", "pool_size"], as_index=False)
        .agg(
            n_pools=("pool", "nunique"),
            oracle_score=("oracle_score", "mean"),
            diversity=("diversity", "mean"),
        )
        .assign(task="all")
    )
    rows = []
    for part, keys in ((meta, ["run", "task", "pool_size"]), (all_tasks, ["run", "pool_size"])):
        groups = dict(iter(per_item.groupby(keys)))
        for r in part.to_dict("records"):
            g = groups[tuple(r[k] for k in keys)]
            score, lo, hi = bootstrap_mean_ci(g["correct"].to_numpy(), n_boot=n_boot, seed=seed)
            ok = g["best"].notna().to_numpy()
            gain, glo, ghi = paired_bootstrap_ci(
                g["correct"].to_numpy()[ok], g["best"].to_numpy()[ok], n_boot=n_boot, seed=seed
            )
            rows.append(
                {
                    **r,
                    "n_items": len(g),
                    "score": score,
                    "score_ci_lo": lo,
                    "score_ci_hi": hi,
                    "best_single_score": float(g["best"].mean()),
                    "gain": gain,
                    "gain_ci_lo": glo,
                    "gain_ci_hi": ghi,
                }
            )
    return (
        pd.DataFrame(rows, columns=SIZE_COLUMNS)
        .sort_values(["run", "task", "pool_size"])
        .reset_index(drop=True)
    )
