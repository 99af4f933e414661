"""Draw one of the study's figures from its tables.

``--figure main|scaling|efficiency|emergence``, ``--tables`` the CSVs it reads (scaling: ``scaling.csv`` then
``scaling_pools.csv``), ``--out`` one path per format (pdf, png), ``--params`` the ``plots:`` config as JSON.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mocoflow.stages.common import json_arg, parser, setup_logging

FIGURES = ("main", "scaling", "efficiency", "emergence")


def draw(figure: str, tables: list[Path], out: list[Path], params: dict) -> None:
    frames = [pd.read_csv(t) for t in tables]
    if figure == "main":
        from mocoflow.plots.main_figure import plot_main

        plot_main(frames[0], out, params=params)
    elif figure == "scaling":
        from mocoflow.plots.scaling import plot_scaling

        plot_scaling(frames[0], frames[1], out, params=params)
    elif figure == "efficiency":
        from mocoflow.plots.efficiency import plot_efficiency

        plot_efficiency(frames[0], out, params=params)
    elif figure == "emergence":
        from mocoflow.plots.emergence import plot_emergence

        plot_emergence(frames[0], out, params=params)
    else:
        raise ValueError(f"unknown figure {figure!r}; valid figures: {', '.join(FIGURES)}")


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--figure", choices=FIGURES, default="main")
    p.add_argument("--tables", type=Path, nargs="+")
    p.add_argument("--main", type=Path, help="deprecated alias of --figure main --tables MAIN")
    p.add_argument("--out", type=Path, nargs="+", required=True)
    p.add_argument("--params", type=json_arg, default={})
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    tables = args.tables or ([args.main] if args.main else None)
    if not tables:
        p.error("--tables is required")
    draw(args.figure, tables, args.out, args.params)


if __name__ == "__main__":
    main()
