"""BBMAS, a blackboard multi-agent system (after Han et al. 2025, "Exploring Advanced LLM Multi-Agent
Systems Based on Blackboard Architecture"; MoCo ``bbmas``).

Agents, each backed by its own pool model (agent k = pool model k, with role ``roles[k % len(roles)]``),
post to a shared blackboard per item. The blackboard starts with every model's shared round-0 answer
(reused, posted as that agent's first post). In each round every agent of a still-open item reads the
question and the last ``window`` posts and posts again: a ``solver`` posts an answer, a ``critic`` checks
the posts and then gives its own answer, a ``decider`` weighs the posts and answers. All posts of one model
in one round go out in one ``generate`` call. **Stop rule**: an item closes as soon as every agent's
latest post has the same parseable answer key (consensus), or after ``max_rounds``. The final answer is
the majority over the agents' latest posts, ties to the better model on dev.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocoflow.data.prompts import build_prompt
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.text.common import (
    FINAL_LINE,
    Ledger,
    answer_key,
    clip,
    decide_winners,
    final_vote,
    generate_by_model,
    round0,
)

ROLE_TASKS = {
    "solver": "You are a solver. Solve the question, using the blackboard where it helps.",
    "critic": "You are a critic. Point out any mistake in the posts on the blackboard, then give the answer "
              "you think is correct.",
    "decider": "You are the decider. Weigh the posts on the blackboard and give the final answer.",
}


@dataclass(frozen=True)
class BBMASParams:
    """roles: role of agent k is roles[k % len(roles)] (solver, critic, decider; default solver, critic).
    max_rounds: posting rounds after the shared first posts (default 2).
    window: most recent posts each agent reads (default 6).
    max_chars: characters kept of each post (default 300).
    """

    roles: tuple[str, ...] | list[str] = ("solver", "critic")
    max_rounds: int = 2
    window: int = 6
    max_chars: int = 300


def board_prompt(item: Any, board: list[tuple[str, str]], role: str, window: int, max_chars: int) -> str:
    posts = "\n\n".join(f"[{who}] {clip(text, max_chars)}" for who, text in board[-window:])
    return (f"{build_prompt(item)}\n\nBlackboard:\n\n{posts}\n\n{ROLE_TASKS[role]} {FINAL_LINE}")


def consensus(item: Any, latest: list[str]) -> bool:
    keys = [answer_key(item, t) for t in latest]
    return keys[0] is not None and all(k == keys[0] for k in keys)


@register
class BBMAS(Method):
    name = "bbmas"
    level = "text"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = BBMASParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: BBMASParams = self.params
        bad = [r for r in p.roles if r not in ROLE_TASKS]
        if bad or not p.roles:
            raise MethodError(f"bbmas: unknown role(s) {bad}; valid: {', '.join(ROLE_TASKS)}")
        agents = list(ctx.pool)
        refs = {a.name: a for a in agents}
        roles = [p.roles[k % len(p.roles)] for k in range(len(agents))]
        labels = [f"{roles[k]} {k + 1} ({a.name})" for k, a in enumerate(agents)]
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        first = round0(ctx, "test", items, ledger)
        latest = [[first[a.name][i] for a in agents] for i in range(len(items))]  # item -> agent -> text
        boards = [[(labels[k], latest[i][k]) for k in range(len(agents))] for i in range(len(items))]
        open_ = [not consensus(item, latest[i]) for i, item in enumerate(items)]
        rounds_used = [0] * len(items)
        for r in range(p.max_rounds):
            if not any(open_):
                break
            jobs: dict[str, list[str]] = {}
            slots: dict[str, list[tuple[int, int]]] = {}
            for i, item in enumerate(items):
                if not open_[i]:
                    continue
                rounds_used[i] += 1
                for k, agent in enumerate(agents):  # every agent reads the same board state this round
                    jobs.setdefault(agent.name, []).append(board_prompt(item, boards[i], roles[k], p.window,
                                                                        p.max_chars))
                    slots.setdefault(agent.name, []).append((i, k))
            gens = generate_by_model(ctx, refs, jobs, progress=f"{ctx.run} round {r + 1}")
            posts: dict[tuple[int, int], str] = {}
            for name, slot in slots.items():
                for (i, k), g in zip(slot, gens[name], strict=True):
                    posts[(i, k)] = g.text
                    ledger.new(items[i].id, g)
            for (i, k) in sorted(posts):
                boards[i].append((labels[k], posts[(i, k)]))
                latest[i][k] = posts[(i, k)]
            open_ = [o and not consensus(item, latest[i]) for i, (item, o) in enumerate(zip(items, open_,
                                                                                               strict=True))]
        answers = [[latest[i][k] for i in range(len(items))] for k in range(len(agents))]
        chosen = final_vote(ctx, items, agents, answers)
        return decide_winners(ctx, [prediction(item.id, text, answered_by=by, rounds=rounds_used[i],
                                               posts=len(boards[i]), **ledger[item.id])
                                    for i, (item, (text, by)) in enumerate(zip(items, chosen, strict=True))])
