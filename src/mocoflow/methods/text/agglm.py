"""AggLM (Zhao et al. 2025, "The Majority is not always right: RL training for solution aggregation"; MoCo
``agglm``): an aggregator model trained on dev to merge candidate answers, then used on test.

**Training: rejection-sampled SFT, not RL.** The paper trains the aggregator with RL (GRPO) using the gold
answer as a binary reward. On the offline default (2 CPU cores, 135M-270M models, minutes per job) GRPO's
many on-policy rollouts per optimiser step are far too slow, so this implementation uses the reward the same
way but off-policy: for each dev item the aggregator samples ``samples`` aggregations of the pool's shared dev
candidates (temperature ``temperature``, seeds ``seed+1..``; one batched ``generate`` call per sample index),
the task's gold scorer keeps only correct ones (rejection sampling = one step of expert iteration / ReST, the
reward-weighted special case of policy improvement), and a seeded LoRA SFT fits the kept aggregations. As
in the paper, easy items (the candidates' majority is already right) are capped at ``max_easy_share`` of
the training examples so the aggregator learns to recover minority-correct answers (all easy ones are kept
when there is no hard one). If nothing passes the
rejection step, the untuned aggregator is used.

**Test**: the (tuned) aggregator reads each test question with the pool's shared test candidates (reused)
and writes the final answer. The aggregator is ``aggregator`` or the pool's best model on dev.
``training_seconds`` is the whole dev phase (sampling, rejection, SFT) - per prediction the job total / test
items; the job total is added to ``usage.json``. Loads per job: the aggregator, plus its tuned copy
(the aggregator plus its adapter, kept in memory and merged when it loads: nothing is written to disk).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, Score, prediction, register
from mocoflow.methods.text.common import (
    Ledger,
    answer_key,
    best_model,
    candidates_prompt,
    record_training,
    round0,
    vote_index,
    with_seed,
)
from mocoflow.training.finetune import TrainBudget, sft_lora

AGG_TASK = ("Some candidate answers may be wrong, even the majority. Check them and give the correct answer to "
            "the question.")


@dataclass(frozen=True)
class AggLMParams:
    """aggregator: pool model to train as aggregator (None = best on dev).
    samples: sampled aggregations per dev item for rejection sampling (default 4).
    temperature: sampling temperature of those aggregations (default 0.8).
    max_easy_share: at most this share of kept examples comes from items whose candidate majority is right
      (default 0.5).
    train_steps / lr / rank / batch_size: LoRA SFT budget (8, 1e-3, 8, 4).
    max_chars: characters kept of each candidate (default 400).
    """

    aggregator: str | None = None
    samples: int = 4
    temperature: float = 0.8
    max_easy_share: float = 0.5
    train_steps: int = 8
    lr: float = 1e-3
    rank: int = 8
    batch_size: int = 4
    max_chars: int = 400


def rejection_set(items: list[Any], cands: list[list[str]], prompts: list[str], samples: list[list[str]],
                  max_easy_share: float, seed: int, *, score: Score) -> tuple[list[tuple[str, str]], int, int]:
    """(kept (prompt, aggregation) pairs, hard kept, easy kept): correct samples only (by ``score``, the
    run's ``ctx.score``), easy items capped."""
    hard, easy = [], []
    for i, item in enumerate(items):
        keys = [answer_key(item, c) for c in cands[i]]
        win = vote_index(keys, [-k for k in range(len(keys))])
        majority_right = win is not None and score(item, cands[i][win])
        seen = set()
        for s in samples[i]:
            if s not in seen and score(item, s):
                seen.add(s)
                (easy if majority_right else hard).append((prompts[i], s))
    rng = random.Random(seed)
    rng.shuffle(easy)
    if hard and max_easy_share < 1.0:  # without hard examples there is nothing to balance: keep every easy one
        easy = easy[:int(max_easy_share / (1.0 - max_easy_share) * len(hard))]
    return hard + easy, len(hard), len(easy)


@register
class AggLM(Method):
    name = "agglm"
    level = "text"
    stochastic = True
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = AggLMParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: AggLMParams = self.params
        t0 = time.perf_counter()
        agg = best_model(ctx, p.aggregator)
        engine = ctx.engines.get(agg)
        names = [r.name for r in ctx.pool]
        dev = ctx.items["dev"]
        dev_first = round0(ctx, "dev", dev)
        dev_cands = [[dev_first[n][i] for n in names] for i in range(len(dev))]
        dev_prompts = [candidates_prompt(item, dev_cands[i], p.max_chars, AGG_TASK) for i, item in enumerate(dev)]
        samples: list[list[str]] = [[] for _ in dev]
        for s in range(p.samples if dev else 0):
            gens = engine.generate(dev_prompts, with_seed(ctx.decoding, ctx.seed + 1 + s, p.temperature),
                                   progress=f"{ctx.run} dev sample {s + 1}")
            for i, g in enumerate(gens):
                samples[i].append(g.text)
        pairs, n_hard, n_easy = rejection_set(dev, dev_cands, dev_prompts, samples, p.max_easy_share, ctx.seed,
                                               score=ctx.score)
        aggregator = agg
        if pairs:
            budget = TrainBudget(steps=p.train_steps, lr=p.lr, rank=p.rank, batch_size=p.batch_size,
                                 seed=ctx.seed)
            tuned = sft_lora(engine, agg, pairs, budget, f"{agg.name}+agglm")
            if tuned.ref is not None:
                aggregator = tuned.ref
        train_seconds = time.perf_counter() - t0
        record_training(ctx, agg, train_seconds)
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        first = round0(ctx, "test", items, ledger)
        prompts = [candidates_prompt(item, [first[n][i] for n in names], p.max_chars, AGG_TASK)
                   for i, item in enumerate(items)]
        gens = ctx.engines.get(aggregator).generate(prompts, ctx.decoding, progress=f"{ctx.run}: aggregate")
        share = train_seconds / max(1, len(items))
        out = []
        for item, g in zip(items, gens, strict=True):
            ledger.new(item.id, g)
            out.append(prediction(item.id, g.text, answered_by=aggregator.name, training_seconds=share,
                                  train_examples={"hard": n_hard, "easy": n_easy}, **ledger[item.id]))
        ctx.decide(final_writer=[aggregator.name], train_examples={"hard": n_hard, "easy": n_easy})
        return out
