"""Merged models are recipes, materialised in memory: the merge stage writes a card with the recipe (no
weights), the engine builds the merged weights when it loads, and they equal the weights a merge written to
disk would hold, for every weight-level method and for pool models stored as base + LoRA adapter. The merged
model's fingerprint (the response cache's key) is the recipe's hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.factory import make_engine
from mocoflow.io import write_json, write_jsonl
from mocoflow.methods import METHODS
from mocoflow.methods.base import MergeContext, MethodError, recipe_fingerprint
from mocoflow.models import ModelRef, make_card
from mocoflow.training.merging import save_state

DECODING = DecodingConfig(max_new_tokens=6, batch_size=4)
PROMPTS = [f"Question {i}: what is {i} plus {i}?" for i in range(3)]
RUNS = {  # run -> (method, hyperparameters)
    "linear_merge": ("linear_merge", {"weights": [1.0, 2.0, 1.0]}),
    "task_arithmetic": ("linear_merge", {"mode": "task_arithmetic", "base": "m0", "scale": 0.5}),
    "ties": ("ties", {"base": "m0", "density": 0.5}),
    "ties_per_tensor": ("ties", {"density": 0.3, "trim": "per_tensor"}),
    "dare": ("dare", {"base": "m0", "density": 0.5, "seed": 3}),
    "dare_ties": ("dare_ties", {"density": 0.5}),
    "expo": ("expo", {"alpha_candidates": [0.1, 0.5], "max_dev_items": 2}),
    "greedy_soup": ("greedy_soup", {"max_dev_items": 2}),
    "model_swarms": ("model_swarms", {"particles": 3, "iterations": 1, "max_dev_items": 2}),
    "lorahub": ("lorahub", {"budget": 2, "max_dev_items": 2}),
}


def dev_items() -> list[Item]:
    return [Item(id=str(i), task="t", split="dev", task_type="multiple_choice", question=f"Question {i}?",
                 choices={"A": "yes", "B": "no"}, gold="A") for i in range(2)]


def lora_adapter(base_dir: Path, out: Path, seed: int) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True, dtype=torch.float32)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(str(out))
    return out


def card_ref(root: Path, name: str, weights: Path, **extra) -> ModelRef:
    card = root / "cards" / name / "card.json"
    write_json(card, {**make_card(name, {"source": "tiny"}, weights), **extra})
    return ModelRef.from_card(card)


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[ModelRef]]:
    """"full": three tiny Llamas (one architecture, different weights); "adapters": two LoRA adapters of m0,
    each pool model stored as base + adapter (its card's path is the adapter folder)."""
    from mocoflow.testing import build_tiny_model

    root = tmp_path_factory.mktemp("recipes")
    full = [card_ref(root, f"m{i}", build_tiny_model(root / f"m{i}", arch="llama", seed=i)) for i in range(3)]
    base = Path(full[0].path)
    adapters = [card_ref(root, f"s{j}", base, path=str(lora_adapter(base, root / f"ad{j}", 10 + j)), base=str(base))
                for j in range(2)]
    return {"full": full, "adapters": adapters}


def merge_ctx() -> MergeContext:
    return MergeContext(dev_items=dev_items(), decoding=DECODING, seed=0,
                        engine_factory=lambda p: make_engine("candidate", {"path": str(p)}, cache_dir=None,
                                                             device="cpu"))


def recipe_card(method, pool: list[ModelRef]) -> dict:
    recipe = method.recipe(pool, merge_ctx())
    return {"name": "merged", "fingerprint": recipe_fingerprint(recipe), "recipe": recipe}


@pytest.mark.parametrize("run", sorted(RUNS))
def test_a_recipe_materialised_in_memory_equals_the_merge_written_to_disk(run, pools, tmp_path):
    name, params = RUNS[run]
    pool = pools["adapters" if name == "lorahub" else "full"]
    method = METHODS.get(name)(params)
    card = recipe_card(method, pool)
    assert len(json.dumps(card["recipe"])) < 4096  # a recipe is a few KB, never weights
    ref = method.merged_model(card, pool)
    in_memory = make_engine(run, {**ref.spec, "path": ref.path}, cache_dir=None, device="cpu")
    plan = card["recipe"]["plan"]
    written = save_state(method.merged_state(pool, plan), method.template(pool, plan), tmp_path / "written")
    on_disk = make_engine(run, {"path": str(written)}, cache_dir=None, device="cpu")
    assert in_memory.fingerprint == card["fingerprint"] != on_disk.fingerprint
    assert [g.text for g in in_memory.generate(PROMPTS, DECODING)] == \
        [g.text for g in on_disk.generate(PROMPTS, DECODING)]
    mine, theirs = in_memory.model.state_dict(), on_disk.model.state_dict()
    assert set(mine) == set(theirs) and all(torch.equal(mine[k], theirs[k]) for k in mine)
    # the in-memory model is not just the member it was loaded from (unless the search chose that member)
    template = make_engine("template", {"path": ref.path}, cache_dir=None, device="cpu").model.state_dict()
    changed = any(not torch.equal(theirs[k], template[k]) for k in theirs)
    assert changed == any(not torch.equal(mine[k], template[k]) for k in mine)
    assert changed or name in ("greedy_soup", "model_swarms")  # the searches may pick one member


def test_a_pool_model_stored_as_base_plus_adapter_merges_like_its_full_weights(pools, tmp_path):
    """The same specialist as base + adapter (card path: the adapter) and as a full copy: one merge."""
    from mocoflow.training.merging import adapted_state

    base_ref, adapted = pools["full"][0], pools["adapters"][0]
    full = save_state(adapted_state(Path(base_ref.path), Path(adapted.path)), Path(base_ref.path), tmp_path / "s0")
    full_ref = card_ref(tmp_path, "s0", full)
    for method in (METHODS.get("linear_merge")({"weights": [0.3, 0.7]}),
                   METHODS.get("linear_merge")({"mode": "task_arithmetic", "base": "m0", "scale": 0.7})):
        via_adapter = method.merged_state([adapted, base_ref], method.plan([adapted, base_ref]))
        via_copy = method.merged_state([full_ref, base_ref], method.plan([full_ref, base_ref]))
        assert set(via_adapter) == set(via_copy) and all(torch.equal(via_adapter[k], via_copy[k]) for k in via_copy)
    # the engine materialises the linear merge from the base's folder (an adapter folder holds no model)
    method = METHODS.get("linear_merge")({"weights": [0.3, 0.7]})
    via_copy = method.merged_state([full_ref, base_ref], method.plan([full_ref, base_ref]))
    ref = method.merged_model(recipe_card(method, [adapted, base_ref]), [adapted, base_ref])
    assert Path(ref.path) == Path(base_ref.path)
    engine = make_engine("m", {**ref.spec, "path": ref.path}, cache_dir=None, device="cpu")
    assert all(torch.equal(engine.model.state_dict()[k], via_copy[k]) for k in via_copy)


def test_the_merged_fingerprint_is_the_recipes(pools):
    pool = pools["full"]
    half = METHODS.get("linear_merge")({"weights": [1.0, 1.0, 0.0]})
    other = METHODS.get("linear_merge")({"weights": [1.0, 0.0, 1.0]})
    a, a_again, b = recipe_card(half, pool), recipe_card(half, pool), recipe_card(other, pool)
    assert a["fingerprint"] == a_again["fingerprint"] != b["fingerprint"]
    # a pool model that changed (new weights, new card fingerprint) makes a new recipe, and the old card is
    # refused rather than materialised from the new weights
    changed = [ModelRef(pool[0].name, pool[0].path, {**pool[0].card, "fingerprint": "new"}, {}), *pool[1:]]
    assert recipe_card(half, changed)["fingerprint"] != a["fingerprint"]
    with pytest.raises(MethodError, match="was planned for pool models"):
        half.merged_model(a, changed)
    with pytest.raises(MethodError, match="has no recipe"):
        half.merged_model({"name": "old", "path": "weights", "fingerprint": "x"}, pool)


def test_merge_and_collaborate_stages_leave_no_weights_and_cache_under_the_recipe(pools, tmp_path):
    from mocoflow.stages.collaborate import collaborate
    from mocoflow.stages.merge import merge

    cards = []
    for ref in pools["full"]:
        card = tmp_path / "results" / "models" / ref.name / "card.json"
        shutil.copytree(ref.path, card.parent / "weights")
        write_json(card, make_card(ref.name, {"source": "tiny"}, card.parent / "weights"))
        cards.append(card)
    data = tmp_path / "results" / "data"
    items = {"dev": dev_items(), "test": [Item(id=f"t{i}", task="t", split="test", task_type="multiple_choice",
                                                question=f"Test {i}?", choices={"A": "yes", "B": "no"}, gold="B")
                                           for i in range(3)]}
    for split, rows in items.items():
        write_jsonl(data / f"{split}.jsonl", [i.to_dict() for i in rows])
    merged_card = tmp_path / "results" / "merged" / "soup" / "trio" / "t" / "card.json"
    params = {"run": "soup", "pool": "trio", "method": "greedy_soup", "method_params": {"max_dev_items": 2},
              "decoding": {"max_new_tokens": 4, "batch_size": 4}, "device": "cpu"}
    card = merge(cards, merged_card, params, data / "dev.jsonl")
    assert card["fingerprint"] == recipe_fingerprint(card["recipe"])
    run = tmp_path / "results" / "runs" / "soup" / "trio" / "t"
    cache = tmp_path / "results" / "cache"
    run_params = {**params, "task": "t", "cache_dir": str(cache)}
    splits = {s: data / f"{s}.jsonl" for s in items}
    for attempt in range(2):
        collaborate(run_params, cards, splits, {}, merged_card, run / "test.jsonl", run / "usage.json")
        usage = json.loads((run / "usage.json").read_text())
        # the second run answers from the response cache: the merged model is not even materialised
        assert usage["model_loads"] == (1 - attempt)
    weights = [p for p in (tmp_path / "results").rglob("*") if p.suffix in (".safetensors", ".bin")
               and "models" not in p.parts]
    assert weights == []
    assert sorted(p.name for p in merged_card.parent.iterdir()) == ["card.json"]
    assert [p.name for p in cache.iterdir()] == [card["fingerprint"][:16]]
