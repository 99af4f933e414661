"""The engine layer: one caching wrapper over any backend, capability errors, the engine methods methods use,
and the import structure (the factory above the backends; no cycle among the engine modules)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from mocoflow.engines.base import (
    BACKEND_CAPABILITIES,
    DecodingConfig,
    Engine,
    EngineCapabilityError,
    Generation,
    Usage,
)
from mocoflow.engines.cache import ResponseCache
from mocoflow.engines.caching import CachingEngine
from mocoflow.engines.factory import backend_of, make_engine

ENGINES = Path(__file__).resolve().parents[1] / "src" / "mocoflow" / "engines"


class CountingBackend(Engine):
    """Answers ``<prompt>!`` (``raw:<prompt>!`` without the template), two prompts per batch; records batches."""

    backend = "counting"

    def __init__(self, fingerprint: str = "c" * 64) -> None:
        self.name, self.fingerprint, self.usage = "count", fingerprint, Usage()
        self.batches: list[list[str]] = []

    def generate_batches(self, prompts: list[str], decoding: DecodingConfig, *, chat: bool = True
                         ) -> Iterator[list[tuple[int, Generation]]]:
        for start in range(0, len(prompts), 2):
            batch = list(range(start, min(start + 2, len(prompts))))
            self.batches.append([prompts[i] for i in batch])
            self.usage.calls += len(batch)
            yield [(i, Generation(("" if chat else "raw:") + prompts[i] + "!", 3, 2, -1.0)) for i in batch]


def test_bare_backend_dedupes_and_keeps_order():
    b = CountingBackend()
    gens = b.generate(["a", "b", "a", "c"], DecodingConfig())
    assert [g.text for g in gens] == ["a!", "b!", "a!", "c!"]
    assert b.batches == [["a", "b"], ["c"]] and b.usage.calls == 3 and b.usage.generate_seconds > 0


def test_caching_layer_wraps_any_backend(tmp_path: Path):
    cache = ResponseCache(tmp_path)
    first = CachingEngine(CountingBackend(), cache)
    first.generate(["a", "b", "c"], DecodingConfig())
    assert len(cache) == 3
    b2 = CountingBackend()
    second = CachingEngine(b2, cache)
    gens = second.generate(["c", "d", "a", "d"], DecodingConfig())
    assert [g.text for g in gens] == ["c!", "d!", "a!", "d!"] and [g.cached for g in gens] == [True, False, True, False]
    assert b2.batches == [["d"]]  # only the miss reached the backend, once
    assert second.usage is b2.usage and (b2.usage.cache_hits, b2.usage.cached_tokens, b2.usage.calls) == (2, 10, 1)
    # raw (untemplated) prompts are other requests; other decoding settings miss too
    raw = second.generate(["a"], DecodingConfig(), chat=False)
    assert raw[0].text == "raw:a!" and not raw[0].cached
    assert not second.generate(["a"], DecodingConfig(max_new_tokens=3))[0].cached
    assert second.generate(["a"], DecodingConfig(batch_size=99))[0].cached  # batch size is not in the key
    # another fingerprint (other weights) shares nothing
    other = CachingEngine(CountingBackend("d" * 64), cache)
    assert not other.generate(["a"], DecodingConfig())[0].cached


def test_caching_layer_forwards_everything_else(tiny_model_dir: Path, tmp_path: Path):
    from mocoflow.engines.transformers_engine import TransformersEngine

    backend = TransformersEngine("t", tiny_model_dir, device="cpu")
    engine = CachingEngine(backend, ResponseCache(tmp_path))
    assert (engine.name, engine.fingerprint, engine.backend) == ("t", backend.fingerprint, "transformers")
    assert engine.capabilities == BACKEND_CAPABILITIES["transformers"]
    assert engine.encode(["hi"]) == backend.encode(["hi"]) and engine.tokenize(" x") == backend.tokenize(" x")
    assert engine.score_continuations(["q"], [" a"]) == backend.score_continuations(["q"], [" a"])
    assert engine.model is backend.model and engine.tokenizer is backend.tokenizer  # not yet moved methods
    engine.record(prompt_tokens=5, calls=1)
    assert backend.usage.prompt_tokens >= 5
    with pytest.raises(RuntimeError, match="swapping weights under a response cache"):
        engine.load_state_dict({})


def test_transformers_engine_methods_for_methods(tiny_model_dir: Path):
    import torch

    from mocoflow.engines.transformers_engine import TransformersEngine

    e = TransformersEngine("t", tiny_model_dir, device="cpu")
    ids = e.encode(["What is 2 + 3?"])[0] + e.tokenize(" 5")
    logp, hidden = e.forward(ids, hidden_states=True)
    assert logp.shape == (len(ids), e.model.config.vocab_size) and hidden.shape[0] == len(ids)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(len(ids)), atol=1e-4)
    # the same numbers as score_continuations: the continuation's token read at the position before it
    head = e.encode(["What is 2 + 3?"])[0]
    want = sum(float(logp[len(head) - 1 + k, t]) for k, t in enumerate(e.tokenize(" 5")))
    assert e.score_continuations(["What is 2 + 3?"], [" 5"])[0] == pytest.approx(want, abs=1e-4)
    assert e.decode(e.tokenize("hello there")) == "hello there"
    assert e.tokenizer.eos_token_id in e.eos_token_ids()
    model, tok = e.hf_model()
    assert model is e.model and tok is e.tokenizer
    state = {k: torch.ones_like(v) for k, v in model.state_dict().items() if k.endswith("ln_f.bias")}
    missing, unexpected = e.load_state_dict(state)
    assert state and unexpected == [] and not set(state) & set(missing)
    assert all(bool((model.state_dict()[k] == 1).all()) for k in state)
    assert e.load_state_dict({"nope": torch.zeros(1)})[1] == ["nope"]
    with pytest.raises(ValueError, match="not a usage counter"):
        e.record(device=1)


def test_capability_errors_name_the_model_backend_and_offer():
    b = CountingBackend()
    with pytest.raises(EngineCapabilityError, match=r"'count' \(backend 'counting'\) cannot decode step by step"):
        b.stepper(["q"])
    with pytest.raises(EngineCapabilityError, match="needs 'weights'"):
        b.model  # noqa: B018
    with pytest.raises(AttributeError):
        b.something_else  # noqa: B018


def test_backend_classes_declare_the_table_capabilities():
    from mocoflow.engines.openai_engine import OpenAIEngine
    from mocoflow.engines.replay import ReplayEngine
    from mocoflow.engines.transformers_engine import TransformersEngine
    from mocoflow.engines.vllm_engine import VllmEngine

    classes = {"transformers": TransformersEngine, "vllm": VllmEngine, "openai": OpenAIEngine, "replay": ReplayEngine}
    assert set(classes) == set(BACKEND_CAPABILITIES)
    for name, cls in classes.items():
        assert cls.backend == name and cls.capabilities == BACKEND_CAPABILITIES[name]


def test_backend_of_checks_spec_and_source():
    assert backend_of("m", {"source": "tiny"}) == "transformers"
    assert backend_of("m", {"source": "endpoint", "backend": "openai"}) == "openai"
    assert backend_of("m", {"source": "local", "backend": "openai"}) == "openai"  # weights describe the server
    with pytest.raises(ValueError, match="unknown backend 'onnx'"):
        backend_of("m", {"backend": "onnx"})
    with pytest.raises(ValueError, match="source 'replay' has no weights.*backend: replay"):
        backend_of("m", {"source": "replay", "backend": "transformers"})
    with pytest.raises(ValueError, match="needs 'source: replay'"):
        backend_of("m", {"source": "local", "backend": "replay"})
    with pytest.raises(ValueError, match="path"):
        make_engine("m", {"backend": "replay"}, cache_dir=None)


def _imports(path: Path) -> set[str]:
    """Every mocoflow module a file imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mocoflow"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mocoflow")}
    return out


def test_engine_modules_import_no_cycle_and_the_factory_sits_above_the_backends():
    graph = {f"mocoflow.engines.{p.stem}": {m for m in _imports(p) if m.startswith("mocoflow.engines.")}
             for p in ENGINES.glob("*.py") if p.stem != "__init__"}
    assert not any("mocoflow.engines.factory" in deps for deps in graph.values())
    backends = {"transformers_engine", "vllm_engine", "openai_engine", "replay"}
    assert not graph["mocoflow.engines.loader"] & {f"mocoflow.engines.{b}" for b in backends}
    for b in backends:  # token helpers and sample_seed come from one module, not from another backend
        assert not graph[f"mocoflow.engines.{b}"] & {f"mocoflow.engines.{o}" for o in backends - {b}}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*trail, node, dep])}")
            if dep not in state:
                visit(dep, [*trail, node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_sample_seed_lives_in_tokens_and_is_stable():
    from mocoflow.engines.tokens import sample_seed

    assert sample_seed(0, "a") == sample_seed(0, "a") != sample_seed(1, "a")
    assert 0 <= sample_seed(3, "x") < 2**63 - 1


def test_generate_with_reports_a_backend_that_drops_prompts():
    class Dropping(CountingBackend):
        def generate_batches(self, prompts: list[str], decoding: DecodingConfig, *, chat: bool = True
                             ) -> Iterator[list[tuple[int, Generation]]]:
            yield [(0, Generation("x", 1, 1, 0.0))]

    with pytest.raises(RuntimeError, match="no generation for 1 prompt"):
        Dropping().generate(["a", "b"], DecodingConfig())


def test_jobs_that_need_logits_load_vllm_weights_with_transformers(tiny_model_dir: Path):
    from mocoflow.engines.base import Capability
    from mocoflow.engines.factory import serving_backend
    from mocoflow.engines.transformers_engine import TransformersEngine

    spec = {"path": str(tiny_model_dir), "backend": "vllm"}
    engine = make_engine("v", spec, cache_dir=None, device="cpu", requires={Capability.LOGITS})
    assert isinstance(engine, TransformersEngine)
    assert serving_backend("v", spec, {Capability.GENERATE}) == "vllm"
    served = {"backend": "openai", "source": "endpoint", "base_url": "http://127.0.0.1:9/v1", "path": "x"}
    with pytest.raises(EngineCapabilityError, match="'openai' cannot give logits.*no weights in process"):
        make_engine("s", served, cache_dir=None, requires={Capability.LOGITS})
