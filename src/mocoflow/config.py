"""Semantic checks and derived views of a study config (the JSON schema checks its shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_DECODING: dict[str, Any] = {"max_new_tokens": 64, "temperature": 0.0, "top_p": 1.0, "seed": 0,
                                    "batch_size": 8}


class ConfigError(ValueError):
    """The config names something that does not exist; the message lists the valid names."""


@dataclass(frozen=True)
class Run:
    """One collaboration run: a configured method (by run name) on one pool and one task."""

    run: str
    method: str
    pool: str
    task: str


def _unknown(kind: str, name: str, valid: Any, where: str) -> ConfigError:
    return ConfigError(f"{where}: unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")


def validate(config: dict[str, Any]) -> None:
    """Check cross-references: pool members, method names, method pools/tasks, model/task sources."""
    from mocoflow.data.sources import SOURCES
    from mocoflow.methods import METHODS
    from mocoflow.models import model_sources

    MODEL_SOURCES = model_sources()
    models, pools, tasks = config["models"], config["pools"], config["tasks"]
    for name, spec in models.items():
        if spec["source"] not in MODEL_SOURCES:
            raise _unknown("model source", spec["source"], MODEL_SOURCES.names(), f"models.{name}")
    for pool, members in pools.items():
        for m in members:
            if m not in models:
                raise _unknown("model", m, models, f"pools.{pool}")
        if len(set(members)) != len(members):
            raise ConfigError(f"pools.{pool}: a model is listed twice: {members}")
    for name, spec in tasks.items():
        if spec["source"] not in SOURCES:
            raise _unknown("task source", spec["source"], SOURCES.names(), f"tasks.{name}")
    for run, spec in config["methods"].items():
        method = spec.get("method", run)
        if method not in METHODS:
            raise _unknown("method", method, METHODS.names(), f"methods.{run}")
        for pool in spec.get("pools", []):
            if pool not in pools:
                raise _unknown("pool", pool, pools, f"methods.{run}.pools")
        for task in spec.get("tasks", []):
            if task not in tasks:
                raise _unknown("task", task, tasks, f"methods.{run}.tasks")
        METHODS.get(method)(spec.get("params", {}))  # typed hyperparameters: unknown keys fail here
    for name in list(models) + list(pools) + list(tasks) + list(config["methods"]):
        if "/" in name or name.startswith("."):
            raise ConfigError(f"name {name!r} must not contain '/' or start with '.' (it becomes a path)")


def runs(config: dict[str, Any]) -> list[Run]:
    out = []
    for run, spec in config["methods"].items():
        for pool in spec.get("pools") or list(config["pools"]):
            for task in spec.get("tasks") or list(config["tasks"]):
                out.append(Run(run=run, method=spec.get("method", run), pool=pool, task=task))
    return out


def decoding(config: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULT_DECODING, **config.get("decoding", {})}


def job_seeds(decoding: dict[str, Any], seeds: list[int] | None, *, stochastic: bool = False) -> list[int]:
    """The decoding seeds one job runs: the study's ``seeds`` when its outputs depend on the seed (decoding
    samples, ``temperature > 0``, or the method is ``stochastic``), else only ``decoding["seed"]``: greedy,
    deterministic outputs are the same for every seed, so repeating them would only cost time."""
    samples = float(decoding.get("temperature", 0.0)) > 0 or stochastic
    if seeds and samples:
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds: a seed is listed twice: {seeds}")
        return [int(s) for s in seeds]
    return [int(decoding.get("seed", 0))]


def pool_models(config: dict[str, Any]) -> set[str]:
    return {m for members in config["pools"].values() for m in members}


def interpreter_first_on_path(default: str) -> str:
    """Put the Python that runs Snakemake (or ``MOCOFLOW_PYTHON``) first on PATH, so the rules' ``python -m
    mocoflow...`` commands find the environment with mocoflow installed without activating it."""
    import os

    python = os.environ.get("MOCOFLOW_PYTHON", default)
    os.environ["PATH"] = os.path.dirname(python) + os.pathsep + os.environ.get("PATH", "")
    return python
