"""Cascade, majority vote and the single-best baseline on constructed shared generations."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig
from mocoflow.methods import METHODS
from mocoflow.methods.api.cascade import choose_threshold
from mocoflow.methods.base import EngineProvider, MethodError, RunContext
from mocoflow.methods.text.majority_vote import vote
from mocoflow.models import ModelRef


def mc_item(i: int, split: str, gold: str = "A") -> Item:
    return Item(id=f"{split}{i}", task="t", split=split, task_type="multiple_choice", question=f"q{i}",
                choices={"A": "alpha", "B": "beta", "C": "gamma", "D": "delta"}, gold=gold)


def rec(output: str, conf: float = 0.5, tokens: int = 3) -> dict:
    return {"output": output, "mean_logprob": math.log(conf), "prompt_tokens": 10, "generated_tokens": tokens}


def make_ctx(gens: dict, items: dict, pool: list[str]) -> RunContext:
    refs = [ModelRef(name=n, path="/nonexistent", card={"tokenizer": "t", "architecture": "a"}, spec={})
            for n in pool]

    def no_engines(ref):
        raise AssertionError("this method must not load models")

    return RunContext(run="r", pool_name="p", pool=refs, task="t", items=items, generations=gens,
                      decoding=DecodingConfig(), engines=EngineProvider(no_engines), workdir=Path("."))


def test_threshold_is_lowest_confidence_meeting_target_precision():
    confs = [0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, True, False, True, False]
    # precision at >=0.9: 1, >=0.8: 1, >=0.7: 2/3, >=0.6: 3/4, >=0.5: 3/5
    assert choose_threshold(confs, correct, 0.75) == 0.6
    assert choose_threshold(confs, correct, 0.8) == 0.8
    assert choose_threshold(confs, correct, 1.01) == math.inf
    assert choose_threshold(confs, correct, 0.0) == 0.5


def test_threshold_treats_tied_confidences_together():
    # both 0.9 items must be accepted or rejected together: precision at 0.9 is 1/2
    assert choose_threshold([0.9, 0.9, 0.5], [True, False, False], 0.6) == math.inf


def test_cascade_defers_exactly_items_below_each_models_own_threshold():
    dev = [mc_item(i, "dev") for i in range(4)]
    test = [mc_item(i, "test") for i in range(4)]
    # weak: right on dev only when confident (conf 0.9), wrong at conf 0.2 -> tau_weak = 0.9
    # mid: right when conf >= 0.6 -> tau_mid = 0.6; strong always right on dev (target precision 1.0)
    gens = {
        "weak": {"dev": {"dev0": rec("A", .9), "dev1": rec("B", .2), "dev2": rec("B", .2), "dev3": rec("B", .2)},
                 "test": {"test0": rec("Answer: A", .95), "test1": rec("Answer: B", .5),
                          "test2": rec("Answer: C", .3), "test3": rec("Answer: D", .1)}},
        "mid": {"dev": {"dev0": rec("A", .7), "dev1": rec("A", .6), "dev2": rec("B", .3), "dev3": rec("C", .2)},
                "test": {"test0": rec("Answer: B", .9), "test1": rec("Answer: A", .65),
                         "test2": rec("Answer: B", .55), "test3": rec("Answer: C", .61)}},
        "strong": {"dev": {f"dev{i}": rec("A", .5) for i in range(4)},
                   "test": {f"test{i}": rec("Answer: A", .5) for i in range(4)}},
    }
    ctx = make_ctx(gens, {"dev": dev, "test": test}, ["strong", "weak", "mid"])
    method = METHODS.get("cascade")({})
    order, taus = method.thresholds(ctx)
    assert order == ["weak", "mid", "strong"]  # by dev accuracy 0.25, 0.5, 1.0
    assert taus == {"weak": 0.9, "mid": pytest.approx(0.6)}
    preds = {p["id"]: p for p in method.run(ctx)}
    assert [preds[f"test{i}"]["answered_by"] for i in range(4)] == ["weak", "mid", "strong", "mid"]
    assert [preds[f"test{i}"]["deferrals"] for i in range(4)] == [0, 1, 2, 1]
    # costs count every model consulted
    assert preds["test2"]["generated_tokens"] == 9 and preds["test0"]["generated_tokens"] == 3
    # decisions: weak deferred 3 of the 4 items it saw, mid 1 of 3; answers came 1/4 weak, 2/4 mid, 1/4 strong
    assert ctx.decisions["kind"] == "router" and ctx.decisions["order"] == ["weak", "mid", "strong"]
    assert ctx.decisions["defer_rate"] == {"weak": 0.75, "mid": pytest.approx(1 / 3)}
    assert ctx.decisions["reliance"] == {"strong": 0.25, "weak": 0.25, "mid": 0.5}


def test_vote_ignores_unparseable_and_breaks_ties_by_pool_order():
    assert vote(["B", None, "A", "A"]) == 2
    assert vote([None, None]) is None
    assert vote(["C", "B", "B", "C"]) == 0  # tie: the first supporter in pool order wins
    assert vote([None, "D"]) == 1


def test_majority_vote_groups_equal_answers_and_never_picks_unparseable():
    test = [Item(id="x", task="t", split="test", task_type="exact_match", question="q", gold="1000")]
    gens = {"m1": {"test": {"x": rec("I am not sure.")}},
            "m2": {"test": {"x": rec("Answer: 1,000")}},
            "m3": {"test": {"x": rec("Answer: 999")}},
            "m4": {"test": {"x": rec("The answer is 1000.")}},
            "m5": {"test": {"x": rec("no idea")}}}
    ctx = make_ctx(gens, {"dev": [], "test": test}, ["m1", "m2", "m3", "m4", "m5"])
    (pred,) = METHODS.get("majority_vote")({}).run(ctx)
    assert pred["answered_by"] == "m2" and pred["votes"] == 2
    assert pred["generated_tokens"] == 15  # relies on all five shared generations


def test_single_picks_best_on_dev_not_on_test():
    dev = [mc_item(0, "dev"), mc_item(1, "dev")]
    test = [mc_item(0, "test")]
    gens = {"a": {"dev": {"dev0": rec("A"), "dev1": rec("A")}, "test": {"test0": rec("B")}},
            "b": {"dev": {"dev0": rec("B"), "dev1": rec("A")}, "test": {"test0": rec("A")}}}
    ctx = make_ctx(gens, {"dev": dev, "test": test}, ["b", "a"])
    (pred,) = METHODS.get("single")({}).run(ctx)
    assert pred["answered_by"] == "a" and pred["output"] == "B"


def test_unknown_hyperparameter_lists_valid_ones():
    with pytest.raises(MethodError, match="valid: \\['confidence', 'order', 'target_precision'\\]"):
        METHODS.get("cascade")({"treshold": 0.5})


def test_missing_generation_is_a_clear_error():
    ctx = make_ctx({"a": {"test": {}}}, {"dev": [], "test": [mc_item(0, "test")]}, ["a"])
    with pytest.raises(MethodError, match="no shared generation for model 'a'"):
        METHODS.get("majority_vote")({}).run(ctx)


def test_majority_vote_key_takes_the_mode_from_metadata_not_gold():
    """Answers 9 / '7 apples' / 7: number keys make 7 win (2 votes), text keys tie (the first wins)."""
    for answer_type, gold, winner in (("integer", None, "m2"), ("option", "7", "m1"), ("integer", "seven", "m2")):
        test = [Item(id="x", task="t", split="test", task_type="exact_match", question="q", gold=gold,
                     metadata={"answer_type": answer_type})]
        gens = {m: {"test": {"x": rec(o)}} for m, o in (("m1", "Answer: 9"), ("m2", "Answer: 7 apples"),
                                                        ("m3", "Answer: 7"))}
        ctx = make_ctx(gens, {"dev": [], "test": test}, ["m1", "m2", "m3"])
        (pred,) = METHODS.get("majority_vote")({}).run(ctx)
        assert pred["answered_by"] == winner, (answer_type, gold)
        assert ctx.decisions["reliance"] == {m: float(m == winner) for m in ("m1", "m2", "m3")}
