"""Figure: each run's gain over its pool's best single model, per task and pool, as an annotated heatmap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mocoflow.analysis.pools import PREFIX as SCALING_PREFIX
from mocoflow.plots.common import annotated_heatmap, empty, pyplot, save, settings

LEVEL_ORDER = ("reference", "api", "text", "logit", "weight")
DEGENERATE_MARK = "\u2020"  # dagger: the run reduced to one model (see analysis.decisions)


def gain_grid(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Gain (points) and cell labels with one row per run (ordered by level, then name) and one column per
    task and pool; a label ends in ``*`` where the gain's 95 % CI excludes 0 and in ``DEGENERATE_MARK`` where
    the run was degenerate (its decisions reduce to one model: ``degenerate`` in the main table). Also returns
    the column titles (task, pool and the best single model's score)."""
    data = table.assign(
        setting=table["task"].astype(str) + " / " + table["pool"].astype(str),
        level=table["level"].fillna("").replace("", "reference") if "level" in table else "reference",
    )
    order = {lvl: i for i, lvl in enumerate(LEVEL_ORDER)}
    runs = sorted(
        dict.fromkeys(zip(data["level"], data["run"], strict=True)),
        key=lambda lr: (order.get(lr[0], len(order)), lr[1]),
    )
    rows = [f"{run} ({level})" for level, run in runs]
    data = data.assign(row=[f"{r} ({lv})" for r, lv in zip(data["run"], data["level"], strict=True)])
    settings_ = list(dict.fromkeys(data.sort_values(["task", "pool"])["setting"]))
    gain = data.pivot_table(index="row", columns="setting", values="gain", aggfunc="first")
    gain = gain.reindex(index=rows, columns=settings_) * 100
    significant = (data["gain_ci_lo"] > 0) | (data["gain_ci_hi"] < 0)
    marks = data.assign(sig=significant).pivot_table(index="row", columns="setting", values="sig", aggfunc="first")
    marks = marks.reindex(index=rows, columns=settings_)
    labels = gain.map(lambda v: "" if pd.isna(v) else f"{v:+.0f}")
    labels = labels.where(~marks.fillna(False).astype(bool), labels + "*")
    if "degenerate" in data:
        flag = data["degenerate"].map(lambda v: str(v).strip().lower() in ("true", "1"))
        degenerate = data.assign(deg=flag).pivot_table(index="row", columns="setting", values="deg",
                                                       aggfunc="first")
        degenerate = degenerate.reindex(index=rows, columns=settings_).fillna(False).astype(bool)
        labels = labels.where(~degenerate | (labels == ""), labels + DEGENERATE_MARK)
    best = data.drop_duplicates("setting").set_index("setting")
    titles = [
        f"{s.replace(' / ', chr(10))}\n{best.loc[s, 'best_single']}\n{best.loc[s, 'best_single_score']:.2f}"
        for s in settings_
    ]
    return gain, labels, titles


def plot_main(
    table: pd.DataFrame,
    out_paths: list[Path],
    *,
    context: str = "paper",
    dpi: int = 200,
    params: dict[str, Any] | None = None,
) -> None:
    """Heatmap: rows are runs (grouped by level), columns are task / pool with the pool's best single model
    and its accuracy; each cell is the run's accuracy minus that best single score, in percentage points,
    ``*`` where the paired bootstrap 95 % CI of the gain excludes 0. Generated scaling pools are left out
    unless ``plots.main.scaling_pools`` is true (see the scaling figure)."""
    opts = settings({"context": context, "dpi": dpi, **(params or {})}, "main")
    plt, _ = pyplot(opts)
    if not opts.get("scaling_pools", False) and len(table):
        table = table[~table["pool"].astype(str).str.startswith(SCALING_PREFIX)]
    if table.empty:
        fig, ax = plt.subplots(figsize=(float(opts["width"]), 3.0))
        empty(ax, "runs")
        save(fig, out_paths, int(opts["dpi"]))
        return
    gain, labels, titles = gain_grid(table)
    limit = max(5.0, float(np.nanmax(np.abs(gain.to_numpy()))))
    fig, ax = plt.subplots(
        figsize=(max(float(opts["width"]), 0.85 * gain.shape[1] + 3.0), 0.24 * gain.shape[0] + 2.0)
    )
    annotated_heatmap(ax, gain, labels, cmap="vlag_r", vmin=-limit, vmax=limit, center=0,
                      cbar_label="gain over the best single model (points)")
    ax.set_xticks(np.arange(len(titles)) + 0.5, titles, rotation=0, fontsize="x-small")
    ax.set_xlabel("columns: task, pool, its best single model and that model's test accuracy\n"
                  f"* : 95 % CI of the gain excludes 0;  {DEGENERATE_MARK} : the run reduced to one model")
    ax.xaxis.tick_top()
    fig.tight_layout()
    save(fig, out_paths, int(opts["dpi"]))
