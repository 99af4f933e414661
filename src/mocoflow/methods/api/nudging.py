"""Nudging: a base model writes the answer; wherever its top-1 next-token probability falls below
``gamma``, a small nudging model writes the next whole word instead, which is inserted as text.

Works across tokenizers: the nudger's word (its tokens up to, not including, the next token that starts
with whitespace) is re-tokenised by the base, and the base's text by the nudger, so the two exchange whole
words; models that share a tokenizer (same card signature) exchange the token ids themselves. All test
items decode in lockstep, ``decoding.batch_size`` at a time, through one ``Stepper`` per model (each keeps its
own KV cache, so nothing is re-encoded); every item's answer is what it would be alone.

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

from mocoflow.methods.api.common import pool_ref, stepped_costs
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


def nudge_decode(base: Any, nudger: Any, prompts: list[str], *, gamma: float, max_new_tokens: int,
                 max_word_tokens: int = 8, share_tokens: bool = False, batch_size: int | None = None
                 ) -> list[Nudged]:
    """Decode every prompt, all rows in lockstep. Each row follows the sequential algorithm: while the base
    is sure it writes a token; where it is unsure the nudger (brought up to the answer so far) writes tokens up
    to, not including, its next token that starts with whitespace (or eos, or ``max_word_tokens``), and the
    base then reads that word.

    What the models exchange: re-tokenised text (whole words), or, with ``share_tokens`` (one tokenizer), the
    token ids themselves. Rows are in different phases at once: every iteration runs one base step and one
    nudger step (the stepper computes only the rows that feed tokens), so no row waits for another row's
    word. A model reads the other's tokens in one chunk when it needs them (the nudger when its row starts a
    word, the base when the word is done), as a lone row would, so every answer and its costs are what they
    are alone. Text is read over several passes when long (the stepper's token budget) while the other rows
    go on. At most ``batch_size`` prompts are in flight (default: all); a row that ends is replaced by the next
    prompt (continuous batching; models whose cache cannot be joined take the next batch once all rows end).
    Returns one ``Nudged`` per prompt."""
    from mocoflow.engines.stepper import open_steppers

    if not prompts:
        return []
    size = max(1, batch_size or len(prompts))
    item = list(range(min(size, len(prompts))))  # stepper row -> prompt index
    waiting = list(range(len(item), len(prompts)))
    b, n = open_steppers([base, nudger], [prompts[i] for i in item])
    res = [Nudged() for _ in item]
    word = [""] * len(item)
    word_tokens = [0] * len(item)
    unread_by_nudger: list[list[int]] = [[] for _ in item]  # shared tokens: base tokens the nudger lacks
    unread_by_base: list[list[int]] = [[] for _ in item]  # ... and word tokens the base lacks
    in_word: set[int] = set()  # rows whose nudger is writing a word
    active = [r for r in range(len(item)) if max_new_tokens > 0]
    while active:
        base_tokens: dict[int, int] = {}
        nudger_tokens: dict[int, int] = {}
        base_read: dict[int, Any] = {}  # row -> text (sync) or token ids (shared tokens)
        nudger_read: dict[int, Any] = {}
        done: set[int] = set()
        base_rows = [r for r in active if r not in in_word and not b.pending(r)]
        for r, (tok, lp) in zip(base_rows, b.top(base_rows), strict=True):
            p = math.exp(lp)
            res[r].trace.append((p, p < gamma))
            if p < gamma:  # the nudger reads the answer so far, then writes a word
                in_word.add(r)
                word[r], word_tokens[r] = "", 0
                if not share_tokens:
                    nudger_read[r] = res[r].text
                elif unread_by_nudger[r]:
                    nudger_read[r], unread_by_nudger[r] = unread_by_nudger[r], []
                continue
            res[r].steps += 1
            if tok in b.eos:
                base_tokens[r] = tok  # charged, not fed; ends the row
                continue
            res[r].text += b.piece(tok)
            res[r].base_tokens += 1
            if res[r].steps >= max_new_tokens:  # complete: charge the token, skip its forward pass
                b.count_generated([r])
                done.add(r)
                continue
            base_tokens[r] = tok
            if share_tokens:
                unread_by_nudger[r].append(tok)
        word_rows = [r for r in active if r in in_word and r not in nudger_read and not n.pending(r)]
        for r, (tok, _) in zip(word_rows, n.top(word_rows), strict=True):
            ended = tok in n.eos
            boundary = not ended and bool(word[r].strip()) and n.piece(tok)[:1].isspace()
            if not ended and not boundary:
                word[r] += n.piece(tok)
                word_tokens[r] += 1
                nudger_tokens[r] = tok
                if share_tokens:
                    unread_by_base[r].append(tok)
                if word_tokens[r] < max_word_tokens:
                    continue
            elif ended:
                n.count_generated([r])
            # the word is complete: at eos, before a whitespace token, or at max_word_tokens
            in_word.discard(r)
            k = word_tokens[r] + int(ended)
            res[r].steps += max(k, 1)
            res[r].text += word[r]
            res[r].nudger_tokens += word_tokens[r]
            if ended or res[r].steps >= max_new_tokens:
                done.add(r)
            elif not share_tokens:
                base_read[r] = res[r].text
            elif unread_by_base[r]:
                base_read[r], unread_by_base[r] = unread_by_base[r], []
        if share_tokens:
            done |= b.advance(tokens=base_tokens, foreign=base_read)
            n.advance(tokens=nudger_tokens, foreign=nudger_read)
        else:
            done |= b.advance(tokens=base_tokens, texts=base_read)
            n.advance(tokens=nudger_tokens, texts=nudger_read)
        for r in done:
            res[r].cost = stepped_costs([b, n], r)
            res[r].model_costs = [b.cost(r), n.cost(r)]
        b.release(sorted(done))
        n.release(sorted(done))
        active = [r for r in active if r not in done]
        free = size - len(active) if b.can_add() and n.can_add() else 0
        joining, waiting = waiting[:free], waiting[free:]
        if joining:
            new_rows = b.add([prompts[i] for i in joining])
            if n.add([prompts[i] for i in joining]) != new_rows:
                raise RuntimeError("nudging: the two steppers' rows diverged")
            item += joining
            res += [Nudged() for _ in joining]
            word += [""] * len(joining)
            word_tokens += [0] * len(joining)
            unread_by_nudger += [[] for _ in joining]
            unread_by_base += [[] for _ in joining]
            active += new_rows
    out = [Nudged()] * len(prompts)
    for r, i in enumerate(item):
        out[i] = res[r]
    return out


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
        share = str(base.card.get("tokenizer")) == str(nudger.card.get("tokenizer"))
        items = ctx.items["test"]
        prompts = prompts_for(items)
        results = nudge_decode(eb, en, prompts, gamma=self.params.gamma, max_new_tokens=ctx.decoding.max_new_tokens,
                               max_word_tokens=self.params.max_word_tokens, share_tokens=share,
                               batch_size=ctx.decoding.batch_size)
        base_total = sum(r.base_tokens for r in results)
        nudger_total = sum(r.nudger_tokens for r in results)
        total = max(base_total + nudger_total, 1)
        ctx.decide(roles={"base": base.name, "nudger": nudger.name},
                   reliance={base.name: base_total / total, nudger.name: nudger_total / total},
                   nudge_rate=sum(n for r in results for _, n in r.trace) / max(sum(len(r.trace) for r in results), 1))
        return [prediction(item.id, r.text, answered_by=base.name, nudger=nudger.name,
                           nudges=sum(nudged for _, nudged in r.trace), **r.cost)
                for item, r in zip(items, results, strict=True)]
