"""Figure: collaborative emergence and its reverse by task domain, per run and over all runs (heatmaps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mocoflow.plots.common import annotated_heatmap, empty, pyplot, save, settings


def share_grid(data: pd.DataFrame, count: str, total: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Share ``count / total`` per run (rows, "all runs" last) and domain (columns), with "k/n" labels."""
    runs = [r for r in sorted(data["run"].unique()) if r != "all runs"] + ["all runs"]
    domains = sorted(data["domain"].unique())
    k = data.pivot_table(index="run", columns="domain", values=count, aggfunc="sum")
    n = data.pivot_table(index="run", columns="domain", values=total, aggfunc="sum")
    k, n = k.reindex(index=runs, columns=domains), n.reindex(index=runs, columns=domains)
    share = (k / n.where(n > 0)).astype(float)
    labels = pd.DataFrame(
        [
            ["" if pd.isna(nv) or nv == 0 else f"{int(kv)}/{int(nv)}" for kv, nv in zip(kr, nr, strict=True)]
            for kr, nr in zip(k.to_numpy(), n.to_numpy(), strict=True)
        ],
        index=runs,
        columns=domains,
    )
    return share, labels


def plot_emergence(table: pd.DataFrame, out_paths: list[Path], params: dict[str, Any] | None = None) -> None:
    """Left: among items no single pool model solves, the share the system solves (emergent / unsolved);
    right: among items some pool model solves, the share the system loses (lost / single-solved). One row
    per run plus "all runs", one column per task domain; cells give the counts."""
    opts = settings(params or {}, "emergence")
    plt, _ = pyplot(opts)
    parts = []
    if len(table):
        parts = [
            table[table["scope"] == "domain"],
            table[table["scope"] == "domain_all_runs"].assign(run="all runs"),
        ]
    data = pd.concat(parts, ignore_index=True) if parts else table
    if data.empty:
        fig, axes = plt.subplots(1, 2, figsize=(float(opts["width"]), 3.0))
        for ax in axes:
            empty(ax, "runs")
        save(fig, out_paths, int(opts["dpi"]))
        return
    panels = (
        ("emergent", "n_unsolved", "emergence: solved by the system,\nby no single pool model", "Greens"),
        ("lost", "n_single_solved", "loss: missed by the system,\nsolved by some pool model", "Reds"),
    )
    n_runs = data["run"].nunique()
    n_domains = data["domain"].nunique()
    fig, axes = plt.subplots(
        1, 2, figsize=(max(float(opts["width"]), 2.4 * n_domains + 3.5), 0.24 * n_runs + 1.8), sharey=True
    )
    for ax, (count, total, title, cmap) in zip(axes, panels, strict=True):
        share, labels = share_grid(data, count, total)
        annotated_heatmap(ax, share, labels, cmap=cmap, vmin=0, vmax=1, cbar_label="share of items")
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("task domain")
    fig.tight_layout()
    save(fig, out_paths, int(opts["dpi"]))
