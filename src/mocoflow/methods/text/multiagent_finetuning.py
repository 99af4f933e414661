"""Multi-agent fine-tuning (Subramaniam et al. 2025, "Multiagent Finetuning: Self Improvement with Diverse
Reasoning Chains"; MoCo ``multiagent_finetuning``).

1. **Debate on dev** (DEV split only): round 0 is every model's shared dev generation; ``rounds`` debate
   rounds follow (as in ``debate``). The consensus per item is the majority answer key of the last round
   (ties to the better model on dev). As in the paper, consensus replaces gold labels: nothing is trained
   on dev gold.
2. **Fine-tuning sets** per pool model: *generation* examples are (question prompt, the model's round-0
   answer) where that answer agrees with the consensus; *critic* examples are (debate prompt of round
   r >= 1, the model's round-r answer) where it agrees with the consensus.
3. **LoRA SFT** (seeded, ``train_steps`` steps, an in-memory copy of the loaded model; nothing written: the
   agent is its base plus the adapter, merged when it loads): one generation agent and, with
   ``critics: true``, one critic agent per model. A model
   with no examples for a role keeps its base weights in that role.
4. **Debate on test** with the tuned agents: the tuned generation agents write round 0 (new text: the
   shared generations come from the base models), the critic agents write the debate rounds; final answer by
   majority vote.

Costs: the dev debate is training cost (counted in ``training_seconds``, not in per-item tokens);
``training_seconds`` per prediction is the job's training time divided by the number of test items (the
job total is in ``usage.json``). Loads per job: n base models + at most 2n tuned models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from mocoflow.data.prompts import build_prompt
from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.text.common import (
    Ledger,
    answer_key,
    decide_winners,
    dev_priority,
    exchange_round,
    final_vote,
    generate_by_model,
    record_training,
    refine_prompt,
    round0,
    vote_index,
)
from mocoflow.methods.text.debate import debate
from mocoflow.training.finetune import TrainBudget, sft_lora


@dataclass(frozen=True)
class MultiagentFinetuningParams:
    """rounds: debate rounds after round 0, on dev and on test (default 1).
    critics: also tune a separate critic agent per model for the debate rounds (default True).
    train_steps / lr / rank / batch_size: LoRA SFT budget per tuned agent (8 steps, 1e-3, 8, 4).
    max_chars: characters kept of each peer answer (default 400).
    """

    rounds: int = 1
    critics: bool = True
    train_steps: int = 8
    lr: float = 1e-3
    rank: int = 8
    batch_size: int = 4
    max_chars: int = 400


def consensus_keys(ctx: RunContext, items: list[Any], agents: list[Any], last: list[list[str]]
                   ) -> list[str | None]:
    prio = dev_priority(ctx)
    out = []
    for i, item in enumerate(items):
        keys = [answer_key(item, last[k][i]) for k in range(len(agents))]
        win = vote_index(keys, [(prio[a.name], -k) for k, a in enumerate(agents)])
        out.append(None if win is None else keys[win])
    return out


def finetuning_sets(items: list[Any], agents: list[Any], history: list[list[list[str]]],
                    consensus: list[str | None], max_chars: int
                    ) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[tuple[str, str]]]]:
    """(generation examples, critic examples) per model name, from a debate ``history[r][agent][item]``."""
    gen: dict[str, list[tuple[str, str]]] = {a.name: [] for a in agents}
    crit: dict[str, list[tuple[str, str]]] = {a.name: [] for a in agents}
    n = len(agents)
    for i, item in enumerate(items):
        if consensus[i] is None:
            continue
        for k, a in enumerate(agents):
            if answer_key(item, history[0][k][i]) == consensus[i]:
                gen[a.name].append((build_prompt(item), history[0][k][i]))
            for r in range(1, len(history)):
                if answer_key(item, history[r][k][i]) == consensus[i]:
                    prompt = refine_prompt(item, history[r - 1][k][i],
                                           [history[r - 1][j][i] for j in range(n) if j != k], max_chars)
                    crit[a.name].append((prompt, history[r][k][i]))
    return gen, crit


@register
class MultiagentFinetuning(Method):
    name = "multiagent_finetuning"
    level = "text"
    stochastic = True
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = MultiagentFinetuningParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: MultiagentFinetuningParams = self.params
        t0 = time.perf_counter()
        budget = TrainBudget(steps=p.train_steps, lr=p.lr, rank=p.rank, batch_size=p.batch_size, seed=ctx.seed)
        agents = list(ctx.pool)
        dev = ctx.items["dev"]
        first = round0(ctx, "dev", dev)
        history = debate(ctx, dev, agents, [first[a.name] for a in agents], p.rounds, None, p.max_chars)
        cons = consensus_keys(ctx, dev, agents, history[-1])
        gen_sets, crit_sets = finetuning_sets(dev, agents, history, cons, p.max_chars)
        generators, critics, examples = list(agents), list(agents), {}
        for k, a in enumerate(agents):
            engine = ctx.engines.get(a)
            roles = [("gen", gen_sets[a.name], generators)]
            if p.critics and p.rounds > 0:
                roles.append(("critic", crit_sets[a.name], critics))
            for role, pairs, slot in roles:
                examples[f"{a.name}/{role}"] = len(pairs)
                if not pairs:
                    continue
                tuned = sft_lora(engine, a, pairs, budget, f"{a.name}+{role}")
                if tuned.ref is not None:
                    slot[k] = tuned.ref
            if not p.critics:
                critics[k] = generators[k]
        train_seconds = time.perf_counter() - t0
        record_training(ctx, agents[0], train_seconds)
        # test: tuned generators write round 0, tuned critics debate
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        refs = {g.name: g for g in generators}
        gens = generate_by_model(ctx, refs, {g.name: [build_prompt(i) for i in items] for g in refs.values()},
                                 progress=f"{ctx.run} round 0 (tuned)")
        answers = [[g.text for g in gens[gen_ref.name]] for gen_ref in generators]
        for name in refs:
            for item, g in zip(items, gens[name], strict=True):
                ledger.new(item.id, g)
        everyone = [[j for j in range(len(agents)) if j != k] for k in range(len(agents))]
        for r in range(p.rounds):
            answers = exchange_round(ctx, items, critics, answers, everyone, ledger, p.max_chars,
                                     progress=f"{ctx.run} round {r + 1} (tuned)")
        chosen = final_vote(ctx, items, agents, answers)
        share = train_seconds / max(1, len(items))
        return decide_winners(ctx, [prediction(item.id, text, answered_by=by, training_seconds=share,
                                               train_examples=examples, **ledger[item.id])
                                    for item, (text, by) in zip(items, chosen, strict=True)])
