"""The stepping API (``Stepper``): under left padding, per-row chunks of any length, rewinds, forks and batch
compaction, every row's next-token distribution equals a full re-encode of that row on its own; greedy
decoding reproduces the engine's ``generate``; costs add up; misuse is refused with a clear error."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.stepper import (
    PREFILL_SLACK,
    Stepper,
    StepperError,
    greedy_patches,
    open_steppers,
    pass_groups,
    similar_lengths,
)
from mocoflow.engines.transformers_engine import TransformersEngine

PROMPTS = [
    "hello",
    "Answer the question. Which option is correct? A) yes B) no C) maybe",
    "What is 2 + 3?",
    "x",
]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def engine(request: pytest.FixtureRequest, tiny_model_dir: Path, tiny_llama_dir: Path) -> TransformersEngine:
    path = tiny_model_dir if request.param == "gpt2" else tiny_llama_dir
    return TransformersEngine(request.param, path, device="cpu")


def _full_logprobs(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    """Next-token log-probabilities after ``ids``, from one unpadded forward pass of that row alone."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), -1)


def _check(stepper: Stepper, engine: TransformersEngine, rows: dict[int, list[int]]) -> None:
    for r in stepper.live():
        torch.testing.assert_close(stepper.logprobs([r])[0], _full_logprobs(engine.model, rows[r]),
                                   atol=1e-4, rtol=1e-4)


def test_stepper_matches_full_reencode_at_every_step(engine: TransformersEngine):
    prompt_ids = engine.encode(PROMPTS)
    assert len({len(r) for r in prompt_ids}) == len(PROMPTS)  # different lengths: real left padding
    assert len(similar_lengths([len(r) for r in prompt_ids], PREFILL_SLACK)) > 1  # prefilled in groups, joined
    dec = engine.stepper(PROMPTS)
    assert dec.prompt_tokens == [len(r) for r in prompt_ids]
    rows = [list(r) for r in prompt_ids]
    gen = torch.Generator().manual_seed(0)
    everyone = list(range(len(PROMPTS)))
    for step in range(6):
        logp = dec.logprobs(everyone)
        assert logp.shape == (len(PROMPTS), engine.model.config.vocab_size)
        for b, row in enumerate(rows):
            torch.testing.assert_close(logp[b], _full_logprobs(engine.model, row), atol=1e-4, rtol=1e-4)
        # alternate greedy and random tokens so rows take different paths
        random_tokens = torch.randint(4, logp.shape[-1], (len(PROMPTS),), generator=gen)
        nxt = logp.argmax(-1) if step % 2 == 0 else random_tokens
        for b, t in enumerate(nxt.tolist()):
            rows[b].append(t)
        dec.emit(dict(enumerate(nxt.tolist())), eos_ends=False)
    for b, row in enumerate(rows):
        torch.testing.assert_close(dec.logprobs([b])[0], _full_logprobs(engine.model, row), atol=1e-4, rtol=1e-4)


def test_shared_prefix_runs_once_and_rows_stay_exact(engine: TransformersEngine):
    from mocoflow.engines.loader import shared_prefix_length

    prompts = ["Answer the question. Which option is correct? A) yes B) no", "Answer the question. Which option "
               "is correct? What is 2 + 3?", "Answer the question. Which option is correct? x"]
    ids = engine.encode(prompts)
    shared = shared_prefix_length(ids)
    assert shared >= 8  # the prefix is run once
    before = engine.usage.prompt_tokens
    dec = engine.stepper(prompts)
    assert engine.usage.prompt_tokens - before == shared + sum(len(r) - shared for r in ids)
    assert [dec.cost(r)["prompt_tokens"] for r in range(3)] == [len(r) for r in ids]  # rows pay their prompt
    rows = dict(enumerate(list(r) for r in ids))
    for _ in range(3):
        _check(dec, engine, rows)
        chosen = {r: t for r, (t, _) in enumerate(dec.top([0, 1, 2]))}
        dec.emit(chosen, eos_ends=False)
        for r, t in chosen.items():
            rows[r].append(t)
    _check(dec, engine, rows)


def test_stepper_rows_feed_different_amounts_rewind_fork_and_compact(engine: TransformersEngine):
    """Random mixes of per-row operations (subsets of rows, chunks of 0-3 tokens, text syncs, rewinds,
    forks, scoring, releases that compact the batch): every live row stays exact."""
    dec = engine.stepper(PROMPTS)
    rows = dict(enumerate(list(r) for r in engine.encode(PROMPTS)))
    rng = random.Random(0)
    for step in range(16):
        live = dec.live()
        op = step % 5
        if op == 0:  # a subset emits greedy tokens
            chosen = {r: t for r, (t, _) in zip(live, dec.top(live), strict=True) if rng.random() < 0.6}
            chosen = {r: t for r, t in chosen.items() if t not in dec.eos}
            dec.emit(chosen)
            for r, t in chosen.items():
                rows[r].append(t)
        elif op == 1:  # chunks of different lengths, some empty
            chunks = {r: [rng.randrange(4, 300) for _ in range(rng.randrange(0, 4))] for r in live}
            dec.feed_tokens(chunks)
            for r, t in chunks.items():
                rows[r] += t
        elif op == 2:  # a tentative patch, checked, then rolled back
            r = rng.choice(live)
            snap, before = dec.snapshot(r), list(rows[r])
            dec.feed_tokens({r: [10, 11, 12]})
            rows[r] += [10, 11, 12]
            _check(dec, engine, rows)
            dec.rewind(r, snap)
            rows[r] = before
        elif op == 3:  # fork a row and let the copy diverge
            r = rng.choice(live)
            f = dec.fork(r)
            rows[f] = list(rows[r])
            dec.feed_tokens({f: [20, 21]})
            rows[f] += [20, 21]
        else:  # text appended to one row, scoring (not kept) on another
            a, b = rng.sample(live, 2)
            text = dec.text(a) + " plus 4"
            dec.sync({a: text})
            rows[a] += dec.encode(" plus 4")
            scored = dec.score_tokens({b: [5, 6, 7]})[b][0]
            for j, t in enumerate([5, 6, 7]):
                assert scored[j] == pytest.approx(float(_full_logprobs(engine.model, rows[b] + [5, 6, 7][:j])[t]),
                                                  abs=1e-4)
        _check(dec, engine, rows)
    width = dec.mask.shape[1]
    dec.release(dec.live()[:-2])  # most rows finish: the batch shrinks and unused columns go
    assert len(dec.live()) == 2 and dec.mask.shape[0] == 2 and dec.mask.shape[1] < width
    _check(dec, engine, rows)
    live = dec.live()
    chosen = dict(zip(live, (t for t, _ in dec.top(live)), strict=True))
    dec.emit(chosen, eos_ends=False)
    for r, t in chosen.items():
        rows[r].append(t)
    _check(dec, engine, rows)


def test_score_keeps_or_rewinds_and_returns_hidden_states(engine: TransformersEngine):
    dec = engine.stepper(PROMPTS[:2], hidden=True)
    ids = engine.encode(PROMPTS[:2])
    tail = dec.encode(" yes no")
    (lps, hs) = dec.score_tokens({1: tail}, hidden=True)[1]
    with torch.no_grad():
        out = engine.model(input_ids=torch.tensor([ids[1] + tail]), output_hidden_states=True)
    n = len(ids[1])
    manual = torch.log_softmax(out.logits[0, n - 1:-1].float(), -1).gather(-1, torch.tensor(tail)[:, None])
    assert lps == pytest.approx(manual.view(-1).tolist(), abs=1e-4)
    torch.testing.assert_close(hs, out.hidden_states[-1][0, n - 1:-1].float(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(dec.logprobs([1])[0], _full_logprobs(engine.model, ids[1]), atol=1e-4, rtol=1e-4)
    assert dec.text(1) == ""  # rewound
    dec.score({1: " yes no"}, keep=True)
    assert dec.text(1) == " yes no"
    torch.testing.assert_close(dec.logprobs([1])[0], _full_logprobs(engine.model, ids[1] + tail), atol=1e-4,
                               rtol=1e-4)
    torch.testing.assert_close(dec.hidden([1])[0], out.hidden_states[-1][0, -1].float(), atol=1e-4, rtol=1e-4)


def test_stepper_greedy_reproduces_engine_generate(engine: TransformersEngine):
    max_new = 8
    expected = engine.generate(PROMPTS, DecodingConfig(max_new_tokens=max_new, batch_size=len(PROMPTS)))
    dec = engine.stepper(PROMPTS)
    patches = greedy_patches(dec, range(len(PROMPTS)), max_new)
    for b, g in enumerate(expected):
        assert dec.decode(patches[b].tokens) == g.text
        assert len(patches[b].tokens) == g.generated_tokens
        assert sum(patches[b].logprobs) == pytest.approx(g.sum_logprob, abs=1e-3)


def test_greedy_patches_in_a_batch_equal_one_row_at_a_time(tiny_answer_a_model_dir: Path):
    """Rows of different lengths, some ending at eos early: each row's patch is what it gets alone."""
    engine = TransformersEngine("ans_a", tiny_answer_a_model_dir, device="cpu")
    prompts = PROMPTS + ["Which option is correct?", "Question: hello"]
    batch = greedy_patches(engine.stepper(prompts), range(len(prompts)), 12)
    alone = [greedy_patches(engine.stepper([p]), [0], 12)[0] for p in prompts]
    assert [(p.text, p.ended, p.tokens) for p in batch.values()] == [(p.text, p.ended, p.tokens) for p in alone]
    assert any(p.ended for p in alone) and len({len(p.tokens) for p in alone}) > 1
    word = greedy_patches(engine.stepper(prompts), range(len(prompts)), 1, finish_word=True)
    for r, p in word.items():  # a patch runs on to the end of its word
        assert p.ended or len(p.tokens) >= 1
        following = engine.stepper([prompts[r]])
        following.sync({0: p.text})
        nxt = following.top([0])[0][0]
        assert p.ended or nxt in following.eos or following.piece(nxt)[:1].isspace() or len(p.tokens) == 9


def test_costs_are_charged_to_rows_and_the_engine(engine: TransformersEngine):
    before = engine.usage.prompt_tokens, engine.usage.generated_tokens, engine.usage.calls
    dec = engine.stepper(PROMPTS[:3])
    ids = engine.encode(PROMPTS[:3])
    dec.emit({0: 5, 1: 6})
    dec.feed_tokens({2: [7, 8]})
    snap = dec.snapshot(1)
    dec.emit({1: 9})
    dec.rewind(1, snap)  # rolled back, still paid for
    dec.count_generated([2])
    assert [dec.cost(r) for r in range(3)] == [
        {"prompt_tokens": len(ids[0]), "generated_tokens": 1},
        {"prompt_tokens": len(ids[1]), "generated_tokens": 2},
        {"prompt_tokens": len(ids[2]) + 2, "generated_tokens": 1},
    ]
    assert engine.usage.prompt_tokens - before[0] == sum(dec.cost(r)["prompt_tokens"] for r in range(3))
    assert engine.usage.generated_tokens - before[1] == sum(dec.cost(r)["generated_tokens"] for r in range(3))
    assert engine.usage.calls - before[2] == 3


def test_stepper_rejects_misuse(engine: TransformersEngine):
    dec = engine.stepper(["a", "b"])
    with pytest.raises(StepperError, match="row 5 does not exist"):
        dec.emit({5: 1})
    with pytest.raises(StepperError, match="does not extend"):
        dec.sync({0: "x"}) or dec.sync({0: "y"})
    with pytest.raises(StepperError, match="appear twice"):
        dec.advance(tokens={1: 3}, texts={1: "z"})
    with pytest.raises(StepperError, match="hidden=True"):
        dec.hidden([0])
    dec.release([0])
    with pytest.raises(StepperError, match="released"):
        dec.top([0])
    with pytest.raises(StepperError, match="non-empty"):
        Stepper(engine, ids=[[1, 2], []])

    class NoStepping:
        name = "remote"

    with pytest.raises(StepperError, match="transformers backend"):
        open_steppers([NoStepping()], ["a"])


def test_long_chunks_queue_within_the_token_budget(engine: TransformersEngine):
    """A forward pass feeds at most ``token_budget`` slots (rows it computes x width): a long chunk stays partly
    queued (its row cannot be read yet) while other rows go on; a row stepping one token and a row reading a
    long chunk go in separate passes (no padding of the stepper to the chunk's width); once fed, every row is
    exact."""
    dec = Stepper(engine, PROMPTS, token_budget=8)
    rows = dict(enumerate(list(r) for r in engine.encode(PROMPTS)))
    batches: list[tuple[int, int]] = []  # (rows, width) of every forward pass
    hook = engine.model.register_forward_hook(lambda _m, args, kw, _o: batches.append(tuple(kw["input_ids"].shape)),
                                              with_kwargs=True)
    try:
        long = list(range(30, 43))
        dec.advance(foreign={0: long}, tokens={1: 40})  # row 1 steps alone, row 0 reads 8 alone
        rows[0] += long
        rows[1].append(40)
        assert batches == [(1, 1), (1, 8)]
        assert dec.pending(0) == len(long) - 8 and dec.pending(1) == 0
        with pytest.raises(StepperError, match="queued"):
            dec.top([0])
        tok = dec.top([1])[0][0]
        dec.advance(tokens={1: tok}, eos_ends=False)  # padding row 1 is cheap now: 2 rows, width 8 // 2
        rows[1].append(tok)
        assert batches[2:] == [(2, 4)]
        assert dec.pending(0) == len(long) - 12
        tok = dec.top([1])[0][0]
        dec.advance(tokens={1: tok}, eos_ends=False)  # both feed one token: one pass
        rows[1].append(tok)
        assert batches[3:] == [(2, 1)]
        assert dec.pending(0) == 0
    finally:
        hook.remove()
    _check(dec, engine, rows)


def test_pass_groups_split_only_when_padding_costs_more_than_a_pass():
    assert pass_groups({0: 1, 1: 1, 2: 1}, 32) == [[0, 1, 2]]
    assert pass_groups({0: 2, 1: 1}, 32) == [[1, 0]]  # padding one row by one slot: cheaper than a pass
    assert pass_groups({0: 20, 1: 1, 2: 1, 3: 1}, 32) == [[1, 2, 3], [0]]
    assert pass_groups({0: 5, 1: 9}, 32) == [[0, 1]]


def test_passes_compute_only_the_rows_that_feed(engine: TransformersEngine):
    """Rows that feed nothing are not run through the model; their state, and every row's, stays exact."""
    dec = Stepper(engine, PROMPTS)
    rows = dict(enumerate(list(r) for r in engine.encode(PROMPTS)))
    sizes: list[int] = []
    hook = engine.model.register_forward_hook(lambda _m, args, kw, _o: sizes.append(kw["input_ids"].shape[0]),
                                              with_kwargs=True)
    try:
        for step in range(6):
            feed = [r for r in range(len(PROMPTS)) if (r + step) % 3]
            for r, (tok, _) in zip(feed, dec.top(feed), strict=True):
                dec.advance(tokens={r: tok}, eos_ends=False)
                rows[r].append(tok)
                _check(dec, engine, rows)
            both = [0, 2]
            toks = dict(zip(both, (t for t, _ in dec.top(both)), strict=True))
            dec.advance(tokens=toks, eos_ends=False)
            for r, t in toks.items():
                rows[r].append(t)
    finally:
        hook.remove()
    assert sizes and set(sizes) == {1, 2}
    _check(dec, engine, rows)


def test_added_rows_join_the_batch_and_every_row_stays_exact(engine: TransformersEngine):
    """Continuous batching: rows released, new prompts added mid-decoding (a different length than the batch's
    cache), every row (old and new) equals a full re-encode of it alone; costs are charged to the new rows."""
    dec = Stepper(engine, PROMPTS[:3])
    rows = dict(enumerate(list(r) for r in engine.encode(PROMPTS[:3])))

    def step() -> None:
        live = dec.live()
        toks = dict(zip(live, (t for t, _ in dec.top(live)), strict=True))
        dec.advance(tokens=toks, eos_ends=False)
        for r, t in toks.items():
            rows[r].append(t)

    for _ in range(3):
        step()
    dec.release([1])
    calls = engine.usage.calls
    new = dec.add(["a new question that is longer than the others were", "y"])
    assert new == [3, 4] and dec.live() == [0, 2, 3, 4] and engine.usage.calls == calls + 2
    for r, p in zip(new, ["a new question that is longer than the others were", "y"], strict=True):
        rows[r] = list(engine.encode([p])[0])
        assert dec.cost(r) == {"prompt_tokens": len(rows[r]), "generated_tokens": 0} and dec.text(r) == ""
    _check(dec, engine, rows)
    for _ in range(3):
        step()
    _check(dec, engine, rows)
    dec.release(dec.live())
    (last,) = dec.add(ids=[rows[0][:5]])  # every row gone: the batch is the new row alone
    rows[last] = rows[0][:5]
    step()
    _check(dec, engine, rows)


def test_rows_join_a_cache_that_cannot_be_joined_only_once_every_row_ended(engine: TransformersEngine,
                                                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("mocoflow.engines.stepper._plain_layers", lambda past: False)
    dec = Stepper(engine, PROMPTS[:2])
    assert not dec.can_add()
    with pytest.raises(StepperError, match="released"):
        dec.add(["y"])
    dec.release([0, 1])
    assert dec.can_add()
    new = dec.add(PROMPTS[2:])
    assert new == [2, 3] and dec.live() == [2, 3]
    _check(dec, engine, {r: list(ids) for r, ids in zip(new, engine.encode(PROMPTS[2:]), strict=True)})


def test_similar_lengths_bounds_padding():
    lengths = [30, 4, 31, 5, 80, 6, 29]
    groups = similar_lengths(lengths, 1.25)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert max(lengths[i] for i in g) * len(g) <= 1.25 * sum(lengths[i] for i in g)
    assert [sorted(g) for g in groups] == [[1, 3, 5], [0, 2, 6], [4]]
    assert similar_lengths([10, 10, 10], 1.0) == [[0, 1, 2]]


def test_prefill_keeps_the_callers_row_order(engine: TransformersEngine):
    """Rows are prefilled sorted by length (in one group or several): each row still gets its own prompt."""
    for prompts in (["What is 2 + 3?", "What is 2?", "What is 2 + 3 + 4?"],  # one group, not in length order
                    ["Answer the question. Which option is correct? A) yes B) no C) maybe", "x", "hello"]):
        ids = engine.encode(prompts)
        assert [len(r) for r in ids] != sorted(len(r) for r in ids)
        dec = engine.stepper(prompts)
        _check(dec, engine, dict(enumerate(list(r) for r in ids)))
