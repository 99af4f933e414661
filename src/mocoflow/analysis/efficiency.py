"""Efficiency: score against cost per (run, pool, task) and per (run, pool) over all tasks, with Pareto
fronts.

Cost of a collaborative run = its own job (``collaborate``; for weight-level methods the ``merge`` job is
reported separately as training) + the shared per-model generations it reads (every pool member's test and/or
dev generations, as the method declares). Shared generations are counted in full for every run that reads
them: the cost of running that method alone. Single models are rows too (``kind = "model"``, one per pool they
belong to): their test generation job.

Columns: ``generated_tokens`` (per item summed, shared generations included, per seed),
``new_generated_tokens`` (only what the run itself generated), ``model_loads``, ``wall_seconds`` (Snakemake
``benchmark:`` seconds, or the engine's ``wall_seconds`` where no benchmark exists), ``gpu_seconds`` (wall
seconds of jobs whose engine ran on a CUDA device), ``flops`` (estimate: 2 x parameters x (prompt + generated
tokens), per job, summed), and ``training_seconds`` (engine-reported training plus the merge job).
``on_front_<cost>`` marks the Pareto front of score against that cost within each (pool, task) group, single
models included.

Routers (runs whose decisions say ``kind: "router"``) also get RouteLLM's metrics per task (``task`` rows,
not ``all``; see :mod:`mocoflow.analysis.routing`): ``strong_model`` (the pool's best single model on the
task), ``strong_share`` (share of answers taken from it), ``pgr``, ``apgr``, ``cpt50`` and ``cpt80``; NaN
for every other row.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mocoflow.analysis.stats import pareto_front
from mocoflow.io import read_json, read_jsonl

COSTS = [
    "generated_tokens",
    "new_generated_tokens",
    "model_loads",
    "wall_seconds",
    "gpu_seconds",
    "flops",
    "training_seconds",
]
FRONT_COSTS = ["generated_tokens", "flops", "wall_seconds"]
ROUTER_COLUMNS = ["strong_model", "strong_share", "pgr", "apgr", "cpt50", "cpt80"]
COLUMNS = [
    "kind",
    "run",
    "method",
    "level",
    "pool",
    "task",
    "n_items",
    "score",
    *COSTS,
    *[f"on_front_{c}" for c in FRONT_COSTS],
    *ROUTER_COLUMNS,
]


def read_benchmark_seconds(path: str | Path) -> float:
    """Wall seconds from a Snakemake benchmark TSV (mean over repeats; NaN if missing or unreadable)."""
    try:
        with open(path, encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        return float(np.mean([float(r["s"]) for r in rows])) if rows else float("nan")
    except (OSError, KeyError, ValueError):
        return float("nan")


def job_cost(usage: dict[str, Any], bench_seconds: float = float("nan"),
             tokens: float | None = None) -> dict[str, float]:
    """One job's cost from its usage JSON and benchmark seconds. FLOPs come from ``tokens`` (prompt +
    generated) when given, else from the tokens the engine processed in this job plus those of its response
    cache hits (``cached_tokens``): an answer taken from the cache was computed once and is not free."""
    wall = bench_seconds if not np.isnan(bench_seconds) else float(usage.get("wall_seconds") or 0.0)
    params = usage.get("parameters") or {}
    n_params = float(sum(params.values())) if isinstance(params, dict) else float(params or 0)
    if tokens is None:
        tokens = sum(float(usage.get(k) or 0) for k in ("prompt_tokens", "generated_tokens", "cached_tokens"))
    on_gpu = str(usage.get("device", "")).startswith("cuda")
    return {
        "model_loads": float(usage.get("model_loads") or 0),
        "wall_seconds": wall,
        "gpu_seconds": wall if on_gpu else 0.0,
        "flops": 2.0 * n_params * tokens,
        "training_seconds": float(usage.get("training_seconds") or 0.0),
    }


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in set(a) | set(b)}


def efficiency_table(
    main: pd.DataFrame,
    singles: pd.DataFrame,
    pools: dict[str, list[str]],
    run_jobs: dict[tuple[str, str, str], dict[str, float]],
    gen_jobs: dict[tuple[str, str, str], dict[str, float]],
    merge_seconds: dict[tuple[str, ...], float],
    shared_splits: dict[str, list[str]],
    routers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Rows for every (run, pool, task) of ``main`` (the main table) and every pool member's single-model
    score (``singles``: the singles table, model/task/score/n_items), then task = "all" rows per (run, pool)
    with costs summed and the score item-weighted; Pareto flags within (pool, task).

    ``run_jobs[(run, pool, task)]`` and ``gen_jobs[(model, task, split)]`` are :func:`job_cost` dicts;
    ``merge_seconds[(run, pool, task)]`` or ``[(run, pool)]`` the merge job's seconds (per task where the
    merge chose its weights on the task's dev split, else once per pool); ``shared_splits[run]`` the splits of shared
    generations the run reads ([] for none); ``routers`` the rows of
    :func:`mocoflow.analysis.routing.router_metrics` (joined on run, pool, task)."""
    rows = []
    zero = dict.fromkeys(COSTS[2:], 0.0)
    for r in main.to_dict("records"):
        cost = dict(run_jobs.get((r["run"], r["pool"], r["task"]), zero))
        for m in pools.get(r["pool"], []):
            for split in shared_splits.get(r["run"], []):
                cost = _add(
                    cost,
                    {
                        k: v
                        for k, v in gen_jobs.get((m, r["task"], split), zero).items()
                        if k != "training_seconds"
                    },
                )
        merge = merge_seconds.get((r["run"], r["pool"], r["task"]), merge_seconds.get((r["run"], r["pool"]), 0.0))
        cost["training_seconds"] = cost.get("training_seconds", 0.0) + (0.0 if np.isnan(merge) else merge)
        rows.append(
            {
                "kind": "system",
                "run": r["run"],
                "method": r["method"],
                "level": r.get("level", ""),
                "pool": r["pool"],
                "task": r["task"],
                "n_items": r["n_items"],
                "score": r["score"],
                "generated_tokens": r["generated_tokens"],
                "new_generated_tokens": r["new_generated_tokens"],
                **cost,
            }
        )
    settings = main[["pool", "task"]].drop_duplicates().itertuples(index=False) if len(main) else []
    single_idx = singles.set_index(["model", "task"]) if len(singles) else None
    for pool, task in settings:
        for m in pools.get(pool, []):
            if single_idx is None or (m, task) not in single_idx.index:
                continue
            s = single_idx.loc[(m, task)]
            cost = gen_jobs.get((m, task, "test"), zero)
            rows.append(
                {
                    "kind": "model",
                    "run": m,
                    "method": "single model",
                    "level": "",
                    "pool": pool,
                    "task": task,
                    "n_items": s["n_items"],
                    "score": s["score"],
                    "generated_tokens": s.get("generated_tokens", np.nan),
                    "new_generated_tokens": s.get("generated_tokens", np.nan),
                    **cost,
                }
            )
    df = pd.DataFrame(rows, columns=COLUMNS[: -len(FRONT_COSTS) - len(ROUTER_COLUMNS)])
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    df["_w"] = df["score"] * df["n_items"]
    keys = ["kind", "run", "method", "level", "pool"]
    agg = df.groupby(keys, as_index=False, dropna=False)[["n_items", "_w", *COSTS]].sum(min_count=1)
    agg["score"] = agg["_w"] / agg["n_items"]
    df = pd.concat([df, agg.assign(task="all")], ignore_index=True).drop(columns="_w")
    for c in FRONT_COSTS:
        df[f"on_front_{c}"] = False
        for _, g in df.groupby(["pool", "task"]):
            df.loc[g.index, f"on_front_{c}"] = pareto_front(g[c].to_numpy(), g["score"].to_numpy())
    if routers is not None and len(routers):
        keyed = routers.set_index(["run", "pool", "task"])[ROUTER_COLUMNS]
        system = df["kind"] == "system"
        joined = df.loc[system].join(keyed, on=["run", "pool", "task"])
        for c in ROUTER_COLUMNS:
            df.loc[system, c] = joined[c]
    for c in ROUTER_COLUMNS:
        if c not in df:
            df[c] = np.nan
    return df[COLUMNS].sort_values(["task", "pool", "kind", "run"]).reset_index(drop=True)


Benchmarks = dict[tuple[str, ...], Path]
def index_benchmarks(paths: list[Path]) -> Benchmarks:
    """The benchmark TSVs the analyze rule declares, by job, from their place under the benchmarks folder:
    ``collaborate/{run}/{pool}/{task}.tsv`` -> ``("collaborate", run, pool, task)``;
    ``generate/{model}/{task}/{split}``; ``merge/{run}/{pool}/{task}`` (a merge that chose its weights on the
    task's dev split) and ``merge/{run}/{pool}`` (a merge built once per pool). Only these files are read: a
    benchmark nobody declared cannot change a table."""
    out: Benchmarks = {}
    for path in map(Path, paths):
        parts = path.with_suffix("").parts
        if len(parts) >= 4 and parts[-4] in ("collaborate", "generate", "merge"):
            key = parts[-4:]
        elif len(parts) >= 3 and parts[-3] == "merge":
            key = parts[-3:]
        else:
            raise ValueError(f"benchmark {path}: expected .../<collaborate|generate|merge>/<wildcards>.tsv")
        out[key] = path
    return out


def _bench_seconds(benchmarks: Benchmarks, key: tuple[str, ...]) -> float:
    path = benchmarks.get(key)
    return read_benchmark_seconds(path) if path is not None else float("nan")


def load_run_jobs(
    usage_paths: list[Path], benchmarks: Benchmarks
) -> dict[tuple[str, str, str], dict[str, float]]:
    """``.../runs/{run}/{pool}/{task}/usage.json`` (+ the declared ``collaborate/{run}/{pool}/{task}`` benchmark)."""
    out = {}
    for p in map(Path, usage_paths):
        run, pool, task = p.parts[-4:-1]
        out[(run, pool, task)] = job_cost(read_json(p), _bench_seconds(benchmarks, ("collaborate", run, pool, task)))
    return out


def load_gen_jobs(
    usage_paths: list[Path], benchmarks: Benchmarks
) -> dict[tuple[str, str, str], dict[str, float]]:
    """``.../generations/{model}/{task}/{split}.usage.json`` (+ the declared ``generate/{model}/{task}/{split}``
    benchmark). FLOPs count the tokens of every generation in the ``{split}.jsonl`` beside the usage file, cached
    or not: a response-cache hit (e.g. a task whose items are a subset of another's) must not make a model's
    answers look free."""
    out = {}
    for p in map(Path, usage_paths):
        model, task = p.parts[-3:-1]
        split = p.name.removesuffix(".usage.json")
        bench = _bench_seconds(benchmarks, ("generate", model, task, split))
        records = p.with_name(f"{split}.jsonl")
        tokens = (
            float(sum(int(r.get("prompt_tokens") or 0) + int(r.get("generated_tokens") or 0)
                      for r in read_jsonl(records)))
            if records.exists()
            else None
        )
        out[(model, task, split)] = job_cost(read_json(p), bench, tokens)
    return out


def load_merge_seconds(benchmarks: Benchmarks) -> dict[tuple[str, ...], float]:
    """Seconds of every declared merge benchmark: ``(run, pool)`` for a merge built once per pool,
    ``(run, pool, task)`` for one that chose its weights on the task's dev split."""
    out = {}
    for key, path in benchmarks.items():
        if key[0] == "merge":
            s = read_benchmark_seconds(path)
            if not np.isnan(s):
                out[key[1:]] = s
    return out
