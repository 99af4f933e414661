"""The openai backend against a stub OpenAI-compatible server on 127.0.0.1 (no model, no network): order, dedupe,
response cache, costs, log-probs, seeds, API key handling, retries, timeouts, the concurrency limit, and the
refusal of methods that need logits or weights when the DAG is built."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pytest
from openai_stub import LOGPROBS, StubServer

from mocoflow.engines.base import DecodingConfig, EngineCapabilityError
from mocoflow.engines.cache import ResponseCache
from mocoflow.engines.caching import CachingEngine
from mocoflow.engines.factory import make_engine
from mocoflow.engines.openai_engine import OpenAIEngine, endpoint_settings
from mocoflow.engines.tokens import sample_seed


@pytest.fixture
def stub():
    with StubServer() as server:
        yield server


def _spec(stub: StubServer, **extra: Any) -> dict[str, Any]:
    return {"source": "endpoint", "backend": "openai", "base_url": stub.base_url, "model": "stub-model",
            "path": "/nonexistent/endpoint.json", **extra}


def test_generate_in_order_once_per_prompt_with_costs_and_logprobs(stub: StubServer, tmp_path: Path):
    engine = make_engine("served", _spec(stub), cache_dir=tmp_path / "cache")
    assert isinstance(engine, CachingEngine) and engine.backend == "openai"
    prompts = ["alpha beta gamma delta", "one two", "alpha beta gamma delta"]
    gens = engine.generate(prompts, DecodingConfig(max_new_tokens=7))
    assert [g.text for g in gens] == ["echo: alpha beta gamma", "echo: one two", "echo: alpha beta gamma"]
    assert gens[0].sum_logprob == pytest.approx(sum(LOGPROBS)) and gens[0].generated_tokens == 3
    assert [g.prompt_tokens for g in gens] == [4, 2, 4]
    assert len(stub.state.requests) == 2  # the repeated prompt is asked once
    asked = sorted(r["body"]["messages"][0]["content"] for r in stub.state.requests)
    assert asked == sorted(prompts[:2])
    body = stub.state.requests[0]["body"]
    assert body["model"] == "stub-model" and body["max_tokens"] == 7 and body["temperature"] == 0.0
    assert body["logprobs"] is True and "seed" not in body and body["messages"][0]["role"] == "user"
    u = engine.usage
    assert (u.calls, u.prompt_tokens, u.generated_tokens, u.cache_hits, u.device) == (2, 6, 6, 0, "remote")
    # a second job over the same cache asks the server nothing
    again = make_engine("served", _spec(stub), cache_dir=tmp_path / "cache")
    cached = again.generate(prompts[:2], DecodingConfig(max_new_tokens=7))
    assert [g.text for g in cached] == [g.text for g in gens[:2]] and all(g.cached for g in cached)
    assert len(stub.state.requests) == 2 and again.usage.cache_hits == 2 and again.usage.calls == 0


def test_sampling_sends_the_per_prompt_seed(stub: StubServer):
    engine = make_engine("served", _spec(stub), cache_dir=None)
    sampled = DecodingConfig(max_new_tokens=3, temperature=0.7, top_p=0.9, seed=5)
    a = engine.generate(["p q r", "s t"], sampled)
    bodies = [r["body"] for r in stub.state.requests]
    assert {b["messages"][0]["content"]: b["seed"] for b in bodies} == {"p q r": sample_seed(5, "p q r"),
                                                                        "s t": sample_seed(5, "s t")}
    assert all(b["temperature"] == 0.7 and b["top_p"] == 0.9 for b in bodies)
    b = engine.generate(["p q r"], DecodingConfig(max_new_tokens=3, temperature=0.7, top_p=0.9, seed=6))
    assert a[0].text != b[0].text  # the stub's sampled answer carries the seed it was sent


def test_api_key_comes_from_the_named_variable_and_is_never_written(stub: StubServer, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture):
    from mocoflow.stages.build_model import build_model

    secret = "sk-test-0123456789abcdef"
    stub.state.require_key = secret
    monkeypatch.setenv("STUB_KEY", secret)
    caplog.set_level(logging.DEBUG)
    spec = _spec(stub, api_key_env="STUB_KEY")
    del spec["path"]
    card = build_model("served", spec, tmp_path / "models" / "served" / "card.json")
    engine = make_engine("served", {**spec, "path": card["path"]}, cache_dir=tmp_path / "cache")
    gens = engine.generate(["hello there"], DecodingConfig(max_new_tokens=3))
    assert gens[0].text == "echo: hello there"
    assert stub.state.requests[-1]["auth"] == f"Bearer {secret}"
    written = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert written and secret not in written and "STUB_KEY" in written  # the card names the variable only
    assert secret not in caplog.text
    assert card["architecture"] is None and card["fingerprint"] == engine.fingerprint
    # a wrong key is the server's 401, reported with the model and the server named
    monkeypatch.setenv("STUB_KEY", "wrong")
    with pytest.raises(RuntimeError, match=r"'served'.*127\.0\.0\.1.*AuthenticationError"):
        make_engine("served", {**spec, "path": card["path"]}, cache_dir=None).generate(["x"], DecodingConfig())
    monkeypatch.delenv("STUB_KEY")
    with pytest.raises(ValueError, match="STUB_KEY.*not set"):
        make_engine("served", {**spec, "path": card["path"]}, cache_dir=None)
    with pytest.raises(ValueError, match="never go in the config"):
        endpoint_settings("served", {**spec, "api_key": secret})
    with pytest.raises(ValueError, match="needs 'base_url'"):
        endpoint_settings("served", {"backend": "openai"})


def test_failed_requests_are_retried_with_backoff_then_reported(stub: StubServer):
    engine = make_engine("served", _spec(stub, max_retries=2), cache_dir=None)
    stub.state.fail_next = [500, 503]
    assert engine.generate(["a b"], DecodingConfig())[0].text == "echo: a b"
    assert len(stub.state.requests) == 3
    stub.state.fail_next = [500, 500, 500]
    with pytest.raises(RuntimeError, match=r"'served'.*failed after 2 retries"):
        engine.generate(["c d"], DecodingConfig())


def test_timeout_is_an_error_not_a_hang(stub: StubServer):
    stub.state.delay = 1.0
    engine = make_engine("served", _spec(stub, timeout=0.2, max_retries=0), cache_dir=None)
    with pytest.raises(RuntimeError, match="Timeout"):
        engine.generate(["slow"], DecodingConfig())


def test_concurrency_limit_bounds_requests_in_flight(stub: StubServer):
    stub.state.delay = 0.15
    engine = make_engine("served", _spec(stub, concurrency=3), cache_dir=None)
    gens = engine.generate([f"prompt number {i}" for i in range(12)], DecodingConfig(batch_size=4))
    assert [g.text for g in gens] == [f"echo: prompt number {i}" for i in range(12)]
    assert stub.state.max_in_flight == 3


def test_missing_logprobs_are_nan_not_zero(stub: StubServer, caplog: pytest.LogCaptureFixture):
    stub.state.logprobs = False
    engine = make_engine("served", _spec(stub), cache_dir=None)
    with caplog.at_level(logging.WARNING):
        gens = engine.generate(["a", "b"], DecodingConfig())
    assert all(math.isnan(g.sum_logprob) for g in gens) and gens[0].generated_tokens == 3
    assert caplog.text.count("returned no log-probabilities") == 1


def test_completions_api_renders_the_template_here_and_raw_prompts_stay_raw(stub: StubServer, tmp_path: Path,
                                                                             tiny_model_dir: Path):
    from transformers import AutoTokenizer

    from mocoflow.engines.tokens import render_prompt
    from mocoflow.models import model_fingerprint

    spec = {"backend": "openai", "source": "local", "base_url": stub.base_url, "api": "completions",
            "path": str(tiny_model_dir)}
    engine = make_engine("served", spec, cache_dir=tmp_path / "cache")
    # weights next to the served model: their fingerprint keys the cache, shared with in-process backends
    assert engine.fingerprint == model_fingerprint(tiny_model_dir)
    engine.generate(["What is two?"], DecodingConfig(max_new_tokens=3))
    engine.generate(["What is two?"], DecodingConfig(max_new_tokens=3), chat=False)
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir), local_files_only=True)
    sent = [r["body"]["prompt"] for r in stub.state.requests]  # one request per call: ordered
    assert sent == [render_prompt(tok, "What is two?")[0], "What is two?"]
    assert stub.state.requests[0]["path"].endswith("/completions") and stub.state.requests[0]["body"]["logprobs"] == 0
    assert len(ResponseCache(tmp_path / "cache")) == 2  # raw and chat prompts are different entries
    with pytest.raises(ValueError, match="needs 'path'"):
        make_engine("served", {**spec, "path": str(tmp_path / "nothing-here")}, cache_dir=None)


def test_served_models_refuse_logits_and_weights(stub: StubServer):
    engine = make_engine("served", _spec(stub), cache_dir=None)
    assert isinstance(engine, OpenAIEngine)
    for call in (lambda: engine.score_continuations(["q"], ["a"]), lambda: engine.stepper(["q"]),
                 lambda: engine.forward([1]), engine.hf_model, lambda: engine.encode(["q"]), lambda: engine.model,
                 lambda: engine.tokenizer):
        with pytest.raises(EngineCapabilityError, match=r"'served' \(backend 'openai'\)"):
            call()


def test_methods_needing_logits_or_weights_refuse_served_models_at_dag_build(stub: StubServer):
    from mocoflow.methods import METHODS
    from mocoflow.methods.backends import check_backends, check_study_backends
    from mocoflow.methods.base import MethodError, Need

    served = _spec(stub)
    local = {"source": "tiny", "backend": "transformers"}
    for method in ("logit_fusion", "linear_merge", "co_llm"):
        cls = METHODS.get(method)
        with pytest.raises(MethodError, match=rf"run 'r' \(method '{method}'\).*model 'served'.*backend 'openai'"):
            check_backends("r", method, cls().needs, {"local": local, "served": served})
    for need, what in ((Need.LOGITS, "next-token log-probabilities"), (Need.WEIGHTS, "the weights")):
        with pytest.raises(MethodError, match=f"needs {what}"):
            check_backends("r", "m", frozenset({Need.MODELS, need}), {"served": served})
        check_backends("r", "m", frozenset({Need.MODELS, need}), {"local": local})
    # vLLM does not step through a model, but its weights are local: runs that step load them with transformers
    check_backends("r", "logit_fusion", METHODS.get("logit_fusion")().needs, {"v": {"backend": "vllm"}})
    for method in ("majority_vote", "cascade", "oracle_router", "debate"):  # generations only, or new text
        check_backends("r", method, METHODS.get(method)().needs, {"local": local, "served": served})
    # the replay backend answers recorded prompts only: methods that generate new text refuse it
    with pytest.raises(MethodError, match="new generations.*backend 'replay'"):
        check_backends("r", "debate", METHODS.get("debate")().needs, {"old": {"source": "replay", "backend": "replay"}})

    class Run:  # as mocoflow.config.runs gives them
        def __init__(self, run: str, pool: str) -> None:
            self.run, self.pool = run, pool

    config = {"models": {"a": local, "served": served}, "pools": {"duo": ["a", "served"]},
              "methods": {"logit_fusion": {}}}
    with pytest.raises(MethodError, match="logit_fusion"):
        check_study_backends(config, [Run("logit_fusion", "duo")], lambda r: METHODS.get(r)(), lambda r: [])


def test_settings_are_typed_and_checked():
    with pytest.raises(ValueError, match="api must be"):
        endpoint_settings("m", {"base_url": "http://x/v1", "api": "responses"})
    with pytest.raises(ValueError, match="concurrency"):
        endpoint_settings("m", {"base_url": "http://x/v1", "concurrency": 0})
    s = endpoint_settings("m", {"base_url": "http://x/v1"})
    assert (s.model, s.api, s.concurrency, s.api_key_env) == ("m", "chat", 8, None)
    assert json.dumps(s.__dict__)  # plain values only
