"""Mentor collaboration: a generator and a mentor decode side by side. Where their next tokens differ
(compared as text, so tokenizers may differ), both write a short patch of ``patch_tokens`` tokens from the
shared answer so far and the generator picks one: the patch with the higher mean log-probability under
the generator (``chooser: generator``). ``decision_proportion`` (0-100) is the percentage of divergence
points at which this decision is made, spread evenly: after the k-th divergence there have been exactly
floor(k * p / 100) decisions; at the other divergences the generator simply keeps its own token.
Rejected patches are rolled back by cropping the KV caches (their tokens still count as cost).
Defaults: generator = the pool's smallest model, mentor = the best on dev among the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocoflow.methods.api._shared import Cursor, by_size, finish_costs, greedy_patch, pool_ref
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, prompts_for


@dataclass(frozen=True)
class MentorParams:
    """generator / mentor: pool model names (None = smallest / best on dev among the rest).
    decision_proportion: percent (0-100) of divergences where both patches are written and compared.
    patch_tokens: tokens per patch."""

    generator: str | None = None
    mentor: str | None = None
    decision_proportion: float = 50.0
    patch_tokens: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.decision_proportion <= 100:
            raise ValueError("mentor_collab decision_proportion is a percentage in [0, 100]")
        if self.patch_tokens < 1:
            raise ValueError("mentor_collab patch_tokens must be >= 1")


def decide(k: int, proportion: float) -> bool:
    """Whether the k-th divergence (1-based) gets a decision: exactly floor(k * p / 100) of the first k do."""
    return int(k * proportion // 100) > int((k - 1) * proportion // 100)


def mentor_decode(
    eg: Any, em: Any, prompt: str, *, proportion: float, patch_tokens: int, max_new_tokens: int
) -> tuple[str, dict[str, int], list[Cursor]]:
    g, m = Cursor(eg, prompt), Cursor(em, prompt)
    text = ""
    stats = {"divergences": 0, "decisions": 0, "mentor_patches": 0}
    steps = 0
    while steps < max_new_tokens:
        tg, _ = g.top()
        m.sync(text)
        tm, _ = m.top()
        same = (tg in g.eos and tm in m.eos) or g.piece(tg) == m.piece(tm)
        if not same:
            stats["divergences"] += 1
        if not same and decide(stats["divergences"], proportion):
            stats["decisions"] += 1
            sg, sm = g.snapshot(), m.snapshot()
            own, own_end, own_lp = greedy_patch(g, text, patch_tokens)
            g.restore(sg)
            theirs, their_end, _ = greedy_patch(m, text, patch_tokens)
            m.restore(sm)
            their_lp = g.logprobs_of(theirs[len(text) :])
            g.restore(sg)
            own_score = sum(own_lp) / max(len(own_lp), 1)
            their_score = sum(their_lp) / len(their_lp) if their_lp else own_score - 1.0
            take_mentor = their_score > own_score
            stats["mentor_patches"] += take_mentor
            text, ended = (theirs, their_end) if take_mentor else (own, own_end)
            steps += patch_tokens
            g.sync(text)
            if ended:
                break
            continue
        steps += 1
        after = g.emit(tg, text)
        if after is None:
            break
        text = after
    return text, stats, [g, m]


@register
class MentorCollab(Method):
    name = "mentor_collab"
    level = "api"
    needs = frozenset({Need.MODELS, Need.DEV_GENERATIONS})
    Params = MentorParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        gen = pool_ref(ctx, self.params.generator, by_size(ctx)[0])
        others = [r.name for r in ctx.pool if r.name != gen.name]
        if not others:
            raise MethodError("mentor_collab needs two models (generator and mentor)")
        acc = dev_accuracy(ctx)
        mentor = pool_ref(ctx, self.params.mentor, max(others, key=lambda n: (acc[n], -others.index(n))))
        eg, em = ctx.engines.get(gen), ctx.engines.get(mentor)
        out = []
        for item, prompt in zip(ctx.items["test"], prompts_for(ctx.items["test"]), strict=True):
            text, stats, cursors = mentor_decode(
                eg,
                em,
                prompt,
                proportion=self.params.decision_proportion,
                patch_tokens=self.params.patch_tokens,
                max_new_tokens=ctx.decoding.max_new_tokens,
            )
            out.append(
                prediction(
                    item.id, text, answered_by=gen.name, mentor=mentor.name, **stats, **finish_costs(cursors)
                )
            )
        return out
