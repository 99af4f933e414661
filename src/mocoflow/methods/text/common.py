"""Helpers the text-level methods share (one module per level: ``methods/<level>/common.py``; the helpers
every level uses are in :mod:`mocoflow.methods.common`).

- **Costs** (:class:`Ledger`): per test item, the tokens an answer relied on. Reused shared generations count
  in ``prompt_tokens``/``generated_tokens`` (already paid by the generate jobs); text this method generates
  counts there too and in ``new_generated_tokens``.
- **Generation** (:func:`generate_by_model`): every round sends all of one model's prompts in ONE
  ``engine.generate`` call; engines come from ``ctx.engines`` (each model loaded once per job).
- **Prompts**: a question is always shown as :func:`mocoflow.data.prompts.build_prompt` gives it, so the
  answer-format instruction (the scoring contract) is the same as in the shared generations; peer answers
  are truncated to ``max_chars`` to bound prompt length.
- **Voting** (:func:`vote_index`): the most frequent parseable answer key; ties go to the supporter with the
  highest priority (dev accuracy, then pool order).
- **Judging** (:func:`pairwise_preferences`): a judge model compares two candidates by the log-probability
  of ``Answer: A`` vs ``Answer: B`` in both orders, which cancels position bias.
- **Message passing** (:func:`exchange_round`, :func:`final_vote`): one revision round of agents reading
  their peers, and the closing majority vote.

Training loops (SFT, DPO) live in :mod:`mocoflow.training.finetune`; the scripted test engine in
:mod:`mocoflow.testing`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mocoflow.data.prompts import build_prompt
from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig, Engine, Generation
from mocoflow.methods.base import RunContext
from mocoflow.methods.common import answer_key, dev_accuracy, pool_member, reliance_from_counts
from mocoflow.models import ModelRef

__all__ = ["FINAL_LINE", "Ledger", "answer_key", "best_model", "candidates_prompt", "clip", "decide_winners",
           "dev_priority", "exchange_round", "final_vote", "generate_by_model", "judge_prompt",
           "pairwise_preferences", "peers_block", "record_training", "refine_prompt", "round0",
           "vote_index", "with_seed"]

log = logging.getLogger("mocoflow.methods.text")

FINAL_LINE = "End with the final answer line in the format the question asks for."


# -- costs ----------------------------------------------------------------------------------------------

class Ledger:
    """Token costs per item id."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.rows = {i: {"prompt_tokens": 0, "generated_tokens": 0, "new_generated_tokens": 0} for i in ids}

    def reuse(self, item_id: str, record: dict[str, Any]) -> None:
        row = self.rows[item_id]
        row["prompt_tokens"] += int(record.get("prompt_tokens", 0))
        row["generated_tokens"] += int(record.get("generated_tokens", 0))

    def new(self, item_id: str, gen: Generation) -> None:
        row = self.rows[item_id]
        row["prompt_tokens"] += int(gen.prompt_tokens)
        row["generated_tokens"] += int(gen.generated_tokens)
        row["new_generated_tokens"] += int(gen.generated_tokens)

    def prompt_only(self, item_id: str, tokens: int) -> None:
        self.rows[item_id]["prompt_tokens"] += int(tokens)

    def __getitem__(self, item_id: str) -> dict[str, int]:
        return dict(self.rows[item_id])


# -- pool helpers -----------------------------------------------------------------------------------------

def round0(ctx: RunContext, split: str, items: list[Item], ledger: Ledger | None = None
           ) -> dict[str, list[str]]:
    """Every pool model's shared generation per item (never regenerated); costs go to ``ledger``."""
    out: dict[str, list[str]] = {}
    for ref in ctx.pool:
        recs = [ctx.gen(ref.name, split, item.id) for item in items]
        if ledger is not None:
            for item, rec in zip(items, recs, strict=True):
                ledger.reuse(item.id, rec)
        out[ref.name] = [str(r["output"]) for r in recs]
    return out


def dev_priority(ctx: RunContext) -> dict[str, tuple[float, int]]:
    """Per model: (dev accuracy, -pool index), larger is better; dev accuracy is 0 without a dev split."""
    acc = dev_accuracy(ctx) if ctx.items.get("dev") else {r.name: 0.0 for r in ctx.pool}
    return {ref.name: (acc[ref.name], -i) for i, ref in enumerate(ctx.pool)}


def best_model(ctx: RunContext, name: str | None = None) -> ModelRef:
    """``name`` if given, else the pool's best model on dev (ties: earlier in pool order)."""
    if name is not None:
        return pool_member(ctx.pool, name, f"{ctx.run}: model")
    prio = dev_priority(ctx)
    return max(ctx.pool, key=lambda r: prio[r.name])


def generate_by_model(ctx: RunContext, refs: dict[str, ModelRef], jobs: dict[str, list[str]],
                      decoding: DecodingConfig | None = None, progress: str | None = None
                      ) -> dict[str, list[Generation]]:
    """One ``generate`` call per model with all of its prompts; ``jobs`` maps model key -> prompts."""
    out: dict[str, list[Generation]] = {}
    for key, prompts in jobs.items():
        if not prompts:
            out[key] = []
            continue
        engine = ctx.engines.get(refs[key])
        out[key] = engine.generate(prompts, decoding or ctx.decoding,
                                   progress=f"{progress or ctx.run}: {key}")
    return out


# -- answers and voting -------------------------------------------------------------------------------------

def vote_index(keys: Sequence[str | None], priority: Sequence[Any]) -> int | None:
    """Index of the winning answer: most frequent parseable key; ties between keys (and the choice of
    supporter) go to the highest ``priority``. None when every key is None."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    top = max(counts.values())
    candidates = [i for i, k in enumerate(keys) if k is not None and counts[k] == top]
    return max(candidates, key=lambda i: priority[i])


def decide_winners(ctx: RunContext, preds: list[dict[str, Any]], *, voted: bool = True) -> list[dict[str, Any]]:
    """Record what decided the final answers and return ``preds``. After a vote (``voted``): ``reliance``,
    the share of items on which each pool model's answer won (``answered_by``). Otherwise one model wrote
    every final answer from everyone's answers (a summariser, the best agent): ``final_writer`` only, since
    the answers still rest on the whole pool."""
    if voted:
        ctx.decide(reliance=reliance_from_counts([r.name for r in ctx.pool], [p["answered_by"] for p in preds]))
    else:
        ctx.decide(final_writer=sorted({p["answered_by"] for p in preds}))
    return preds


def clip(text: str, max_chars: int) -> str:
    text = text.strip()
    return text if len(text) <= max_chars else text[:max_chars].rstrip() + " ..."


# -- prompts --------------------------------------------------------------------------------------------------

def peers_block(answers: Sequence[str], max_chars: int, label: str = "Agent") -> str:
    return "\n\n".join(f"{label} {k + 1}: {clip(a, max_chars)}" for k, a in enumerate(answers))


def refine_prompt(item: Item, own: str | None, peers: Sequence[str], max_chars: int) -> str:
    """Debate-style revision: the question, the agent's previous answer and its peers' answers."""
    parts = [build_prompt(item)]
    if own is not None:
        parts.append(f"Your previous answer: {clip(own, max_chars)}")
    if peers:
        parts.append("Answers from other agents:\n\n" + peers_block(peers, max_chars))
    parts.append("Using these answers as additional information, reconsider the question and give your "
                 f"updated answer. {FINAL_LINE}")
    return "\n\n".join(parts)


def candidates_prompt(item: Item, candidates: Sequence[str], max_chars: int, task: str) -> str:
    return "\n\n".join([build_prompt(item), "Candidate answers:\n\n" + peers_block(candidates, max_chars,
                                                                                    "Candidate"),
                        f"{task} {FINAL_LINE}"])


def judge_prompt(item: Item, first: str, second: str, max_chars: int) -> str:
    return (f"{build_prompt(item)}\n\nWhich response answers the question above better?\n\n"
            f"Response A: {clip(first, max_chars)}\n\nResponse B: {clip(second, max_chars)}\n\n"
            "Reply 'Answer: A' or 'Answer: B'.")


# -- judging --------------------------------------------------------------------------------------------------

def pairwise_preferences(engine: Engine, items: list[Item], pairs: list[tuple[int, str, str]],
                         max_chars: int) -> list[float]:
    """For each (item index, x, y): the judge's margin for x over y, averaged over both presentation
    orders, so a judge that only prefers a position gives 0. One ``score_continuations`` call."""
    prompts, conts = [], []
    for idx, x, y in pairs:
        for first, second in ((x, y), (y, x)):
            p = judge_prompt(items[idx], first, second, max_chars)
            prompts += [p, p]
            conts += ["Answer: A", "Answer: B"]
    if not prompts:
        return []
    s = engine.score_continuations(prompts, conts)
    out = []
    for k in range(len(pairs)):
        a1, b1, a2, b2 = s[4 * k: 4 * k + 4]
        out.append(((a1 - b1) + (b2 - a2)) / 2)  # x shown first, then x shown second
    return out


# -- decoding and training costs -------------------------------------------------------------------------------

def with_seed(decoding: DecodingConfig, seed: int, temperature: float) -> DecodingConfig:
    return replace(decoding, seed=seed, temperature=temperature)


def record_training(ctx: RunContext, ref: ModelRef, seconds: float) -> None:
    """Add training wall time to the job's usage (``usage.json`` sums the loaded engines)."""
    ctx.engines.get(ref).record(training_seconds=seconds)


# -- message passing --------------------------------------------------------------------------------------------

def exchange_round(ctx: RunContext, items: list[Item], agents: list[ModelRef], answers: list[list[str]],
                   readers: list[list[int]], ledger: Ledger | None, max_chars: int,
                   active: list[bool] | None = None, progress: str | None = None) -> list[list[str]]:
    """One revision round: agent ``k`` (backed by ``agents[k]``) reads the answers of ``readers[k]`` and its
    own, and revises. Agents that read nobody, and inactive items, keep their answer. All prompts of one
    model go out in one ``generate`` call. ``answers[k][i]`` is agent k's answer to item i."""
    jobs: dict[str, list[str]] = {}
    slots: dict[str, list[tuple[int, int]]] = {}
    refs = {a.name: a for a in agents}
    for k, agent in enumerate(agents):
        if not readers[k]:
            continue
        for i, item in enumerate(items):
            if active is not None and not active[i]:
                continue
            prompt = refine_prompt(item, answers[k][i], [answers[j][i] for j in readers[k]], max_chars)
            jobs.setdefault(agent.name, []).append(prompt)
            slots.setdefault(agent.name, []).append((k, i))
    gens = generate_by_model(ctx, refs, jobs, progress=progress)
    new = [list(row) for row in answers]
    for name, slot in slots.items():
        for (k, i), g in zip(slot, gens[name], strict=True):
            new[k][i] = g.text
            if ledger is not None:
                ledger.new(items[i].id, g)
    return new


def final_vote(ctx: RunContext, items: list[Item], agents: list[ModelRef], answers: list[list[str]]
               ) -> list[tuple[str, str]]:
    """Per item: (winning answer text, agent model name) by majority over answer keys; ties go to the agent
    whose model is best on dev, then the earlier agent. Unparseable everywhere: the first agent's text."""
    prio = dev_priority(ctx)
    out = []
    for i, item in enumerate(items):
        keys = [answer_key(item, answers[k][i]) for k in range(len(agents))]
        win = vote_index(keys, [(prio.get(a.name, (0.0, 0)), -k) for k, a in enumerate(agents)])
        k = 0 if win is None else win
        out.append((answers[k][i], agents[k].name))
    return out
