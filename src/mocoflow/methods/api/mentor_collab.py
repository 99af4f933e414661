"""Mentor collaboration: a generator and a mentor decode side by side. Where their next tokens differ
(compared as text, so tokenizers may differ), both write a short patch of ``patch_tokens`` tokens from the
shared answer so far and the generator picks one. ``decision_proportion`` (0-100) is the percentage of
divergence points at which this decision is made, spread evenly: after the k-th divergence there have been
exactly floor(k * p / 100) decisions; at the other divergences the generator simply keeps its own token.

How the generator picks (``chooser``):
- ``ask`` (default, the paper's free mode): the generator is asked which continuation is better, "(A) or
  (B)?", once with its own patch as (A) and once with the mentor's as (A); the log-odds of the two letters
  are summed over both orders, so a preference for a letter or a position cancels, and the mentor's patch
  is adopted when the generator prefers it overall (ties keep the generator's own patch).
- ``logprob``: the patch with the higher mean log-probability under the generator (an ablation: it almost
  always favours the generator's own greedy patch).
Rejected patches are rolled back (``Stepper.rewind``; their tokens still count as cost). When the pool
mixes tokenizers a patch runs on to the end of its current word, so whole words are exchanged. Test items
decode in lockstep batches (``Stepper``); every answer is what it would be alone.
Defaults: generator = the pool's smallest model, mentor = the best on dev among the others.
Decisions: the roles, ``mentor_adoption_rate`` (adopted mentor patches / decisions) and ``reliance`` (the
share of answer tokens each model wrote).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mocoflow.methods.api.common import by_size, chunks, pool_ref, stepped_costs
from mocoflow.methods.base import Method, MethodError, Need, RunContext, prediction, register
from mocoflow.methods.common import dev_accuracy, prompts_for

CHOOSERS = ("ask", "logprob")


@dataclass(frozen=True)
class MentorParams:
    """generator / mentor: pool model names (None = smallest / best on dev among the rest).
    decision_proportion: percent (0-100) of divergences where both patches are written and compared.
    patch_tokens: tokens per patch. chooser: "ask" (the generator answers "(A) or (B)?" in both orders)
    or "logprob" (higher mean log-probability under the generator)."""

    generator: str | None = None
    mentor: str | None = None
    decision_proportion: float = 50.0
    patch_tokens: int = 4
    chooser: str = "ask"

    def __post_init__(self) -> None:
        if not 0 <= self.decision_proportion <= 100:
            raise ValueError("mentor_collab decision_proportion is a percentage in [0, 100]")
        if self.patch_tokens < 1:
            raise ValueError("mentor_collab patch_tokens must be >= 1")
        if self.chooser not in CHOOSERS:
            raise ValueError(f"mentor_collab chooser must be one of {CHOOSERS}, not {self.chooser!r}")


def decide(k: int, proportion: float) -> bool:
    """Whether the k-th divergence (1-based) gets a decision: exactly floor(k * p / 100) of the first k do."""
    return int(k * proportion // 100) > int((k - 1) * proportion // 100)


def choice_prompt(prompt: str, text: str, first: str, second: str) -> str:
    """The question put to the generator at a decision: which continuation of the answer so far is better."""
    return (f"{prompt}\n\nHere is the beginning of an answer:\n{text}\n\n"
            f"Which continuation is better?\n(A) {first}\n(B) {second}\n\nReply with A or B.")


def ask_generator(engine: Any, asks: list[tuple[str, str, str, str]]) -> tuple[list[float], list[int]]:
    """For each (prompt, text so far, own patch, mentor patch): the generator's preference for the mentor's
    patch, ``[lp(B) - lp(A) | own first] + [lp(A) - lp(B) | mentor first]`` (a letter or position bias adds
    to one order what it takes from the other). Returns the preferences and the tokens read per ask."""
    prompts: list[str] = []
    for prompt, text, own, theirs in asks:
        prompts += [choice_prompt(prompt, text, own, theirs), choice_prompt(prompt, text, theirs, own)]
    doubled = [p for p in prompts for _ in range(2)]
    scores = engine.score_continuations(doubled, ["A", "B"] * len(prompts))
    lengths = [len(ids) + 1 for ids in engine.encode(prompts)] if prompts else []
    prefs, read = [], []
    for i in range(len(asks)):
        a1, b1, a2, b2 = scores[4 * i: 4 * i + 4]
        prefs.append((b1 - a1) + (a2 - b2))
        read.append(lengths[2 * i] + lengths[2 * i + 1])
    return prefs, read


@dataclass
class Mentored:
    """One answer: text, decision counts, tokens each model wrote into it, costs."""

    text: str = ""
    steps: int = 0
    stats: dict[str, int] = field(default_factory=lambda: {"divergences": 0, "decisions": 0,
                                                           "mentor_patches": 0})
    generator_tokens: int = 0
    mentor_tokens: int = 0
    cost: dict[str, int] = field(default_factory=dict)
    model_costs: list[dict[str, int]] = field(default_factory=list)  # generator, mentor


def mentor_decode(eg: Any, em: Any, prompts: list[str], *, proportion: float, patch_tokens: int,
                  max_new_tokens: int, chooser: str = "ask", whole_words: bool = False) -> list[Mentored]:
    """Decode ``prompts`` in lockstep with the generator ``eg`` and the mentor ``em``."""
    from mocoflow.engines.stepper import greedy_patches, open_steppers

    g, m = open_steppers([eg, em], prompts)
    res = [Mentored() for _ in prompts]
    judged = [0] * len(prompts)  # prompt tokens the generator read to choose
    active = [r for r in range(len(prompts)) if max_new_tokens > 0]
    while active:
        tops_g = dict(zip(active, (t for t, _ in g.top(active)), strict=True))
        m.sync({r: res[r].text for r in active})
        tops_m = dict(zip(active, (t for t, _ in m.top(active)), strict=True))
        emit: dict[int, int] = {}
        deciding: list[int] = []
        for r in active:
            tg, tm = tops_g[r], tops_m[r]
            same = (tg in g.eos and tm in m.eos) or g.piece(tg) == m.piece(tm)
            if not same:
                res[r].stats["divergences"] += 1
            if not same and decide(res[r].stats["divergences"], proportion):
                res[r].stats["decisions"] += 1
                deciding.append(r)
            else:
                emit[r] = tg
        done: set[int] = set()
        sync: dict[int, str] = {}
        if deciding:
            snaps_g = {r: g.snapshot(r) for r in deciding}
            snaps_m = {r: m.snapshot(r) for r in deciding}
            own = greedy_patches(g, deciding, patch_tokens, finish_word=whole_words)
            for r in deciding:
                g.rewind(r, snaps_g[r])
            theirs = greedy_patches(m, deciding, patch_tokens, finish_word=whole_words)
            for r in deciding:
                m.rewind(r, snaps_m[r])
            if chooser == "ask":
                prefs, read = ask_generator(eg, [(prompts[r], res[r].text, own[r].text, theirs[r].text)
                                                 for r in deciding])
                take = {r: p > 0 for r, p in zip(deciding, prefs, strict=True)}
                for r, n in zip(deciding, read, strict=True):
                    judged[r] += n
            else:  # logprob: mean log-probability of each patch under the generator
                their_lp = g.score({r: theirs[r].text for r in deciding})
                take = {}
                for r in deciding:
                    own_score = sum(own[r].logprobs) / max(len(own[r].logprobs), 1)
                    lps = their_lp[r]
                    take[r] = (sum(lps) / len(lps) if lps else own_score - 1.0) > own_score
            for r in deciding:
                chosen = theirs[r] if take[r] else own[r]
                res[r].stats["mentor_patches"] += int(take[r])
                if take[r]:
                    res[r].mentor_tokens += len(chosen.tokens) - int(chosen.ended)
                else:
                    res[r].generator_tokens += len(chosen.tokens) - int(chosen.ended)
                res[r].text += chosen.text
                res[r].steps += patch_tokens
                if chosen.ended or res[r].steps >= max_new_tokens:
                    done.add(r)
                else:
                    sync[r] = res[r].text
        for r, tok in list(emit.items()):
            res[r].steps += 1
            if tok in g.eos:
                continue
            res[r].text += g.piece(tok)
            res[r].generator_tokens += 1
            if res[r].steps >= max_new_tokens:  # complete: charge the token, skip its forward pass
                g.count_generated([r])
                del emit[r]
                done.add(r)
        done |= g.advance(tokens=emit, texts=sync)
        g.flush()
        for r in done:
            res[r].cost = stepped_costs([g, m], r)
            res[r].cost["prompt_tokens"] += judged[r]
            res[r].model_costs = [g.cost(r), m.cost(r)]
        g.release(sorted(done))
        m.release(sorted(done))
        active = [r for r in active if r not in done]
    return res


@register
class MentorCollab(Method):
    name = "mentor_collab"
    level = "api"
    needs = frozenset({Need.MODELS, Need.DEV_GENERATIONS})
    Params = MentorParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        gen = pool_ref(ctx, self.params.generator, by_size(ctx)[0])
        others = [r.name for r in ctx.pool if r.name != gen.name]
        if not others:
            raise MethodError("mentor_collab needs two models (generator and mentor)")
        acc = dev_accuracy(ctx)
        mentor = pool_ref(ctx, self.params.mentor, max(others, key=lambda n: (acc[n], -others.index(n))))
        if mentor.name == gen.name:
            raise MethodError("mentor_collab needs two different models (generator and mentor)")
        whole_words = str(gen.card.get("tokenizer")) != str(mentor.card.get("tokenizer"))
        eg, em = ctx.engines.get(gen), ctx.engines.get(mentor)
        items = ctx.items["test"]
        prompts = prompts_for(items)
        results: list[Mentored] = []
        for batch in chunks(len(items), ctx.decoding.batch_size):
            results += mentor_decode(eg, em, [prompts[i] for i in batch],
                                     proportion=self.params.decision_proportion,
                                     patch_tokens=self.params.patch_tokens,
                                     max_new_tokens=ctx.decoding.max_new_tokens, chooser=self.params.chooser,
                                     whole_words=whole_words)
        decisions = sum(r.stats["decisions"] for r in results)
        adopted = sum(r.stats["mentor_patches"] for r in results)
        mentor_share = sum(r.mentor_tokens for r in results) / max(
            sum(r.mentor_tokens + r.generator_tokens for r in results), 1)
        ctx.decide(roles={"generator": gen.name, "mentor": mentor.name}, chooser=self.params.chooser,
                   decisions=decisions, mentor_adoption_rate=adopted / decisions if decisions else None,
                   reliance={gen.name: 1.0 - mentor_share, mentor.name: mentor_share})
        return [prediction(item.id, r.text, answered_by=gen.name, mentor=mentor.name, **r.stats, **r.cost)
                for item, r in zip(items, results, strict=True)]
