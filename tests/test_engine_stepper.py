"""IncrementalDecoder: the KV cache under left padding equals a full re-encode at every step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.stepper import IncrementalDecoder
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


def test_stepper_matches_full_reencode_at_every_step(engine: TransformersEngine):
    prompt_ids = engine.encode(PROMPTS)
    assert len({len(r) for r in prompt_ids}) == len(PROMPTS)  # different lengths: real left padding
    dec = IncrementalDecoder(engine.model, engine.tokenizer, engine.device)
    logp = dec.start(PROMPTS)
    assert dec.prompt_lengths() == [len(r) for r in prompt_ids]
    rows = [list(r) for r in prompt_ids]
    gen = torch.Generator().manual_seed(0)
    for step in range(6):
        assert logp.shape == (len(PROMPTS), engine.model.config.vocab_size)
        for b, row in enumerate(rows):
            torch.testing.assert_close(logp[b], _full_logprobs(engine.model, row), atol=1e-4, rtol=1e-4)
        # alternate greedy and random tokens so rows take different paths
        random_tokens = torch.randint(4, logp.shape[-1], (len(PROMPTS),), generator=gen)
        nxt = logp.argmax(-1) if step % 2 == 0 else random_tokens
        for b, t in enumerate(nxt.tolist()):
            rows[b].append(t)
        logp = dec.step(nxt)
    for b, row in enumerate(rows):
        torch.testing.assert_close(logp[b], _full_logprobs(engine.model, row), atol=1e-4, rtol=1e-4)


def test_stepper_greedy_reproduces_engine_generate(engine: TransformersEngine):
    max_new = 8
    expected = engine.generate(PROMPTS, DecodingConfig(max_new_tokens=max_new, batch_size=len(PROMPTS)))
    eos = engine.tokenizer.eos_token_id
    dec = IncrementalDecoder(engine.model, engine.tokenizer, engine.device)
    logp = dec.start(PROMPTS)
    tokens: list[list[int]] = [[] for _ in PROMPTS]
    sums = [0.0] * len(PROMPTS)
    done = [False] * len(PROMPTS)
    for _ in range(max_new):
        nxt = logp.argmax(-1)
        for b, t in enumerate(nxt.tolist()):
            if not done[b]:
                tokens[b].append(t)
                sums[b] += float(logp[b, t])
                done[b] = t == eos
        if all(done):
            break
        logp = dec.step(nxt)
    for b, g in enumerate(expected):
        body = [t for t in tokens[b] if t != eos]
        assert engine.tokenizer.decode(body, skip_special_tokens=True) == g.text
        assert len(tokens[b]) == g.generated_tokens
        assert sums[b] == pytest.approx(g.sum_logprob, abs=1e-3)


def test_stepper_rejects_misuse(engine: TransformersEngine):
    dec = engine.decoder()
    with pytest.raises(RuntimeError, match="before start"):
        dec.step(torch.tensor([1]))
    dec.start(["a", "b"])
    with pytest.raises(ValueError):
        dec.step(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError):
        dec.start_ids([[1, 2], []])
