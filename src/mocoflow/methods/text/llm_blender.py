"""LLM-Blender (Jiang et al. 2023, "LLM-Blender: Ensembling Large Language Models with Pairwise Ranking and
Generative Fusion"; MoCo ``llm_blender``).

Candidates are the pool's shared test generations (nothing regenerated). **PairRanker**: a judge (a pool
model; default the best on dev) compares every pair of candidates by the log-probability it gives to
``Answer: A`` vs ``Answer: B`` after a comparison prompt, in BOTH presentation orders (margins averaged), so
pure position bias cancels; all comparisons go out in one ``score_continuations`` call. Candidates are
ranked by pairwise wins (a tie counts 1/2), then by summed margin, then by text, so the ranking does not
depend on the order the candidates were listed in. **GenFuser**: the fuser (default the best on dev)
reads the question and the top-k candidates and writes the final answer (``fuse: false`` returns the
top-ranked candidate).

A ranker trained on dev preferences (the paper's PairRanker is a fine-tuned cross-encoder) is not
implemented: the judge is a pool model used zero-shot.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.common import reliance_from_counts
from mocoflow.methods.text.common import (
    Ledger,
    best_model,
    candidates_prompt,
    decide_winners,
    pairwise_preferences,
    round0,
)

FUSE_TASK = "Fuse the best parts of these candidate answers into one final answer to the question."


@dataclass(frozen=True)
class LLMBlenderParams:
    """judge: pool model that compares candidates (None = best on dev).
    fuser: pool model that fuses the top-k (None = best on dev).
    top_k: candidates passed to the fuser (default 2).
    fuse: False returns the top-ranked candidate without fusion (default True).
    max_chars: characters kept of each candidate in a prompt (default 400).
    """

    judge: str | None = None
    fuser: str | None = None
    top_k: int = 2
    fuse: bool = True
    max_chars: int = 400


def rank_candidates(engine: Any, items: list[Any], candidates: list[list[str]], max_chars: int
                    ) -> list[list[int]]:
    """Per item, candidate indices best first (pairwise wins, then summed margin, then text)."""
    pairs, where = [], []
    for i, cands in enumerate(candidates):
        for x, y in combinations(range(len(cands)), 2):
            pairs.append((i, cands[x], cands[y]))
            where.append((i, x, y))
    margins = pairwise_preferences(engine, items, pairs, max_chars)
    wins = [[0.0] * len(c) for c in candidates]
    total = [[0.0] * len(c) for c in candidates]
    for (i, x, y), m in zip(where, margins, strict=True):
        if abs(m) < 1e-9:
            wins[i][x] += 0.5
            wins[i][y] += 0.5
        else:
            wins[i][x if m > 0 else y] += 1.0
        total[i][x] += m
        total[i][y] -= m
    return [sorted(range(len(c)), key=lambda k, i=i, c=c: (-wins[i][k], -round(total[i][k], 9), c[k], k))
            for i, c in enumerate(candidates)]


@register
class LLMBlender(Method):
    name = "llm_blender"
    level = "text"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = LLMBlenderParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: LLMBlenderParams = self.params
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        first = round0(ctx, "test", items, ledger)
        names = [r.name for r in ctx.pool]
        cands = [[first[n][i] for n in names] for i in range(len(items))]
        judge = ctx.engines.get(best_model(ctx, p.judge))
        before = judge.usage.prompt_tokens
        ranks = rank_candidates(judge, items, cands, p.max_chars)
        per_item = (judge.usage.prompt_tokens - before) // max(1, len(items))
        for item in items:
            ledger.prompt_only(item.id, per_item)
        if not p.fuse:
            return decide_winners(ctx, [prediction(item.id, cands[i][ranks[i][0]], answered_by=names[ranks[i][0]],
                                                   ranking=[names[k] for k in ranks[i]], **ledger[item.id])
                                        for i, item in enumerate(items)])
        fuser = best_model(ctx, p.fuser)
        prompts = [candidates_prompt(item, [cands[i][k] for k in ranks[i][:max(1, p.top_k)]], p.max_chars,
                                     FUSE_TASK) for i, item in enumerate(items)]
        gens = ctx.engines.get(fuser).generate(prompts, ctx.decoding, progress=f"{ctx.run}: fuse")
        out = []
        for i, (item, g) in enumerate(zip(items, gens, strict=True)):
            ledger.new(item.id, g)
            out.append(prediction(item.id, g.text, answered_by=fuser.name,
                                  ranking=[names[k] for k in ranks[i]], **ledger[item.id]))
        ctx.decide(final_writer=[fuser.name],
                   ranked_first=reliance_from_counts(names, [names[ranks[i][0]] for i in range(len(items))]))
        return out
