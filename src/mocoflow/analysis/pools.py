"""Scaling pools: subsets of a configured pool, of sizes 1..N, all of them or a seeded sample per size.

Config (``scaling:``)::

    scaling:
      pool: main          # the pool to draw subsets from (required)
      sizes: [1, 2, 3]    # default 1..N (N = the pool's size)
      samples: 3          # subsets per size: an integer (capped at how many exist) or "all" (default)
      seed: 0             # seeds the sample; the same config gives the same pools
      methods: [majority_vote, cascade]   # runs that also run on every generated pool (default: none)

Generated pools are named ``scale-k{size}-{i}`` (i = 0, 1, ... within a size) and keep the source pool's
member order. They are added to ``config["pools"]`` when the DAG is built (rules/common.smk). Runs that do not
name their pools (``pools`` missing = every pool) are pinned to the pools configured before the scaling pools
were added, so only the runs listed under ``scaling.methods`` run on the generated pools.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

PREFIX = "scale-k"


class ScalingConfigError(ValueError):
    """The ``scaling:`` config is inconsistent with the rest of the config; the message names what."""


def pool_name(size: int, index: int) -> str:
    return f"{PREFIX}{size}-{index}"


def is_scaling_pool(name: str) -> bool:
    return name.startswith(PREFIX)


def scaling_pools(
    members: list[str], sizes: list[int] | None = None, samples: int | str = "all", seed: int = 0
) -> dict[str, list[str]]:
    """Subsets of ``members`` per size: every subset (``samples="all"``, in lexicographic order of positions)
    or ``samples`` distinct subsets drawn without replacement by a ``random.Random(seed)`` per size (all of
    them, in lexicographic order, when no more than ``samples`` exist). Members keep their order within a
    subset."""
    n = len(members)
    if len(set(members)) != n:
        raise ScalingConfigError(f"scaling pool lists a model twice: {members}")
    sizes = list(range(1, n + 1)) if not sizes else [int(k) for k in sizes]
    bad = [k for k in sizes if not 1 <= k <= n]
    if bad:
        raise ScalingConfigError(f"scaling.sizes {bad} outside 1..{n} (the pool has {n} models)")
    if samples != "all" and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise ScalingConfigError(f"scaling.samples must be a positive integer or 'all', got {samples!r}")
    out: dict[str, list[str]] = {}
    for k in sorted(set(sizes)):
        total = math.comb(n, k)
        if samples == "all" or samples >= total:
            chosen = list(itertools.combinations(range(n), k))
        else:
            rng = random.Random(f"{seed}-{k}")
            picked: set[tuple[int, ...]] = set()
            chosen = []
            while len(chosen) < samples:
                combo = tuple(sorted(rng.sample(range(n), k)))
                if combo not in picked:
                    picked.add(combo)
                    chosen.append(combo)
        for i, combo in enumerate(chosen):
            out[pool_name(k, i)] = [members[j] for j in combo]
    return out


def apply_scaling(config: dict[str, Any]) -> dict[str, list[str]]:
    """Add the generated pools of ``config["scaling"]`` to ``config["pools"]`` and to the pools of the runs
    listed in ``scaling.methods`` (in place). Returns the generated pools ({} without a ``scaling`` key)."""
    spec = config.get("scaling")
    if not spec:
        return {}
    pools, methods = config["pools"], config["methods"]
    source = spec.get("pool")
    if source not in pools:
        raise ScalingConfigError(
            f"scaling.pool: unknown pool {source!r}; valid pools: {', '.join(sorted(pools))}"
        )
    clash = [p for p in pools if is_scaling_pool(p)]
    if clash:
        raise ScalingConfigError(
            f"pool names starting with {PREFIX!r} are reserved for scaling pools: {clash}"
        )
    for run in spec.get("methods", []):
        if run not in methods:
            raise ScalingConfigError(
                f"scaling.methods: unknown run {run!r}; valid runs: {', '.join(sorted(methods))}"
            )
    generated = scaling_pools(
        list(pools[source]), spec.get("sizes"), spec.get("samples", "all"), int(spec.get("seed", 0))
    )
    configured = list(pools)
    for run, run_spec in methods.items():
        if run_spec is None:
            run_spec = methods[run] = {}
        listed = run in spec.get("methods", [])
        current = list(run_spec.get("pools") or configured)
        run_spec["pools"] = current + [p for p in generated if p not in current] if listed else current
    pools.update(generated)
    return generated
