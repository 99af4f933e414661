"""Helpers several methods share: dev accuracy per model, scoring shared generations, prompts, gold-free
answer keys, and the ``reliance`` a run records in its decisions.

**Answer keys without gold.** Methods compare answers (votes, consensus) by the key the task's scorer extracts
(:func:`answer_key`), but test items reach methods without ``gold`` (the collaborate stage removes it). For
exact-match tasks the scorer's key depends on whether the answer is a number or text; methods take that
*answer format* from the item's ``metadata["answer_format"]`` (``"numeric"`` or ``"text"``), which a data
source may declare and which the collaborate stage otherwise sets for the whole task from the dev split
(:func:`task_answer_format`: numeric when every dev gold is a number), never from a test item's gold.

**Reliance.** ``ctx.decide(reliance={model: share})``: the share of the answer each pool model is
responsible for (items routed to it, answers of its that won, merge coefficients), summing to 1. A run whose
reliance has at most one non-zero share is *degenerate*: it reduced to one model (the main table's
``degenerate`` column, ``mocoflow.analysis.decisions``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
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


# -- answer keys without gold ---------------------------------------------------------------------------

ANSWER_FORMATS = ("numeric", "text")
# What the exact-match scorer is shown in place of the gold so that it extracts a key in the wanted format:
# its key is numeric exactly when the gold parses as a number (``scoring.exact_match.extract_key``).
_FORMAT_PROBE = {"numeric": "0", "text": "text"}


def answer_format(item: Item) -> str:
    """``metadata["answer_format"]`` of an exact-match item ("text" when absent); other task types have one
    key format each and return their task type."""
    if item.task_type != "exact_match":
        return item.task_type
    fmt = item.metadata.get("answer_format", "text")
    if fmt not in ANSWER_FORMATS:
        raise ValueError(f"item {item.id!r}: metadata['answer_format'] must be one of {ANSWER_FORMATS}, "
                         f"not {fmt!r}")
    return str(fmt)


def task_answer_format(dev_items: Iterable[Item]) -> str:
    """The answer format of an exact-match task from its dev split: "numeric" when there are dev items and
    every dev gold parses as a number, else "text" (mixed sets such as BBH compare as text)."""
    from mocoflow.scoring.exact_match import parse_number

    golds = [item.gold for item in dev_items]
    numeric = bool(golds) and all(g is not None and parse_number(str(g)) is not None for g in golds)
    return "numeric" if numeric else "text"


def with_answer_format(items: list[Item], fmt: str) -> list[Item]:
    """Exact-match items with ``metadata["answer_format"]`` set to ``fmt`` where the data did not declare
    one (declared formats win); other items unchanged."""
    if fmt not in ANSWER_FORMATS:
        raise ValueError(f"answer format must be one of {ANSWER_FORMATS}, not {fmt!r}")
    return [dataclasses.replace(i, metadata={**i.metadata, "answer_format": fmt})
            if i.task_type == "exact_match" and "answer_format" not in i.metadata else i for i in items]


def without_gold(items: list[Item]) -> list[Item]:
    """The items with ``gold`` removed (what methods see of the test split)."""
    return [dataclasses.replace(i, gold=None) for i in items]


def answer_key(item: Item, text: str) -> str | None:
    """The canonical answer key of ``text`` for voting and consensus (equal answers, equal keys; None when
    unparseable), computed without the item's gold: the answer format comes from :func:`answer_format`."""
    from mocoflow.scoring import extract_answer

    if item.task_type == "exact_match":
        item = dataclasses.replace(item, gold=_FORMAT_PROBE[answer_format(item)])
    return extract_answer(item, text)


# -- reliance -------------------------------------------------------------------------------------------

def reliance_from_counts(names: list[str], chosen: Iterable[str]) -> dict[str, float]:
    """Share of ``chosen`` (one pool model name per item) per pool model, in pool order (0 for the unused)."""
    counts = Counter(chosen)
    total = sum(counts[n] for n in names)
    return {n: (counts[n] / total if total else 0.0) for n in names}


def reliance_from_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """|w_i| / sum_j |w_j| per model (all zero when every weight is zero)."""
    total = sum(abs(float(w)) for w in weights.values())
    return {n: (abs(float(w)) / total if total else 0.0) for n, w in weights.items()}

