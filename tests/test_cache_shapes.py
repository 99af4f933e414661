"""Cache entries that are valid JSON of the wrong shape are misses with a warning, and the engine regenerates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mocoflow.engines.base import DecodingConfig, Generation
from mocoflow.engines.cache import ResponseCache

FP = "ab" * 32
GOOD = {"fingerprint": FP, "prompt": "p", "text": "Answer: A", "prompt_tokens": 5, "generated_tokens": 3,
        "sum_logprob": -1.5}


@pytest.mark.parametrize(
    "entry",
    [
        [1, 2, 3],
        "a string",
        42,
        None,
        {k: v for k, v in GOOD.items() if k != "text"},
        {k: v for k, v in GOOD.items() if k != "sum_logprob"},
        {**GOOD, "text": ["Answer: A"]},
        {**GOOD, "prompt_tokens": "5"},
        {**GOOD, "generated_tokens": -1},
        {**GOOD, "sum_logprob": None},
        {**GOOD, "sum_logprob": {"x": 1}},
    ],
    ids=["list", "string", "number", "null", "no-text", "no-logprob", "text-list", "tokens-str", "tokens-negative",
         "logprob-null", "logprob-dict"],
)
def test_wrong_shape_entry_is_a_miss_with_a_warning(tmp_path: Path, entry, caplog: pytest.LogCaptureFixture):
    cache = ResponseCache(tmp_path)
    d = DecodingConfig()
    path = cache.put(FP, "p", d, Generation("Answer: A", 5, 3, -1.5))
    assert cache.get(FP, "p", d) == Generation("Answer: A", 5, 3, -1.5, cached=True)
    path.write_text(json.dumps(entry))
    assert cache.get(FP, "p", d) is None
    assert str(path) in caplog.text and "WARNING" in caplog.text.upper()


def test_engine_regenerates_over_a_wrong_shape_entry(tiny_model_dir: Path, tmp_path: Path):
    from mocoflow.engines.caching import CachingEngine
    from mocoflow.engines.transformers_engine import TransformersEngine

    cache = ResponseCache(tmp_path / "cache")
    decoding = DecodingConfig(max_new_tokens=4, batch_size=2)
    prompts = ["What is 1 + 1?", "What is 2 + 2?"]
    first = CachingEngine(TransformersEngine("m", tiny_model_dir, device="cpu"), cache).generate(prompts, decoding)
    entry = next((tmp_path / "cache").rglob("*.json"))
    entry.write_text(json.dumps([{"text": "forged"}]))
    engine = CachingEngine(TransformersEngine("m", tiny_model_dir, device="cpu"), cache)
    again = engine.generate(prompts, decoding)
    assert [g.text for g in again] == [g.text for g in first]
    assert engine.usage.cache_hits == 1
    assert isinstance(json.loads(entry.read_text()), dict)  # the entry was rewritten
