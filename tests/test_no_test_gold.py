"""No method sees test gold: the collaborate stage hands methods test items without ``gold`` (dev keeps it;
only ``Need.TEST_GOLD`` methods, the oracle router, get it), and answer parsing takes its format from the
task's metadata. The guard runs EVERY registered method through the collaborate stage (merges through the
merge stage first) on a constructed pool of tiny local models, once with honest test gold and once with
poisoned test gold (other values of another type), and requires identical predictions, except for the oracle
router, whose predictions must change."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from mocoflow.data.schema import Item
from mocoflow.io import read_json, read_jsonl, write_json, write_jsonl
from mocoflow.methods import METHODS
from mocoflow.methods.base import MergeMethod, Need
from mocoflow.methods.common import answer_key
from mocoflow.models import TOKENIZER_FILES, make_card
from mocoflow.stages.collaborate import collaborate, method_items
from mocoflow.stages.merge import merge

POOL = ["m0", "m1", "m2"]
# Shared test generations (constructed). Poisoned golds have other values and, on item 0, another type: a
# vote keyed by the gold's type (as exact match was before its answer modes) picks m1 ("7 apples" and "7"
# agree as numbers) with the honest gold and m0 (a three-way tie of texts) with the poisoned one; the oracle
# picks m0 / m1 on item 1.
TEST_OUTPUTS = {"m0": ["Answer: 9", "Answer: 12"], "m1": ["Answer: 7 apples", "Answer: 11"],
                "m2": ["Answer: 7", "The answer is 10."]}
HONEST, POISONED = ["9", "12"], ["(B) seven", "11"]
# only for speed on 2 CPU cores; every method not listed here runs with its defaults
FAST = {"graph_router": {"epochs": 20}, "model_swarms": {"iterations": 2, "particles": 3},
        "lorahub": {"budget": 3}, "heterogeneous_swarms": {"particles": 2, "iterations": 1}}


def item(i: int, split: str, gold: str) -> Item:
    return Item(id=f"{split}{i}", task="arith", split=split, task_type="exact_match",
                question=f"What is {i} + {i + 5}?", gold=gold)


def tiny_pool(root: Path, base_dir: Path) -> list[Path]:
    """Three same-architecture tiny Llamas: the base plus a random LoRA adapter each (merged weights in
    their own folder, the adapter beside them), so token-, weight-level methods and LoraHub all apply."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cards = []
    for k, name in enumerate(POOL):
        torch.manual_seed(10 + k)
        model = AutoModelForCausalLM.from_pretrained(str(base_dir), local_files_only=True, dtype=torch.float32)
        peft = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                                init_lora_weights=False))
        adapter = root / name / "adapter"
        peft.save_pretrained(str(adapter))
        weights = root / name / "weights"
        peft.merge_and_unload().save_pretrained(str(weights), safe_serialization=True)
        for f in TOKENIZER_FILES:
            if (base_dir / f).exists():
                shutil.copyfile(base_dir / f, weights / f)
        card = root / name / "card.json"
        write_json(card, make_card(name, {"source": "tiny"}, weights, adapter=str(adapter), base=str(base_dir)))
        cards.append(card)
    return cards


def generations(root: Path, test_ids: list[str], dev_ids: list[str]) -> dict[str, str]:
    paths = {}
    for k, name in enumerate(POOL):
        for split, ids in (("test", test_ids), ("dev", dev_ids)):
            outs = TEST_OUTPUTS[name] if split == "test" else [f"Answer: {5 + 2 * j + (k > 0)}" for j in
                                                                 range(len(ids))]
            rows = [{"id": i, "model": name, "output": o, "prompt_tokens": 10, "generated_tokens": 3,
                     "mean_logprob": math.log(0.3 + 0.2 * k), "sum_logprob": 3 * math.log(0.3 + 0.2 * k),
                     "seed": 0} for i, o in zip(ids, outs, strict=True)]
            path = root / "gens" / name / f"{split}.jsonl"
            write_jsonl(path, rows)
            paths[f"{name}/{split}"] = str(path)
    return paths


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory, tiny_llama_dir: Path) -> dict:
    root = tmp_path_factory.mktemp("no-test-gold")
    dev = [item(j, "dev", str(2 * j + 5)) for j in range(3)]  # numeric golds: the task's format is numeric
    splits = {}
    for label, golds in (("honest", HONEST), ("poisoned", POISONED)):
        test = [item(i, "test", g) for i, g in enumerate(golds)]
        splits[label] = root / label / "test.jsonl"
        write_jsonl(splits[label], [t.to_dict() for t in test])
    write_jsonl(root / "dev.jsonl", [d.to_dict() for d in dev])
    return {"root": root, "cards": tiny_pool(root / "models", tiny_llama_dir), "dev": root / "dev.jsonl",
            "tests": splits, "gens": generations(root, [f"test{i}" for i in range(2)], [d.id for d in dev])}


def run_method(name: str, setting: dict, label: str) -> tuple[list[dict], dict]:
    root = setting["root"] / "runs" / name
    params = {"run": name, "method": name, "method_params": FAST.get(name, {}), "pool": "trio", "task": "arith",
              "decoding": {"max_new_tokens": 6, "batch_size": 4}, "device": "cpu",
              "cache_dir": str(root / label / "cache"), "model_specs": {}}
    method = METHODS.get(name)
    gens = {k: v for k, v in setting["gens"].items()
            if (Need.TEST_GENERATIONS in method.needs and k.endswith("/test"))
            or (Need.DEV_GENERATIONS in method.needs and k.endswith("/dev"))}
    merged = None
    if issubclass(method, MergeMethod):  # the merge reads dev only: built once, shared by both runs
        merged = root / "merged" / "card.json"
        if not merged.exists():
            merge(setting["cards"], merged, params, setting["dev"])
    out = root / label / "test.jsonl"
    collaborate(params, setting["cards"], {"dev": setting["dev"], "test": setting["tests"][label]}, gens, merged,
                out, root / label / "usage.json")
    return read_jsonl(out), read_json(out.with_name("decisions.json"))


@pytest.mark.parametrize("name", METHODS.names())
def test_predictions_do_not_depend_on_test_gold(name: str, setting: dict):
    honest, decisions = run_method(name, setting, "honest")
    poisoned, _ = run_method(name, setting, "poisoned")
    assert [p["id"] for p in honest] == ["test0", "test1"]
    assert set(decisions["by_seed"]) == {"0"} and decisions["method"] == name
    if Need.TEST_GOLD in METHODS.get(name).needs:
        assert [p["output"] for p in honest] != [p["output"] for p in poisoned], f"{name} ignores test gold"
    else:
        drop = ("training_seconds",)  # wall time, not a decision
        clean = [[{k: v for k, v in p.items() if k not in drop} for p in preds] for preds in (honest, poisoned)]
        assert clean[0] == clean[1], f"{name}: predictions changed with the test gold"


def test_only_test_gold_methods_get_test_gold():
    dev = [item(j, "dev", str(j)) for j in range(2)]
    test = [item(0, "test", "seven")]
    plain = method_items(METHODS.get("majority_vote")(), {"dev": dev, "test": test})
    assert plain["test"][0].gold is None and plain["dev"][0].gold == "0"  # dev keeps its gold
    assert plain["test"][0].question == test[0].question
    oracle = method_items(METHODS.get("oracle_router")(), {"dev": dev, "test": test})
    assert oracle["test"][0].gold == "seven"


def test_answer_keys_follow_the_declared_mode_never_the_gold():
    def q(answer_type: str | None, gold: object, task_type: str = "exact_match") -> Item:
        return Item(id="x", task="t", split="test", task_type=task_type, question="Write the function.", gold=gold,
                    metadata={} if answer_type is None else {"answer_type": answer_type})

    for gold in (None, "7", "seven", "(B) 9"):
        assert answer_key(q("integer", gold), "Answer: 7 apples") == "7"
        assert answer_key(q("option", gold), "Answer: 7 apples") == "7 apples"
        assert answer_key(q(None, gold), "Answer: 1,000") == "1000"
    # a coding item without an entry point: the scorer would take it from the gold's test program (g) and
    # pick the block defining g; without gold it keys the last block, for dev and test alike
    program = "```python\ndef g(x):\n    return x\n```\n\n```python\ndef h(x):\n    return 2\n```"
    with_test = q(None, "def check(candidate):\n    assert g(1) == 1\n", "coding")
    assert answer_key(with_test, program) == answer_key(q(None, None, "coding"), program) == "def h(x):\n    return 2"


def test_decisions_file_is_written_per_seed(setting: dict):
    _, decisions = run_method("cascade", setting, "honest")
    seed = decisions["by_seed"]["0"]
    assert seed["kind"] == "router" and set(seed["defer_rate"]) <= set(POOL)
    assert math.isclose(sum(seed["reliance"].values()), 1.0)
    merged = json.loads((setting["root"] / "runs" / "cascade" / "honest" / "decisions.json").read_text())
    assert merged == decisions


def test_decisions_are_kept_per_seed_when_seeds_repeat(tmp_path: Path):
    items = [item(i, "test", str(i)) for i in range(30)]
    test, dev = tmp_path / "test.jsonl", tmp_path / "dev.jsonl"
    write_jsonl(test, [i.to_dict() for i in items])
    write_jsonl(dev, [])
    cards, gens = [], {}
    for m in ("a", "b"):
        write_json(tmp_path / f"{m}.json", {"name": m, "path": str(tmp_path)})
        cards.append(tmp_path / f"{m}.json")
        write_jsonl(tmp_path / f"{m}.jsonl", [{"id": i.id, "output": m, "prompt_tokens": 2, "generated_tokens": 1}
                                               for i in items])
        gens[f"{m}/test"] = str(tmp_path / f"{m}.jsonl")
    params = {"run": "rr", "method": "random_router", "pool": "ab", "task": "t", "cache_dir": str(tmp_path),
              "decoding": {"temperature": 0.0, "seed": 0}, "seeds": [3, 4]}
    out = tmp_path / "run" / "test.jsonl"
    collaborate(params, cards, {"dev": dev, "test": test}, gens, None, out, tmp_path / "usage.json")
    decisions = read_json(out.with_name("decisions.json"))
    assert decisions["seeds"] == [3, 4] and set(decisions["by_seed"]) == {"3", "4"}
    rows = read_jsonl(out)
    for seed in (3, 4):
        share_a = sum(r["answered_by"] == "a" for r in rows if r["seed"] == seed) / 30
        assert decisions["by_seed"][str(seed)]["reliance"] == {"a": share_a, "b": pytest.approx(1 - share_a)}
    assert decisions["by_seed"]["3"] != decisions["by_seed"]["4"]
