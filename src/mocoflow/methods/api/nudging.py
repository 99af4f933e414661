"""Nudging: a base model writes the answer; wherever its top-1 next-token probability falls below
``gamma``, a small nudging model writes the next whole word instead, which is inserted as text.

Works across tokenizers: the nudger's word (its tokens up to, not including, the next token that starts
with whitespace) is re-tokenised by the base, and the base's text by the nudger, so the two exchange whole
words. All test items decode in lockstep, ``decoding.batch_size`` at a time, through one ``Stepper`` per model
(each keeps its own KV cache, so nothing is re-encoded); every item's answer is what it would be alone.

Roles: base = the pool's largest model, nudger = the smallest of the others (the paper's setting: a small
aligned model nudges a large base model); models of one size are ranked by dev accuracy (the better one is
the base; among the others the better one nudges), then pool order. Both can be named.
Costs: every token either model ran (prompt side) or chose (generated side); ``nudges`` counts insertions.
Decisions: the roles, and ``reliance``: the share of answer tokens each model chose (base vs nudger).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mocoflow.methods.api._shared import pool_ref, stepped_costs
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, prompts_for


@dataclass(frozen=True)
class NudgingParams:
    """base / nudger: pool model names (None = largest / smallest of the rest by parameters; ties by dev
    accuracy). gamma: nudge when the base's top-1 probability is below this. max_word_tokens: cap on one
    nudge."""

    base: str | None = None
    nudger: str | None = None
    gamma: float = 0.4
    max_word_tokens: int = 8


@dataclass
class Nudged:
    """One answer: its text, per base step (base top-1 probability, nudged?), tokens chosen by each model."""

    text: str = ""
    trace: list[tuple[float, bool]] = field(default_factory=list)
    base_tokens: int = 0
    nudger_tokens: int = 0
    steps: int = 0
    cost: dict[str, int] = field(default_factory=dict)
    model_costs: list[dict[str, int]] = field(default_factory=list)  # base, nudger


def next_words(nudger: Any, rows: list[int], texts: dict[int, str], max_tokens: int
               ) -> dict[int, tuple[str, bool, int]]:
    """Per row the nudger's next whole word after ``texts[row]``: (word, nudger chose eos, tokens chosen).
    All rows write in lockstep; a row's word ends before its next token that starts with whitespace."""
    nudger.sync({r: texts[r] for r in rows})
    word = dict.fromkeys(rows, "")
    out: dict[int, tuple[str, bool, int]] = {}
    active = list(rows)
    for k in range(max_tokens):
        if not active:
            break
        feed: dict[int, int] = {}
        for r, (tok, _) in zip(active, nudger.top(active), strict=True):
            if tok in nudger.eos:
                out[r] = (word[r], True, k + 1)
                feed[r] = tok  # charged as generated, not fed
                continue
            piece = nudger.piece(tok)
            if word[r].strip() and piece[:1].isspace():
                out[r] = (word[r], False, k)
                continue
            word[r] += piece
            feed[r] = tok
        nudger.emit(feed)
        active = [r for r in feed if r not in out]
    for r in active:
        out[r] = (word[r], False, max_tokens)
    return out


def nudge_decode(base: Any, nudger: Any, prompts: list[str], *, gamma: float, max_new_tokens: int,
                 max_word_tokens: int = 8) -> list[Nudged]:
    """Decode every prompt, all in lockstep (one batch): the base steps, the nudger writes words where the
    base is unsure. Returns one ``Nudged`` per prompt."""
    from mocoflow.engines.stepper import open_steppers

    b, n = open_steppers([base, nudger], prompts)
    res = [Nudged() for _ in prompts]
    active = [r for r in range(len(prompts)) if max_new_tokens > 0]
    while active:
        emit: dict[int, int] = {}
        nudge: list[int] = []
        for r, (tok, lp) in zip(active, b.top(active), strict=True):
            p = math.exp(lp)
            res[r].trace.append((p, p < gamma))
            if p < gamma:
                nudge.append(r)
            else:
                emit[r] = tok
        words = next_words(n, nudge, {r: res[r].text for r in nudge}, max_word_tokens) if nudge else {}
        done: set[int] = set()
        sync: dict[int, str] = {}
        for r in nudge:
            word, ended, k = words[r]
            res[r].steps += max(k, 1)
            res[r].text += word
            res[r].nudger_tokens += k - int(ended)
            if ended or res[r].steps >= max_new_tokens:
                done.add(r)
            else:
                sync[r] = res[r].text
        for r, tok in list(emit.items()):
            res[r].steps += 1
            if tok in b.eos:
                continue
            res[r].text += b.piece(tok)
            res[r].base_tokens += 1
            if res[r].steps >= max_new_tokens:  # the answer is complete: charge the token, skip its forward pass
                b.count_generated([r])
                del emit[r]
                done.add(r)
        done |= b.advance(tokens=emit, texts=sync)
        for r in done:
            res[r].cost = stepped_costs([b, n], r)
            res[r].model_costs = [b.cost(r), n.cost(r)]
        b.release(sorted(done))
        n.release(sorted(done))
        active = [r for r in active if r not in done]
    return res


def nudging_roles(ctx: RunContext, base: str | None, nudger: str | None) -> tuple[Any, Any]:
    """(base, nudger) model refs: named, or the largest / the smallest of the rest, ties by dev accuracy."""
    names = [r.name for r in ctx.pool]
    size = {r.name: float(r.card.get("parameters") or 0) for r in ctx.pool}
    acc_cache: dict[str, float] = {}

    def acc(name: str) -> float:
        if not acc_cache:
            acc_cache.update(dev_accuracy(ctx))
        return acc_cache[name]

    def best(cands: list[str], sign: float) -> str:
        """Largest (sign 1) or smallest (sign -1) size; a tie goes to the better model on dev, then pool order."""
        extreme = max(sign * size[c] for c in cands)
        tied = [c for c in cands if sign * size[c] == extreme]
        return tied[0] if len(tied) == 1 else max(tied, key=lambda c: (acc(c), -names.index(c)))

    base_ref = pool_ref(ctx, base, best(names, 1.0) if base is None else base)
    rest = [c for c in names if c != base_ref.name]
    if not rest:
        raise MethodError("nudging needs two different models (base and nudger)")
    nudger_ref = pool_ref(ctx, nudger, best(rest, -1.0) if nudger is None else nudger)
    if base_ref.name == nudger_ref.name:
        raise MethodError("nudging needs two different models (base and nudger)")
    return base_ref, nudger_ref


@register
class Nudging(Method):
    name = "nudging"
    level = "api"
    needs = frozenset({Need.MODELS, Need.DEV_GENERATIONS})
    Params = NudgingParams

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        if self.params.base is not None and self.params.nudger is not None:
            self.needs = frozenset({Need.MODELS})  # roles named: no dev accuracy needed

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        base, nudger = nudging_roles(ctx, self.params.base, self.params.nudger)
        eb, en = ctx.engines.get(base), ctx.engines.get(nudger)
        items = ctx.items["test"]
        prompts = prompts_for(items)
        size = max(1, ctx.decoding.batch_size)
        results: list[Nudged] = []
        for start in range(0, len(prompts), size):
            results += nudge_decode(eb, en, prompts[start:start + size], gamma=self.params.gamma,
                                    max_new_tokens=ctx.decoding.max_new_tokens,
                                    max_word_tokens=self.params.max_word_tokens)
        base_total = sum(r.base_tokens for r in results)
        nudger_total = sum(r.nudger_tokens for r in results)
        total = max(base_total + nudger_total, 1)
        ctx.decide(roles={"base": base.name, "nudger": nudger.name},
                   reliance={base.name: base_total / total, nudger.name: nudger_total / total},
                   nudge_rate=sum(n for r in results for _, n in r.trace) / max(sum(len(r.trace) for r in results), 1))
        return [prediction(item.id, r.text, answered_by=base.name, nudger=nudger.name,
                           nudges=sum(nudged for _, nudged in r.trace), **r.cost)
                for item, r in zip(items, results, strict=True)]
