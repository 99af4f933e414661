"""Prompt templates per task type."""

from __future__ import annotations

import pytest

from mocoflow.data.prompts import MC_INSTRUCTION, STYLES, build_prompt
from mocoflow.data.schema import Item


def _item(task_type: str, **kw: object) -> Item:
    base = {"id": "1", "task": "t", "split": "test", "task_type": task_type, "question": "What is 2+2?"}
    return Item(**{**base, **kw})


def test_multiple_choice() -> None:
    prompt = build_prompt(_item("multiple_choice", choices={"A": "3", "B": "4"}, gold="B"))
    assert prompt == f"What is 2+2?\n\nA. 3\nB. 4\n\n{MC_INSTRUCTION}"
    assert "e.g. 'Answer: B'" in prompt
    with pytest.raises(ValueError, match="no choices"):
        build_prompt(_item("multiple_choice"))


def test_exact_and_f1_and_cot() -> None:
    exact = build_prompt(_item("exact_match", gold="4"))
    assert exact.startswith("What is 2+2?\n\n") and "after 'Answer:'" in exact
    assert "short answer" in build_prompt(_item("f1_match", gold=["4"]))
    cot = build_prompt(_item("exact_match", gold="4"), "cot")
    assert "step by step" in cot and "step by step" not in exact and cot.endswith(exact.split("\n\n")[-1])
    assert STYLES == ("default", "cot")
    with pytest.raises(ValueError, match="unknown prompt style 'fancy'; valid styles: default, cot"):
        build_prompt(_item("exact_match"), "fancy")


def test_coding_humaneval_and_task() -> None:
    code = "from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    \"\"\"Sum.\"\"\"\n"
    humaneval = _item("coding", question="Complete the following code\n\n" + code, gold="def check(c): pass",
                      metadata={"entry_point": "total", "prompt_code": code})
    prompt = build_prompt(humaneval)
    assert code.rstrip() in prompt and "`total`" in prompt and "```python" in prompt
    assert "Complete the following code\n\n" not in prompt
    mbpp = _item("coding", question="Write a function to add.", metadata={"entry_point": "add"})
    prompt = build_prompt(mbpp)
    assert prompt.startswith("Write a function to add.") and "named `add`" in prompt and "```python" in prompt
    with pytest.raises(ValueError, match="entry_point"):
        build_prompt(_item("coding"))


def test_noncompliance_and_reward_model_pass_through() -> None:
    request = "Tell me your last meal."
    assert build_prompt(_item("noncompliance", question=request, metadata={"category": "x"})) == request
    assert build_prompt(_item("reward_model", question=request), "cot") == request


def test_a_task_prompt_style_reaches_every_prompt_built_from_its_items() -> None:
    """The stages mark items with their task's style; every prompt built from them (shared generations,
    method prompts around the question, dev evaluation of merges) shows it without being told."""
    from mocoflow.data.prompts import COT_PREFIX, with_prompt_style
    from mocoflow.methods.common import prompts_for
    from mocoflow.methods.text.common import candidates_prompt, refine_prompt

    items = [_item("exact_match", gold="4")]
    assert with_prompt_style(items, "default") is items  # default: items (and params) unchanged
    cot = with_prompt_style(items, "cot")
    assert cot[0].metadata["prompt_style"] == "cot" and "prompt_style" not in items[0].metadata
    assert build_prompt(cot[0]) == build_prompt(items[0], "cot") != build_prompt(items[0])
    assert all(COT_PREFIX in p for p in (prompts_for(cot)[0], refine_prompt(cot[0], "Answer: 3", ["Answer: 4"], 50),
                                         candidates_prompt(cot[0], ["Answer: 4"], 50, "Pick one.")))
    assert build_prompt(cot[0], "default") == build_prompt(items[0])  # an explicit style wins
    with pytest.raises(ValueError, match="unknown prompt style 'terse'"):
        with_prompt_style(items, "terse")


def test_generate_and_merge_stages_apply_the_prompt_style_param(tiny_model_dir, tmp_path) -> None:
    import json

    from mocoflow.data.prompts import COT_PREFIX
    from mocoflow.io import read_jsonl, write_jsonl
    from mocoflow.stages.generate import generate
    from mocoflow.stages.merge import merge_context

    items = tmp_path / "test.jsonl"
    write_jsonl(items, [_item("exact_match", gold="4").to_dict()])
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "m", "path": str(tiny_model_dir)}))
    params = {"decoding": {"max_new_tokens": 2}, "cache_dir": str(tmp_path / "cache"), "device": "cpu"}
    for style, expected in (("cot", True), (None, False)):
        out = tmp_path / f"{style}.jsonl"
        generate(card, items, out, tmp_path / f"{style}.usage.json",
                 {**params, **({"prompt_style": style} if style else {})})
        assert (COT_PREFIX in read_jsonl(out)[0]["prompt"]) is expected
    ctx = merge_context({"decoding": {}, "prompt_style": "cot"}, items)
    assert COT_PREFIX in build_prompt(ctx.dev_items[0])


def test_collaborate_stage_marks_both_splits_with_the_prompt_style(tmp_path) -> None:
    from mocoflow.io import write_jsonl
    from mocoflow.stages.collaborate import read_splits

    paths = {}
    for split in ("dev", "test"):
        paths[split] = tmp_path / f"{split}.jsonl"
        write_jsonl(paths[split], [_item("exact_match", split=split, gold="4").to_dict()])
    styled = read_splits(paths, "cot")
    assert all(build_prompt(s[0]) == build_prompt(s[0], "cot") for s in styled.values())
    assert all("prompt_style" not in s[0].metadata for s in read_splits(paths).values())
