"""Prompt templates per task type (plain text; the engine applies each model's chat template).

Styles:
  - ``default``: the question and one instruction saying how to format the answer.
  - ``cot``: same, but asks for brief step-by-step reasoning before the final answer line
    (multiple_choice, exact_match, f1_match only; other types are as ``default``).

A task's style (``tasks.<name>.prompt_style``) reaches every prompt through its items: the stages that build
prompts (generate, collaborate, merge) mark the items they read with :func:`with_prompt_style`, and
:func:`build_prompt` without an explicit style reads ``metadata["prompt_style"]`` (default ``default``), so
methods building their own prompts around the question show it as the shared generations did.

The answer-format instructions are part of the scoring contract: multiple_choice answers end with
``Answer: <letter>``, exact_match and f1_match with ``Answer: <answer>``, coding answers are one
```` ```python ```` block defining the entry point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final

from mocoflow.data.schema import Item

STYLES: Final = ("default", "cot")

MC_INSTRUCTION: Final = "Answer with the letter of the correct option, e.g. 'Answer: B'."
EXACT_INSTRUCTION: Final = "Give your final answer after 'Answer:', e.g. 'Answer: 42'."
F1_INSTRUCTION: Final = "Give a short answer (a few words) after 'Answer:'."
COT_PREFIX: Final = "Think step by step briefly, then end with the final line. "
CODING_HUMANEVAL: Final = (
    "Complete the following Python function. Reply with the full function `{entry_point}` "
    "(including the signature and any imports it needs) in a single ```python code block.\n\n"
    "```python\n{code}\n```"
)
CODING_TASK: Final = (
    "{question}\n\nWrite a Python function named `{entry_point}`. Reply with the code in a single "
    "```python code block."
)


def _instruction(text: str, style: str) -> str:
    return COT_PREFIX + text if style == "cot" else text


def _multiple_choice(item: Item, style: str) -> str:
    if not item.choices:
        raise ValueError(f"item {item.id!r}: multiple_choice item has no choices")
    options = "\n".join(f"{letter}. {text}" for letter, text in item.choices.items())
    return f"{item.question.strip()}\n\n{options}\n\n{_instruction(MC_INSTRUCTION, style)}"


def _exact_match(item: Item, style: str) -> str:
    return f"{item.question.strip()}\n\n{_instruction(EXACT_INSTRUCTION, style)}"


def _f1_match(item: Item, style: str) -> str:
    return f"{item.question.strip()}\n\n{_instruction(F1_INSTRUCTION, style)}"


def _coding(item: Item, style: str) -> str:
    entry = item.metadata.get("entry_point")
    if not entry:
        raise ValueError(f"item {item.id!r}: coding item has no metadata['entry_point']")
    code = item.metadata.get("prompt_code")
    if code:
        return CODING_HUMANEVAL.format(entry_point=entry, code=code.rstrip())
    return CODING_TASK.format(question=item.question.strip(), entry_point=entry)


def _as_is(item: Item, style: str) -> str:
    return item.question


_BUILDERS: dict[str, Callable[[Item, str], str]] = {
    "multiple_choice": _multiple_choice,
    "exact_match": _exact_match,
    "f1_match": _f1_match,
    "coding": _coding,
    "noncompliance": _as_is,
    "reward_model": _as_is,
    "generation_diversity": _as_is,
}


def with_prompt_style(items: list[Item], style: str) -> list[Item]:
    """``items`` marked with their task's prompt ``style`` (unchanged for ``default``)."""
    check_style(style)
    if style == "default":
        return items
    return [dataclasses.replace(i, metadata={**i.metadata, "prompt_style": style}) for i in items]


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; valid styles: {', '.join(STYLES)}")


def build_prompt(item: Item, style: str | None = None) -> str:
    """The user message for ``item`` in ``style`` (one of :data:`STYLES`; None: the item's
    ``metadata["prompt_style"]``, else ``default``)."""
    if style is None:
        style = str(item.metadata.get("prompt_style", "default"))
    check_style(style)
    return _BUILDERS[item.task_type](item, style)
