"""LoRA specialist training on a tiny llama built here (random init, tiny tokenizer; no network)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from mocoflow.data.schema import Item  # noqa: E402
from mocoflow.model_sources import MODEL_SOURCES  # noqa: E402
from mocoflow.testing import build_tiny_model  # noqa: E402
from mocoflow.training.lora import LoraParams, answer_text, encode_pairs, train_lora  # noqa: E402

torch.set_num_threads(1)

TRAIN_TASK = {
    "source": "builtin",
    "generator": "arithmetic",
    "seed": 1,
    "n_train": 24,
    "n_dev": 0,
    "n_test": 8,
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("base") / "weights", arch="llama", seed=0, n_layer=2, n_embd=64
    )


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    out: dict[str, tuple[int, ...]] = {}
    for f in sorted(path.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                out[key] = tuple(st.get_slice(key).get_shape())
    return out


def _specialist_spec(base: Path, tmp_path: Path, **extra: object) -> dict[str, object]:
    return {"source": "lora", "base_path": str(base), "train_task": TRAIN_TASK, "steps": 12, "batch_size": 4,
            "lr": 5e-3, "rank": 4, "alpha": 8, "seed": 0, "cache_dir": str(tmp_path / "cache"), **extra}


def _merged_copy_logits(base: Path, adapter: Path, out: Path, ids: list[int]) -> torch.Tensor:
    """Logits of the merged full copy the ``lora`` source used to write (peft merge, saved, loaded back)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().save_pretrained(str(out))
    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(str(out)).eval()(torch.tensor([ids])).logits[0]


def test_lora_source_stores_the_adapter_only_and_loads_with_the_merged_logits(base: Path, tmp_path: Path) -> None:
    from mocoflow.engines.factory import make_engine
    from mocoflow.models import ModelRef
    from mocoflow.stages.build_model import build_model

    spec = _specialist_spec(base, tmp_path)
    card_path = tmp_path / "models" / "spec" / "card.json"
    card = build_model("spec", spec, card_path)
    out_dir = card_path.parent
    record = json.loads((out_dir / "train.json").read_text())
    assert record["train_items"] > 0 and record["train_seconds"] > 0
    assert record["final_loss"] < record["initial_loss"]
    assert (out_dir / "adapter" / "adapter_config.json").exists()
    assert any((out_dir / "adapter").glob("adapter_model.*"))
    # no full copy of the base: no weight file anywhere in the specialist's folder but the adapter's
    stored = [f.name for f in out_dir.rglob("*") if f.suffix in (".safetensors", ".bin")]
    assert stored == ["adapter_model.safetensors"], stored
    assert card["adapter"] and card["architecture"] and card["tokenizer"]
    ref = ModelRef.from_card(card_path)
    assert Path(ref.path).resolve() == base.resolve()
    assert ref.spec["lora_adapter"]["fingerprint"] == card["fingerprint"]

    engine = make_engine("spec", {**ref.spec, "path": ref.path}, cache_dir=None, device="cpu")
    assert engine.fingerprint == card["fingerprint"]
    ids = engine.tokenize("What is 2 + 3?")
    with torch.no_grad():
        logits = engine.hf_model()[0](torch.tensor([ids])).logits[0]
    expected = _merged_copy_logits(base, out_dir / "adapter", tmp_path / "merged", ids)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)
    with torch.no_grad():  # and the adapter changed the model
        plain = make_engine("base", {"path": str(base)}, cache_dir=None, device="cpu").hf_model()[0]
        assert not torch.allclose(plain(torch.tensor([ids])).logits[0], logits, atol=1e-4)
    assert card["fingerprint"] != engine_fingerprint(base)


def engine_fingerprint(path: Path) -> str:
    from mocoflow.models import model_fingerprint

    return model_fingerprint(path)


def test_lora_is_deterministic_and_loss_only_on_answers(base: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    items = [
        Item(
            id=f"q{i}",
            task="t",
            split="train",
            task_type="multiple_choice",
            question=f"Pick {i}",
            choices={"A": "x", "B": "y"},
            gold="AB"[i % 2],
        )
        for i in range(6)
    ]
    params = LoraParams(steps=3, batch_size=3, rank=2, alpha=4, lr=1e-2, seed=7)
    tok = AutoTokenizer.from_pretrained(str(base))
    pairs = encode_pairs(tok, items, params)
    answer = answer_text(items[0], worked=params.worked_answers)
    answer_ids = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids, start = pairs[0]
    assert ids[start:] == answer_ids
    first = train_lora(base, items, tmp_path / "a", params)
    second = train_lora(base, items, tmp_path / "b", params)
    assert first.losses == second.losses


def test_lora_needs_a_base_and_a_train_task(tmp_path: Path) -> None:
    source = MODEL_SOURCES.get("lora")
    with pytest.raises(ValueError, match="base"):
        source("s", {"train_task": TRAIN_TASK}, tmp_path / "s")
    with pytest.raises(FileNotFoundError, match="no card"):
        source("s", {"base": "missing", "train_task": TRAIN_TASK}, tmp_path / "s")


def _mc_items(n: int) -> list[Item]:
    return [Item(id=f"q{i}", task="t", split="train", task_type="multiple_choice",
                 question=f"Pick option {i} of these" + " please" * (i % 3), choices={"A": "x", "B": "y"},
                 gold="AB"[i % 2]) for i in range(n)]


@pytest.mark.parametrize("chat", [True, False])
def test_training_prompts_are_tokenised_as_at_inference(base: Path, chat: bool) -> None:
    """The prompt part of a training pair is exactly what the engine feeds the model (chat template, or the
    plain prompt with the tokenizer's special tokens), so the specialist is trained where it is used."""
    from transformers import AutoTokenizer

    from mocoflow.data.prompts import build_prompt
    from mocoflow.engines.loader import encode_prompts

    tok = AutoTokenizer.from_pretrained(str(base))
    if not chat:
        tok.chat_template = None
    items = _mc_items(3)
    pairs = encode_pairs(tok, items, LoraParams())
    for item, (ids, start) in zip(items, pairs, strict=True):
        assert ids[:start] == encode_prompts(tok, [build_prompt(item)])[0]


def test_answer_loss_equals_the_full_loss_on_answer_tokens(base: Path) -> None:
    """Logits at the last ``keep`` positions of a left-padded batch give the same loss as the full forward
    pass over a right-padded batch with labels on the answer tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mocoflow.training.lora import answer_loss, left_padded_batch, right_padded_batch

    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).eval()
    items = _mc_items(4)
    items[1] = Item(id="long", task="t", split="train", task_type="exact_match", question="Compute 2 + 3.",
                    gold="5 apples and 7 pears")  # a longer answer than the others
    pairs = encode_pairs(tok, items, LoraParams())
    pad = tok.pad_token_id
    with torch.no_grad():
        ids, mask, labels = right_padded_batch(pairs, pad)
        full = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        ids, mask, labels, keep = left_padded_batch(pairs, pad)
        assert keep == max(len(i) - s for i, s in pairs) + 1
        kept = answer_loss(model, ids, mask, labels, keep)
    assert torch.allclose(full, kept, atol=1e-5), (float(full), float(kept))


def test_train_task_may_list_several_tasks(base: Path, tmp_path: Path) -> None:
    from mocoflow.training.lora import load_train_items

    second = {"source": "builtin", "generator": "letter_count", "seed": 0, "n_train": 5, "n_test": 3}
    items = load_train_items("s", {"train_task": [TRAIN_TASK, second]}, tmp_path)
    assert len(items) == TRAIN_TASK["n_train"] + second["n_train"]
    assert {i.split for i in items} == {"train"}
    with pytest.raises(ValueError, match="entry 1"):
        load_train_items("s", {"train_task": [TRAIN_TASK, {"generator": "x"}]}, tmp_path)


def test_train_items_that_are_evaluated_elsewhere_are_dropped(tmp_path: Path) -> None:
    """A train split drawn with other split sizes (or another source) can overlap an evaluated task's
    test/dev items; exclude_tasks removes them by question."""
    from mocoflow.training.lora import drop_evaluated, load_train_items

    small = {"source": "builtin", "generator": "arithmetic", "n_terms": 2, "max_value": 3, "ops": "+",
             "allow_negative": False, "seed": 0}
    train = load_train_items("s", {"train_task": {**small, "n_test": 2, "n_dev": 0, "n_train": 10}}, tmp_path)
    evaluated = {**small, "n_test": 4, "n_dev": 2}  # its test/dev take the first 6 questions: 4 of them train
    kept, dropped = drop_evaluated("s", {"exclude_tasks": {"add": evaluated}}, train, tmp_path)
    assert dropped == 4 and len(kept) == len(train) - 4
    from mocoflow.data.sources import load_task

    held = {i.question for s in ("test", "dev") for i in load_task("add", evaluated, cache_dir=tmp_path)[s]}
    assert not held & {i.question for i in kept}
    assert drop_evaluated("s", {}, train, tmp_path) == (train, 0)
    with pytest.raises(ValueError, match="exclude_tasks entry"):
        drop_evaluated("s", {"exclude_tasks": [{"generator": "arithmetic"}]}, train, tmp_path)


def test_worked_answers_write_the_answer_before_the_answer_line() -> None:
    """Specialists train on worked replies: the source's reference response, or the correct option's text
    before the letter; other callers keep the bare answer line. Every form scores correct."""
    from mocoflow.scoring import score_item

    item = Item(id="a", task="t", split="train", task_type="exact_match", question="Compute 2 + 3.", gold="5",
                metadata={"reference_response": "2 + 3 = 5\nAnswer: 5"})
    assert answer_text(item, worked=True) == "2 + 3 = 5\nAnswer: 5"
    assert answer_text(item) == "Answer: 5"
    mc = Item(id="m", task="t", split="train", task_type="multiple_choice", question="Which is a metal?",
              choices={"A": "wood", "B": " iron ", "C": "glass"}, gold="B")
    assert answer_text(mc, worked=True) == "iron\nAnswer: B"
    assert answer_text(mc) == "Answer: B"
    for it in (item, mc):
        assert score_item(it, answer_text(it, worked=True)).correct and score_item(it, answer_text(it)).correct
    assert LoraParams().worked_answers



def test_top_layers_adapts_only_the_top_blocks(base: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from mocoflow.engines.loader import merge_adapter

    params = LoraParams(steps=3, batch_size=3, rank=2, alpha=4, lr=1e-2, seed=0, top_layers=1)
    result = train_lora(base, _mc_items(6), tmp_path / "top", params)
    merged = merge_adapter(AutoModelForCausalLM.from_pretrained(str(base)), result.adapter).state_dict()
    original = AutoModelForCausalLM.from_pretrained(str(base)).state_dict()
    changed = {k for k, v in merged.items() if not torch.equal(v, original[k])}
    assert changed and all(".layers.1." in k for k in changed), sorted(changed)
    assert any(k.endswith("mlp.down_proj.weight") for k in changed)  # "all-linear" kept its MLP targets
    with pytest.raises(ValueError, match="top_layers"):
        train_lora(base, _mc_items(6), tmp_path / "bad", dataclasses.replace(params, top_layers=3))


def test_specialist_fingerprint_differs_from_its_base_and_from_other_adapters(tmp_path: Path) -> None:
    """The response cache keys generations by fingerprint: a specialist (base + adapter, top blocks only) must
    not share its base's, nor another adapter's of the same base, or it is served their generations."""
    from mocoflow.models import adapter_card, make_card

    base = build_tiny_model(tmp_path / "base", arch="llama", seed=0, n_layer=12, n_embd=128)
    base_card = make_card("base", {"source": "local", "path": str(base)}, base)
    fingerprints = {base_card["fingerprint"]}
    for seed in (0, 1):
        params = LoraParams(steps=1, batch_size=2, rank=2, alpha=4, lr=1e-2, seed=seed, top_layers=2)
        result = train_lora(base, _mc_items(2), tmp_path / f"spec{seed}", params)
        card = adapter_card(base_card, result.adapter)
        assert card["base_fingerprint"] == base_card["fingerprint"]
        fingerprints.add(card["fingerprint"])
        assert adapter_card(base_card, result.adapter)["fingerprint"] == card["fingerprint"]  # stable
    assert len(fingerprints) == 3
