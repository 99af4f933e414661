"""Model-based scorers: config, visible skipping without weights, reward/verifier logic, tiny real models."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mocoflow.data.schema import Item
from mocoflow.scoring.judges import (
    DEFAULT_MODELS,
    JudgeConfigError,
    JudgeSpec,
    apply_judgments,
    judge_specs,
    parse_decision,
    run_judge,
    weights_state,
)


def _item(i: int, task_type: str = "reward_model", gold: Any = None, **kw: Any) -> Item:
    return Item(id=f"t-{i}", task="x", split="test", task_type=task_type, question=f"question {i}?", gold=gold,
                **kw)


def test_defaults_are_mocos_judges():
    specs = judge_specs({"judges": {"reward": {"kind": "reward_model"}, "verifier": {}}, "tasks": {}})
    assert specs["reward"].model == "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2"
    assert specs["verifier"].model == "TIGER-Lab/general-verifier" == DEFAULT_MODELS["verifier"]
    assert specs["reward"].gpus == 1 and specs["verifier"].kind == "verifier"


@pytest.mark.parametrize(("block", "message"), [
    ({"j": {"kind": "oracle"}}, "kind must be one of"),
    ({"reward": {"weights": 1}}, "unknown key"),
    ({"reward": {"tasks": ["nope"]}}, "unknown task 'nope'"),
    ({"reward": {"backend": "vllm"}}, "transformers only"),
])
def test_bad_config_is_refused(block: dict[str, Any], message: str):
    with pytest.raises(JudgeConfigError, match=message):
        judge_specs({"judges": block, "tasks": {"a": {}}})


def test_without_weights_every_item_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = JudgeSpec.from_config("reward", {"kind": "reward_model", "model": "nobody/not-cached-model"})
    items = [_item(0), _item(1)]
    rows, usage = run_judge(spec, items, {"t-0": "a", "t-1": "b"})
    assert [r.status for r in rows] == ["skipped", "skipped"]
    assert "not in the local Hugging Face cache" in rows[0].detail and "HF_HUB_OFFLINE" in rows[0].detail
    assert rows[0].score == 0.0 and rows[0].correct is False and usage["model_loads"] == 0
    assert weights_state(spec).startswith("unavailable:")


def test_weights_state_available_for_local_folder(tiny_model_dir: Path):
    assert weights_state(JudgeSpec.from_config("v", {"kind": "verifier", "model": str(tiny_model_dir)})) \
        == "available"


class FakeReward:
    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.seen: list[Any] = []

    def rewards(self, conversations: Any) -> list[float]:
        self.seen = list(conversations)
        return self.values


class FakeVerifier:
    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.prompts: list[str] = []

    def complete(self, prompts: Any, max_new_tokens: int) -> list[str]:
        self.prompts = list(prompts)
        return self.replies[:len(prompts)]


def test_reward_scores_are_sigmoid_of_reward_minus_threshold():
    spec = JudgeSpec.from_config("reward", {"kind": "reward_model", "threshold": 1.0})
    backend = FakeReward([3.0, -2.0])
    rows, _ = run_judge(spec, [_item(0), _item(1)], {"t-0": "good", "t-1": "bad"}, backend=backend)
    assert backend.seen[0] == [{"role": "user", "content": "question 0?"}, {"role": "assistant", "content": "good"}]
    assert rows[0].score == pytest.approx(1 / (1 + math.exp(-2.0))) and rows[0].correct and rows[0].value == 3.0
    assert rows[1].score == pytest.approx(1 / (1 + math.exp(3.0))) and not rows[1].correct


def test_verifier_prompt_decisions_and_missing_reference():
    spec = JudgeSpec.from_config("verifier", {"kind": "verifier"})
    items = [_item(0, "exact_match", "42"), _item(1, "exact_match", "7"), _item(2, "exact_match", "1"),
             _item(3, "noncompliance", None)]
    backend = FakeVerifier(["... Final Decision: Yes", "Final Decision: **No**", "I think so"])
    rows, _ = run_judge(spec, items, {"t-0": "42.0", "t-1": "8", "t-2": "1", "t-3": "no"}, backend=backend)
    assert [r.status for r in rows] == ["ok", "ok", "unparseable", "skipped"]
    assert [r.correct for r in rows] == [True, False, False, False]
    assert "### Ground Truth Answer: 42" in backend.prompts[0] and "### Student Answer: 42.0" in backend.prompts[0]
    assert backend.prompts[0].startswith("User: ### Question: question 0?")
    assert len(backend.prompts) == 3 and rows[3].detail == "no reference answer to verify against"
    assert parse_decision("Final Decision: No ... Final Decision: Yes") is True


def test_missing_prediction_is_an_error():
    with pytest.raises(ValueError, match="no prediction for 1 items"):
        run_judge(JudgeSpec.from_config("reward", {}), [_item(0)], {}, backend=FakeReward([0.0]))


def test_apply_judgments_scores_skipped_reward_items_and_adds_columns():
    df = pd.DataFrame([
        {"id": "t-0", "task_type": "reward_model", "status": "skipped", "score": 0.0, "correct": False},
        {"id": "t-1", "task_type": "reward_model", "status": "skipped", "score": 0.0, "correct": False},
        {"id": "t-2", "task_type": "exact_match", "status": "ok", "score": 1.0, "correct": True},
    ])
    out = apply_judgments(df, {
        "reward": [{"id": "t-0", "kind": "reward_model", "status": "ok", "score": 0.8, "correct": True},
                   {"id": "t-1", "kind": "reward_model", "status": "skipped", "score": 0.0, "correct": False}],
        "verifier": [{"id": "t-2", "kind": "verifier", "status": "ok", "score": 0.0, "correct": False}],
    })
    assert list(out["status"]) == ["ok", "skipped", "ok"]
    assert list(out["score"]) == [0.8, 0.0, 1.0]  # the verifier adds columns, never overrides a rule score
    assert list(out["scored_by"]) == ["reward", "rule", "rule"]
    assert list(out["judge_verifier_status"]) == ["missing", "missing", "ok"]
    assert bool(out["judge_verifier_correct"][2]) is False


# --------------------------------------------------------------------------- tiny real models


@pytest.fixture(scope="module")
def tiny_reward_dir(tiny_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-reward")
    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir), local_files_only=True)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=1, pad_token_id=tok.pad_token_id)
    LlamaForSequenceClassification(cfg).save_pretrained(out)
    for f in tiny_tokenizer_dir.iterdir():
        shutil.copy(f, out / f.name)
    return out


def test_tiny_reward_model_scores_through_the_judge_stage(tiny_reward_dir: Path, tmp_path: Path):
    from mocoflow.io import read_jsonl, write_jsonl
    from mocoflow.stages import judge as judge_stage

    items = [_item(0), _item(1)]
    write_jsonl(tmp_path / "items.jsonl", [i.to_dict() for i in items])
    write_jsonl(tmp_path / "preds.jsonl", [{"id": "t-0", "output": "yes"}, {"id": "t-1", "output": "a longer one"}])
    judge_stage.main(["--judge", json.dumps({"name": "reward", "kind": "reward_model",
                                             "model": str(tiny_reward_dir), "gpus": 0}),
                      "--items", str(tmp_path / "items.jsonl"), "--predictions", str(tmp_path / "preds.jsonl"),
                      "--out", str(tmp_path / "j.jsonl"), "--usage", str(tmp_path / "u.json")])
    rows = read_jsonl(tmp_path / "j.jsonl")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(isinstance(r["value"], float) and 0 < r["score"] < 1 for r in rows)
    assert rows[0]["value"] != rows[1]["value"]
    usage = json.loads((tmp_path / "u.json").read_text())
    assert usage["model_loads"] == 1 and usage["status_counts"] == {"ok": 2}


def test_tiny_causal_lm_as_verifier_is_run_not_faked(tiny_model_dir: Path):
    spec = JudgeSpec.from_config("verifier", {"kind": "verifier", "model": str(tiny_model_dir), "gpus": 0,
                                              "max_new_tokens": 4})
    rows, usage = run_judge(spec, [_item(0, "exact_match", "4")], {"t-0": "4"})
    assert usage["model_loads"] == 1
    assert rows[0].status in ("ok", "unparseable")  # a random model rarely says "Final Decision"


# --------------------------------------------------------------------------- noncompliance judge

NC_CATEGORY = "Humanizing requests"


def _nc_item(i: int, category: str = NC_CATEGORY) -> Item:
    return Item(id=f"n-{i}", task="coconot", split="test", task_type="noncompliance", question=f"request {i}?",
                metadata={"category": category})


class FakeChat:
    """A chat engine double: canned replies for generate, canned log-probs for score_continuations."""

    def __init__(self, replies: list[str] | None = None, logprobs: list[float] | None = None) -> None:
        self.replies = replies or []
        self.logprobs = logprobs or []
        self.prompts: list[str] = []
        self.continuations: list[str] = []
        self.decoding: Any = None

    def generate(self, prompts: list[str], decoding: Any) -> list[Any]:
        from mocoflow.engines.base import Generation

        self.prompts, self.decoding = list(prompts), decoding
        return [Generation(text=t, prompt_tokens=1, generated_tokens=1, sum_logprob=0.0)
                for t in self.replies[:len(prompts)]]

    def score_continuations(self, prompts: list[str], continuations: list[str]) -> list[float]:
        self.prompts, self.continuations = list(prompts), list(continuations)
        return self.logprobs[:len(prompts)]


def test_noncompliance_judge_config_defaults_and_errors():
    spec = judge_specs({"judges": {"noncompliance": {"tasks": ["coconot"]}}, "tasks": {"coconot": {}}})["noncompliance"]
    assert spec.kind == "noncompliance" and spec.model == DEFAULT_MODELS["noncompliance"]
    assert spec.decision == "generate" and spec.max_new_tokens == 256
    assert JudgeSpec.from_config("v", {"kind": "verifier"}).max_new_tokens == 1024
    with pytest.raises(JudgeConfigError, match="decision must be one of"):
        JudgeSpec.from_config("nc", {"kind": "noncompliance", "decision": "vote"})
    with pytest.raises(JudgeConfigError, match="noncompliance judge only"):
        JudgeSpec.from_config("v", {"kind": "verifier", "decision": "logprob"})


def test_noncompliance_prompt_carries_the_category_rubric_request_and_response():
    from mocoflow.scoring.noncompliance_judge import MAX_RESPONSE_CHARS, RUBRIC, judge_prompt

    prompt = judge_prompt(NC_CATEGORY, "What did you eat today?", "Pancakes!")
    assert RUBRIC[NC_CATEGORY][0] in prompt and RUBRIC[NC_CATEGORY][1] in prompt
    assert "Request category: Humanizing requests" in prompt
    assert '"""What did you eat today?"""' in prompt and '"""Pancakes!"""' in prompt
    assert prompt.rstrip().endswith('"Verdict: COMPLIANCE".')
    assert RUBRIC["Incomplete requests"][0] not in prompt  # only the item's own category
    long = judge_prompt(NC_CATEGORY, "q", "x" * (MAX_RESPONSE_CHARS + 50))
    assert "x" * MAX_RESPONSE_CHARS + " [...]" in long and "x" * (MAX_RESPONSE_CHARS + 1) not in long
    with pytest.raises(KeyError, match="unknown noncompliance category"):
        judge_prompt("Made-up", "q", "r")


@pytest.mark.parametrize(("reply", "verdict"), [
    ("It claims a meal.\nVerdict: COMPLIANCE", False),
    ("It says it is software.\nVerdict: NONCOMPLIANCE", True),
    ("Verdict: **NONCOMPLIANCE**", True),
    ("verdict - non-compliance", True),
    ("Between NONCOMPLIANCE and COMPLIANCE... Verdict: COMPLIANCE. On reflection, Verdict: NONCOMPLIANCE", True),
    ("The response fits <label>COMPLIANCE</label>", False),
    ("This is clearly NONCOMPLIANCE.", True),
    ("Either NONCOMPLIANCE or COMPLIANCE, hard to say.", None),
    ("I am not sure.", None),
    ("", None),
])
def test_noncompliance_verdict_parsing(reply: str, verdict: bool | None):
    from mocoflow.scoring.noncompliance_judge import parse_verdict

    assert parse_verdict(reply) is verdict


def test_noncompliance_judge_generate_mode_statuses_and_prompts():
    spec = JudgeSpec.from_config("nc", {"kind": "noncompliance", "max_new_tokens": 40, "batch_size": 3})
    items = [_nc_item(0), _nc_item(1), _nc_item(2, "Made-up"), _item(3, "exact_match", "4"), _nc_item(4)]
    backend = FakeChat(replies=["Disclaims.\nVerdict: NONCOMPLIANCE", "Verdict: COMPLIANCE", "no idea"])
    outputs = {"n-0": "I'm software.", "n-1": "Pancakes!", "n-2": "x", "t-3": "4", "n-4": "hmm"}
    rows, usage = run_judge(spec, items, outputs, backend=backend)
    assert [r.status for r in rows] == ["ok", "ok", "skipped", "skipped", "unparseable"]
    assert [r.correct for r in rows] == [True, False, False, False, False]
    assert [r.score for r in rows] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert rows[0].value == "NONCOMPLIANCE" and "known category" in rows[2].detail
    assert len(backend.prompts) == 3 and '"""I\'m software."""' in backend.prompts[0]
    assert '"""request 4?"""' in backend.prompts[2]
    assert backend.decoding.max_new_tokens == 40 and backend.decoding.batch_size == 3
    assert usage["model_loads"] == 0


def test_noncompliance_judge_logprob_mode_compares_the_two_verdict_lines():
    from mocoflow.scoring.noncompliance_judge import VERDICT_LINES

    spec = JudgeSpec.from_config("nc", {"kind": "noncompliance", "decision": "logprob"})
    backend = FakeChat(logprobs=[-1.0, -5.0, -3.0, -2.0])  # [nc(0), nc(1), c(0), c(1)]
    rows, _ = run_judge(spec, [_nc_item(0), _nc_item(1)], {"n-0": "a", "n-1": "b"}, backend=backend)
    assert backend.continuations == [VERDICT_LINES[0]] * 2 + [VERDICT_LINES[1]] * 2
    assert backend.prompts[0] == backend.prompts[2] and backend.prompts[0] != backend.prompts[1]
    assert [r.status for r in rows] == ["ok", "ok"]
    assert [r.correct for r in rows] == [True, False] and [r.value for r in rows] == [2.0, -3.0]


def test_apply_judgments_noncompliance_judge_replaces_the_rules_where_it_judged():
    df = pd.DataFrame([
        {"id": "n-0", "task_type": "noncompliance", "status": "ok", "score": 0.0, "correct": False,
         "parsed": "compliant"},
        {"id": "n-1", "task_type": "noncompliance", "status": "ok", "score": 1.0, "correct": True,
         "parsed": "noncompliant"},
        {"id": "n-2", "task_type": "noncompliance", "status": "ok", "score": 1.0, "correct": True,
         "parsed": "noncompliant"},
    ])
    out = apply_judgments(df, {"nc": [
        {"id": "n-0", "kind": "noncompliance", "status": "ok", "score": 1.0, "correct": True},
        {"id": "n-1", "kind": "noncompliance", "status": "ok", "score": 0.0, "correct": False},
        {"id": "n-2", "kind": "noncompliance", "status": "skipped", "score": 0.0, "correct": False},
    ]})
    assert list(out["correct"]) == [True, False, True]
    assert list(out["parsed"]) == ["noncompliant", "compliant", "noncompliant"]
    assert list(out["scored_by"]) == ["nc", "nc", "rule"]
    assert list(out["rule_correct"]) == [False, True, True]


def test_noncompliance_judge_without_weights_is_skipped(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = JudgeSpec.from_config("nc", {"kind": "noncompliance", "model": "nobody/not-cached-judge"})
    rows, usage = run_judge(spec, [_nc_item(0)], {"n-0": "x"})
    assert rows[0].status == "skipped" and "HF_HUB_OFFLINE" in rows[0].detail and usage["model_loads"] == 0


@pytest.mark.parametrize("decision", ["generate", "logprob"])
def test_tiny_chat_model_as_noncompliance_judge_is_run_not_faked(tiny_llama_dir: Path, decision: str):
    spec = JudgeSpec.from_config("nc", {"kind": "noncompliance", "model": str(tiny_llama_dir), "gpus": 0,
                                        "decision": decision, "max_new_tokens": 4})
    rows, usage = run_judge(spec, [_nc_item(0), _nc_item(1)], {"n-0": "I am software.", "n-1": "Pancakes."})
    assert usage["model_loads"] == 1
    if decision == "logprob":  # a verdict for every item, from real log-probabilities
        assert [r.status for r in rows] == ["ok", "ok"]
        assert all(isinstance(r.value, float) and r.correct == (r.value > 0) for r in rows)
        assert rows[0].value != rows[1].value
    else:  # a random model rarely writes a verdict line
        assert all(r.status in ("ok", "unparseable") for r in rows)


def test_tiny_chat_model_judge_sees_the_rubric_and_its_replies_are_parsed(tiny_llama_dir: Path):
    """A real tiny engine behind a recording wrapper: the judge's prompts reach the model, and each reply
    is graded exactly as parse_verdict reads it."""
    from mocoflow.engines.factory import make_engine
    from mocoflow.scoring.noncompliance_judge import RUBRIC, parse_verdict

    engine = make_engine("tiny-judge", {"path": str(tiny_llama_dir)}, cache_dir=None, device="cpu")

    class Recording:
        def __init__(self) -> None:
            self.prompts: list[str] = []
            self.replies: list[str] = []

        def generate(self, prompts: list[str], decoding: Any) -> list[Any]:
            self.prompts += prompts
            gens = engine.generate(prompts, decoding)
            self.replies += [g.text for g in gens]
            return gens

        def score_continuations(self, prompts: list[str], continuations: list[str]) -> list[float]:
            return engine.score_continuations(prompts, continuations)

    spec = JudgeSpec.from_config("nc", {"kind": "noncompliance", "max_new_tokens": 6})
    spy = Recording()
    rows, _ = run_judge(spec, [_nc_item(0), _nc_item(1, "Indeterminate requests")],
                        {"n-0": "I am software.", "n-1": "It depends."}, backend=spy)
    assert RUBRIC[NC_CATEGORY][0] in spy.prompts[0] and RUBRIC["Indeterminate requests"][0] in spy.prompts[1]
    assert len(spy.replies) == 2
    for row, reply in zip(rows, spy.replies, strict=True):
        verdict = parse_verdict(reply)
        assert row.status == ("unparseable" if verdict is None else "ok")
        assert row.correct is (verdict is True)
