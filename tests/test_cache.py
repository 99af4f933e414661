"""The response cache: hits on rerun, atomic one-file-per-entry layout, and resuming a killed job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mocoflow.engines.base import DecodingConfig, Generation
from mocoflow.engines.cache import ResponseCache, cache_key
from mocoflow.engines.caching import EXIT_HOOK_ENV, CachingEngine
from mocoflow.engines.transformers_engine import TransformersEngine

PROMPTS = [f"Question {i}: what is {i} + {i * 3}? " + "Think. " * (i % 4) for i in range(7)]
FP = "ab" * 32


def test_second_call_hits_cache_for_every_item(tiny_model_dir: Path, tmp_path: Path):
    cache = ResponseCache(tmp_path / "cache")
    decoding = DecodingConfig(max_new_tokens=6, batch_size=3)
    first = CachingEngine(TransformersEngine("m", tiny_model_dir, device="cpu"), cache)
    a = first.generate(PROMPTS, decoding)
    assert first.usage.cache_hits == 0 and not any(g.cached for g in a)
    assert len(cache) == len(PROMPTS)
    second = CachingEngine(TransformersEngine("m", tiny_model_dir, device="cpu"), cache)
    # batch size is not part of the key
    b = second.generate(PROMPTS, DecodingConfig(max_new_tokens=6, batch_size=5))
    assert second.usage.cache_hits == len(PROMPTS)
    assert second.usage.calls == 0 and second.usage.generated_tokens == 0
    assert first.usage.cached_tokens == 0
    # the hits' tokens are kept apart, so cost estimates still see the work behind a cached answer
    assert second.usage.cached_tokens == first.usage.prompt_tokens + first.usage.generated_tokens
    assert all(g.cached for g in b)
    for x, y in zip(a, b, strict=True):
        assert (x.text, x.prompt_tokens, x.generated_tokens) == (y.text, y.prompt_tokens, y.generated_tokens)
        assert x.sum_logprob == pytest.approx(y.sum_logprob)
    # other decoding settings (seed included) miss
    second.generate(PROMPTS[:2], DecodingConfig(max_new_tokens=7))
    second.generate(PROMPTS[:2], DecodingConfig(max_new_tokens=6, temperature=0.7, seed=3))
    assert second.usage.cache_hits == len(PROMPTS) and second.usage.calls == 4


def test_layout_key_and_atomic_write(tmp_path: Path):
    cache = ResponseCache(tmp_path)
    d = DecodingConfig(seed=1)
    gen = Generation("Answer: A", 5, 3, -1.5)
    path = cache.put(FP, "p", d, gen)
    key = cache_key(FP, "p", d)
    assert path == tmp_path / FP[:16] / key[:2] / f"{key}.json"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    assert json.loads(path.read_text())["text"] == "Answer: A"
    got = cache.get(FP, "p", d)
    assert got == Generation("Answer: A", 5, 3, -1.5, cached=True)
    assert cache.get(FP, "p", DecodingConfig(seed=2)) is None
    assert cache.get(FP, "q", d) is None
    assert cache.get("cd" * 32, "p", d) is None
    assert cache.get(FP, "p", DecodingConfig(seed=1, batch_size=99)) is not None
    path.write_text('{"text": "trunc')  # a corrupt entry is a miss, not a crash
    assert cache.get(FP, "p", d) is None


_CHILD = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    from mocoflow.engines.base import DecodingConfig
    from mocoflow.engines.cache import ResponseCache
    from mocoflow.engines.caching import CachingEngine
    from mocoflow.engines.transformers_engine import TransformersEngine
    model, cache, prompts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    engine = CachingEngine(TransformersEngine("m", model, device="cpu"), ResponseCache(cache))
    engine.generate(prompts, DecodingConfig(max_new_tokens=6, batch_size=2))
    print("finished without being killed")
""")


def test_killed_run_resumes_from_cached_items(tiny_model_dir: Path, tmp_path: Path):
    cache_dir = tmp_path / "cache"
    env = {**os.environ, EXIT_HOOK_ENV: "2", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", _CHILD, str(tiny_model_dir), str(cache_dir), json.dumps(PROMPTS)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 75, proc.stderr[-2000:]
    assert "finished" not in proc.stdout
    cache = ResponseCache(cache_dir)
    assert len(cache) == 4  # two batches of two
    decoding = DecodingConfig(max_new_tokens=6, batch_size=2)
    engine = CachingEngine(TransformersEngine("m", tiny_model_dir, device="cpu"), cache)
    finished = {p for p in PROMPTS if cache.get(engine.fingerprint, p, decoding) is not None}
    assert len(finished) == 4

    resumed = engine.generate(PROMPTS, decoding)
    assert engine.usage.cache_hits == 4 and engine.usage.calls == len(PROMPTS) - 4
    assert {p for p, g in zip(PROMPTS, resumed, strict=True) if g.cached} == finished
    assert len(cache) == len(PROMPTS)

    fresh = TransformersEngine("m", tiny_model_dir, device="cpu")
    uninterrupted = fresh.generate(PROMPTS, DecodingConfig(max_new_tokens=6, batch_size=3))
    assert [g.text for g in resumed] == [g.text for g in uninterrupted]
    assert [g.generated_tokens for g in resumed] == [g.generated_tokens for g in uninterrupted]
    for x, y in zip(resumed, uninterrupted, strict=True):
        assert x.sum_logprob == pytest.approx(y.sum_logprob, abs=1e-3)


def test_atomic_files_get_the_usual_mode(tmp_path: Path):
    """mkstemp creates 0o600 files; artefacts (figures, tables) must be readable like any file open() makes."""
    import os

    from mocoflow.io import write_text

    mask = os.umask(0o022)
    os.umask(mask)
    write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask
