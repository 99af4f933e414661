"""Figure: each method's score per task against the pool's best single model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mocoflow.io import atomic_path


def plot_main(table: pd.DataFrame, out_paths: list[Path], *, context: str = "paper", dpi: int = 200) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid")
    data = table.assign(setting=table["task"] + "\n(" + table["pool"] + ")")
    settings = list(dict.fromkeys(data["setting"]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(settings) + 2), 3.2))
    sns.barplot(data=data, x="setting", y="score", hue="run", order=settings, ax=ax)
    best = data.drop_duplicates("setting").set_index("setting")["best_single_score"]
    for i, s in enumerate(settings):
        ax.hlines(best[s], i - 0.45, i + 0.45, colors="black", linestyles="--", linewidth=1.2,
                  label="best single model" if i == 0 else None)
    ax.set_xlabel("task (pool)")
    ax.set_ylabel("accuracy on test")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
    fig.tight_layout()
    for path in out_paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip("."))
    plt.close(fig)
