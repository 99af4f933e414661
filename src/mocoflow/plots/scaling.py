"""Figure: score against pool size (mean over the pools of each size, 95 % bootstrap CI band) and against pool
diversity (one point per pool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mocoflow.plots.common import empty, pyplot, run_palette, save, settings


def plot_scaling(
    by_size: pd.DataFrame, by_pool: pd.DataFrame, out_paths: list[Path], params: dict[str, Any] | None = None
) -> None:
    """Left: accuracy over all tasks (item-weighted) per pool size and run, with the CI band, the mean best
    member (dashed) and the oracle (dotted: some member solves the item). Right: each (run, pool)'s accuracy
    against its members' mean pairwise answer disagreement. Settings: ``plots.scaling.task`` (default "all").
    """
    opts = settings(params or {}, "scaling")
    plt, sns = pyplot(opts)
    task = str(opts.get("task", "all"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(float(opts["width"]), 3.0))
    size = by_size[by_size["task"] == task] if len(by_size) else by_size
    runs = sorted(set(size["run"]) | set(by_pool["run"])) if len(by_pool) or len(size) else []
    palette = run_palette(runs)
    if size.empty:
        empty(left, "pools")
    else:
        for run, g in size.groupby("run"):
            g = g.sort_values("pool_size")
            left.plot(g["pool_size"], g["score"], marker="o", color=palette[run], label=run)
            left.fill_between(
                g["pool_size"], g["score_ci_lo"], g["score_ci_hi"], color=palette[run], alpha=0.2, linewidth=0
            )
        ref = size.groupby("pool_size")[["best_single_score", "oracle_score"]].mean().sort_index()
        left.plot(ref.index, ref["best_single_score"], ls="--", color="black", label="best member (mean)")
        left.plot(ref.index, ref["oracle_score"], ls=":", color="gray", label="oracle (any member)")
        left.set_xticks(sorted(size["pool_size"].unique()))
        left.set_xlabel("pool size (models)")
        left.set_ylabel(f"accuracy on test ({'all tasks' if task == 'all' else task})")
        left.set_ylim(-0.02, 1.02)
    pools = by_pool if task == "all" or by_pool.empty else by_pool[by_pool["task"] == task]
    if pools.empty:
        empty(right, "pools")
    else:
        w = pools.assign(_w=pools["score"] * pools["n_items"])
        agg = w.groupby(["run", "pool"], as_index=False).agg(
            _w=("_w", "sum"),
            n=("n_items", "sum"),
            diversity=("diversity", "mean"),
            pool_size=("pool_size", "first"),
        )
        agg["score"] = agg["_w"] / agg["n"]
        sns.scatterplot(
            data=agg,
            x="diversity",
            y="score",
            hue="run",
            palette=palette,
            size="pool_size",
            sizes=(20, 120),
            ax=right,
            legend=False,
            alpha=0.8,
        )
        right.set_xlabel("pool diversity (mean pairwise disagreement)")
        right.set_ylabel("accuracy on test")
        right.set_ylim(-0.02, 1.02)
    handles, labels = left.get_legend_handles_labels()
    if handles:
        right.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize="small",
            title="run (right: marker size = pool size)",
            title_fontsize="small",
        )
    fig.tight_layout()
    save(fig, out_paths, int(opts["dpi"]))
