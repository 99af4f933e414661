"""Figure: score against cost per run and single model, one panel per pool, with the Pareto front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mocoflow.analysis.pools import PREFIX as SCALING_PREFIX
from mocoflow.plots.common import LEVELS, empty, grouped_legend, level_styles, pyplot, save, settings

COST_LABELS = {
    "generated_tokens": "generated tokens (incl. shared generations)",
    "new_generated_tokens": "newly generated tokens",
    "flops": "estimated FLOPs (2 x params x tokens)",
    "wall_seconds": "wall-clock seconds",
    "gpu_seconds": "GPU-seconds",
    "model_loads": "model loads",
}


def plot_efficiency(table: pd.DataFrame, out_paths: list[Path], params: dict[str, Any] | None = None) -> None:
    """Settings: ``plots.efficiency.cost`` (a cost column, default ``flops``), ``log`` (default true),
    ``task`` (default "all": every task, costs summed, accuracy item-weighted; runs configured on different
    tasks are then not comparable, so a study whose costly methods run on one task should plot that task),
    ``scaling_pools`` (default
    false: generated scaling pools left out). Filled markers: collaborative runs; grey crosses: single models;
    the line joins the Pareto front (``on_front_<cost>``, else recomputed).
    """
    from matplotlib.ticker import NullFormatter

    from mocoflow.analysis.stats import pareto_front

    opts = settings(params or {}, "efficiency")
    plt, sns = pyplot(opts)
    cost, task = str(opts.get("cost", "flops")), str(opts.get("task", "all"))
    data = table[table["task"] == task] if len(table) else table
    if not opts.get("scaling_pools", False) and len(data):
        data = data[~data["pool"].astype(str).str.startswith(SCALING_PREFIX)]
    pools = sorted(data["pool"].unique()) if len(data) else []
    ncols = max(1, min(3, len(pools)))
    nrows = max(1, int(np.ceil(len(pools) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(float(opts["width"]), 2.8 * nrows), squeeze=False)
    system = data[data["kind"] == "system"] if len(data) else data
    level_col = system["level"] if "level" in system else pd.Series("", index=system.index)
    levels = {r: lv if isinstance(lv, str) and lv else "other" for r, lv in zip(system["run"], level_col, strict=True)}
    runs, palette, markers = level_styles(levels)
    log = bool(opts.get("log", True))
    for ax in axes.flat[len(pools) :]:
        ax.set_visible(False) if pools else empty(ax, "runs")
    for ax, pool in zip(axes.flat, pools, strict=False):
        g = data[data["pool"] == pool]
        g = g[g[cost].notna() & (~log | (g[cost] > 0))]
        for r in g.itertuples():
            if r.kind == "model":
                ax.scatter(getattr(r, cost), r.score, marker="x", color="gray", s=30, label="single model")
            else:
                ax.scatter(
                    getattr(r, cost),
                    r.score,
                    marker=markers[r.run],
                    color=palette[r.run],
                    s=40,
                    label=r.run,
                    edgecolor="black",
                    linewidth=0.4,
                )
        front_col = f"on_front_{cost}"
        on = (
            g[front_col].astype(bool)
            if front_col in g
            else pd.Series(pareto_front(g[cost], g["score"]), g.index)
        )
        f = g[on.to_numpy()].sort_values(cost)
        ax.plot(f[cost], f["score"], drawstyle="steps-post", color="black", lw=1, alpha=0.6)
        ax.scatter(
            f[cost],
            f["score"],
            s=140,
            facecolors="none",
            edgecolors="black",
            linewidths=0.8,
            label="Pareto front",
        )
        # name the front's points (the legend alone is hard to match); runs tied at one point share a label
        for (x, y), names in f.groupby([cost, "score"])["run"]:
            ax.annotate("\n".join(map(str, names)), (x, y), xytext=(4, 5), textcoords="offset points",
                        fontsize="xx-small", va="bottom")
        if log:
            ax.set_xscale("log")
            positive = g.loc[g[cost] > 0, cost]
            if len(positive) and positive.max() / positive.min() >= 10:
                ax.xaxis.set_minor_formatter(NullFormatter())  # major (decade) labels suffice
            else:
                ax.tick_params(axis="x", which="both", labelrotation=30, labelsize="x-small")
        ax.set_title(f"pool {pool}", fontsize="small")
        ax.set_xlabel("")
        ax.set_ylabel("accuracy on test" if ax in axes[:, 0] else "")
        ax.set_ylim(-0.02, 1.02)
    if pools:
        fig.supxlabel(COST_LABELS.get(cost, cost), fontsize="medium")
    # the legend: single models and the front, then one column per collaboration level
    seen: dict[str, object] = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    groups: dict[str, list[tuple[object, str]]] = {
        "reference": [(seen[lab], lab) for lab in ("single model", "Pareto front") if lab in seen]
    }
    for run in runs:  # baseline runs (single, ...) sit with the single models
        if run in seen:
            header = f"{levels[run]} level" if levels[run] in LEVELS else "reference"
            groups.setdefault(header, []).append((seen[run], run))
    grouped_legend(fig, groups)
    fig.tight_layout()
    save(fig, out_paths, int(opts["dpi"]))
