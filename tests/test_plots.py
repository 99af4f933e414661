"""Every figure renders from constructed tables into PDF and PNG (and from empty tables too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mocoflow.analysis import efficiency as eff
from mocoflow.analysis.emergence import emergence_table
from mocoflow.analysis.main_table import main_table, single_scores
from mocoflow.analysis.pools import scaling_pools
from mocoflow.analysis.scaling import scaling_pool_rows, scaling_table
from mocoflow.stages.plot import FIGURES, main

MODELS = ["a", "b", "c"]
TASKS = {"t": "reasoning", "u": "safety"}


def constructed_tables(tmp: Path) -> dict[str, list[Path]]:
    rng = np.random.default_rng(0)
    pools = {"trio": MODELS, **scaling_pools(MODELS)}
    methods = {"mv": "majority_vote", "cascade": "cascade"}
    singles, runs = [], []
    for task in TASKS:
        for m in MODELS:
            for i in range(20):
                singles.append(
                    {
                        "run": "single",
                        "pool": m,
                        "model": m,
                        "task": task,
                        "id": f"{task}{i}",
                        "correct": bool(rng.random() < 0.5),
                        "parsed": str(rng.integers(3)),
                        "generated_tokens": 5,
                    }
                )
        for run in methods:
            for pool in pools:
                for i in range(20):
                    runs.append(
                        {
                            "run": run,
                            "pool": pool,
                            "model": "",
                            "task": task,
                            "id": f"{task}{i}",
                            "correct": bool(rng.random() < 0.4 + 0.05 * len(pools[pool])),
                            "generated_tokens": 5 * len(pools[pool]),
                            "new_generated_tokens": 0,
                            "job_model_loads": 0,
                            "job_wall_seconds": 1.0,
                        }
                    )
    singles, runs = pd.DataFrame(singles), pd.DataFrame(runs)
    table = main_table(runs, singles, pools, methods, {}, n_boot=100)
    rows = scaling_pool_rows(runs, singles, pools, methods, [p for p in pools if p != "trio"])
    job = {"model_loads": 1.0, "wall_seconds": 2.0, "gpu_seconds": 0.0, "flops": 1e9, "training_seconds": 0.0}
    gen = {(m, t, "test"): job for m in MODELS for t in TASKS}
    e = eff.efficiency_table(
        table[table["pool"] == "trio"],
        single_scores(singles),
        pools,
        {(r, "trio", t): job for r in methods for t in TASKS},
        gen,
        {},
        {"mv": ["test"]},
    )
    out = {
        "main": [table],
        "scaling": [scaling_table(runs, singles, rows, pools, n_boot=100), rows],
        "efficiency": [e],
        "emergence": [emergence_table(runs, singles, pools, methods, TASKS)],
    }
    paths = {}
    for name, frames in out.items():
        paths[name] = []
        for i, f in enumerate(frames):
            p = tmp / f"{name}{i}.csv"
            f.to_csv(p, index=False)
            paths[name].append(p)
    return paths


def check_figure(out: Path, min_png: int = 5000) -> None:
    png, pdf = out / "fig.png", out / "fig.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > min_png
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, list[Path]]:
    return constructed_tables(tmp_path_factory.mktemp("tables"))


@pytest.mark.parametrize("figure", FIGURES)
def test_figure_renders_pdf_and_png(figure, tables, tmp_path):
    main(
        [
            "--figure",
            figure,
            "--tables",
            *map(str, tables[figure]),
            "--out",
            str(tmp_path / "fig.pdf"),
            str(tmp_path / "fig.png"),
            "--params",
            '{"dpi": 60, "efficiency": {"cost": "wall_seconds"}}',
        ]
    )
    check_figure(tmp_path)


@pytest.mark.parametrize("figure", FIGURES)
def test_figure_renders_from_empty_tables(figure, tables, tmp_path):
    empty = []
    for i, p in enumerate(tables[figure]):
        e = tmp_path / f"empty{i}.csv"
        pd.read_csv(p).iloc[:0].to_csv(e, index=False)
        empty.append(str(e))
    main(
        [
            "--figure",
            figure,
            "--tables",
            *empty,
            "--out",
            str(tmp_path / "fig.pdf"),
            str(tmp_path / "fig.png"),
            "--params",
            '{"dpi": 60}',
        ]
    )
    check_figure(tmp_path, min_png=500)


def test_main_heatmap_cells_are_gains_in_points_with_significance_marks():
    from mocoflow.plots.main_figure import gain_grid

    table = pd.DataFrame(
        {
            "run": ["mv", "mv", "oracle", "single"],
            "level": ["text", "text", "api", "baseline"],
            "pool": ["trio", "trio", "trio", "trio"],
            "task": ["qa", "math", "qa", "qa"],
            "best_single": ["a", "b", "a", "a"],
            "best_single_score": [0.5, 0.2, 0.5, 0.5],
            "gain": [0.1, -0.05, 0.3, 0.0],
            "gain_ci_lo": [-0.02, -0.1, 0.1, 0.0],
            "gain_ci_hi": [0.2, 0.0, 0.5, 0.0],
        }
    )
    gain, labels, titles = gain_grid(table)
    # rows by level (api before text), then name; columns sorted by task
    assert list(gain.index) == ["oracle (api)", "mv (text)", "single (baseline)"]
    assert list(gain.columns) == ["math / trio", "qa / trio"]
    assert gain.loc["mv (text)", "qa / trio"] == pytest.approx(10.0)
    assert labels.loc["oracle (api)", "qa / trio"] == "+30*"  # CI excludes 0
    assert labels.loc["mv (text)", "qa / trio"] == "+10"  # CI includes 0
    assert labels.loc["oracle (api)", "math / trio"] == ""  # not run there
    assert titles[1].splitlines() == ["qa", "trio", "a", "0.50"]


def test_main_heatmap_marks_degenerate_runs():
    from mocoflow.plots.main_figure import DEGENERATE_MARK, gain_grid

    table = pd.DataFrame(
        {
            "run": ["mv", "router", "fusion"],
            "level": ["text", "api", "logit"],
            "pool": ["trio"] * 3,
            "task": ["qa"] * 3,
            "best_single": ["a"] * 3,
            "best_single_score": [0.5] * 3,
            "gain": [0.1, 0.0, 0.2],
            "gain_ci_lo": [0.05, 0.0, -0.1],
            "gain_ci_hi": [0.2, 0.0, 0.3],
            # as read back from main.csv: True / False / empty (no reliance recorded)
            "degenerate": [False, True, np.nan],
        }
    )
    _, labels, _ = gain_grid(table)
    assert labels.loc["router (api)", "qa / trio"] == "+0" + DEGENERATE_MARK
    assert labels.loc["mv (text)", "qa / trio"] == "+10*"
    assert labels.loc["fusion (logit)", "qa / trio"] == "+20"


def test_emergence_heatmap_shares_sum_counts_over_settings():
    from mocoflow.plots.emergence import share_grid

    data = pd.DataFrame(
        {
            "run": ["mv", "mv", "all runs"],
            "domain": ["qa", "qa", "qa"],
            "emergent": [1, 2, 3],
            "n_unsolved": [4, 6, 10],
        }
    )
    share, labels = share_grid(data, "emergent", "n_unsolved")
    assert list(share.index) == ["mv", "all runs"]
    assert share.loc["mv", "qa"] == pytest.approx(3 / 10)
    assert labels.loc["mv", "qa"] == "3/10"


def test_efficiency_legend_groups_runs_by_level(tmp_path, monkeypatch):
    """35 runs on one panel: the legend has one bold-headed column per level, each run listed under its own
    level, and runs of one level share a hue family (colour says the level, marker the run)."""
    import colorsys

    import matplotlib.figure

    from mocoflow.plots.efficiency import plot_efficiency

    levels = {"api": 9, "text": 14, "logit": 5, "weight": 7}
    rows = [
        {"kind": "system", "run": f"{lv}{i}", "method": f"{lv}{i}", "level": lv, "pool": "p", "task": "t",
         "n_items": 40, "score": 0.5, "flops": 1e9 * (i + 1)}
        for lv, n in levels.items() for i in range(n)
    ] + [{"kind": "model", "run": "m", "method": "single model", "level": "", "pool": "p", "task": "t",
          "n_items": 40, "score": 0.4, "flops": 1e9},
         {"kind": "system", "run": "single", "method": "single", "level": "baseline", "pool": "p", "task": "t",
          "n_items": 40, "score": 0.4, "flops": 1e9}]
    seen = {}
    original = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        seen["legend"] = fig.legends[0]
        seen["colors"] = {c.get_label(): c.get_facecolor()[0] for ax in fig.axes for c in ax.collections
                          if len(c.get_facecolor())}
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    plot_efficiency(pd.DataFrame(rows), [tmp_path / "e.png"], {"efficiency": {"task": "t"}, "dpi": 40})
    texts = seen["legend"].get_texts()
    labels = [t.get_text() for t in texts]
    bold = [t.get_text() for t in texts if t.get_fontweight() == "bold"]
    assert bold == ["reference", "api level", "text level", "logit level", "weight level"]
    assert labels[1:4] == ["single model", "Pareto front", "single"]  # baseline runs sit with the references
    assert seen["legend"]._ncols == 5  # one column per group, so no group wraps into another's column
    for lv, n in levels.items():
        start = labels.index(f"{lv} level")
        assert labels[start + 1 : start + 1 + n] == sorted(f"{lv}{i}" for i in range(n))
    hues = {lv: {round(colorsys.rgb_to_hls(*seen["colors"][f"{lv}{i}"][:3])[0], 2) for i in range(n)}
            for lv, n in levels.items()}
    assert all(len(h) == 1 for h in hues.values()), hues
    assert len(set().union(*hues.values())) == len(levels)
