"""Multi-agent feedback (MoCo ``multiagent_feedback``): peers critique, authors refine.

Round 0 is the shared generations. In each round, every author's answer gets feedback from
``reviewers`` peers, chosen per item with a seeded RNG (``random.Random(seed, item id, round)``); each
reviewer writes its feedback for all the answers it reviews in one ``generate`` call. Then each author reads
its feedback and writes a refined answer (one call per author). The final answer is the majority vote over
the refined answers, ties to the better model on dev (``final: "vote"``), or the refined answer of the best
model on dev (``final: "best_on_dev"``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from mocoflow.data.prompts import build_prompt
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.text.common import (
    FINAL_LINE,
    Ledger,
    best_model,
    clip,
    decide_winners,
    final_vote,
    generate_by_model,
    round0,
)


@dataclass(frozen=True)
class FeedbackParams:
    """rounds: feedback-and-refine rounds after the shared round 0 (default 1).
    reviewers: peers giving feedback on each answer (default 1; capped at pool size - 1).
    final: "vote" (default) or "best_on_dev".
    max_chars: characters kept of each quoted answer or feedback (default 400).
    """

    rounds: int = 1
    reviewers: int = 1
    final: str = "vote"
    max_chars: int = 400


def review_prompt(item: Any, answer: str, max_chars: int) -> str:
    return (f"{build_prompt(item)}\n\nA proposed answer: {clip(answer, max_chars)}\n\n"
            "Give brief feedback on this answer: is it correct? If not, what is wrong and what should it be?")


def revise_prompt(item: Any, answer: str, feedback: list[str], max_chars: int) -> str:
    notes = "\n\n".join(f"Feedback {k + 1}: {clip(f, max_chars)}" for k, f in enumerate(feedback))
    return (f"{build_prompt(item)}\n\nYour previous answer: {clip(answer, max_chars)}\n\n{notes}\n\n"
            f"Taking the feedback into account, give your refined answer. {FINAL_LINE}")


def choose_reviewers(n: int, author: int, k: int, seed: int, item_id: str, rnd: int) -> list[int]:
    peers = [j for j in range(n) if j != author]
    rng = random.Random(f"{seed}|{item_id}|{rnd}|{author}")
    return sorted(rng.sample(peers, min(k, len(peers))))


@register
class Feedback(Method):
    name = "feedback"
    level = "text"
    stochastic = True
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = FeedbackParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: FeedbackParams = self.params
        if p.final not in ("vote", "best_on_dev"):
            raise MethodError(f"feedback: final must be 'vote' or 'best_on_dev', not {p.final!r}")
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        agents = list(ctx.pool)
        refs = {a.name: a for a in agents}
        first = round0(ctx, "test", items, ledger)
        answers = [first[a.name] for a in agents]
        n = len(agents)
        for rnd in range(p.rounds):
            # 1) feedback: reviewer j on author k's answer to item i
            jobs: dict[str, list[str]] = {}
            slots: dict[str, list[tuple[int, int]]] = {}
            for i, item in enumerate(items):
                for k in range(n):
                    for j in choose_reviewers(n, k, p.reviewers, ctx.seed, item.id, rnd):
                        jobs.setdefault(agents[j].name, []).append(review_prompt(item, answers[k][i],
                                                                                 p.max_chars))
                        slots.setdefault(agents[j].name, []).append((k, i))
            gens = generate_by_model(ctx, refs, jobs, progress=f"{ctx.run} feedback {rnd + 1}")
            notes: dict[tuple[int, int], list[str]] = {}
            for name, slot in slots.items():
                for (k, i), g in zip(slot, gens[name], strict=True):
                    notes.setdefault((k, i), []).append(g.text)
                    ledger.new(items[i].id, g)
            # 2) authors refine
            jobs, slots = {}, {}
            for k, agent in enumerate(agents):
                for i, item in enumerate(items):
                    if (k, i) in notes:
                        jobs.setdefault(agent.name, []).append(revise_prompt(item, answers[k][i], notes[(k, i)],
                                                                             p.max_chars))
                        slots.setdefault(agent.name, []).append((k, i))
            gens = generate_by_model(ctx, refs, jobs, progress=f"{ctx.run} refine {rnd + 1}")
            answers = [list(row) for row in answers]
            for name, slot in slots.items():
                for (k, i), g in zip(slot, gens[name], strict=True):
                    answers[k][i] = g.text
                    ledger.new(items[i].id, g)
        if p.final == "vote":
            chosen = final_vote(ctx, items, agents, answers)
        else:
            best = best_model(ctx)
            k = agents.index(best)
            chosen = [(answers[k][i], best.name) for i in range(len(items))]
        return decide_winners(ctx, [prediction(item.id, text, answered_by=by, **ledger[item.id])
                                    for item, (text, by) in zip(items, chosen, strict=True)],
                              voted=p.final == "vote")
