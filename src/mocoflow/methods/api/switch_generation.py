"""Switch generation: pool models take turns writing patches of ``patch_tokens`` tokens of one answer;
before each patch a selector decides, from the question and the text written so far, which model writes it.

The default selector (``selector: trained``) is trained on dev rollouts scored by the task's gold scorer: for
each of the first ``max_train_items`` dev items, one rollout per model writing every patch plus
``random_rollouts`` rollouts with a seeded random writer per patch. Every decision of a rollout (the state:
question with its options, the text so far and the patch index; the writer chosen) is credited with the
rollout's reward (1 if the final answer is correct). The state is embedded (``embedder``: a
sentence-transformers model such as the config's ``minilm``, or the deterministic ``tfidf``/``hash``
fallbacks, as for the trained router, plus the patch index), and one L2 logistic regression per model
predicts P(correct | state, that model writes next). At test time each patch goes to the model with the
highest prediction; ties go to the better model on dev, then pool order. So items of different kinds get
different writer schedules. ``selector: round_robin`` cycles through the pool instead.

Models exchange text (each re-tokenises the others' patches); when the pool mixes tokenizers a patch runs
past ``patch_tokens`` to the end of its current word, so whole words are exchanged. Rollouts and test items
decode in lockstep batches (``Stepper``, ``decoding.batch_size`` rows at a time); every answer is what it
would be alone. Rollout work is training cost (``training_seconds``, ``training_generated_tokens``).
Decisions: ``schedules`` (writer per patch, per test item) and ``reliance`` (share of patches per model).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mocoflow.data.schema import Item
from mocoflow.methods.api.common import (
    Featurizer,
    Timer,
    chunks,
    fit_logistic,
    pick,
    predict_logistic,
    question_text,
    stepped_costs,
)
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, prompts_for

# (rows, patch index, text so far per row) -> writer per row
Choose = Callable[[list[int], int, list[str]], list[str]]


@dataclass(frozen=True)
class SwitchParams:
    """patch_tokens: tokens per patch. selector: "trained" or "round_robin".
    embedder: state features for the trained selector (sentence-transformers dir, a model name with
    ``{models_dir}/{name}/card.json``, or "tfidf"/"hash"; default "minilm", tfidf when not built).
    models_dir: where model cards live. l2: logistic-regression penalty.
    max_train_items / random_rollouts / seed: dev rollouts for the trained selector."""

    patch_tokens: int = 8
    selector: str = "trained"
    embedder: str = "minilm"
    models_dir: str = "results/models"
    l2: float = 0.01
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


@dataclass
class Switched:
    """One answer: text, writer per patch, the text before each patch, and costs."""

    text: str = ""
    writers: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    cost: dict[str, int] = field(default_factory=dict)


def n_patches(max_new_tokens: int, patch_tokens: int) -> int:
    return max(1, math.ceil(max_new_tokens / patch_tokens))


def switch_decode(engines: dict[str, Any], prompts: list[str], choose: Choose, patch_tokens: int,
                  max_new_tokens: int, *, whole_words: bool = False) -> list[Switched]:
    """Write every prompt's answer patch by patch, all rows in lockstep: each round ``choose`` names a
    writer per row, and each model writes its rows' patches together."""
    from mocoflow.engines.stepper import greedy_patches, open_steppers

    names = list(engines)
    steppers = dict(zip(names, open_steppers([engines[n] for n in names], prompts), strict=True))
    res = [Switched() for _ in prompts]
    active = list(range(len(prompts)))
    for k in range(n_patches(max_new_tokens, patch_tokens)):
        if not active:
            break
        picks = choose(active, k, [res[r].text for r in active])
        ended: set[int] = set()
        for name in names:
            rows = [r for r, w in zip(active, picks, strict=True) if w == name]
            if not rows:
                continue
            st = steppers[name]
            st.sync({r: res[r].text for r in rows})
            patches = greedy_patches(st, rows, patch_tokens, finish_word=whole_words)
            for r in rows:
                res[r].writers.append(name)
                res[r].prefixes.append(res[r].text)
                res[r].text += patches[r].text
                if patches[r].ended:
                    ended.add(r)
        for st in steppers.values():
            st.release(sorted(ended))
        active = [r for r in active if r not in ended]
    for r, out in enumerate(res):
        out.cost = stepped_costs(list(steppers.values()), r)
    return res


def state_text(question: str, text: str) -> str:
    """What the selector reads: the question (with options) and the answer so far."""
    return f"{question}\n\nAnswer so far: {text}"


class TrainedSelector:
    """One logistic regression per model on embedded states: P(final answer correct | state, model writes)."""

    def __init__(self, names: list[str], tiebreak: dict[str, float], featurizer: Featurizer, horizon: int,
                 l2: float) -> None:
        self.names, self.tiebreak, self.featurizer = names, tiebreak, featurizer
        self.horizon, self.l2 = max(horizon, 1), l2
        self.models: dict[str, tuple[np.ndarray, float]] = {}

    def features(self, states: list[str], k: int | list[int]) -> np.ndarray:
        ks = k if isinstance(k, list) else [k] * len(states)
        x = self.featurizer.transform(states)
        return np.column_stack([x, np.asarray(ks, dtype=np.float64) / self.horizon])

    def fit(self, decisions: list[tuple[str, int, str, float]]) -> TrainedSelector:
        """``decisions``: (state text, patch index, writer, reward) from dev rollouts."""
        self.featurizer.fit([s for s, _, _, _ in decisions])
        for name in self.names:
            mine = [d for d in decisions if d[2] == name]
            if not mine:
                continue
            x = self.features([s for s, _, _, _ in mine], [k for _, k, _, _ in mine])
            self.models[name] = fit_logistic(x, np.array([r for _, _, _, r in mine]), l2=self.l2)
        return self

    def probabilities(self, states: list[str], k: int) -> np.ndarray:
        x = self.features(states, k)
        cols = [predict_logistic(x, self.models[n]) if n in self.models else np.zeros(len(states))
                for n in self.names]
        return np.column_stack(cols)

    def choose(self, states: list[str], k: int) -> list[str]:
        probs = self.probabilities(states, k)
        return [pick(dict(zip(self.names, row.tolist(), strict=True)), self.tiebreak, self.names)
                for row in probs]


@register
class SwitchGeneration(Method):
    name = "switch_generation"
    level = "api"
    needs = frozenset({Need.MODELS, Need.DEV_GENERATIONS})
    Params = SwitchParams

    def rollout_schedules(self, names: list[str], n_items: int, horizon: int) -> list[list[str]]:
        """Per dev item (in order): one fixed schedule per model, then the seeded random ones."""
        rng = np.random.default_rng(self.params.seed)
        out = []
        for _ in range(n_items):
            out.append([[n] * horizon for n in names] + [
                [names[int(i)] for i in rng.integers(0, len(names), size=horizon)]
                for _ in range(self.params.random_rollouts)])
        return [s for per_item in out for s in per_item]

    def train(self, ctx: RunContext, engines: dict[str, Any], whole_words: bool
              ) -> tuple[TrainedSelector, dict[str, Any]]:
        names = [r.name for r in ctx.pool]
        items = ctx.items["dev"][: self.params.max_train_items]
        if not items:
            raise MethodError("switch_generation: the trained selector needs dev items")
        horizon = n_patches(ctx.decoding.max_new_tokens, self.params.patch_tokens)
        schedules = self.rollout_schedules(names, len(items), horizon)
        per_item = len(schedules) // len(items)
        row_items: list[Item] = [item for item in items for _ in range(per_item)]
        prompts = prompts_for(row_items)
        decisions: list[tuple[str, int, str, float]] = []
        tokens = 0
        for batch in chunks(len(row_items), ctx.decoding.batch_size):

            def fixed(rows: list[int], k: int, texts: list[str], start: int = batch.start) -> list[str]:
                return [schedules[start + r][k] for r in rows]

            results = switch_decode(engines, [prompts[i] for i in batch], fixed, self.params.patch_tokens,
                                    ctx.decoding.max_new_tokens, whole_words=whole_words)
            for i, res in zip(batch, results, strict=True):
                item = row_items[i]
                reward = float(ctx.score(item, res.text))
                for k, (writer, prefix) in enumerate(zip(res.writers, res.prefixes, strict=True)):
                    decisions.append((state_text(question_text(item), prefix), k, writer, reward))
                tokens += res.cost["generated_tokens"]
        featurizer = Featurizer(self.params.embedder, self.params.models_dir)
        selector = TrainedSelector(names, dev_accuracy(ctx), featurizer, horizon, self.params.l2).fit(decisions)
        return selector, {"training_rollouts": len(row_items), "training_generated_tokens": tokens,
                          "selector_features": featurizer.kind}

    def decode_items(self, items: list[Item], engines: dict[str, Any],
                     choose_states: Callable[[list[str], int], list[str]], batch_size: int, max_new_tokens: int,
                     whole_words: bool) -> list[Switched]:
        """Decode ``items`` in lockstep batches with a selector ``choose_states(states, k) -> writers``."""
        prompts = prompts_for(items)
        questions = [question_text(i) for i in items]
        out: list[Switched] = []
        for batch in chunks(len(items), batch_size):

            def choose(active: list[int], k: int, texts: list[str], start: int = batch.start) -> list[str]:
                states = [state_text(questions[start + r], t) for r, t in zip(active, texts, strict=True)]
                return choose_states(states, k)

            out += switch_decode(engines, [prompts[i] for i in batch], choose, self.params.patch_tokens,
                                 max_new_tokens, whole_words=whole_words)
        return out

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        names = [r.name for r in ctx.pool]
        engines = {r.name: ctx.engines.get(r) for r in ctx.pool}
        whole_words = len({str(r.card.get("tokenizer")) for r in ctx.pool}) > 1
        info: dict[str, Any] = {}
        with Timer() as timer:
            if self.params.selector == "trained":
                selector, info = self.train(ctx, engines, whole_words)
                choose_states = selector.choose
            else:

                def choose_states(states: list[str], k: int) -> list[str]:
                    return [names[k % len(names)]] * len(states)

        items = ctx.items["test"]
        results = self.decode_items(items, engines, choose_states, ctx.decoding.batch_size,
                                    ctx.decoding.max_new_tokens, whole_words)
        patches = [w for r in results for w in r.writers]
        ctx.decide(schedules={item.id: r.writers for item, r in zip(items, results, strict=True)},
                   reliance={n: patches.count(n) / max(len(patches), 1) for n in names},
                   selector=self.params.selector, **({"selector_features": info["selector_features"]}
                                                      if "selector_features" in info else {}))
        return [prediction(item.id, r.text, answered_by=r.writers[0] if r.writers else names[0],
                           writers=r.writers, training_seconds=round(timer.seconds, 4), **info, **r.cost)
                for item, r in zip(items, results, strict=True)]
