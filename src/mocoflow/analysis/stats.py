"""Statistics for the study's tables: paired bootstrap CIs, seed aggregation, Pareto fronts (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_BOOT = 2000
DEFAULT_ALPHA = 0.05


def bootstrap_mean_ci(
    x: Sequence[float] | np.ndarray,
    *,
    n_boot: int = DEFAULT_BOOT,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    chunk_cells: int = 4_000_000,
) -> tuple[float, float, float]:
    """Mean of ``x`` and its percentile bootstrap ``1 - alpha`` interval (items resampled with replacement).

    Vectorised: ``n_boot`` resamples are drawn as one index matrix, in chunks of at most ``chunk_cells`` cells
    so memory stays bounded for large item counts. Seeded, so the same data give the same interval. An empty
    ``x`` gives NaNs; a single item gives a zero-width interval.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    per_chunk = max(1, chunk_cells // n)
    means = np.empty(n_boot)
    for start in range(0, n_boot, per_chunk):
        stop = min(n_boot, start + per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(lo), float(hi)


def wilson_ci(k: Sequence[float] | np.ndarray, n: Sequence[float] | np.ndarray, *, alpha: float = DEFAULT_ALPHA
              ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score ``1 - alpha`` interval of the proportions ``k / n`` (element-wise; NaN where ``n`` is 0).
    Used for shares of counts (settings won, unsolved items solved), where the bootstrap over a handful of
    settings would be degenerate; it treats the counted units as independent draws."""
    from scipy.stats import norm

    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    z = float(norm.ppf(1 - alpha / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    empty = ~(n > 0)
    lo[empty], hi[empty] = np.nan, np.nan
    return lo, hi


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, **kw
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired items and its bootstrap interval (pairs resampled together)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    return bootstrap_mean_ci(a - b, **kw)


def item_means(df: pd.DataFrame, keys: Sequence[str], value: str = "correct") -> pd.DataFrame:
    """Collapse decoding seeds: one row per ``keys + [id]`` with the mean of ``value`` over seeds and
    ``n_seeds``.

    Without a ``seed`` column each item has one row and ``n_seeds`` is 1. Averaging per item first keeps
    item-level bootstrap CIs honest (seeds are not independent items) and gives the seed-averaged accuracy as
    the mean.
    """
    keys = list(keys) + ["id"]
    if df.empty:
        return pd.DataFrame(columns=[*keys, value, "n_seeds"])
    seeds = df["seed"] if "seed" in df.columns else pd.Series(0, index=df.index)
    out = (
        df.assign(_v=df[value].astype(float), _seed=seeds)
        .groupby(keys, as_index=False, sort=False)
        .agg(**{value: ("_v", "mean"), "n_seeds": ("_seed", "nunique")})
    )
    return out


def pareto_front(cost: Sequence[float] | np.ndarray, score: Sequence[float] | np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point dominates (lower-or-equal cost and higher-or-equal score, one
    of them strictly). Ties (equal cost and score) are all on the front. NaN points are never on it."""
    cost, score = np.asarray(cost, dtype=float), np.asarray(score, dtype=float)
    valid = ~(np.isnan(cost) | np.isnan(score))
    c, s = cost[:, None], score[:, None]
    dominated = (
        (cost[None, :] <= c)
        & (score[None, :] >= s)
        & ((cost[None, :] < c) | (score[None, :] > s))
        & valid[None, :]
    )
    return valid & ~dominated.any(axis=1)
