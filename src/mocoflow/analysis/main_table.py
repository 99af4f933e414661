"""The main table: per (run, pool, task) the score, the pool's best single model, the gain with a paired
bootstrap 95 % CI over items, whether the run was degenerate (its decisions reduce to one model), and per method
the share of (pool, task) settings where it beats the best single model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mocoflow.analysis.stats import DEFAULT_BOOT, bootstrap_mean_ci, item_means, paired_bootstrap_ci, wilson_ci

COST_AGG = {
    "generated_tokens": "sum",
    "new_generated_tokens": "sum",
    "job_model_loads": "first",
    "job_wall_seconds": "first",
}


def single_scores(singles: pd.DataFrame, bases: dict[str, str] | None = None, *, n_boot: int = DEFAULT_BOOT,
                  seed: int = 0) -> pd.DataFrame:
    """Per (model, task): accuracy (averaged over seeds per item first) with its bootstrap 95 % CI over items
    (``ci_lo``, ``ci_hi``), item and seed counts, generated tokens (summed over items, averaged over seeds).

    ``bases`` maps a specialist (a LoRA model) to its base model: its rows also give ``base``, the gain over the
    base on the same items (``gain_vs_base``) and its paired bootstrap CI (``gain_ci_lo``, ``gain_ci_hi``;
    ``significant`` "+" or "-" when the CI excludes 0). Other rows leave them empty."""
    items = item_means(singles, ["model", "task"])
    out = items.groupby(["model", "task"], as_index=False).agg(
        score=("correct", "mean"), n_items=("id", "count"), n_seeds=("n_seeds", "max")
    )
    vectors = {k: g.set_index("id")["correct"] for k, g in items.groupby(["model", "task"])}
    cis = [bootstrap_mean_ci(vectors[(m, t)].to_numpy(), n_boot=n_boot, seed=seed)[1:]
           for m, t in zip(out["model"], out["task"], strict=True)]
    out["ci_lo"] = [lo for lo, _ in cis]
    out["ci_hi"] = [hi for _, hi in cis]
    gains: list[dict[str, object]] = []
    for m, t in zip(out["model"], out["task"], strict=True):
        base = (bases or {}).get(m)
        if base is None or (base, t) not in vectors:
            gains.append({})
            continue
        mine, ref = vectors[(m, t)], vectors[(base, t)]
        common = mine.index.intersection(ref.index)
        gain, lo, hi = paired_bootstrap_ci(mine[common].to_numpy(), ref[common].to_numpy(), n_boot=n_boot,
                                           seed=seed)
        gains.append({"base": base, "gain_vs_base": gain, "gain_ci_lo": lo, "gain_ci_hi": hi,
                      "significant": "+" if lo > 0 else "-" if hi < 0 else ""})
    for col in ("base", "gain_vs_base", "gain_ci_lo", "gain_ci_hi", "significant"):
        out[col] = [g.get(col) for g in gains]
    if "generated_tokens" in singles.columns and len(out):
        tokens = singles.groupby(["model", "task"])["generated_tokens"].sum()
        out["generated_tokens"] = (
            tokens.reindex(pd.MultiIndex.from_frame(out[["model", "task"]])).to_numpy()
            / out["n_seeds"].to_numpy()
        )
    return out


def best_single(pool_members: list[str], task: str, per_model: pd.Series) -> tuple[str, float]:
    """The pool member with the highest test accuracy on ``task``; ties go to the earliest member in pool
    order; members without scores are ignored (NaN if none has one)."""
    best_name, best_score = "", float("nan")
    for m in pool_members:
        s = float(per_model.get((m, task), float("nan")))
        if not np.isnan(s) and (np.isnan(best_score) or s > best_score):
            best_name, best_score = m, s
    return best_name, best_score


def main_table(
    runs: pd.DataFrame,
    singles: pd.DataFrame,
    pools: dict[str, list[str]],
    methods: dict[str, str],
    levels: dict[str, str],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    degenerate: dict[tuple[str, str, str], bool] | None = None,
) -> pd.DataFrame:
    """One row per (run, pool, task): score, best single model of the pool on that task (by test accuracy, the
    usual reference point), gain = score - best single, its paired bootstrap 95 % CI over items, cost columns,
    and ``degenerate`` (``degenerate[(run, pool, task)]``, from :mod:`mocoflow.analysis.decisions`: True when
    the run's reliance has at most one non-zero share; empty for runs that record no reliance).

    Seeds: if a ``seed`` column is present, each item's correctness is averaged over seeds first (for runs and
    singles alike), so scores are seed-averaged accuracies and CIs resample items, not seeds.
    """
    cols = [
        "run",
        "method",
        "level",
        "pool",
        "task",
        "n_items",
        "n_seeds",
        "score",
        "best_single",
        "best_single_score",
        "gain",
        "gain_ci_lo",
        "gain_ci_hi",
        "significant",
        "degenerate",
        "generated_tokens",
        "new_generated_tokens",
        "job_model_loads",
        "job_wall_seconds",
    ]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    keys = ["run", "pool", "task"]
    run_items = item_means(runs, keys)
    single_items = item_means(singles, ["model", "task"])
    per_model = single_items.groupby(["model", "task"])["correct"].mean()
    single_vec = {k: g.set_index("id")["correct"] for k, g in single_items.groupby(["model", "task"])}
    seeds_per_job = runs.groupby(keys + ["id"]).size().groupby(level=[0, 1, 2]).max()
    agg_spec = {c: (c, how) for c, how in COST_AGG.items() if c in runs.columns}
    costs = runs.groupby(keys).agg(**agg_spec) if agg_spec else pd.DataFrame(index=seeds_per_job.index)
    # tokens were summed over seeds; report per-seed averages
    for c in ("generated_tokens", "new_generated_tokens"):
        if c in costs:
            costs[c] = costs[c] / seeds_per_job.reindex(costs.index)
    rows = []
    for (run, pool, task), g in run_items.groupby(keys, sort=False):
        name, best = best_single(pools.get(pool, [pool]), task, per_model)
        sys_vec = g.set_index("id")["correct"]
        row = {
            "run": run,
            "pool": pool,
            "task": task,
            "n_items": len(g),
            "n_seeds": int(g["n_seeds"].max()),
            "score": float(sys_vec.mean()),
            "best_single": name,
            "best_single_score": best,
        }
        if name:
            ref = single_vec[(name, task)]
            common = sys_vec.index.intersection(ref.index)
            _, lo, hi = paired_bootstrap_ci(
                sys_vec[common].to_numpy(), ref[common].to_numpy(), n_boot=n_boot, seed=seed
            )
        else:
            lo = hi = float("nan")
        row.update(
            gain=row["score"] - best,
            gain_ci_lo=lo,
            gain_ci_hi=hi,
            significant="+" if lo > 0 else "-" if hi < 0 else "",
        )
        rows.append(row)
    table = pd.DataFrame(rows).join(costs, on=keys)
    table["method"] = table["run"].map(methods).fillna(table["run"])
    table["level"] = table["method"].map(lambda m: levels.get(m, ""))
    flags = degenerate or {}
    table["degenerate"] = pd.Series([flags.get(k) for k in zip(table["run"], table["pool"], table["task"],
                                                                strict=True)], index=table.index, dtype=object)
    for c in cols:
        if c not in table:
            table[c] = np.nan
    return table[cols].sort_values(["task", "pool", "run"]).reset_index(drop=True)


def win_share(table: pd.DataFrame) -> pd.DataFrame:
    """Per run: the (pool, task) settings it ran on, how many it beats the best single model in (gain > 0, and
    with the CI above 0), their share with its Wilson 95 % interval (settings counted as independent draws),
    and the mean and max gain; a last row ``all`` pools every run's settings."""
    cols = [
        "run",
        "method",
        "level",
        "n_settings",
        "wins",
        "win_share",
        "win_share_ci_lo",
        "win_share_ci_hi",
        "significant_wins",
        "mean_gain",
        "max_gain",
    ]
    if table.empty:
        return pd.DataFrame(columns=cols)

    def summarise(g: pd.DataFrame) -> dict:
        wins = int((g["gain"] > 0).sum())
        return {
            "n_settings": len(g),
            "wins": wins,
            "win_share": wins / len(g),
            "significant_wins": int((g["gain_ci_lo"] > 0).sum()),
            "mean_gain": float(g["gain"].mean()),
            "max_gain": float(g["gain"].max()),
        }

    rows = [
        {"run": run, "method": g["method"].iloc[0], "level": g["level"].iloc[0], **summarise(g)}
        for run, g in table.groupby("run", sort=True)
    ]
    rows.append({"run": "all", "method": "", "level": "", **summarise(table)})
    out = pd.DataFrame(rows, columns=cols)
    out["win_share_ci_lo"], out["win_share_ci_hi"] = wilson_ci(out["wins"], out["n_settings"])
    return out


def _fmt(v: object, digits: int) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured markdown table (no extra dependency)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    body = [
        "| " + " | ".join(_fmt(v, digits).replace("|", "\\|") for v in row) + " |"
        for row in df.itertuples(index=False)
    ]
    return "\n".join([head, rule, *body]) + "\n"


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(df: pd.DataFrame, digits: int = 3, caption: str = "", label: str = "") -> str:
    """A booktabs ``table`` environment (no extra dependency); text is escaped."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(_tex(str(c)) for c in df.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex(_fmt(v, digits)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_tex(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


MAIN_VIEW = [
    "run",
    "pool",
    "task",
    "score",
    "best_single",
    "best_single_score",
    "gain",
    "gain_ci_lo",
    "gain_ci_hi",
    "degenerate",
]
WIN_VIEW = ["run", "level", "n_settings", "wins", "win_share", "win_share_ci_lo", "win_share_ci_hi",
            "significant_wins", "mean_gain", "max_gain"]


def render_markdown(table: pd.DataFrame, wins: pd.DataFrame) -> str:
    return (
        "## Main results\n\nAccuracy on test; gain = score - best single model of the pool; 95 % paired "
        "bootstrap CI of the gain over items; degenerate = the run's decisions reduce to one model.\n\n"
        + to_markdown(table[MAIN_VIEW])
        + "\n## Win share\n\nShare of (pool, task) settings where the run beats the best single model.\n\n"
        + to_markdown(wins[WIN_VIEW])
    )


def render_latex(table: pd.DataFrame, wins: pd.DataFrame) -> str:
    return (
        to_latex(
            table[MAIN_VIEW],
            caption="Accuracy on test, best single model of the pool, gain and its "
            "95% paired bootstrap CI over items.",
            label="tab:main",
        )
        + "\n"
        + to_latex(
            wins[WIN_VIEW],
            caption="Share of (pool, task) settings where each run beats the best single model of the pool.",
            label="tab:win-share",
        )
    )
