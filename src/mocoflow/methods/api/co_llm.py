"""Co-LLM: a generator decodes token by token and, per token, a learned deferral head on its last hidden
state decides whether the assistant model writes that token instead.

Training on the task's dev split (never an external set): each dev item's reference completion is a pool
model's shared dev generation that the task's gold scorer marks correct (the assistant's first, then the
generator's, then the others'; items without one are skipped). Teacher-forcing the reference through both
models, a token is labelled "defer" when the assistant gives it a higher probability than the generator
(Co-LLM's weak-supervision initialisation), and an L2 logistic regression on the generator's hidden state
before that token learns the labels. Decoding defers where P(defer) >= ``threshold``; the assistant's KV
cache catches up only when it is consulted. One tokenizer is required (tokens are exchanged).
Defaults: generator = the pool's smallest model, assistant = the best on dev among the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mocoflow.methods.api._shared import Cursor, Timer, by_size, finish_costs, fit_logistic, pool_ref
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, prompts_for, score_output
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


def teacher_forced(engine: Any, prompt: str, continuation: str, hidden: bool) -> tuple[Any, Any, list[int]]:
    """Log-probs of each continuation token and (optionally) the hidden state that predicted it."""
    import torch

    from mocoflow.engines.loader import encode_prompts

    head = encode_prompts(engine.tokenizer, [prompt])[0]
    tail = list(engine.tokenizer(continuation, add_special_tokens=False)["input_ids"]) + [
        int(engine.tokenizer.eos_token_id)
    ]
    ids = torch.tensor([head + tail], device=engine.device)
    with torch.no_grad():
        out = engine.model(input_ids=ids, output_hidden_states=hidden)
    logp = torch.log_softmax(out.logits[0, len(head) - 1 : -1].float(), -1)
    tok_lp = logp.gather(-1, ids[0, len(head) :, None]).squeeze(-1)
    hs = out.hidden_states[-1][0, len(head) - 1 : -1].float() if hidden else None
    engine.usage.prompt_tokens += ids.shape[1]
    engine.usage.calls += 1
    return tok_lp.cpu().numpy(), None if hs is None else hs.cpu().numpy(), tail


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
        xs, ys = [], []
        items = ctx.items["dev"][: self.params.max_train_items]
        used = 0
        for item, prompt in zip(items, prompts_for(items), strict=True):
            # reference continuation: a correct pool answer (in the models' own style), else the gold answer
            # written in the scorers' answer format
            ref = next(
                (
                    ctx.gen(n, "dev", item.id)["output"]
                    for n in order
                    if score_output(item, ctx.gen(n, "dev", item.id)["output"])
                ),
                None,
            ) or answer_text(item)
            if ref is None:
                continue
            used += 1
            g_lp, hs, _ = teacher_forced(eg, prompt, ref, hidden=True)
            a_lp, _, _ = teacher_forced(ea, prompt, ref, hidden=False)
            xs.append(hs)
            ys.append(defer_labels(g_lp, a_lp))
        if not xs:
            raise MethodError("co_llm: no dev item has a reference answer (a correct pool answer or a gold answer) "
                              "to learn deferral from")
        x, y = np.concatenate(xs), np.concatenate(ys)
        return fit_logistic(x, y, l2=self.params.l2), {
            "train_items": used,
            "train_tokens": len(y),
            "defer_rate_dev": float(y.mean()),
        }

    def decode(
        self, eg: Any, ea: Any, head: tuple[np.ndarray, float], prompt: str, max_new_tokens: int
    ) -> tuple[list[int], list[bool], list[Cursor]]:
        """Returns (token ids, deferred per token, cursors)."""
        w, b = head
        g = Cursor(eg, prompt, hidden=True)
        a: Cursor | None = None
        tokens: list[int] = []
        deferred: list[bool] = []
        fed_a = 0
        for _ in range(max_new_tokens):
            p = 1.0 / (1.0 + np.exp(-(float(g.hidden.cpu().numpy() @ w) + b)))
            if p >= self.params.threshold:
                if a is None:
                    a = Cursor(ea, prompt)
                if fed_a < len(tokens):
                    a._forward(tokens[fed_a:])
                    fed_a = len(tokens)
                tok, _ = a.top()
                a.count_generated()
                deferred.append(True)
            else:
                tok, _ = g.top()
                g.count_generated()
                deferred.append(False)
            tokens.append(tok)
            if tok in g.eos:
                break
            g._forward([tok])
            if not deferred[-1]:  # its own token is counted as generated, not as prompt
                g.spent_prompt -= 1
                g.engine.usage.prompt_tokens -= 1
        return tokens, deferred, [c for c in (g, a) if c is not None]

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        gen, asst = self.roles(ctx)
        with Timer() as timer:
            head, info = self.train(ctx, gen, asst)
        eg, ea = ctx.engines.get(gen), ctx.engines.get(asst)
        out = []
        for item, prompt in zip(ctx.items["test"], prompts_for(ctx.items["test"]), strict=True):
            tokens, deferred, cursors = self.decode(eg, ea, head, prompt, ctx.decoding.max_new_tokens)
            body = [t for t in tokens if t not in cursors[0].eos]
            text = eg.tokenizer.decode(body, skip_special_tokens=True)
            out.append(
                prediction(
                    item.id,
                    text,
                    answered_by=gen.name,
                    assistant=asst.name,
                    deferred_tokens=sum(deferred),
                    training_seconds=round(timer.seconds, 4),
                    **info,
                    **finish_costs(cursors),
                )
            )
        return out
