"""Co-LLM: a generator decodes token by token and, per token, a learned deferral head on its last hidden
state decides whether the assistant model writes that token instead.

Training on the task's dev split (never an external set): each dev item's reference completion is a pool
model's shared dev generation that the task's gold scorer marks correct (the assistant's first, then the
generator's, then the others'), else, as in the paper (which teacher-forces the training set's gold
solutions), the dev gold answer written in the scorers' answer format (``training.lora.answer_text``); only
items with neither (no correct generation and no gold the format can express) are skipped. Teacher-forcing
the reference through both models, a token is labelled "defer" when the assistant gives it a higher
probability than the generator (Co-LLM's weak-supervision initialisation), and an L2 logistic regression on
the generator's hidden state before that token learns the labels.

Decoding defers where P(defer) >= ``threshold``; the assistant's KV cache catches up only when it is
consulted. One tokenizer is required (tokens are exchanged). Training and decoding run the items in
lockstep batches (``Stepper``); every answer is what it would be alone.
Decisions: the roles, ``defer_rate`` (share of test tokens the assistant wrote; ``defer_rate_dev``: the
labels' rate) and ``reliance`` (generator 1 - rate, assistant rate).
Defaults: generator = the pool's smallest model, assistant = the best on dev among the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mocoflow.methods.api.common import Timer, by_size, chunks, fit_logistic, pool_ref, stepped_costs
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, prompts_for
from mocoflow.training.lora import answer_text


@dataclass(frozen=True)
class CoLLMParams:
    """generator / assistant: pool model names (None = smallest / best on dev among the rest).
    threshold: defer when P(defer) >= threshold. l2: deferral head penalty.
    max_train_items: dev items used for training (first ones in split order)."""

    generator: str | None = None
    assistant: str | None = None
    threshold: float = 0.5
    l2: float = 0.01
    max_train_items: int = 64


def teacher_forced(engine: Any, prompts: list[str], continuations: list[str], hidden: bool
                   ) -> list[tuple[np.ndarray, np.ndarray | None, list[int]]]:
    """Per prompt: the log-prob of each continuation token (eos appended) given the prompt and the tokens
    before it, and (optionally) the hidden state that predicted it; all rows in one lockstep batch."""
    from mocoflow.engines.stepper import open_steppers

    (stepper,) = open_steppers([engine], prompts, hidden=hidden)
    tails = [stepper.encode(c) + [stepper.eos_token] for c in continuations]
    scored = stepper.score_tokens(dict(enumerate(tails)), hidden=hidden)
    out = []
    for r, tail in enumerate(tails):
        lps, hs = scored[r]
        out.append((np.asarray(lps, dtype=np.float64), None if hs is None else hs.cpu().numpy(), tail))
    return out


@dataclass
class Deferred:
    """One Co-LLM answer: token ids (eos included when reached), deferred per token, costs."""

    tokens: list[int] = field(default_factory=list)
    deferred: list[bool] = field(default_factory=list)
    text: str = ""
    cost: dict[str, int] = field(default_factory=dict)


def defer_labels(gen_lp: np.ndarray, asst_lp: np.ndarray) -> np.ndarray:
    """1 where the assistant predicts the reference token better than the generator."""
    return (asst_lp > gen_lp).astype(np.float64)


@register
class CoLLM(Method):
    name = "co_llm"
    level = "api"
    needs = frozenset({Need.MODELS, Need.DEV_GENERATIONS, Need.SAME_TOKENIZER})
    Params = CoLLMParams

    def roles(self, ctx: RunContext) -> tuple[Any, Any]:
        gen = pool_ref(ctx, self.params.generator, by_size(ctx)[0])
        acc = dev_accuracy(ctx)
        others = [r.name for r in ctx.pool if r.name != gen.name]
        if not others:
            raise MethodError("co_llm needs two models (generator and assistant)")
        asst = pool_ref(ctx, self.params.assistant, max(others, key=lambda n: (acc[n], -others.index(n))))
        return gen, asst

    def train(self, ctx: RunContext, gen: Any, asst: Any) -> tuple[tuple[np.ndarray, float], dict[str, Any]]:
        eg, ea = ctx.engines.get(gen), ctx.engines.get(asst)
        order = [asst.name, gen.name] + [r.name for r in ctx.pool if r.name not in (asst.name, gen.name)]
        items, refs = [], []
        for item in ctx.items["dev"][: self.params.max_train_items]:
            # reference continuation: a correct pool answer (in the models' own style), else the gold answer
            # written in the scorers' answer format; an item with neither is skipped
            ref = next((ctx.gen(n, "dev", item.id)["output"] for n in order
                        if ctx.score(item, ctx.gen(n, "dev", item.id)["output"])), None) or answer_text(item)
            if ref is not None:
                items.append(item)
                refs.append(ref)
        if not items:
            raise MethodError("co_llm: no dev item has a reference answer (a correct pool answer or a gold answer) "
                              "to learn deferral from")
        xs, ys = [], []
        for batch in chunks(len(items), ctx.decoding.batch_size):
            prompts = prompts_for([items[i] for i in batch])
            conts = [refs[i] for i in batch]
            for (g_lp, hs, _), (a_lp, _, _) in zip(teacher_forced(eg, prompts, conts, hidden=True),
                                                   teacher_forced(ea, prompts, conts, hidden=False), strict=True):
                xs.append(hs)
                ys.append(defer_labels(g_lp, a_lp))
        x, y = np.concatenate(xs), np.concatenate(ys)
        return fit_logistic(x, y, l2=self.params.l2), {
            "train_items": len(items),
            "train_tokens": len(y),
            "defer_rate_dev": float(y.mean()),
        }

    def decode(self, eg: Any, ea: Any, head: tuple[np.ndarray, float], prompts: list[str], max_new_tokens: int
               ) -> list[Deferred]:
        """Decode ``prompts`` in lockstep: per token, the head on the generator's hidden state decides who
        writes it; the assistant reads the tokens it has not seen only when it is consulted."""
        from mocoflow.engines.stepper import open_steppers

        w, b = head
        (g,) = open_steppers([eg], prompts, hidden=True)
        (a,) = open_steppers([ea], prompts)
        res = [Deferred() for _ in prompts]
        fed_a = [0] * len(prompts)
        active = list(range(len(prompts)))
        for _ in range(max_new_tokens):
            if not active:
                break
            p = 1.0 / (1.0 + np.exp(-(g.hidden(active).cpu().numpy().astype(np.float64) @ w + b)))
            defer = [r for r, pr in zip(active, p, strict=True) if pr >= self.params.threshold]
            own = [r for r in active if r not in set(defer)]
            a.feed_tokens({r: res[r].tokens[fed_a[r]:] for r in defer})
            chosen = dict(zip(defer, (t for t, _ in a.top(defer)), strict=True))
            chosen.update(zip(own, (t for t, _ in g.top(own)), strict=True))
            a.count_generated(defer)
            deferring = set(defer)
            for r in active:
                if r in deferring:
                    fed_a[r] = len(res[r].tokens)  # its own choice is read at its next consultation
                res[r].tokens.append(chosen[r])
                res[r].deferred.append(r in deferring)
            done = [r for r in active if chosen[r] in g.eos]
            g.count_generated([r for r in done if r in set(own)])
            g.advance(tokens={r: chosen[r] for r in own if r not in set(done)},
                      foreign={r: [chosen[r]] for r in defer if r not in set(done)})
            active = [r for r in active if r not in set(done)]
            for r in done:
                res[r].cost = stepped_costs([g, a], r)
            g.release(done)
            a.release(done)
        for r in active:
            res[r].cost = stepped_costs([g, a], r)
        for r in res:
            r.text = g.decode(r.tokens)
        return res

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        gen, asst = self.roles(ctx)
        with Timer() as timer:
            head, info = self.train(ctx, gen, asst)
        eg, ea = ctx.engines.get(gen), ctx.engines.get(asst)
        items = ctx.items["test"]
        prompts = prompts_for(items)
        results: list[Deferred] = []
        for batch in chunks(len(items), ctx.decoding.batch_size):
            results += self.decode(eg, ea, head, [prompts[i] for i in batch], ctx.decoding.max_new_tokens)
        n_deferred = sum(sum(r.deferred) for r in results)
        rate = n_deferred / max(sum(len(r.tokens) for r in results), 1)
        ctx.decide(roles={"generator": gen.name, "assistant": asst.name}, defer_rate=rate,
                   defer_rate_dev=info["defer_rate_dev"], reliance={gen.name: 1.0 - rate, asst.name: rate})
        return [prediction(item.id, r.text, answered_by=gen.name, assistant=asst.name,
                           deferred_tokens=sum(r.deferred), training_seconds=round(timer.seconds, 4), **info,
                           **r.cost)
                for item, r in zip(items, results, strict=True)]
