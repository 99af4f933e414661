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


LEVELS = ("api", "text", "logit", "weight")


def level_styles(levels: dict[str, str]) -> tuple[list[str], dict[str, object], dict[str, str]]:
    """Runs grouped by collaboration level (``levels``: run -> level): the runs in level order, then by name;
    a colour family per level (shades of one colour-blind hue, so a point's level reads at a glance) and a
    marker per run within its level (so runs of one level still differ)."""
    import seaborn as sns

    order = {lv: i for i, lv in enumerate(LEVELS)}
    runs = sorted(levels, key=lambda r: (order.get(levels[r], len(LEVELS)), levels[r], r))
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(levels[run], []).append(run)
    base = [sns.color_palette("colorblind")[i] for i in (0, 1, 2, 4, 7)]  # blue, orange, green, purple; grey
    palette: dict[str, object] = {}
    markers: dict[str, str] = {}
    for level, members in groups.items():
        hue = base[order.get(level, len(LEVELS))]
        shades = sns.blend_palette([sns.set_hls_values(hue, l=0.25), hue, sns.set_hls_values(hue, l=0.7)],
                                   max(len(members), 2))
        for i, run in enumerate(members):
            palette[run] = shades[i * (len(shades) - 1) // max(len(members) - 1, 1)] if len(members) > 1 else hue
            markers[run] = MARKERS[i % len(MARKERS)]
    return runs, palette, markers


def grouped_legend(fig, groups: dict[str, list[tuple[object, str]]]) -> None:
    """One legend column per group, its name in bold on top (e.g. a column per collaboration level), placed
    under the figure. ``groups``: header -> [(handle, label)]. Columns are padded to one height so each group
    stays in its own column."""
    from matplotlib.patches import Patch

    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return
    height = max(len(v) for v in groups.values()) + 1
    blank = Patch(visible=False)
    handles, labels, headers = [], [], set()
    for header, entries in groups.items():
        column = [(blank, header), *entries]
        column += [(blank, "")] * (height - len(column))
        headers.add(len(labels))
        handles += [h for h, _ in column]
        labels += [lab for _, lab in column]
    legend = fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(groups),
                        frameon=False, fontsize="x-small", handletextpad=0.3, columnspacing=1.2)
    for i, text in enumerate(legend.get_texts()):
        if i in headers:
            text.set_fontweight("bold")


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
