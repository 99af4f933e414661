"""Cascade: weak models answer first and defer to stronger ones when their confidence is low.

Models are ordered weak to strong by dev accuracy. Each non-final model ``m`` gets its own threshold
``tau_m`` from its own dev outputs: the lowest confidence such that the dev answers at or above it are
correct at least ``target_precision`` of the time (default: the final model's dev accuracy, i.e. defer
whenever the stronger model is expected to do better). Confidence is ``exp(mean token log-prob)`` of the
model's shared generation. The last model always answers. Costs count every model consulted.

``confidence: just_ask`` (the "just ask for calibration" idea) replaces the log-prob confidence: each
non-final model is shown the question and its own answer and asked "Is the proposed answer correct?";
confidence is P(Yes) / (P(Yes) + P(No)) from the model's own next-token scores. Thresholds are chosen the
same way on dev (asking on every dev item, counted as ``training_seconds``); at test time only the models
actually consulted are asked, and the asking prompts are added to ``prompt_tokens`` (extra column
``ask_prompt_tokens``). This mode loads the pool models (the collaborate rule must give it the models).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, dev_correctness, prompts_for, reliance_from_counts, reused_costs


@dataclass(frozen=True)
class CascadeParams:
    """target_precision: dev precision an accepted answer must reach (None = final model's dev accuracy).
    order: "dev_accuracy" (weak to strong on dev) or "pool" (the pool's listed order).
    confidence: "logprob" (exp mean token log-prob of the shared generation) or "just_ask" (ask the model
    whether its answer is correct; P(Yes) normalised over Yes/No)."""

    target_precision: float | None = None
    order: str = "dev_accuracy"
    confidence: str = "logprob"

    def __post_init__(self) -> None:
        if self.confidence not in ("logprob", "just_ask"):
            raise ValueError(f"cascade confidence must be 'logprob' or 'just_ask', not {self.confidence!r}")
        if self.order not in ("dev_accuracy", "pool"):
            raise ValueError(f"cascade order must be 'dev_accuracy' or 'pool', not {self.order!r}")
        if self.target_precision is not None and not 0 <= self.target_precision <= 1:
            raise ValueError("cascade target_precision must be in [0, 1]")


def confidence(record: dict[str, Any]) -> float:
    return math.exp(float(record["mean_logprob"]))


def choose_threshold(confidences: list[float], correct: list[bool], target: float) -> float:
    """Lowest confidence tau such that dev items with conf >= tau are correct >= target of the time;
    +inf when no such tau exists (always defer)."""
    pairs = sorted(zip(confidences, correct, strict=True), key=lambda p: -p[0])
    best = math.inf
    hits = 0
    for n, (conf, ok) in enumerate(pairs, 1):
        hits += ok
        is_last_of_tie = n == len(pairs) or pairs[n][0] != conf
        if is_last_of_tie and hits / n >= target:
            best = conf
    return best


ASK_TEMPLATE = "{prompt}\n\nProposed answer: {answer}\n\nIs the proposed answer correct? Answer Yes or No."


def ask_confidences(engine: Any, prompts: list[str], answers: list[str]) -> tuple[list[float], list[int]]:
    """P(Yes) / (P(Yes) + P(No)) per (prompt, answer), and the prompt tokens each question cost."""
    asks = [ASK_TEMPLATE.format(prompt=p, answer=a.strip()) for p, a in zip(prompts, answers, strict=True)]
    yes = engine.score_continuations(asks, ["Yes"] * len(asks))
    no = engine.score_continuations(asks, ["No"] * len(asks))
    confs = [1.0 / (1.0 + math.exp(n - y)) for y, n in zip(yes, no, strict=True)]
    tokens = [2 * len(ids) for ids in engine.encode(asks)] if hasattr(engine, "encode") else [0] * len(asks)
    return confs, tokens


def defer_rates(order: list[str], deferrals: list[int]) -> dict[str, float | None]:
    """Per non-final model (cascade order): the share of the items that reached it which it deferred to the
    next model (None when no item reached it)."""
    out: dict[str, float | None] = {}
    for k, name in enumerate(order[:-1]):
        reached = [d for d in deferrals if d >= k]
        out[name] = sum(d > k for d in reached) / len(reached) if reached else None
    return out


@register
class Cascade(Method):
    name = "cascade"
    level = "api"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS})

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        super().__init__(params)
        if self.params.confidence == "just_ask":  # asks the pool models: they are loaded (and need GPUs)
            self.needs = self.needs | {Need.MODELS}
    Params = CascadeParams

    def thresholds(self, ctx: RunContext) -> tuple[list[str], dict[str, float]]:
        acc = dev_accuracy(ctx)
        names = [ref.name for ref in ctx.pool]
        if self.params.order == "dev_accuracy":
            names = sorted(names, key=lambda n: (acc[n], -names.index(n)))
        target = acc[names[-1]] if self.params.target_precision is None else self.params.target_precision
        taus = {}
        t0 = time.perf_counter()
        for name in names[:-1]:
            correct = dev_correctness(ctx, name)
            if self.params.confidence == "just_ask":
                confs = self._ask(ctx, name, "dev", [i for i in ctx.items["dev"] if i.id in correct])[0]
            else:
                confs = [confidence(ctx.gen(name, "dev", i)) for i in correct]
            taus[name] = choose_threshold(confs, list(correct.values()), target) if correct else math.inf
        self.training_seconds = time.perf_counter() - t0
        return names, taus

    def _ask(self, ctx: RunContext, name: str, split: str, items: list[Any]) -> tuple[list[float], list[int]]:
        ref = next(r for r in ctx.pool if r.name == name)
        answers = [ctx.gen(name, split, i.id)["output"] for i in items]
        return ask_confidences(ctx.engines.get(ref), prompts_for(items), answers)

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        order, taus = self.thresholds(ctx)
        out = self._run_just_ask(ctx, order, taus) if self.params.confidence == "just_ask" else \
            self._run_logprob(ctx, order, taus)
        ctx.decide(kind="router", order=order,
                   thresholds={n: (None if math.isinf(t) else t) for n, t in taus.items()},
                   defer_rate=defer_rates(order, [p["deferrals"] for p in out]),
                   reliance=reliance_from_counts([r.name for r in ctx.pool], [p["answered_by"] for p in out]))
        return out

    def _run_logprob(self, ctx: RunContext, order: list[str], taus: dict[str, float]) -> list[dict]:
        out = []
        for item in ctx.items["test"]:
            consulted = []
            for name in order:
                rec = ctx.gen(name, "test", item.id)
                consulted.append(rec)
                if name == order[-1] or confidence(rec) >= taus[name]:
                    break
            out.append(prediction(item.id, consulted[-1]["output"], answered_by=order[len(consulted) - 1],
                                  deferrals=len(consulted) - 1, **reused_costs(consulted)))
        return out

    def _run_just_ask(self, ctx: RunContext, order: list[str], taus: dict[str, float]) -> list[dict]:
        test = ctx.items["test"]
        consulted: dict[str, list[dict[str, Any]]] = {i.id: [] for i in test}
        ask_tokens = dict.fromkeys(consulted, 0)
        confs: dict[str, list[float]] = {i.id: [] for i in test}
        answered: dict[str, str] = {}
        remaining = list(test)
        for name in order:
            for item in remaining:
                consulted[item.id].append(ctx.gen(name, "test", item.id))
            if name == order[-1]:
                answered.update({i.id: name for i in remaining})
                break
            scores, tokens = self._ask(ctx, name, "test", remaining)
            still = []
            for item, conf, tok in zip(remaining, scores, tokens, strict=True):
                ask_tokens[item.id] += tok
                confs[item.id].append(round(conf, 4))
                if conf >= taus[name]:
                    answered[item.id] = name
                else:
                    still.append(item)
            remaining = still
            if not remaining:
                break
        out = []
        for item in test:
            recs = consulted[item.id]
            costs = reused_costs(recs)
            costs["prompt_tokens"] += ask_tokens[item.id]
            out.append(prediction(item.id, recs[-1]["output"], answered_by=answered[item.id],
                                  deferrals=len(recs) - 1, confidences=confs[item.id],
                                  ask_prompt_tokens=ask_tokens[item.id],
                                  training_seconds=round(self.training_seconds, 4), **costs))
        return out
