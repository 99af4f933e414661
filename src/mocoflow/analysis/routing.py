"""Router metrics as RouteLLM reports them (Ong et al. 2024, "RouteLLM: Learning to Route LLMs with
Preference Data"; ``lm-sys/RouteLLM``, ``routellm/evals/evaluate.py``), per router run and task.

RouteLLM routes between a strong and a weak model and sweeps a threshold; for each threshold it records the
share of calls that went to the strong model and the accuracy. Its metrics:

- **PGR** (performance gap recovered) of an operating point: ``(score - weak) / (strong - weak)``.
- **APGR**: the area under PGR as the strong-call share goes from 0 to 1 (RouteLLM computes it from the
  accuracy curve: ``(AUC - weak AUC) / (strong AUC - weak AUC)``, i.e. the mean PGR over the call axis).
  A random router scores 0.5.
- **CPT(x %)** (call-performance threshold): the smallest share of strong calls at which PGR reaches
  ``x`` (RouteLLM interpolates its sweep: ``np.interp(weak + x (strong - weak), accuracy, strong %)``).

Here, over a pool of any size: *strong* is the pool's best single model on the task's test split (the main
table's ``best_single``; ties: pool order), *weak* its worst (ties: pool order); a router's *strong-call
share* is the share of (seed, item) answers it took from the strong model (``answered_by``). Each router run
is ONE operating point ``(c, p)`` (share, PGR), not a threshold sweep, so its curve is the one every router
reaches by randomly mixing its decisions with the all-weak router (point ``(0, 0)``) and the all-strong
router (``(1, 1)``): the segments ``(0, 0)-(c, p)-(1, 1)``. On that curve

    APGR = c * p / 2 + (1 - c) * (p + 1) / 2
    CPT(x) = c * x / p                          if p >= x   (reached on the first segment)
           = c + (1 - c) * (x - p) / (1 - p)    otherwise   (reached on the second)

so the all-weak, all-strong and random routers all score APGR 0.5, as in RouteLLM. PGR, APGR and CPT are
NaN when strong and weak score the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

COLUMNS = ["run", "pool", "task", "strong_model", "weak_model", "strong_share", "pgr", "apgr", "cpt50",
           "cpt80"]


def pgr(score: float, weak: float, strong: float) -> float:
    """Performance gap recovered: ``(score - weak) / (strong - weak)`` (NaN when strong == weak)."""
    gap = strong - weak
    return (score - weak) / gap if gap and not math.isnan(gap) else float("nan")


def apgr(share: float, gap_recovered: float) -> float:
    """Area under the PGR curve ``(0, 0)-(share, pgr)-(1, 1)`` over the strong-call share."""
    if math.isnan(gap_recovered):
        return float("nan")
    return share * gap_recovered / 2 + (1 - share) * (gap_recovered + 1) / 2


def cpt(share: float, gap_recovered: float, target: float) -> float:
    """Smallest strong-call share at which the curve ``(0, 0)-(share, pgr)-(1, 1)`` reaches PGR ``target``
    (0 < target <= 1)."""
    if not 0 < target <= 1:
        raise ValueError(f"CPT target must be in (0, 1], got {target}")
    if math.isnan(gap_recovered):
        return float("nan")
    if gap_recovered >= target:
        return share * target / gap_recovered
    return share + (1 - share) * (target - gap_recovered) / (1 - gap_recovered)


def router_metrics(runs: pd.DataFrame, singles: pd.DataFrame, pools: dict[str, list[str]],
                   routers: Iterable[tuple[str, str, str]]) -> pd.DataFrame:
    """One row per router (run, pool, task) in ``routers`` found in ``runs`` (per-item scores with
    ``answered_by`` and ``correct``; a ``seed`` column if seeds repeat); ``singles`` is the singles table
    (model, task, score)."""
    wanted = set(routers)
    rows = []
    per_model = singles.set_index(["model", "task"])["score"] if len(singles) else pd.Series(dtype=float)
    for (run, pool, task), g in runs.groupby(["run", "pool", "task"], sort=True):
        if (run, pool, task) not in wanted:
            continue
        members = [m for m in pools.get(pool, []) if (m, task) in per_model.index]
        if not members:
            continue
        scores = {m: float(per_model[(m, task)]) for m in members}
        strong = max(members, key=lambda m: (scores[m], -members.index(m)))
        weak = min(members, key=lambda m: (scores[m], members.index(m)))
        share = float((g["answered_by"] == strong).mean())
        score = float(g.groupby("id")["correct"].mean().mean())  # seed-averaged per item, as the main table
        p = pgr(score, scores[weak], scores[strong])
        rows.append({"run": run, "pool": pool, "task": task, "strong_model": strong, "weak_model": weak,
                     "strong_share": share, "pgr": p, "apgr": apgr(share, p), "cpt50": cpt(share, p, 0.5),
                     "cpt80": cpt(share, p, 0.8)})
    return pd.DataFrame(rows, columns=COLUMNS)
