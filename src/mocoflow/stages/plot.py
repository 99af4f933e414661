"""Draw the study's figures from its tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mocoflow.plots.main_figure import plot_main
from mocoflow.stages.common import json_arg, parser, setup_logging


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--main", type=Path, required=True)
    p.add_argument("--out", type=Path, nargs="+", required=True)
    p.add_argument("--params", type=json_arg, default={})
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    plot_main(pd.read_csv(args.main), args.out, context=args.params.get("context", "paper"),
              dpi=int(args.params.get("dpi", 200)))


if __name__ == "__main__":
    main()
