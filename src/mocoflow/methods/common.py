"""Helpers several methods share: dev accuracy per model, scoring shared generations, prompts."""

from __future__ import annotations

from typing import Any

from mocoflow.data.prompts import build_prompt
from mocoflow.data.schema import Item
from mocoflow.methods.base import RunContext


def score_output(item: Item, output: str) -> bool:
    from mocoflow.scoring import score_item

    return bool(score_item(item, output).correct)


def dev_correctness(ctx: RunContext, model: str) -> dict[str, bool]:
    """Per dev item, whether the model's shared dev generation is correct."""
    return {item.id: score_output(item, ctx.gen(model, "dev", item.id)["output"]) for item in ctx.items["dev"]}


def dev_accuracy(ctx: RunContext) -> dict[str, float]:
    """Each pool model's accuracy on the dev split (0.0 when the dev split is empty)."""
    out = {}
    for ref in ctx.pool:
        correct = dev_correctness(ctx, ref.name)
        out[ref.name] = sum(correct.values()) / len(correct) if correct else 0.0
    return out


def best_on_dev(ctx: RunContext) -> str:
    """The pool's best model on dev; ties go to the earlier model in pool order."""
    acc = dev_accuracy(ctx)
    return max((ref.name for ref in ctx.pool), key=lambda name: (acc[name], -_index(ctx, name)))


def _index(ctx: RunContext, name: str) -> int:
    return [ref.name for ref in ctx.pool].index(name)


def prompts_for(items: list[Item]) -> list[str]:
    return [build_prompt(item) for item in items]


def reused_costs(records: list[dict[str, Any]]) -> dict[str, int]:
    """Token costs of shared generations an answer relied on (already paid by the generate jobs)."""
    return {"prompt_tokens": sum(int(r["prompt_tokens"]) for r in records),
            "generated_tokens": sum(int(r["generated_tokens"]) for r in records)}
