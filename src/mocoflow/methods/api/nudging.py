"""Nudging: a base model writes the answer; wherever its top-1 next-token probability falls below
``gamma``, a small nudging model writes the next whole word instead, which is inserted as text.

Works across tokenizers: the nudger's word (its tokens up to, not including, the next token that starts
with whitespace) is re-tokenised by the base, and the base's text by the nudger. Both keep their own KV
cache (``Cursor``), so nothing is re-encoded. Defaults: base = the pool's largest model, nudger = the
smallest (the paper's setting: a small aligned model nudges a large base model); both can be named.
Costs: every token either model ran (prompt side) or chose (generated side); ``nudges`` counts insertions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocoflow.methods.api._shared import Cursor, by_size, finish_costs, pool_ref
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import prompts_for


@dataclass(frozen=True)
class NudgingParams:
    """base / nudger: pool model names (None = largest / smallest by parameters).
    gamma: nudge when the base's top-1 probability is below this. max_word_tokens: cap on one nudge."""

    base: str | None = None
    nudger: str | None = None
    gamma: float = 0.4
    max_word_tokens: int = 8


def next_word(cursor: Cursor, text: str, max_tokens: int) -> tuple[str, bool, int]:
    """The nudger's next whole word after ``text``: (word, nudger chose eos, tokens chosen)."""
    cursor.sync(text)
    word = ""
    for k in range(max_tokens):
        tok, _ = cursor.top()
        if tok in cursor.eos:
            cursor.count_generated()
            return word, True, k + 1
        piece = cursor.piece(tok)
        if word.strip() and piece[:1].isspace():
            return word, False, k
        word += piece
        cursor.choose(tok, len(text) + len(word))
    return word, False, max_tokens


def nudge_decode(
    base: Any, nudger: Any, prompt: str, *, gamma: float, max_new_tokens: int, max_word_tokens: int = 8
) -> tuple[str, list[tuple[float, bool]], list[Cursor]]:
    """Returns (answer text, per step (base top-1 probability, nudged?), the two cursors)."""
    b, n = Cursor(base, prompt), Cursor(nudger, prompt)
    text, steps, trace = "", 0, []
    while steps < max_new_tokens:
        tok, p = b.top()
        if p < gamma:
            trace.append((p, True))
            word, ended, k = next_word(n, text, max_word_tokens)
            steps += max(k, 1)
            text += word
            if ended:
                break
            b.sync(text)
        else:
            trace.append((p, False))
            steps += 1
            after = b.emit(tok, text)
            if after is None:
                break
            text = after
    return text, trace, [b, n]


@register
class Nudging(Method):
    name = "nudging"
    level = "api"
    needs = frozenset({Need.MODELS})
    Params = NudgingParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        sizes = by_size(ctx)
        base = pool_ref(ctx, self.params.base, sizes[-1])
        nudger = pool_ref(ctx, self.params.nudger, sizes[0] if sizes[0] != base.name else sizes[-1])
        if base.name == nudger.name:
            raise MethodError("nudging needs two different models (base and nudger)")
        eb, en = ctx.engines.get(base), ctx.engines.get(nudger)
        out = []
        for item, prompt in zip(ctx.items["test"], prompts_for(ctx.items["test"]), strict=True):
            text, trace, cursors = nudge_decode(
                eb,
                en,
                prompt,
                gamma=self.params.gamma,
                max_new_tokens=ctx.decoding.max_new_tokens,
                max_word_tokens=self.params.max_word_tokens,
            )
            out.append(
                prediction(
                    item.id,
                    text,
                    answered_by=base.name,
                    nudger=nudger.name,
                    nudges=sum(nudged for _, nudged in trace),
                    **finish_costs(cursors),
                )
            )
        return out
