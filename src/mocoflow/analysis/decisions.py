"""What runs decided (``results/runs/{run}/{pool}/{task}/decisions.json``) and whether a run is degenerate.

A run's decisions hold, per seed, what its method recorded with ``ctx.decide``. The convention every method
follows for ``reliance`` is ``{pool model: share}`` summing to 1: the share of the answer each model is
responsible for (items routed to it, answers of its that won a vote, merge coefficients). A run is
*degenerate* when its reliance, averaged over seeds, has at most one non-zero share: whatever the method
does, its answers came from one model (a router that sends everything to one model, a merge whose
coefficients put all weight on one model). Runs that record no reliance are neither (NaN): e.g. fusion of
next-token distributions or a graph of models, which use every model by construction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mocoflow.io import read_json

NONZERO = 1e-6  # a reliance share at or below this counts as zero

Key = tuple[str, str, str]  # (run, pool, task)


def read_decisions(paths: Iterable[str | Path]) -> dict[Key, dict[str, Any]]:
    """``{(run, pool, task): decisions.json contents}``; the key comes from the path
    (``.../runs/{run}/{pool}/{task}/decisions.json``)."""
    out = {}
    for p in map(Path, paths):
        run, pool, task = p.parts[-4:-1]
        data = read_json(p)
        if not isinstance(data, dict) or not isinstance(data.get("by_seed"), dict):
            raise ValueError(f"{p}: not a decisions file (expected a JSON object with 'by_seed')")
        out[(run, pool, task)] = data
    return out


def mean_reliance(decisions: Mapping[str, Any]) -> dict[str, float] | None:
    """The seeds' ``reliance`` averaged per model (seeds that recorded none are skipped); None if no seed
    recorded one."""
    per_seed = [d["reliance"] for d in decisions.get("by_seed", {}).values()
                if isinstance(d, dict) and isinstance(d.get("reliance"), dict)]
    if not per_seed:
        return None
    models = list(dict.fromkeys(m for r in per_seed for m in r))
    return {m: sum(float(r.get(m, 0.0)) for r in per_seed) / len(per_seed) for m in models}


def is_degenerate(reliance: Mapping[str, float]) -> bool:
    """At most one model has a non-zero share."""
    return sum(1 for v in reliance.values() if abs(float(v)) > NONZERO) <= 1


def degenerate_runs(decisions: Mapping[Key, Mapping[str, Any]]) -> dict[Key, bool]:
    """``{(run, pool, task): degenerate}`` for the runs that recorded a reliance."""
    out = {}
    for key, d in decisions.items():
        reliance = mean_reliance(d)
        if reliance is not None:
            out[key] = is_degenerate(reliance)
    return out


def router_runs(decisions: Mapping[Key, Mapping[str, Any]]) -> set[Key]:
    """Runs whose method routes each item to one pool model (``kind: "router"`` in every seed)."""
    out = set()
    for key, d in decisions.items():
        seeds = [s for s in d.get("by_seed", {}).values() if isinstance(s, dict)]
        if seeds and all(s.get("kind") == "router" for s in seeds):
            out.add(key)
    return out


def share_text(reliance: Mapping[str, float] | None) -> str:
    """``model=share`` pairs, largest first, for tables (empty for None)."""
    if not reliance:
        return ""
    parts = sorted(reliance.items(), key=lambda kv: -kv[1])
    return " ".join(f"{m}={v:.2f}" for m, v in parts if not math.isnan(v))
