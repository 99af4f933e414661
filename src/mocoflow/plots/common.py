"""Shared figure plumbing: theme, saving to every requested format, and a placeholder for empty tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mocoflow.io import atomic_path

DEFAULTS: dict[str, Any] = {"context": "paper", "dpi": 200, "width": 7.0, "font_scale": 1.0}


def settings(params: dict[str, Any], figure: str) -> dict[str, Any]:
    """Global plot settings (``plots.dpi``, ``plots.context``, ...) overridden by ``plots.<figure>``."""
    glob = {k: v for k, v in params.items() if not isinstance(v, dict)}
    return {**DEFAULTS, **glob, **params.get(figure, {})}


def pyplot(opts: dict[str, Any]):
    """Import matplotlib headless and set the seaborn theme; returns ``(plt, sns)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context=opts["context"], style="whitegrid", font_scale=float(opts["font_scale"]))
    return plt, sns


def save(fig, out_paths: list[Path], dpi: int) -> None:
    """Write the figure once per path, the format taken from the suffix (pdf, png, svg)."""
    import matplotlib.pyplot as plt

    for path in map(Path, out_paths):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip("."))
    plt.close(fig)


def empty(ax, what: str) -> None:
    """Mark an axis as having no data (the figure is still written, so the DAG's outputs exist)."""
    ax.text(0.5, 0.5, f"no {what} in this study", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def legend_outside(ax, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles,
            labels,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize="small",
            title=title,
            title_fontsize="small",
        )


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")


def run_palette(runs: list[str]) -> dict[str, object]:
    """One distinct colour per run: the colour-blind palette up to 10 runs, evenly spaced hues beyond
    (the colour-blind palette cycles after 10, which made runs indistinguishable)."""
    import seaborn as sns

    name = "colorblind" if len(runs) <= 10 else "husl"
    return dict(zip(runs, sns.color_palette(name, len(runs)), strict=True))


def run_markers(runs: list[str]) -> dict[str, str]:
    """A marker per run, so runs that share a similar hue still differ."""
    return {run: MARKERS[i % len(MARKERS)] for i, run in enumerate(runs)}


def annotated_heatmap(ax, values, labels, *, cmap: str, vmin: float, vmax: float, cbar_label: str,
                      center: float | None = None) -> None:
    """A seaborn heatmap with a text label per cell (empty where there is no value), row names as y ticks
    and no grid lines across the cells."""
    import numpy as np
    import seaborn as sns

    sns.heatmap(values, annot=labels.to_numpy(), fmt="", cmap=cmap, vmin=vmin, vmax=vmax, center=center,
                linewidths=0.5, linecolor="white", annot_kws={"fontsize": "x-small"},
                cbar_kws={"label": cbar_label, "shrink": 0.5}, ax=ax)
    ax.set_yticks(np.arange(values.shape[0]) + 0.5, values.index, rotation=0, fontsize="x-small")
    ax.set_ylabel("")
    ax.grid(False)
