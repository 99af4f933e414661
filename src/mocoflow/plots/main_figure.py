"""Figure: each run's score per task and pool against the pool's best single model, with the gain's CI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mocoflow.analysis.pools import PREFIX as SCALING_PREFIX
from mocoflow.plots.common import empty, legend_outside, pyplot, run_palette, save, settings


def plot_main(
    table: pd.DataFrame,
    out_paths: list[Path],
    *,
    context: str = "paper",
    dpi: int = 200,
    params: dict[str, Any] | None = None,
) -> None:
    """Bars: accuracy per run; dashed line: the pool's best single model; error bars: the best single score
    plus the gain's paired bootstrap CI (so they show where the run's score could lie relative to that line).
    Generated scaling pools are left out unless ``plots.main.scaling_pools`` is true (see the scaling figure).
    """
    opts = settings({"context": context, "dpi": dpi, **(params or {})}, "main")
    plt, sns = pyplot(opts)
    if not opts.get("scaling_pools", False) and len(table):
        table = table[~table["pool"].astype(str).str.startswith(SCALING_PREFIX)]
    data = table.assign(setting=table["task"].astype(str) + "\n(" + table["pool"].astype(str) + ")")
    settings_ = list(dict.fromkeys(data["setting"]))
    runs = list(dict.fromkeys(data["run"]))
    fig, ax = plt.subplots(
        figsize=(max(float(opts["width"]) * 0.6, 0.5 * len(settings_) * max(len(runs), 2) + 2), 3.2)
    )
    if data.empty:
        empty(ax, "runs")
        save(fig, out_paths, int(opts["dpi"]))
        return
    palette = run_palette(runs)
    width = 0.8 / max(len(runs), 1)
    for j, run in enumerate(runs):
        sub = data[data["run"] == run].set_index("setting")
        xs = [i - 0.4 + width * (j + 0.5) for i, s in enumerate(settings_) if s in sub.index]
        rows = sub.loc[[s for s in settings_ if s in sub.index]]
        ax.bar(xs, rows["score"], width=width * 0.95, color=palette[run], label=run)
        if {"gain_ci_lo", "gain_ci_hi"} <= set(rows.columns):
            lo = rows["best_single_score"] + rows["gain_ci_lo"]
            hi = rows["best_single_score"] + rows["gain_ci_hi"]
            ok = lo.notna().to_numpy()
            ax.errorbar(
                np.asarray(xs)[ok],
                rows["score"].to_numpy()[ok],
                yerr=[
                    (rows["score"] - lo).clip(lower=0).to_numpy()[ok],
                    (hi - rows["score"]).clip(lower=0).to_numpy()[ok],
                ],
                fmt="none",
                ecolor="black",
                elinewidth=0.8,
                capsize=2,
            )
    best = data.drop_duplicates("setting").set_index("setting")["best_single_score"]
    for i, s in enumerate(settings_):
        ax.hlines(
            best[s],
            i - 0.45,
            i + 0.45,
            colors="black",
            linestyles="--",
            linewidth=1.2,
            label="best single model" if i == 0 else None,
        )
    ax.set_xticks(range(len(settings_)), settings_)
    ax.set_xlabel("task (pool)")
    ax.set_ylabel("accuracy on test")
    ax.set_ylim(0, 1.02)
    legend_outside(ax, "run")
    fig.tight_layout()
    save(fig, out_paths, int(opts["dpi"]))
