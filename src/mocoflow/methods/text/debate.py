"""Multi-agent debate / refinement (MoCo ``multiagent_refine``; Du et al. 2023, "Improving Factuality and
Reasoning in Language Models through Multiagent Debate").

Round 0 is every pool model's shared generation (never regenerated). In each of ``rounds`` further rounds,
every model sees its own previous answer and all other models' answers and revises (one batched ``generate``
call per model per round). The final answer is written by a summariser, the pool's best model on dev, which
reads the last round's answers (``final: "summarize"``), or is the majority vote over them with ties to the
better model on dev (``final: "vote"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.text.common import (
    Ledger,
    best_model,
    candidates_prompt,
    decide_winners,
    exchange_round,
    final_vote,
    round0,
)

SUMMARY_TASK = "Summarise these answers into one final answer to the question."


@dataclass(frozen=True)
class DebateParams:
    """rounds: revision rounds after the shared round 0 (default 2).
    final: "summarize" (the best-on-dev model reads the last answers and answers; default) or "vote".
    summarizer: a pool model name for the summariser (None = best on dev).
    max_chars: characters kept of each peer answer in a prompt (default 400).
    """

    rounds: int = 2
    final: str = "summarize"
    summarizer: str | None = None
    max_chars: int = 400


def debate(ctx: RunContext, items: list[Any], agents: list[Any], answers: list[list[str]], rounds: int,
           ledger: Ledger | None, max_chars: int) -> list[list[list[str]]]:
    """All rounds' answers (``history[r][agent][item]``), starting with ``answers`` as round 0."""
    everyone = [[j for j in range(len(agents)) if j != k] for k in range(len(agents))]
    history = [answers]
    for r in range(rounds):
        history.append(exchange_round(ctx, items, agents, history[-1], everyone, ledger, max_chars,
                                      progress=f"{ctx.run} round {r + 1}"))
    return history


@register
class Debate(Method):
    name = "debate"
    level = "text"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = DebateParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: DebateParams = self.params
        if p.final not in ("summarize", "vote"):
            raise MethodError(f"debate: final must be 'summarize' or 'vote', not {p.final!r}")
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        first = round0(ctx, "test", items, ledger)
        agents = list(ctx.pool)
        history = debate(ctx, items, agents, [first[a.name] for a in agents], p.rounds, ledger, p.max_chars)
        last = history[-1]
        if p.final == "vote":
            chosen = final_vote(ctx, items, agents, last)
        else:
            judge = best_model(ctx, p.summarizer)
            prompts = [candidates_prompt(item, [last[k][i] for k in range(len(agents))], p.max_chars,
                                         SUMMARY_TASK) for i, item in enumerate(items)]
            gens = ctx.engines.get(judge).generate(prompts, ctx.decoding, progress=f"{ctx.run}: summary")
            for item, g in zip(items, gens, strict=True):
                ledger.new(item.id, g)
            chosen = [(g.text, judge.name) for g in gens]
        return decide_winners(ctx, [prediction(item.id, text, answered_by=by, rounds=p.rounds, **ledger[item.id])
                                    for item, (text, by) in zip(items, chosen, strict=True)],
                              voted=p.final == "vote")
