"""Collaborative emergence: items no single pool model solves that the system solves, and the reverse (items
some single model solves that the system loses), per setting, by task domain, per run and over all runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mocoflow.analysis.stats import item_means, wilson_ci

COUNTS = ["n_items", "n_single_solved", "n_unsolved", "emergent", "lost"]
COLUMNS = [
    "scope",
    "run",
    "method",
    "pool",
    "task",
    "domain",
    *COUNTS,
    "emergence_share",
    "emergence_ci_lo",
    "emergence_ci_hi",
    "loss_share",
    "loss_ci_lo",
    "loss_ci_hi",
    "oracle_score",
    "score",
]


def solved(frac: pd.Series) -> pd.Series:
    """An item counts as solved when it is correct in more than half of the decoding seeds (with one seed:
    when it is correct)."""
    return frac > 0.5


def emergence_counts(
    runs: pd.DataFrame,
    singles: pd.DataFrame,
    pools: dict[str, list[str]],
    methods: dict[str, str],
    domains: dict[str, str],
) -> pd.DataFrame:
    """Per (run, pool, task): n_items, n_single_solved (some pool member solves the item), n_unsolved (no
    member does), emergent (unsolved by every member but solved by the system) and lost (solved by some member
    but not by the system). Items a member has no score for count as not solved by that member."""
    rows = []
    if runs.empty:
        return pd.DataFrame(columns=["run", "method", "pool", "task", "domain", *COUNTS])
    run_items = item_means(runs, ["run", "pool", "task"])
    single_items = item_means(singles, ["model", "task"])
    by_model = {k: solved(g.set_index("id")["correct"]) for k, g in single_items.groupby(["model", "task"])}
    for (run, pool, task), g in run_items.groupby(["run", "pool", "task"], sort=True):
        sys_ok = solved(g.set_index("id")["correct"])
        any_single = pd.Series(False, index=sys_ok.index)
        for m in pools.get(pool, [pool]):
            if (m, task) in by_model:
                any_single |= by_model[(m, task)].reindex(sys_ok.index, fill_value=False)
        rows.append(
            {
                "run": run,
                "method": methods.get(run, run),
                "pool": pool,
                "task": task,
                "domain": domains.get(task) or "other",
                "n_items": len(sys_ok),
                "n_single_solved": int(any_single.sum()),
                "n_unsolved": int((~any_single).sum()),
                "emergent": int((sys_ok & ~any_single).sum()),
                "lost": int((~sys_ok & any_single).sum()),
                "_solved": int(sys_ok.sum()),
            }
        )
    return pd.DataFrame(rows)


def _shares(df: pd.DataFrame) -> pd.DataFrame:
    with np.errstate(divide="ignore", invalid="ignore"):
        df["emergence_share"] = df["emergent"] / df["n_unsolved"].replace(0, np.nan)
        df["loss_share"] = df["lost"] / df["n_single_solved"].replace(0, np.nan)
        df["emergence_ci_lo"], df["emergence_ci_hi"] = wilson_ci(df["emergent"], df["n_unsolved"])
        df["loss_ci_lo"], df["loss_ci_hi"] = wilson_ci(df["lost"], df["n_single_solved"])
        df["oracle_score"] = df["n_single_solved"] / df["n_items"]
        df["score"] = df["_solved"] / df["n_items"]
    return df


def emergence_table(
    runs: pd.DataFrame,
    singles: pd.DataFrame,
    pools: dict[str, list[str]],
    methods: dict[str, str],
    domains: dict[str, str],
) -> pd.DataFrame:
    """Emergence rows at four scopes (column ``scope``): ``setting`` (run x pool x task), ``domain`` (run x
    task domain, pooled over pools and tasks), ``run`` (all of a run's settings) and ``domain_all_runs``
    (every run's settings in a domain, run = "all"). Shares are pooled over items (micro-averages):
    emergence_share = emergent / n_unsolved, loss_share = lost / n_single_solved, each with its Wilson 95 %
    interval (``*_ci_lo``/``*_ci_hi``; items counted as independent draws, which pooled scopes that count an
    item once per run overstate); oracle_score is the share of
    items some pool member solves, score the system's share of solved items."""
    counts = emergence_counts(runs, singles, pools, methods, domains)
    if counts.empty:
        return pd.DataFrame(columns=COLUMNS)
    sums = [*COUNTS, "_solved"]
    parts = [counts.assign(scope="setting")]
    by_domain = counts.groupby(["run", "method", "domain"], as_index=False)[sums].sum()
    parts.append(by_domain.assign(scope="domain", pool="all", task="all"))
    by_run = counts.groupby(["run", "method"], as_index=False)[sums].sum()
    parts.append(by_run.assign(scope="run", pool="all", task="all", domain="all"))
    all_runs = counts.groupby(["domain"], as_index=False)[sums].sum()
    parts.append(all_runs.assign(scope="domain_all_runs", run="all", method="all", pool="all", task="all"))
    out = _shares(pd.concat(parts, ignore_index=True))
    return out[COLUMNS]
