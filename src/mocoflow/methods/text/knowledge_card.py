"""Knowledge card (Feng et al. 2024, "Knowledge Card: Filling LLMs' Knowledge Gaps with Plug-in
Specialized Language Models"; MoCo ``knowledge_card``).

Every pool model writes a short knowledge paragraph for each test question (one ``generate`` call per
model, told not to answer); the final answerer (the pool's best model on dev, or ``answerer``) reads the
question with all the paragraphs and answers. The shared round-0 answers are not used: the method's first
round is a different text (knowledge, not answers), so nothing is reused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mocoflow.data.prompts import build_prompt
from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.text.common import FINAL_LINE, Ledger, best_model, clip, generate_by_model


@dataclass(frozen=True)
class KnowledgeCardParams:
    """answerer: pool model that answers (None = best on dev).
    knowledge_tokens: max new tokens of each knowledge paragraph (None = the study's max_new_tokens).
    max_chars: characters kept of each paragraph in the answerer's prompt (default 500).
    """

    answerer: str | None = None
    knowledge_tokens: int | None = None
    max_chars: int = 500


def knowledge_prompt(item: Any) -> str:
    return (f"{item.question.strip()}\n\nWrite a short paragraph of background knowledge that helps answer "
            "this question. Give facts only; do not answer the question.")


def answer_prompt(item: Any, cards: list[str], max_chars: int) -> str:
    block = "\n\n".join(f"Knowledge {k + 1}: {clip(c, max_chars)}" for k, c in enumerate(cards))
    return f"{block}\n\n{build_prompt(item)}\n\nUse the knowledge above if it helps. {FINAL_LINE}"


@register
class KnowledgeCard(Method):
    name = "knowledge_card"
    level = "text"
    needs = frozenset({Need.DEV_GENERATIONS, Need.MODELS})
    Params = KnowledgeCardParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        p: KnowledgeCardParams = self.params
        items = ctx.items["test"]
        ledger = Ledger([i.id for i in items])
        refs = {r.name: r for r in ctx.pool}
        dec = ctx.decoding if p.knowledge_tokens is None else replace(ctx.decoding,
                                                                      max_new_tokens=p.knowledge_tokens)
        gens = generate_by_model(ctx, refs, {r.name: [knowledge_prompt(i) for i in items] for r in ctx.pool},
                                 dec, progress=f"{ctx.run} knowledge")
        for name in refs:
            for item, g in zip(items, gens[name], strict=True):
                ledger.new(item.id, g)
        answerer = best_model(ctx, p.answerer)
        prompts = [answer_prompt(item, [gens[r.name][i].text for r in ctx.pool], p.max_chars)
                   for i, item in enumerate(items)]
        final = ctx.engines.get(answerer).generate(prompts, ctx.decoding, progress=f"{ctx.run}: answer")
        out = []
        for item, g in zip(items, final, strict=True):
            ledger.new(item.id, g)
            out.append(prediction(item.id, g.text, answered_by=answerer.name, **ledger[item.id]))
        ctx.decide(final_writer=[answerer.name], knowledge_from=[r.name for r in ctx.pool])
        return out
