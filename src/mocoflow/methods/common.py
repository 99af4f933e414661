"""Helpers several methods share: dev accuracy per model, scoring shared generations, prompts, gold-free
answer keys, and the ``reliance`` a run records in its decisions.

**Answer keys without gold.** Methods compare answers (votes, consensus) by the key the task's scorer
extracts (:func:`answer_key`). Test items reach methods without ``gold`` (the collaborate stage removes it),
and the key never depends on it: its answer mode comes from the task type and the item's metadata (for
exact match, ``scoring.exact_match.declared_mode``: ``metadata["answer_type"]``, else ``auto``, which reads
each answer as the bool, number, expression or text it is).

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
from mocoflow.methods.base import MethodError, RunContext
from mocoflow.models import ModelRef


def dev_correctness(ctx: RunContext, model: str) -> dict[str, bool]:
    """Per dev item, whether the model's shared dev generation is correct (``ctx.score``: the task's scorer
    under the study's sandbox policy)."""
    return {item.id: ctx.score(item, ctx.gen(model, "dev", item.id)["output"]) for item in ctx.items["dev"]}


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


def pool_member(pool: list[ModelRef], name: str, what: str = "model") -> ModelRef:
    """The pool model called ``name``; ``what`` names its role in the error (e.g. "expo: base")."""
    for ref in pool:
        if ref.name == name:
            return ref
    raise MethodError(f"{what} {name!r} is not in the pool ({', '.join(r.name for r in pool)})")


def prompts_for(items: list[Item]) -> list[str]:
    return [build_prompt(item) for item in items]


def reused_costs(records: list[dict[str, Any]]) -> dict[str, int]:
    """Token costs of shared generations an answer relied on (already paid by the generate jobs)."""
    return {"prompt_tokens": sum(int(r["prompt_tokens"]) for r in records),
            "generated_tokens": sum(int(r["generated_tokens"]) for r in records)}


# -- answer keys without gold ---------------------------------------------------------------------------

def without_gold(items: list[Item]) -> list[Item]:
    """The items with ``gold`` removed (what methods see of the test split)."""
    return [dataclasses.replace(i, gold=None) for i in items]


def answer_key(item: Item, text: str) -> str | None:
    """The canonical answer key of ``text`` for voting and consensus (equal answers, equal keys; None when
    unparseable): the scorer's key in the mode the task type and metadata declare. The scorer is shown the
    item without its gold, so dev and test answers get their keys the same way and no key can read a gold
    (a coding item without ``metadata["entry_point"]`` would otherwise take it from the test program)."""
    from mocoflow.scoring import extract_answer

    return extract_answer(dataclasses.replace(item, gold=None), text)


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

