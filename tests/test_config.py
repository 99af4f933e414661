"""Config validation: schema shape and cross-references with the valid names listed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mocoflow import config as study

REPO = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


@pytest.fixture
def smoke() -> dict:
    return load("configs/smoke.yaml")


def test_shipped_configs_validate_against_schema_and_names():
    from snakemake.utils import validate

    for name in ["config.yaml", *(str(p.relative_to(REPO)) for p in sorted((REPO / "configs").glob("*.yaml")))]:
        cfg = load(name)
        validate(cfg, str(REPO / "schemas" / "config.schema.yaml"))
        study.validate(cfg)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["pools"].__setitem__("trio", ["tiny-a", "tiny-z"]),
         "pools.trio: unknown model 'tiny-z'; valid models: tiny-a, tiny-b, tiny-c, tiny-lora-arith"),
        (lambda c: c["methods"].__setitem__("debait", {}), "methods.debait: unknown method 'debait'; valid methods:"),
        (lambda c: c["methods"]["cascade"].__setitem__("pools", ["quartet"]),
         "methods.cascade.pools: unknown pool 'quartet'; valid pools: duo, loras, trio"),
        (lambda c: c["methods"]["cascade"].__setitem__("tasks", ["gsm9k"]),
         "methods.cascade.tasks: unknown task 'gsm9k'; valid tasks: arith, facts"),
        (lambda c: c["tasks"]["arith"].__setitem__("source", "hub"), "tasks.arith: unknown task source 'hub'"),
        (lambda c: c["models"]["tiny-a"].__setitem__("source", "ollama"), "models.tiny-a: unknown model source"),
        (lambda c: c["methods"]["cascade"].__setitem__("params", {"thresh": 1}), "unknown hyperparameter"),
    ],
)
def test_bad_names_fail_listing_valid_ones(smoke: dict, mutate, message: str):
    cfg = copy.deepcopy(smoke)
    mutate(cfg)
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
        study.validate(cfg)


def test_schema_rejects_unknown_top_level_key(smoke: dict):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    smoke["modles"] = {}
    with pytest.raises(WorkflowError):
        validate(smoke, str(REPO / "schemas" / "config.schema.yaml"))


def test_runs_expand_methods_over_pools_and_tasks(smoke: dict):
    runs = study.runs(smoke)
    assert study.Run("single", "single", "duo", "facts") in runs
    assert study.Run("task_arithmetic", "linear_merge", "trio", "arith") in runs
    assert not any(r.run == "logit_fusion" and r.pool == "trio" for r in runs)
    expected = sum(len(spec.get("pools") or smoke["pools"]) * len(spec.get("tasks") or smoke["tasks"])
                   for spec in smoke["methods"].values())
    assert len(runs) == expected and len(set(runs)) == len(runs)
