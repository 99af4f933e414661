"""Text-level methods on real tiny models: the engine path, model loads per job, and the training methods."""

from __future__ import annotations

from pathlib import Path

import pytest

from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig
from mocoflow.methods import METHODS
from mocoflow.methods.base import EngineProvider, RunContext
from mocoflow.models import ModelRef

DECODING = DecodingConfig(max_new_tokens=4, batch_size=4)


def mc(i: int, split: str) -> Item:
    return Item(id=f"{split}{i}", task="t", split=split, task_type="multiple_choice", question=f"Which {i}?",
                choices={"A": "yes", "B": "no"}, gold="A")


class Job:
    """One collaborate job: a pool of tiny models, fabricated round-0 records, loads counted."""

    def __init__(self, paths: dict[str, Path], tmp: Path, first: dict[str, str]) -> None:
        self.refs = [ModelRef(n, str(p), {"name": n, "path": str(p), "tokenizer": n, "architecture": n}, {})
                     for n, p in paths.items()]
        self.items = {"dev": [mc(i, "dev") for i in range(2)], "test": [mc(i, "test") for i in range(2)]}
        self.gens = {n: {s: {it.id: {"output": first[n], "prompt_tokens": 5, "generated_tokens": 3} for it in its}
                         for s, its in self.items.items()} for n in paths}
        self.loads: list[str] = []
        self.tmp = tmp

    def factory(self, ref: ModelRef):
        from mocoflow.engines.factory import make_engine

        self.loads.append(ref.name)
        return make_engine(ref.name, {**ref.spec, "path": ref.path}, cache_dir=None, device="cpu")

    def run(self, method: str, params: dict | None = None) -> tuple[list[dict], EngineProvider]:
        provider = EngineProvider(self.factory)
        ctx = RunContext(run=method, pool_name="p", pool=self.refs, task="t", items=self.items,
                         generations=self.gens, decoding=DECODING, engines=provider, workdir=self.tmp / method)
        preds = METHODS.get(method)(params or {}).run(ctx)
        assert [p["id"] for p in preds] == [i.id for i in self.items["test"]]
        assert all(isinstance(p["output"], str) for p in preds)
        return preds, provider


@pytest.fixture(scope="module")
def job(tiny_model_dir, tiny_model_other_tokenizer_dir, tmp_path_factory):
    return Job({"gpt2": tiny_model_dir, "other": tiny_model_other_tokenizer_dir},
               tmp_path_factory.mktemp("text-jobs"), {"gpt2": "Answer: A", "other": "Answer: B"})


@pytest.mark.parametrize("method,params", [
    ("debate", {"rounds": 2}),
    ("feedback", {}),
    ("knowledge_card", {}),
    ("llm_blender", {}),
    ("structured_interaction", {"topology": "complete", "num_rounds": 2}),
    ("bbmas", {"max_rounds": 2}),
    ("slm_mux", {"samples": 2}),
    ("heterogeneous_swarms", {"particles": 2, "iterations": 1}),
])
def test_each_model_is_loaded_once_per_job(job, method, params):
    """Many rounds and items, two models with different tokenizers: at most one load per pool model."""
    job.loads.clear()
    preds, provider = job.run(method, params)
    loads = sum(e.usage.model_loads for e in provider.loaded().values())
    assert loads == len(job.loads) <= len(job.refs)
    assert len(set(job.loads)) == len(job.loads)
    if method != "heterogeneous_swarms":  # its best graph may be a single node (no new text)
        assert sum(p["new_generated_tokens"] for p in preds) > 0


def train_answer_only(model_dir: Path, prompts: list[str], answer: str, steps: int = 40) -> None:
    """A few full-model Adam steps so ``model_dir`` replies ``answer`` to these prompts (loss on the answer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mocoflow.training.finetune import encode_pair
    from mocoflow.training.lora import right_padded_batch

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True, dtype=torch.float32)
    ids, mask, labels = right_padded_batch([encode_pair(tok, p, answer) for p in prompts], tok.pad_token_id)
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(str(model_dir), safe_serialization=True)


@pytest.fixture(scope="module")
def answer_a_job(tiny_model_dir, tmp_path_factory):
    """a1 replies "Answer: A" to the dev and test items' question, aggregation and debate prompts; a2 is a
    random model."""
    import shutil

    from mocoflow.data.prompts import build_prompt
    from mocoflow.methods.text.agglm import AGG_TASK
    from mocoflow.methods.text.common import candidates_prompt, refine_prompt

    root = tmp_path_factory.mktemp("train-jobs")
    a1 = shutil.copytree(tiny_model_dir, root / "a1")
    prompts = []
    for item in [mc(i, s) for s in ("dev", "test") for i in range(2)]:
        prompts += [build_prompt(item), candidates_prompt(item, ["Answer: A", "Answer: B"], 400, AGG_TASK),
                    refine_prompt(item, "Answer: A", ["Answer: B"], 400)]
    train_answer_only(a1, prompts, "Answer: A")
    return Job({"a1": a1, "a2": tiny_model_dir}, root, {"a1": "Answer: A", "a2": "Answer: B"})


def test_agglm_trains_on_correct_aggregations_and_uses_the_tuned_aggregator(answer_a_job):
    answer_a_job.loads.clear()
    preds, provider = answer_a_job.run("agglm", {"samples": 2, "train_steps": 2})
    assert preds[0]["answered_by"] == "a1+agglm"  # a1 is best on dev and its samples say A (correct)
    assert preds[0]["train_examples"]["hard"] + preds[0]["train_examples"]["easy"] > 0
    assert preds[0]["training_seconds"] > 0
    assert sum(e.usage.training_seconds for e in provider.loaded().values()) > 0
    assert answer_a_job.loads == ["a1", "a1+agglm"]  # the base aggregator and its tuned copy; a2 never loaded
    assert not (answer_a_job.tmp / "agglm").exists()  # the tuned aggregator stays in memory: no files


def test_multiagent_finetuning_tunes_agents_from_dev_consensus(answer_a_job):
    answer_a_job.loads.clear()
    preds, provider = answer_a_job.run("multiagent_finetuning", {"train_steps": 2, "rounds": 1})
    examples = preds[0]["train_examples"]
    assert examples["a1/gen"] == 2 and examples["a2/gen"] == 0  # round-0 answers that match consensus A
    assert len(answer_a_job.loads) <= 3 * 2 and len(set(answer_a_job.loads)) == len(answer_a_job.loads)
    assert "a1+gen" in answer_a_job.loads
    assert preds[0]["training_seconds"] > 0
    assert not (answer_a_job.tmp / "multiagent_finetuning").exists()  # tuned agents stay in memory


def test_sparta_duels_and_uses_a_dpo_tuned_model(answer_a_job):
    answer_a_job.loads.clear()
    preds, provider = answer_a_job.run("sparta", {"train_steps": 2})
    assert not (answer_a_job.tmp / "sparta").exists()  # tuned models stay in memory: nothing in the run folder
    p = preds[0]
    assert p["duels"] == 2 and p["preference_pairs"] >= 1
    assert "+sparta1" in p["answered_by"] and p["training_seconds"] > 0
    assert len(answer_a_job.loads) <= 2 * 2 and len(set(answer_a_job.loads)) == len(answer_a_job.loads)
    assert set(p["ratings"]) == {"a1", "a2"} and sum(p["ratings"].values()) == pytest.approx(2000)


def test_dpo_and_sft_move_the_model_toward_the_preferred_answer(tiny_model_dir, tmp_path):
    from mocoflow.engines.factory import make_engine
    from mocoflow.training.finetune import TrainBudget, dpo_lora, sft_lora

    ref = ModelRef("m", str(tiny_model_dir), {}, {})
    engine = make_engine("m", {"path": str(tiny_model_dir)}, cache_dir=None, device="cpu")
    prompt = "Which option is correct?"

    def margin(e):
        good, bad = e.score_continuations([prompt, prompt], ["Answer: C", "Answer: D"])
        return good - bad

    before = margin(engine)
    budget = TrainBudget(steps=6, lr=1e-2, batch_size=1)
    dpo = dpo_lora(engine, ref, [(prompt, "Answer: C", "Answer: D")], budget, 0.5, "m+dpo")
    assert dpo.ref is not None and dpo.losses[-1] < dpo.losses[0]
    assert margin(make_engine("d", {**dpo.ref.spec, "path": dpo.ref.path}, cache_dir=None, device="cpu")) \
        > before + 1.0
    sft = sft_lora(engine, ref, [(prompt, "Answer: C")], budget, "m+sft")
    tuned = make_engine("s", {**sft.ref.spec, "path": sft.ref.path}, cache_dir=None, device="cpu")
    assert tuned.score_continuations([prompt], ["Answer: C"])[0] > engine.score_continuations([prompt],
                                                                                              ["Answer: C"])[0]
    assert margin(engine) == pytest.approx(before)  # the loaded engine's own weights were not touched
    # the tuned models live in memory (base + adapter): nothing was written, and each has its own fingerprint
    assert not list(tmp_path.iterdir())
    assert len({engine.fingerprint, tuned.fingerprint, dpo.ref.card["fingerprint"]}) == 3
