"""Routers on constructed shared generations: random (seeded), oracle (any-correct upper bound),
trained (embedding classifier) and graph routers, with real per-model costs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig
from mocoflow.methods import METHODS
from mocoflow.methods.base import EngineProvider, RunContext
from mocoflow.models import ModelRef

X_WORDS = [
    "apple banana fruit orchard",
    "ripe mango fruit juice",
    "pear cherry fruit basket",
    "fruit salad grape lemon",
    "orange fruit peel citrus",
    "plum fruit tree harvest",
]
Y_WORDS = [
    "planet orbit star telescope",
    "galaxy star comet orbit",
    "moon planet gravity orbit",
    "star nebula planet space",
    "asteroid orbit planet belt",
    "rocket orbit space star",
]


def rec(output: str, prompt_tokens: int = 10, tokens: int = 3) -> dict:
    return {
        "output": output,
        "mean_logprob": math.log(0.5),
        "prompt_tokens": prompt_tokens,
        "generated_tokens": tokens,
    }


def item(iid: str, split: str, question: str, domain: str) -> Item:
    return Item(
        id=iid,
        task="t",
        split=split,
        task_type="multiple_choice",
        question=question,
        choices={"A": "yes", "B": "no"},
        gold="A",
        metadata={"domain": domain},
    )


def make_ctx(
    gens: dict, items: dict, pool: list[str], params: dict | None = None, seed: int = 0
) -> RunContext:
    params = params or {}
    refs = [
        ModelRef(
            name=n,
            path="/nonexistent",
            card={"tokenizer": "t", "architecture": "a", "parameters": params.get(n, 1000)},
            spec={},
        )
        for n in pool
    ]

    def no_engines(ref):
        raise AssertionError("this method must not load models")

    return RunContext(
        run="r",
        pool_name="p",
        pool=refs,
        task="t",
        items=items,
        generations=gens,
        decoding=DecodingConfig(),
        engines=EngineProvider(no_engines),
        workdir=Path("."),
        seed=seed,
    )


def domain_case(test_b_right: bool = False):
    """Model a is right exactly on fruit (X) questions, b exactly on space (Y) questions."""
    dev = [item(f"dx{i}", "dev", q, "X") for i, q in enumerate(X_WORDS[:5])]
    dev += [item(f"dy{i}", "dev", q, "Y") for i, q in enumerate(Y_WORDS[:5])]
    test = [item("tx", "test", X_WORDS[5], "X"), item("ty", "test", Y_WORDS[5], "Y")]
    gens = {"a": {"dev": {}, "test": {}}, "b": {"dev": {}, "test": {}}}
    for it in dev:
        x = it.id.startswith("dx")
        gens["a"]["dev"][it.id] = rec("Answer: A" if x else "Answer: B")
        gens["b"]["dev"][it.id] = rec("Answer: B" if x else "Answer: A")
    for it in test:
        gens["a"]["test"][it.id] = rec(f"a says {it.id}: Answer: A")
        gens["b"]["test"][it.id] = rec(f"b says {it.id}: Answer: A", tokens=5)
    return {"dev": dev, "test": test}, gens


@pytest.mark.parametrize("method", ["trained_router", "graph_router"])
@pytest.mark.parametrize("embedder", ["tfidf", "hash"])
def test_router_sends_held_out_domain_items_to_the_model_right_on_that_domain(method, embedder):
    items, gens = domain_case()
    ctx = make_ctx(gens, items, ["b", "a"])  # pool order must not decide
    preds = {p["id"]: p for p in METHODS.get(method)({"embedder": embedder}).run(ctx)}
    assert preds["tx"]["answered_by"] == "a"
    assert preds["ty"]["answered_by"] == "b"
    assert preds["tx"]["output"].startswith("a says")
    assert preds["tx"]["router_features"] == embedder
    assert preds["tx"]["training_seconds"] > 0
    assert preds["ty"]["generated_tokens"] == 5 and preds["ty"]["new_generated_tokens"] == 0
    assert ctx.decisions["kind"] == "router" and ctx.decisions["reliance"] == {"b": 0.5, "a": 0.5}


@pytest.mark.parametrize("method", ["trained_router", "graph_router"])
def test_cost_first_scenario_uses_real_costs(method):
    # both models always right on dev: performance_first ties -> pool order; cost_first -> cheaper one,
    # where cost = parameters x tokens (b has fewer parameters but far more tokens per item)
    dev = [item(f"d{i}", "dev", q, "X") for i, q in enumerate(X_WORDS)]
    test = [item("t0", "test", Y_WORDS[0], "X")]
    gens = {
        "a": {"dev": {i.id: rec("Answer: A", 10, 10) for i in dev}, "test": {"t0": rec("Answer: A")}},
        "b": {"dev": {i.id: rec("Answer: A", 100, 100) for i in dev}, "test": {"t0": rec("Answer: A")}},
    }
    params = {"a": 2000, "b": 1000}  # a: 2000 x 20 = 40k per item, b: 1000 x 200 = 200k
    ctx = make_ctx(gens, {"dev": dev, "test": test}, ["b", "a"], params)
    perf = METHODS.get(method)({"embedder": "hash"}).run(ctx)
    cheap = METHODS.get(method)({"embedder": "hash", "scenario": "cost_first"}).run(ctx)
    assert perf[0]["answered_by"] == "b"
    assert cheap[0]["answered_by"] == "a"


def test_missing_embedder_falls_back_to_tfidf(tmp_path):
    items, gens = domain_case()
    ctx = make_ctx(gens, items, ["a", "b"])
    preds = METHODS.get("trained_router")({"embedder": "minilm", "models_dir": str(tmp_path)}).run(ctx)
    assert preds[0]["router_features"] == "tfidf"


@pytest.fixture(scope="module")
def tiny_minilm(tmp_path_factory) -> Path:
    """A models folder holding ``minilm/card.json`` for a tiny random sentence-transformer built here."""
    import json

    from mocoflow.testing import build_tiny_sentence_transformer

    root = tmp_path_factory.mktemp("models")
    words = " ".join(X_WORDS + Y_WORDS + ["yes", "no"]).split()
    path = build_tiny_sentence_transformer(root / "minilm", words)
    (root / "minilm" / "card.json").write_text(json.dumps({"name": "minilm", "path": str(path)}))
    return root


@pytest.mark.parametrize("method", ["trained_router", "graph_router"])
def test_default_minilm_embedder_is_a_sentence_transformer_found_by_its_card(method, tiny_minilm):
    """The routers' default path: ``embedder: minilm`` resolves through ``models_dir/minilm/card.json`` to a
    sentence-transformers folder whose normalised embeddings are the features (no TF-IDF fallback)."""
    from mocoflow.methods.api.common import Featurizer

    feats = Featurizer("minilm", tiny_minilm).fit(X_WORDS + Y_WORDS)
    x = feats.transform(X_WORDS[:2])
    assert feats.kind == "sentence_transformers:model" and x.shape == (2, 32)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0)
    items, gens = domain_case()
    ctx = make_ctx(gens, items, ["a", "b"])
    params = {"models_dir": str(tiny_minilm)}  # embedder left at its default
    assert METHODS.get(method)(params).params.embedder == "minilm"
    preds = {p["id"]: p for p in METHODS.get(method)(params).run(ctx)}
    assert {p["router_features"] for p in preds.values()} == {"sentence_transformers:model"}
    assert preds["tx"]["answered_by"] == "a" and preds["ty"]["answered_by"] == "b"


def test_random_router_is_reproducible_by_seed_and_uses_the_pool():
    test = [item(f"t{i}", "test", "q", "X") for i in range(40)]
    gens = {n: {"test": {i.id: rec(f"{n}:Answer: A") for i in test}} for n in ("a", "b", "c")}
    ctx = make_ctx(gens, {"dev": [], "test": test}, ["a", "b", "c"], seed=3)
    first = [p["answered_by"] for p in METHODS.get("random_router")({}).run(ctx)]
    again = [p["answered_by"] for p in METHODS.get("random_router")({"seed": 3}).run(ctx)]
    other = [p["answered_by"] for p in METHODS.get("random_router")({"seed": 4}).run(ctx)]
    assert first == again and first != other
    assert set(first) == {"a", "b", "c"}
    reversed_ctx = make_ctx(gens, {"dev": [], "test": test[::-1]}, ["a", "b", "c"], seed=3)
    by_id = {p["id"]: p["answered_by"] for p in METHODS.get("random_router")({}).run(reversed_ctx)}
    assert [by_id[i.id] for i in test] == first  # independent of item order


def test_oracle_is_any_correct():
    test = [item(f"t{i}", "test", "q", "X") for i in range(4)]
    answers = {"a": ["A", "B", "B", "B"], "b": ["B", "A", "B", "B"], "c": ["B", "B", "A", "B"]}
    gens = {
        n: {"test": {f"t{i}": rec(f"Answer: {x}") for i, x in enumerate(xs)}} for n, xs in answers.items()
    }
    ctx = make_ctx(gens, {"dev": [], "test": test}, ["a", "b", "c"])
    preds = METHODS.get("oracle_router")({}).run(ctx)
    assert [p["answered_by"] for p in preds] == ["a", "b", "c", "a"]
    assert [p["output"] for p in preds] == ["Answer: A"] * 3 + ["Answer: B"]
    assert [p["models_correct"] for p in preds] == [1, 1, 1, 0]
    assert ctx.decisions["reliance"] == {"a": 0.5, "b": 0.25, "c": 0.25}
    assert all(p["reference"] == "upper_bound_uses_gold" for p in preds)
    assert preds[0]["generated_tokens"] == 3
