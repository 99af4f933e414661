"""SPARTA (Jiang et al. 2025, "SPARTA ALIGNMENT: Collectively Aligning Multiple Language Models through
Combat"; MoCo ``sparta``): models duel on dev prompts, peers judge, Elo-style ratings pick the duels, and
every model is aligned by DPO (LoRA) on the winners.

Per iteration (``iterations``, default 1), on the DEV split only:

1. **Responses**: in iteration 1 each model's response is its shared dev generation (reused); later
   iterations regenerate with the models tuned so far (one batched ``generate`` call per model).
2. **Duels**: for each dev item, a seeded RNG picks the first model, and the second is the one closest in
   rating to it (ties: random) - the paper's matching of similar-strength opponents.
3. **Judging**: every other pool model (both duellists too when the pool has only two models) compares the
   two responses by the log-probability of ``Answer: A`` vs ``Answer: B`` in both orders (position bias
   cancels). The summed margin decides; a zero margin is a draw (no preference pair).
4. **Ratings**: Elo update (K = ``elo_k``, start 1000) per duel; recorded in every prediction.
5. **DPO**: every model is tuned on all (prompt, winner, loser) pairs (LoRA, seeded; reference = the same
   network with the adapter off). No gold labels are used in steps 1-5.

The **best tuned model by dev accuracy** (gold, dev split; ties to pool order) answers the test split (the
best untuned model on dev when nothing could be tuned: a one-model pool, or no decided duel). Training time (duels,
judging, DPO, dev evaluation) is ``training_seconds`` (per prediction: the job total / test items).
Loads per job: n base models + n tuned models per iteration (each tuned model is its base plus the adapters
trained so far, kept in memory and merged when it loads: nothing is written to disk).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, prompts_for
from mocoflow.methods.text.common import generate_by_model, pairwise_preferences, record_training
from mocoflow.training.finetune import TrainBudget, dpo_lora


@dataclass(frozen=True)
class SpartaParams:
    """iterations: duel-judge-DPO rounds (default 1).
    elo_k: Elo K-factor (default 32). beta: DPO temperature (default 0.1).
    train_steps / lr / rank / batch_size: DPO LoRA budget per model and iteration (8, 5e-4, 8, 4).
    max_chars: characters of each response shown to judges (default 400).
    """

    iterations: int = 1
    elo_k: float = 32.0
    beta: float = 0.1
    train_steps: int = 8
    lr: float = 5e-4
    rank: int = 8
    batch_size: int = 4
    max_chars: int = 400


def elo_update(ra: float, rb: float, score_a: float, k: float) -> tuple[float, float]:
    expected = 1.0 / (1.0 + 10 ** ((rb - ra) / 400.0))
    return ra + k * (score_a - expected), rb - k * (score_a - expected)


def pick_duel(rng: random.Random, ratings: list[float]) -> tuple[int, int]:
    n = len(ratings)
    a = rng.randrange(n)
    others = [j for j in range(n) if j != a]
    gap = min(abs(ratings[j] - ratings[a]) for j in others)
    b = rng.choice([j for j in others if abs(ratings[j] - ratings[a]) == gap])
    return a, b


@register
class Sparta(Method):
    name = "sparta"
    level = "text"
    stochastic = True
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = SpartaParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: SpartaParams = self.params
        t0 = time.perf_counter()
        base = list(ctx.pool)
        n = len(base)
        dev = ctx.items["dev"]
        current = list(base)  # the model each slot uses now (base, then tuned)
        ratings = [1000.0] * n
        rng = random.Random(ctx.seed)
        budget = TrainBudget(steps=p.train_steps, lr=p.lr, rank=p.rank, batch_size=p.batch_size, seed=ctx.seed)
        duels, pairs_total = 0, 0
        for it in range(p.iterations if n > 1 else 0):
            if it == 0:
                responses = [[ctx.gen(b.name, "dev", i.id)["output"] for i in dev] for b in base]
            else:
                gens = generate_by_model(ctx, {c.name: c for c in current},
                                         {c.name: prompts_for(dev) for c in current},
                                         progress=f"{ctx.run} iteration {it + 1}")
                responses = [[g.text for g in gens[c.name]] for c in current]
            plan = [(i, *pick_duel(rng, ratings)) for i in range(len(dev))]
            margin = [0.0] * len(plan)
            for j, judge in enumerate(current):
                mine = [(d, (i, a, b)) for d, (i, a, b) in enumerate(plan) if n == 2 or j not in (a, b)]
                if not mine:
                    continue
                m = pairwise_preferences(ctx.engines.get(judge), dev,
                                         [(i, responses[a][i], responses[b][i]) for _, (i, a, b) in mine],
                                         p.max_chars)
                for (d, _), v in zip(mine, m, strict=True):
                    margin[d] += v
            triples = []
            for (i, a, b), v in zip(plan, margin, strict=True):
                duels += 1
                score_a = 0.5 if abs(v) < 1e-9 else float(v > 0)
                ratings[a], ratings[b] = elo_update(ratings[a], ratings[b], score_a, p.elo_k)
                if score_a != 0.5 and responses[a][i] != responses[b][i]:
                    win, lose = (a, b) if score_a == 1.0 else (b, a)
                    triples.append((prompts_for([dev[i]])[0], responses[win][i], responses[lose][i]))
            pairs_total += len(triples)
            if not triples:
                break
            for k, model in enumerate(current):
                tuned = dpo_lora(ctx.engines.get(model), model, triples, budget, p.beta,
                                 f"{base[k].name}+sparta{it + 1}")
                if tuned.ref is not None:
                    current[k] = tuned.ref
        # choose by dev accuracy (gold) among the tuned models; the untuned pool only if nothing was tuned
        tuned_refs = [c for c in current if c not in base]
        acc = dev_accuracy(ctx)
        candidates = [] if tuned_refs and dev else [(acc[b.name], -k, b) for k, b in enumerate(base)]
        if tuned_refs and dev:
            gens = generate_by_model(ctx, {c.name: c for c in tuned_refs},
                                     {c.name: prompts_for(dev) for c in tuned_refs}, progress=f"{ctx.run} dev eval")
            for c in tuned_refs:
                a = sum(ctx.score(i, g.text) for i, g in zip(dev, gens[c.name], strict=True)) / len(dev)
                candidates.append((a, -current.index(c), c))
        best_acc, _, best = max(candidates, key=lambda t: (t[0], t[1]))
        train_seconds = time.perf_counter() - t0
        record_training(ctx, base[0], train_seconds)
        items = ctx.items["test"]
        share = train_seconds / max(1, len(items))
        extra = {"training_seconds": share, "dev_accuracy": best_acc, "duels": duels, "preference_pairs": pairs_total,
                 "ratings": {b.name: round(r, 1) for b, r in zip(base, ratings, strict=True)}}
        ctx.decide(final_writer=[best.name], tuned=best not in base, ratings=extra["ratings"],
                   preference_pairs=pairs_total)
        if best in base:  # nothing was tuned: the best untuned model answers alone (a degenerate run)
            ctx.decide(reliance={b.name: float(b.name == best.name) for b in base})
            out = []
            for item in items:
                rec = ctx.gen(best.name, "test", item.id)
                out.append(prediction(item.id, rec["output"], prompt_tokens=int(rec["prompt_tokens"]),
                                      generated_tokens=int(rec["generated_tokens"]), answered_by=best.name,
                                      **extra))
            return out
        gens = ctx.engines.get(best).generate(prompts_for(items), ctx.decoding, progress=f"{ctx.run}: test")
        return [prediction(item.id, g.text, prompt_tokens=g.prompt_tokens, generated_tokens=g.generated_tokens,
                           new_generated_tokens=g.generated_tokens, answered_by=best.name, **extra)
                for item, g in zip(items, gens, strict=True)]
