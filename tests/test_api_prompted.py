"""Prompt routing and the cascade's "just ask" confidence mode, with scripted engines (exact logic) and
one run on a tiny real model (the engine path works end to end)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig, Generation, Usage
from mocoflow.methods import METHODS
from mocoflow.methods.api.prompt_routing import parse_route
from mocoflow.methods.base import EngineProvider, RunContext
from mocoflow.models import ModelRef


class ScriptedEngine:
    """generate: replies by a function of the prompt; score_continuations: Yes/No log-probs by a function."""

    def __init__(self, name, reply=None, yes=None):
        self.name, self.reply, self.yes, self.usage = name, reply, yes, Usage()
        self.asked: list[str] = []

    def generate(self, prompts, decoding, progress=None):
        return [
            Generation(self.reply(p), prompt_tokens=7, generated_tokens=2, sum_logprob=-1.0) for p in prompts
        ]

    def score_continuations(self, prompts, conts):
        self.asked.extend(p for p, c in zip(prompts, conts, strict=True) if c == "Yes")
        return [
            math.log(self.yes(p)) if c == "Yes" else math.log(1 - self.yes(p))
            for p, c in zip(prompts, conts, strict=True)
        ]

    def encode(self, prompts):
        return [[0] * 5 for _ in prompts]


def rec(output, tokens=3):
    return {"output": output, "mean_logprob": -0.5, "prompt_tokens": 10, "generated_tokens": tokens}


def mc(i, split):
    return Item(
        id=f"{split}{i}",
        task="t",
        split=split,
        task_type="multiple_choice",
        question=f"question {i}",
        choices={"A": "x", "B": "y"},
        gold="A",
    )


def ctx_with(engines: dict, gens: dict, items: dict) -> RunContext:
    refs = [ModelRef(name=n, path="/x", card={"parameters": 100}, spec={}) for n in gens]
    return RunContext(
        run="r",
        pool_name="p",
        pool=refs,
        task="t",
        items=items,
        generations=gens,
        decoding=DecodingConfig(),
        engines=EngineProvider(lambda ref: engines[ref.name]),
        workdir=Path("."),
    )


def test_parse_route():
    assert parse_route("Model: 2", ["a", "b", "c"]) == 1
    assert parse_route("I pick 7 then 3", ["a", "b", "c"]) == 2
    assert parse_route("use beta please", ["alpha", "beta"]) == 1
    assert parse_route("no idea", ["a1", "b1"]) is None


def test_prompt_routing_follows_the_router_reply_and_falls_back_to_the_router():
    dev = [mc(0, "dev")]
    test = [mc(0, "test"), mc(1, "test")]
    gens = {
        "a": {"dev": {"dev0": rec("Answer: B")}, "test": {"test0": rec("a0"), "test1": rec("a1")}},
        "b": {"dev": {"dev0": rec("Answer: A")}, "test": {"test0": rec("b0"), "test1": rec("b1", 4)}},
    }
    # b is best on dev, so b routes; it says "Model: 1" for question 0 and nonsense otherwise
    router = ScriptedEngine("b", reply=lambda p: "Model: 1" if "question 0" in p else "hmm")
    preds = METHODS.get("prompt_routing")({}).run(ctx_with({"b": router}, gens, {"dev": dev, "test": test}))
    assert [p["answered_by"] for p in preds] == ["a", "b"]
    assert [p["output"] for p in preds] == ["a0", "b1"]
    assert [p["route_parsed"] for p in preds] == [True, False]
    assert preds[0]["router"] == "b"
    # the router's own tokens are new cost on top of the chosen generation
    assert preds[1]["new_generated_tokens"] == 2 and preds[1]["generated_tokens"] == 6
    assert preds[1]["prompt_tokens"] == 17


def test_just_ask_cascade_uses_the_models_stated_confidence():
    dev = [mc(i, "dev") for i in range(4)]
    test = [mc(i, "test") for i in range(3)]
    # weak is right on dev0, dev1 and says so (P(yes) 0.9); wrong on dev2, dev3 and is unsure (0.2)
    weak_dev = {
        "dev0": rec("Answer: A"),
        "dev1": rec("Answer: A"),
        "dev2": rec("Answer: B"),
        "dev3": rec("Answer: B"),
    }
    gens = {
        "weak": {"dev": weak_dev, "test": {f"test{i}": rec(f"weak{i}") for i in range(3)}},
        "strong": {
            "dev": {f"dev{i}": rec("Answer: A") for i in range(4)},
            "test": {f"test{i}": rec(f"strong{i}") for i in range(3)},
        },
    }
    conf = {"Answer: A": 0.9, "Answer: B": 0.2, "weak0": 0.95, "weak1": 0.5, "weak2": 0.1}

    def yes(prompt):
        return next(v for k, v in conf.items() if f"Proposed answer: {k}\n" in prompt)

    weak = ScriptedEngine("weak", yes=yes)
    ctx = ctx_with({"weak": weak}, gens, {"dev": dev, "test": test})
    preds = METHODS.get("cascade")({"confidence": "just_ask"}).run(ctx)
    assert [p["answered_by"] for p in preds] == ["weak", "strong", "strong"]
    assert [p["output"] for p in preds] == ["weak0", "strong1", "strong2"]
    assert preds[0]["ask_prompt_tokens"] == 10 and preds[0]["prompt_tokens"] == 20
    assert preds[1]["generated_tokens"] == 6 and preds[0]["training_seconds"] >= 0
    assert len(weak.asked) == 4 + 3  # every dev item once, each test item once; strong is never asked
    # the log-prob mode ignores the engine entirely
    plain = METHODS.get("cascade")({}).run(ctx_with({}, gens, {"dev": dev, "test": test}))
    assert "ask_prompt_tokens" not in plain[0]


def test_just_ask_and_prompt_routing_on_a_tiny_model(tiny_model_dir):
    from mocoflow.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine("a", tiny_model_dir, device="cpu")
    dev = [mc(i, "dev") for i in range(2)]
    test = [mc(i, "test") for i in range(2)]
    gens = {
        n: {
            "dev": {f"dev{i}": rec("Answer: A") for i in range(2)},
            "test": {f"test{i}": rec(f"{n}{i}") for i in range(2)},
        }
        for n in ("a", "b")
    }
    ctx = ctx_with({"a": engine, "b": engine}, gens, {"dev": dev, "test": test})
    ctx.decoding = DecodingConfig(max_new_tokens=3)
    preds = METHODS.get("cascade")({"confidence": "just_ask", "order": "pool"}).run(ctx)
    assert all(0 <= c <= 1 for p in preds for c in p["confidences"])
    routed = METHODS.get("prompt_routing")({"max_new_tokens": 3}).run(ctx)
    assert all(p["answered_by"] in ("a", "b") and p["new_generated_tokens"] > 0 for p in routed)
    assert engine.usage.calls > 0


def test_cascade_rejects_unknown_confidence():
    with pytest.raises(ValueError, match="just_ask"):
        METHODS.get("cascade")({"confidence": "vibes"})
