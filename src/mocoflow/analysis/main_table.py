"""The main table: per (run, pool, task) the score, the pool's best single model and the gain."""

from __future__ import annotations

import pandas as pd


def single_scores(singles: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task): accuracy and item count."""
    return (singles.groupby(["model", "task"], as_index=False)
            .agg(score=("correct", "mean"), n_items=("id", "count")))


def main_table(runs: pd.DataFrame, singles: pd.DataFrame, pools: dict[str, list[str]],
               methods: dict[str, str], levels: dict[str, str]) -> pd.DataFrame:
    """One row per (run, pool, task): score, best single model of the pool on that task (by test
    accuracy, the usual reference point), gain = score - best single, and cost columns."""
    per_model = single_scores(singles).set_index(["model", "task"])["score"]
    agg = (runs.groupby(["run", "pool", "task"], as_index=False)
           .agg(score=("correct", "mean"), n_items=("id", "count"),
                generated_tokens=("generated_tokens", "sum"), new_generated_tokens=("new_generated_tokens", "sum"),
                job_model_loads=("job_model_loads", "first"), job_wall_seconds=("job_wall_seconds", "first")))
    best_names, best_scores = [], []
    for row in agg.itertuples():
        members = [(m, float(per_model.get((m, row.task), float("nan")))) for m in pools[row.pool]]
        name, score = max(members, key=lambda ms: ms[1])
        best_names.append(name)
        best_scores.append(score)
    agg["method"] = agg["run"].map(methods)
    agg["level"] = agg["method"].map(levels)
    agg["best_single"] = best_names
    agg["best_single_score"] = best_scores
    agg["gain"] = agg["score"] - agg["best_single_score"]
    cols = ["run", "method", "level", "pool", "task", "n_items", "score", "best_single", "best_single_score", "gain",
            "generated_tokens", "new_generated_tokens", "job_model_loads", "job_wall_seconds"]
    return agg[cols].sort_values(["task", "pool", "run"]).reset_index(drop=True)
