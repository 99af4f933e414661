"""Helpers the text-level methods share.

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
- **Training** (:class:`TrainBudget`, :func:`sft_lora`, :func:`dpo_lora`): small seeded LoRA fine-tunes of
  an in-memory copy of a loaded engine's model (no extra disk load), merged and saved so the tuned model is
  loaded like any model (own fingerprint, so the response cache never mixes it with its base).
- **Tests** (:class:`ScriptedEngine`): a deterministic stand-in engine whose replies are a function of the
  prompt, to test methods' logic without real models.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mocoflow.data.prompts import build_prompt
from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig, Engine, Generation, Usage
from mocoflow.methods.base import MethodError, RunContext
from mocoflow.models import ModelRef
from mocoflow.training.lora import _prompt_head, batch_cycler, right_padded_batch

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

def ref_by_name(ctx: RunContext, name: str | None) -> ModelRef | None:
    if name is None:
        return None
    for ref in ctx.pool:
        if ref.name == name:
            return ref
    raise MethodError(f"{ctx.run}: model {name!r} is not in pool {ctx.pool_name!r} "
                      f"({', '.join(r.name for r in ctx.pool)})")


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
    from mocoflow.methods.common import dev_accuracy

    acc = dev_accuracy(ctx) if ctx.items.get("dev") else {r.name: 0.0 for r in ctx.pool}
    return {ref.name: (acc[ref.name], -i) for i, ref in enumerate(ctx.pool)}


def best_model(ctx: RunContext, name: str | None = None) -> ModelRef:
    """``name`` if given, else the pool's best model on dev (ties: earlier in pool order)."""
    if name is not None:
        ref = ref_by_name(ctx, name)
        assert ref is not None
        return ref
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


def model_loads(ctx: RunContext) -> int:
    return sum(e.usage.model_loads for e in ctx.engines.loaded().values())


# -- answers and voting -------------------------------------------------------------------------------------

def answer_key(item: Item, text: str) -> str | None:
    """The gold-free answer key (``methods.common.answer_key``: format from the item's metadata)."""
    from mocoflow.methods.common import answer_key as key

    return key(item, text)


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
    from mocoflow.methods.common import reliance_from_counts

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


# -- a deterministic engine for tests ---------------------------------------------------------------------

class ScriptedEngine(Engine):
    """An engine whose reply to a prompt is ``respond(prompt)`` and whose continuation score is
    ``judge(prompt, continuation)`` (default 0). Token counts are whitespace word counts. Counts one model
    load at construction, and ``generate_calls``/``prompts_seen``/``requests`` (prompt, decoding) record what
    it was asked."""

    def __init__(self, name: str, respond: Callable[[str], str],
                 judge: Callable[[str, str], float] | None = None) -> None:
        self.name = name
        self.fingerprint = f"scripted-{name}"
        self.usage = Usage(model_loads=1)
        self.respond = respond
        self.judge = judge or (lambda p, c: 0.0)
        self.generate_calls = 0
        self.prompts_seen: list[str] = []
        self.requests: list[tuple[str, DecodingConfig]] = []

    def generate(self, prompts: list[str], decoding: DecodingConfig, *, progress: str | None = None
                 ) -> list[Generation]:
        self.generate_calls += 1
        self.prompts_seen += prompts
        self.requests += [(p, decoding) for p in prompts]
        out = []
        for p in prompts:
            text = self.respond(p) if not decoding.do_sample else self.respond(f"{p}\0seed={decoding.seed}")
            out.append(Generation(text, len(p.split()), max(1, len(text.split())), -1.0))
            self.usage.calls += 1
            self.usage.prompt_tokens += len(p.split())
            self.usage.generated_tokens += max(1, len(text.split()))
        return out

    def score_continuations(self, prompts: list[str], continuations: list[str]) -> list[float]:
        self.usage.prompt_tokens += sum(len(p.split()) for p in prompts)
        return [float(self.judge(p, c)) for p, c in zip(prompts, continuations, strict=True)]


# -- training ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainBudget:
    """A small seeded LoRA fine-tune. Defaults suit SmolLM2-135M on 2 CPU cores (roughly 5-10 s a step).

    steps: optimiser steps (AdamW, constant learning rate).
    batch_size: examples per step (seeded shuffle, cycled).
    lr: learning rate of the LoRA weights.
    rank / alpha: LoRA rank and scaling numerator; all linear layers but the head are adapted.
    max_length: prompt + response tokens; longer examples are dropped (never truncated).
    seed: torch and shuffling seed.
    """

    steps: int = 8
    batch_size: int = 4
    lr: float = 1e-3
    rank: int = 8
    alpha: int = 16
    max_length: int = 384
    seed: int = 0


def _encode(tokenizer: Any, prompt: str, response: str) -> tuple[list[int], int]:
    head = tokenizer(_prompt_head(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    tail = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return head + tail, len(head)


def _seq_logprob(model: Any, ids: Any, mask: Any, labels: Any) -> Any:
    """Sum of log-probabilities of the labelled (response) tokens, per row."""
    import torch

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    tgt = labels[:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * (tgt != -100)).sum(-1)


def _peft_copy(engine: Any, budget: TrainBudget) -> Any:
    from peft import LoraConfig, get_peft_model

    if not hasattr(engine, "model"):
        raise MethodError(f"{engine.name}: training needs a transformers engine (with .model)")
    base = copy.deepcopy(engine.model).float()
    config = LoraConfig(r=budget.rank, lora_alpha=budget.alpha, lora_dropout=0.0, target_modules="all-linear",
                        task_type="CAUSAL_LM", bias="none")
    return get_peft_model(base, config)


def _cycle(n: int, budget: TrainBudget) -> Callable[[], list[int]]:
    return batch_cycler(n, budget.batch_size, random.Random(budget.seed))


@dataclass
class Trained:
    """A saved tuned model: ``ref`` loads it like any model; ``seconds`` is the training wall time."""

    ref: ModelRef | None
    seconds: float
    examples: int
    losses: list[float]


def _save(model: Any, tokenizer: Any, out_dir: Path, name: str, base: ModelRef) -> ModelRef:
    out_dir.mkdir(parents=True, exist_ok=True)
    merged = model.merge_and_unload()
    merged.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    spec = {k: v for k, v in base.spec.items() if k not in ("path", "source")}
    return ModelRef(name=name, path=str(out_dir), card={**base.card, "name": name, "path": str(out_dir)},
                    spec=spec)


def _train_lora_copy(engine: Any, budget: TrainBudget, n_rows: int,
                     batch_loss: Callable[[Any, list[int]], Any]) -> tuple[Any, list[float]]:
    """AdamW on a LoRA copy of ``engine.model`` for ``budget.steps`` batches of row indices (seeded epochs);
    ``batch_loss(model, indices)`` gives each step's loss. Returns the model in eval mode and the losses."""
    import torch

    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(budget.seed)
        model = _peft_copy(engine, budget)
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=budget.lr)
        next_batch = _cycle(n_rows, budget)
        for _ in range(budget.steps):
            loss = batch_loss(model, next_batch())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    model.eval()
    return model, losses


def sft_lora(engine: Any, base: ModelRef, pairs: list[tuple[str, str]], budget: TrainBudget, out_dir: Path,
             name: str) -> Trained:
    """LoRA SFT of a copy of ``engine.model`` on (prompt, response) pairs, loss on response tokens only.
    Returns ``ref=None`` when no pair fits ``max_length`` (nothing trained)."""
    t0 = time.perf_counter()
    tok = engine.tokenizer
    rows = [r for r in (_encode(tok, p, c) for p, c in pairs) if len(r[0]) <= budget.max_length]
    if not rows:
        return Trained(None, 0.0, 0, [])
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def sft_loss(model: Any, batch: list[int]) -> Any:
        ids, mask, labels = right_padded_batch([rows[i] for i in batch], pad)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    model, losses = _train_lora_copy(engine, budget, len(rows), sft_loss)
    ref = _save(model, tok, out_dir, name, base)
    log.info("%s: SFT on %d examples, %d steps, loss %.3f -> %.3f", name, len(rows), budget.steps,
             losses[0] if losses else 0, losses[-1] if losses else 0)
    return Trained(ref, time.perf_counter() - t0, len(rows), losses)


def dpo_lora(engine: Any, base: ModelRef, triples: list[tuple[str, str, str]], budget: TrainBudget,
             beta: float, out_dir: Path, name: str) -> Trained:
    """DPO (Rafailov et al. 2023) on (prompt, chosen, rejected) with LoRA; the reference model is the same
    network with the adapter disabled. loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    tok = engine.tokenizer
    rows = []
    for p, c, r in triples:
        rc, rr = _encode(tok, p, c), _encode(tok, p, r)
        if max(len(rc[0]), len(rr[0])) <= budget.max_length and rc[0] != rr[0]:
            rows.append((rc, rr))
    if not rows:
        return Trained(None, 0.0, 0, [])
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def dpo_loss(model: Any, batch_idx: list[int]) -> Any:
        batch = [rows[i] for i in batch_idx]
        ids, mask, labels = right_padded_batch([c for c, _ in batch] + [r for _, r in batch], pad)
        with torch.no_grad(), model.disable_adapter():
            ref_lp = _seq_logprob(model, ids, mask, labels)
        lp = _seq_logprob(model, ids, mask, labels)
        n = len(batch)
        margin = (lp[:n] - ref_lp[:n]) - (lp[n:] - ref_lp[n:])
        return -F.logsigmoid(beta * margin).mean()

    model, losses = _train_lora_copy(engine, budget, len(rows), dpo_loss)
    ref = _save(model, tok, out_dir, name, base)
    log.info("%s: DPO on %d pairs, %d steps, loss %.3f -> %.3f", name, len(rows), budget.steps, losses[0],
             losses[-1])
    return Trained(ref, time.perf_counter() - t0, len(rows), losses)


def with_seed(decoding: DecodingConfig, seed: int, temperature: float) -> DecodingConfig:
    return replace(decoding, seed=seed, temperature=temperature)


def record_training(ctx: RunContext, ref: ModelRef, seconds: float) -> None:
    """Add training wall time to the job's usage (``usage.json`` sums the loaded engines)."""
    ctx.engines.get(ref).usage.training_seconds += seconds


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
