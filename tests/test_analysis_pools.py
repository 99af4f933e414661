"""Scaling-pool generation: counts per size, names, seeded samples, config wiring."""

from __future__ import annotations

import copy
import math

import pytest

from mocoflow.analysis.pools import ScalingConfigError, apply_scaling, scaling_pools

MEMBERS = ["a", "b", "c", "d"]


def test_all_subsets_of_every_size():
    pools = scaling_pools(MEMBERS)
    assert len(pools) == 4 + 6 + 4 + 1
    assert pools["scale-k1-0"] == ["a"] and pools["scale-k4-0"] == MEMBERS
    assert pools["scale-k2-0"] == ["a", "b"] and pools["scale-k2-5"] == ["c", "d"]
    for name, members in pools.items():
        assert len(members) == int(name.split("-")[1][1:])
        assert members == [m for m in MEMBERS if m in members]  # pool order kept


def test_seeded_sample_per_size():
    pools = scaling_pools(MEMBERS, sizes=[2, 3], samples=3, seed=0)
    assert sorted(pools) == [
        "scale-k2-0",
        "scale-k2-1",
        "scale-k2-2",
        "scale-k3-0",
        "scale-k3-1",
        "scale-k3-2",
    ]
    k2 = [tuple(v) for k, v in pools.items() if k.startswith("scale-k2")]
    assert len(set(k2)) == 3  # distinct subsets
    assert scaling_pools(MEMBERS, sizes=[2, 3], samples=3, seed=0) == pools  # reproducible
    draws = {
        tuple(map(tuple, scaling_pools(MEMBERS, sizes=[2], samples=2, seed=s).values())) for s in range(8)
    }
    assert len(draws) > 1  # the seed matters


def test_sample_larger_than_available_gives_all():
    pools = scaling_pools(MEMBERS, sizes=[3, 4], samples=10)
    assert len(pools) == math.comb(4, 3) + 1


@pytest.mark.parametrize(
    "kw", [{"sizes": [0]}, {"sizes": [5]}, {"samples": 0}, {"samples": "some"}, {"samples": True}]
)
def test_bad_settings_fail(kw):
    with pytest.raises(ScalingConfigError):
        scaling_pools(MEMBERS, **kw)


CONFIG = {
    "pools": {"main": ["a", "b", "c"], "duo": ["a", "b"]},
    "methods": {"single": {}, "majority_vote": {"pools": ["main"]}, "cascade": {"pools": ["duo"]}},
}


def test_apply_scaling_adds_pools_only_to_listed_runs():
    cfg = copy.deepcopy(CONFIG)
    cfg["scaling"] = {"pool": "main", "samples": "all", "methods": ["majority_vote"]}
    generated = apply_scaling(cfg)
    assert len(generated) == 7
    assert set(generated) <= set(cfg["pools"]) and {"main", "duo"} <= set(cfg["pools"])
    assert cfg["methods"]["majority_vote"]["pools"] == ["main", *generated]
    assert cfg["methods"]["single"]["pools"] == ["main", "duo"]  # pinned to the configured pools
    assert cfg["methods"]["cascade"]["pools"] == ["duo"]


def test_apply_scaling_without_config_changes_nothing():
    cfg = copy.deepcopy(CONFIG)
    assert apply_scaling(cfg) == {} and cfg == CONFIG


@pytest.mark.parametrize("spec", [{"pool": "nope"}, {"pool": "main", "methods": ["nope"]}])
def test_apply_scaling_rejects_unknown_names(spec):
    with pytest.raises(ScalingConfigError, match="valid"):
        apply_scaling({**copy.deepcopy(CONFIG), "scaling": spec})
