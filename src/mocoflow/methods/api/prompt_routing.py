"""Prompt routing: a pool model reads each query and a numbered list of model descriptions and names the
model that should answer; that model's shared test generation is the answer.

The router is the pool's best model on dev (or ``router``). A model's description is its config/card
``description`` when given, else one built from facts the pipeline knows: parameter count and dev accuracy.
The router generates a short reply (new tokens, counted); the first model number (or model name) in it
wins; an unparseable reply routes to the router itself (``route_parsed`` = False).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.api.common import pool_ref, question_text
from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.common import best_on_dev, dev_accuracy, reliance_from_counts

TEMPLATE = (
    "You are a router. Pick the model most likely to answer the question correctly.\n\n"
    "Models:\n{models}\n\nQuestion:\n{question}\n\n"
    "Reply with the number of the best model only, e.g. 'Model: 1'."
)


@dataclass(frozen=True)
class PromptRoutingParams:
    """router: pool model that routes (None = best on dev). max_new_tokens: router reply length."""

    router: str | None = None
    max_new_tokens: int = 8


def describe(ref: Any, dev_acc: float | None) -> str:
    text = ref.spec.get("description") or ref.card.get("description")
    if text:
        return str(text)
    parts = []
    if ref.card.get("parameters"):
        parts.append(f"{int(ref.card['parameters']):,} parameters")
    if dev_acc is not None:
        parts.append(f"{100 * dev_acc:.0f}% correct on similar questions")
    return ", ".join(parts) or "a language model"


def parse_route(reply: str, names: list[str]) -> int | None:
    """Index of the routed model: the first number 1..n in the reply, else the first model name in it."""
    for m in re.finditer(r"\d+", reply):
        k = int(m.group())
        if 1 <= k <= len(names):
            return k - 1
    low = reply.lower()
    hits = [(low.find(n.lower()), i) for i, n in enumerate(names) if n.lower() in low]
    return min(hits)[1] if hits else None


@register
class PromptRouting(Method):
    name = "prompt_routing"
    level = "api"
    needs = frozenset({Need.TEST_GENERATIONS, Need.DEV_GENERATIONS, Need.MODELS})
    Params = PromptRoutingParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        from dataclasses import replace

        acc = dev_accuracy(ctx) if ctx.items.get("dev") else {}
        router = pool_ref(ctx, self.params.router, best_on_dev(ctx) if acc else ctx.pool[0].name)
        names = [r.name for r in ctx.pool]
        models = "\n".join(f"{k + 1}. {describe(r, acc.get(r.name))}" for k, r in enumerate(ctx.pool))
        test = ctx.items["test"]
        prompts = [TEMPLATE.format(models=models, question=question_text(i)) for i in test]
        engine = ctx.engines.get(router)
        replies = engine.generate(prompts, replace(ctx.decoding, max_new_tokens=self.params.max_new_tokens))
        out = []
        for item, reply in zip(test, replies, strict=True):
            k = parse_route(reply.text, names)
            name = names[k] if k is not None else router.name
            rec = ctx.gen(name, "test", item.id)
            out.append(
                prediction(
                    item.id,
                    rec["output"],
                    answered_by=name,
                    router=router.name,
                    route_parsed=k is not None,
                    prompt_tokens=int(rec["prompt_tokens"]) + reply.prompt_tokens,
                    generated_tokens=int(rec["generated_tokens"]) + reply.generated_tokens,
                    new_generated_tokens=reply.generated_tokens,
                )
            )
        ctx.decide(kind="router", router=router.name,
                   reliance=reliance_from_counts(names, [p["answered_by"] for p in out]),
                   route_parsed=sum(p["route_parsed"] for p in out) / max(1, len(out)))
        return out
