"""Build the study's tables from score files: ``main.csv`` and ``singles.csv``."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mocoflow.analysis.main_table import main_table, single_scores
from mocoflow.io import atomic_path
from mocoflow.stages.common import json_arg, parser, setup_logging

log = logging.getLogger("mocoflow.analyze")


def write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--singles", type=Path, nargs="+", required=True)
    p.add_argument("--runs", type=Path, nargs="*", default=[])
    p.add_argument("--params", type=json_arg, required=True, help='{"pools": ..., "methods": ..., "levels": ...}')
    p.add_argument("--main", type=Path, required=True)
    p.add_argument("--singles-out", type=Path, required=True)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    singles = pd.concat([pd.read_parquet(f) for f in args.singles], ignore_index=True)
    write_csv(single_scores(singles), args.singles_out)
    columns = ["run", "pool", "task", "id", "correct", "generated_tokens", "new_generated_tokens",
               "job_model_loads", "job_wall_seconds"]
    runs = (pd.concat([pd.read_parquet(f) for f in args.runs], ignore_index=True) if args.runs
            else pd.DataFrame(columns=columns))
    table = main_table(runs, singles, args.params["pools"], args.params["methods"], args.params["levels"])
    write_csv(table, args.main)
    log.info("main table: %d rows; methods beat the best single model in %d of them", len(table),
             int((table["gain"] > 0).sum()))


if __name__ == "__main__":
    main()
