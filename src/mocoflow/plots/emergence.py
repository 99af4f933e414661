"""Figure: collaborative emergence and its reverse by task domain, per run and over all runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mocoflow.plots.common import empty, pyplot, save, settings


def plot_emergence(table: pd.DataFrame, out_paths: list[Path], params: dict[str, Any] | None = None) -> None:
    """Left: among items no single pool model solves, the share the system solves; right: among items some
    pool model solves, the share the system loses. Bars per task domain, one colour per run plus "all" runs.
    """
    opts = settings(params or {}, "emergence")
    plt, sns = pyplot(opts)
    parts = []
    if len(table):
        parts = [
            table[table["scope"] == "domain"],
            table[table["scope"] == "domain_all_runs"].assign(run="all"),
        ]
    data = pd.concat(parts, ignore_index=True) if parts else table
    fig, axes = plt.subplots(1, 2, figsize=(float(opts["width"]), 3.0), sharey=True)
    if data.empty:
        for ax in axes:
            empty(ax, "runs")
        save(fig, out_paths, int(opts["dpi"]))
        return
    runs = [r for r in dict.fromkeys(sorted(data["run"])) if r != "all"] + ["all"]
    colors = [*sns.color_palette("colorblind", len(runs) - 1), (0.3, 0.3, 0.3)]
    palette = dict(zip(runs, colors, strict=True))
    domains = sorted(data["domain"].unique())
    for ax, col, title in (
        (axes[0], "emergence_share", "emergence: solved by the system,\nby no single pool model"),
        (axes[1], "loss_share", "loss: missed by the system,\nsolved by some pool model"),
    ):
        sns.barplot(
            data=data,
            x="domain",
            y=col,
            hue="run",
            order=domains,
            hue_order=runs,
            palette=palette,
            ax=ax,
            legend=ax is axes[1],
        )
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("task domain")
        ax.set_ylabel("share of items")
        ax.set_ylim(0, 1.02)
    if axes[1].get_legend() is not None:
        sns.move_legend(
            axes[1],
            "upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize="small",
            title="run",
            title_fontsize="small",
        )
    fig.tight_layout()
    save(fig, out_paths, int(opts["dpi"]))
