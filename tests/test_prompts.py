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
