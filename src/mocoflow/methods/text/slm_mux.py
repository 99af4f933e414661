"""SLM-Mux (Wang et al. 2025, "SLM-MUX: Orchestrating Small Language Models for Reasoning"; MoCo
``slm_mux``): per item, each model's self-consistency decides which model answers.

Each model contributes ``samples`` answers: its shared greedy generation (reused, sample 0) plus
``samples - 1`` seeded samples at ``temperature`` (sample s uses decoding seed ``seed + s``; one batched
``generate`` call per model per sample index). A model's confidence on an item is the share of its samples
that agree with its own most frequent answer key. The most confident model answers with its majority
answer; ties go to the model with higher dev accuracy, then earlier in pool order (as in the paper, which
breaks ties by validation accuracy).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.common import prompts_for
from mocoflow.methods.text.common import (
    Ledger,
    answer_key,
    decide_winners,
    dev_priority,
    generate_by_model,
    round0,
    with_seed,
)


@dataclass(frozen=True)
class SLMMuxParams:
    """samples: answers per model and item, the shared greedy one included (default 3).
    temperature: sampling temperature of the extra samples (default 0.7).
    """

    samples: int = 3
    temperature: float = 0.7


def self_consistency(keys: list[str | None]) -> tuple[str | None, float]:
    """(majority key, share of samples agreeing with it); (None, 0) when nothing parses."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None, 0.0
    top = max(counts.values())
    key = next(k for k in keys if k is not None and counts[k] == top)
    return key, top / len(keys)


@register
class SLMMux(Method):
    name = "slm_mux"
    level = "text"
    stochastic = True
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = SLMMuxParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: SLMMuxParams = self.params
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        first = round0(ctx, "test", items, ledger)
        refs = {r.name: r for r in ctx.pool}
        samples = {name: [[first[name][i]] for i in range(len(items))] for name in refs}
        prompts = prompts_for(items)
        for s in range(1, max(1, p.samples)):
            dec = with_seed(ctx.decoding, ctx.seed + s, p.temperature)
            gens = generate_by_model(ctx, refs, {name: prompts for name in refs}, dec,
                                     progress=f"{ctx.run} sample {s}")
            for name in refs:
                for i, g in enumerate(gens[name]):
                    samples[name][i].append(g.text)
                    ledger.new(items[i].id, g)
        prio = dev_priority(ctx)
        out = []
        for i, item in enumerate(items):
            best = None
            for name in refs:
                texts = samples[name][i]
                keys = [answer_key(item, t) for t in texts]
                key, conf = self_consistency(keys)
                text = texts[keys.index(key)] if key is not None else texts[0]
                rank = (conf, prio[name])
                if best is None or rank > best[0]:
                    best = (rank, name, text, conf)
            assert best is not None
            _, name, text, conf = best
            out.append(prediction(item.id, text, answered_by=name, confidence=conf, **ledger[item.id]))
        return decide_winners(ctx, out)
