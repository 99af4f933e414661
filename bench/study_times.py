"""Job time of a finished study by stage, from the ``benchmark:`` files its rules write.

    .venv/bin/python bench/study_times.py [results/benchmarks] [--top 10]

Each rule writes one TSV per job under ``results/benchmarks/<stage>/...`` (Snakemake's ``benchmark:``
directive: wall seconds ``s``, peak memory ``max_rss``, CPU seconds ``cpu_time``). Prints, per stage, the
number of jobs, their summed wall and CPU minutes and the slowest job, then the ``--top`` slowest jobs overall.
Job time is summed over jobs: with two one-thread jobs side by side the study's wall time is about half of it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger("study_times")


def job_times(folder: Path) -> pd.DataFrame:
    """One row per benchmark file: stage (the first folder under ``folder``), job (the rest of the path),
    wall seconds, CPU seconds and peak RSS (MB)."""
    rows = []
    for path in sorted(folder.rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        if frame.empty:
            continue
        rel = path.relative_to(folder).with_suffix("")
        rows.append(
            {
                "stage": rel.parts[0],
                "job": "/".join(rel.parts[1:]),
                "wall_s": float(frame["s"].iloc[-1]),
                "cpu_s": float(frame["cpu_time"].iloc[-1]) if "cpu_time" in frame else float("nan"),
                "max_rss_mb": float(pd.to_numeric(frame["max_rss"], errors="coerce").iloc[-1]),
            }
        )
    return pd.DataFrame(rows, columns=["stage", "job", "wall_s", "cpu_s", "max_rss_mb"])


def by_stage(jobs: pd.DataFrame) -> pd.DataFrame:
    grouped = jobs.groupby("stage")
    table = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "wall_min": grouped["wall_s"].sum() / 60,
            "cpu_min": grouped["cpu_s"].sum() / 60,
            "slowest_job": grouped.apply(lambda g: g.loc[g["wall_s"].idxmax(), "job"], include_groups=False),
            "slowest_s": grouped["wall_s"].max(),
        }
    ).sort_values("wall_min", ascending=False)
    total = pd.DataFrame(
        {"jobs": [len(jobs)], "wall_min": [jobs["wall_s"].sum() / 60], "cpu_min": [jobs["cpu_s"].sum() / 60],
         "slowest_job": [""], "slowest_s": [jobs["wall_s"].max()]},
        index=["all"],
    )
    return pd.concat([table, total]).round(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="results/benchmarks", type=Path)
    parser.add_argument("--top", type=int, default=10, help="list the N slowest jobs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: no such folder (run the study first)")
    jobs = job_times(args.folder)
    if jobs.empty:
        parser.error(f"{args.folder}: no benchmark files")
    log.info("%s", by_stage(jobs).to_markdown())
    log.info("\nslowest jobs:\n%s", jobs.nlargest(args.top, "wall_s").round(1).to_markdown(index=False))


if __name__ == "__main__":
    main()
