"""Switch generation: pool models take turns writing patches of ``patch_tokens`` tokens of one answer;
before each patch a selector decides which model writes it.

The default selector is trained on dev rollouts scored by the task's gold scorer: for each of the first
``max_train_items`` dev items, one rollout per model writing every patch plus ``random_rollouts`` rollouts
with a seeded random writer per patch. Every (patch index, previous writer, writer) decision in a rollout
is credited with the rollout's reward (1 if the final answer is correct); the selector picks the writer with
the highest mean reward for the state, backing off to (patch index, writer), then (writer). Ties go to
the better model on dev, then pool order. ``selector: round_robin`` cycles through the pool instead.
Models exchange text (each re-tokenises the others' patches), so tokenizers may differ. Rollout work is
training cost (``training_seconds``, ``training_generated_tokens``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from mocoflow.methods.api._shared import Cursor, Timer, finish_costs, greedy_patch
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, prompts_for, score_output

Policy = Any  # (patch index, previous writer or None) -> writer name


@dataclass(frozen=True)
class SwitchParams:
    """patch_tokens: tokens per patch. selector: "trained" or "round_robin".
    max_train_items / random_rollouts / seed: dev rollouts for the trained selector."""

    patch_tokens: int = 8
    selector: str = "trained"
    max_train_items: int = 32
    random_rollouts: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.selector not in ("trained", "round_robin"):
            raise ValueError(
                f"switch_generation selector must be 'trained' or 'round_robin', not {self.selector!r}"
            )
        if self.patch_tokens < 1:
            raise ValueError("switch_generation patch_tokens must be >= 1")


def switch_decode(
    engines: dict[str, Any], prompt: str, policy: Policy, patch_tokens: int, max_new_tokens: int
) -> tuple[str, list[str], list[Cursor]]:
    """Write one answer patch by patch; returns (text, writer per patch, cursors used)."""
    cursors: dict[str, Cursor] = {}
    text, writers, prev = "", [], None
    for k in range(max(1, math.ceil(max_new_tokens / patch_tokens))):
        name = policy(k, prev)
        if name not in cursors:
            cursors[name] = Cursor(engines[name], prompt)
        text, ended, _ = greedy_patch(cursors[name], text, patch_tokens)
        writers.append(name)
        prev = name
        if ended:
            break
    return text, writers, list(cursors.values())


class TrainedSelector:
    def __init__(self, names: list[str], tiebreak: dict[str, float]) -> None:
        self.names, self.tiebreak = names, tiebreak
        self.stats: dict[tuple, list[float]] = defaultdict(list)

    def add(self, writers: list[str], reward: float) -> None:
        prev = None
        for k, w in enumerate(writers):
            for key in ((k, prev, w), (k, w), (w,)):
                self.stats[key].append(reward)
            prev = w

    def value(self, k: int, prev: str | None, w: str) -> float:
        for key in ((k, prev, w), (k, w), (w,)):
            if self.stats.get(key):
                return float(np.mean(self.stats[key]))
        return 0.0

    def __call__(self, k: int, prev: str | None) -> str:
        return max(
            self.names,
            key=lambda w: (round(self.value(k, prev, w), 9), self.tiebreak.get(w, 0.0), -self.names.index(w)),
        )


@register
class SwitchGeneration(Method):
    name = "switch_generation"
    level = "api"
    needs = frozenset({Need.MODELS, Need.DEV_GENERATIONS})
    Params = SwitchParams

    def train(self, ctx: RunContext, engines: dict[str, Any]) -> tuple[TrainedSelector, dict[str, Any]]:
        names = [r.name for r in ctx.pool]
        selector = TrainedSelector(names, dev_accuracy(ctx))
        rng = np.random.default_rng(self.params.seed)
        items = ctx.items["dev"][: self.params.max_train_items]
        if not items:
            raise MethodError("switch_generation: the trained selector needs dev items")
        tokens = rollouts = 0
        for item, prompt in zip(items, prompts_for(items), strict=True):
            policies = [lambda k, prev, n=n: n for n in names]
            for _ in range(self.params.random_rollouts):
                draws = rng.integers(0, len(names), size=1024)
                policies.append(lambda k, prev, d=draws: names[int(d[k % len(d)])])
            for policy in policies:
                text, writers, cursors = switch_decode(
                    engines, prompt, policy, self.params.patch_tokens, ctx.decoding.max_new_tokens
                )
                selector.add(writers, float(score_output(item, text)))
                tokens += sum(c.spent_generated for c in cursors)
                rollouts += 1
        return selector, {"training_rollouts": rollouts, "training_generated_tokens": tokens}

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        names = [r.name for r in ctx.pool]
        engines = {r.name: ctx.engines.get(r) for r in ctx.pool}
        info: dict[str, Any] = {}
        with Timer() as timer:
            if self.params.selector == "trained":
                policy, info = self.train(ctx, engines)
            else:

                def policy(k: int, prev: str | None) -> str:
                    return names[k % len(names)]

        out = []
        for item, prompt in zip(ctx.items["test"], prompts_for(ctx.items["test"]), strict=True):
            text, writers, cursors = switch_decode(
                engines, prompt, policy, self.params.patch_tokens, ctx.decoding.max_new_tokens
            )
            out.append(
                prediction(
                    item.id,
                    text,
                    answered_by=writers[0],
                    writers=writers,
                    training_seconds=round(timer.seconds, 4),
                    **info,
                    **finish_costs(cursors),
                )
            )
        return out
