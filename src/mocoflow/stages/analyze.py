"""Build the study's tables from score files, usage JSONs, decisions and benchmark files (every file it reads
is an argument, so the rule declares it as an input).

Writes ``main.csv`` (+ ``main.md``, ``main.tex``), ``win_share.csv``, ``singles.csv``, ``emergence.csv``,
``scaling.csv``, ``scaling_pools.csv`` and ``efficiency.csv``; see ``mocoflow.analysis`` for their
definitions.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mocoflow.analysis import efficiency as eff
from mocoflow.analysis.decisions import degenerate_runs, read_decisions, router_runs
from mocoflow.analysis.emergence import emergence_table
from mocoflow.analysis.main_table import main_table, render_latex, render_markdown, single_scores, win_share
from mocoflow.analysis.routing import router_metrics
from mocoflow.analysis.scaling import scaling_pool_rows, scaling_table
from mocoflow.io import atomic_path, write_text
from mocoflow.stages.common import json_arg, parser, setup_logging

log = logging.getLogger("mocoflow.analyze")

RUN_COLUMNS = [
    "run",
    "pool",
    "model",
    "task",
    "id",
    "correct",
    "parsed",
    "generated_tokens",
    "new_generated_tokens",
    "job_model_loads",
    "job_wall_seconds",
]


def write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def read_scores(paths: list[Path]) -> pd.DataFrame:
    if not paths:
        return pd.DataFrame(columns=RUN_COLUMNS)
    return pd.concat([pd.read_parquet(f) for f in paths], ignore_index=True)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--singles", type=Path, nargs="+", required=True)
    p.add_argument("--runs", type=Path, nargs="*", default=[])
    p.add_argument(
        "--run-usage", type=Path, nargs="*", default=[], help="results/runs/{run}/{pool}/{task}/usage.json"
    )
    p.add_argument(
        "--decisions", type=Path, nargs="*", default=[], help="results/runs/{run}/{pool}/{task}/decisions.json"
    )
    p.add_argument(
        "--gen-usage",
        type=Path,
        nargs="*",
        default=[],
        help="results/generations/{model}/{task}/{split}.usage.json",
    )
    p.add_argument(
        "--benchmarks",
        type=Path,
        nargs="*",
        default=[],
        help="the Snakemake benchmark TSVs of the collaborate, generate and merge jobs (only these are read)",
    )
    p.add_argument(
        "--params",
        type=json_arg,
        required=True,
        help='{"pools", "methods", "levels", "domains", "shared_splits", "scaling_pools", "n_boot", "seed"}',
    )
    p.add_argument("--main", type=Path, required=True)
    p.add_argument("--main-md", type=Path)
    p.add_argument("--main-tex", type=Path)
    p.add_argument("--win-share", type=Path)
    p.add_argument("--singles-out", type=Path, required=True)
    p.add_argument("--emergence", type=Path)
    p.add_argument("--scaling", type=Path)
    p.add_argument("--scaling-pools", type=Path)
    p.add_argument("--efficiency", type=Path)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    prm = args.params
    pools, methods = prm["pools"], prm["methods"]
    boot = {"n_boot": int(prm.get("n_boot", 2000)), "seed": int(prm.get("seed", 0))}

    singles = read_scores(args.singles)
    runs = read_scores(args.runs)
    singles_table = single_scores(singles, prm.get("bases"), **boot)
    write_csv(singles_table, args.singles_out)
    decisions = read_decisions(args.decisions)
    table = main_table(runs, singles, pools, methods, prm.get("levels", {}), **boot,
                       degenerate=degenerate_runs(decisions))
    write_csv(table, args.main)
    wins = win_share(table)
    if args.win_share:
        write_csv(wins, args.win_share)
    if args.main_md:
        write_text(args.main_md, render_markdown(table, wins))
    if args.main_tex:
        write_text(args.main_tex, render_latex(table, wins))
    log.info(
        "main table: %d rows; methods beat the best single model in %d of them",
        len(table),
        int((table["gain"] > 0).sum()),
    )

    if args.emergence:
        em = emergence_table(runs, singles, pools, methods, prm.get("domains", {}))
        write_csv(em, args.emergence)
        log.info("emergence: %d rows", len(em))
    if args.scaling or args.scaling_pools:
        rows = scaling_pool_rows(runs, singles, pools, methods, prm.get("scaling_pools"))
        if args.scaling_pools:
            write_csv(rows, args.scaling_pools)
        if args.scaling:
            write_csv(scaling_table(runs, singles, rows, pools, **boot), args.scaling)
        log.info("scaling: %d (run, pool, task) rows", len(rows))
    if args.efficiency:
        benchmarks = eff.index_benchmarks(args.benchmarks)
        run_jobs = eff.load_run_jobs(args.run_usage, benchmarks)
        gen_jobs = eff.load_gen_jobs(args.gen_usage, benchmarks)
        merges = eff.load_merge_seconds(benchmarks)
        routers = router_metrics(runs, singles_table, pools, router_runs(decisions))
        e = eff.efficiency_table(
            table, singles_table, pools, run_jobs, gen_jobs, merges, prm.get("shared_splits", {}), routers
        )
        write_csv(e, args.efficiency)
        log.info("efficiency: %d rows", len(e))


if __name__ == "__main__":
    main()
