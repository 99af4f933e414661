"""The transformers engine and loader on tiny local models (CPU, seconds)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
import torch

from mocoflow.engines import loader
from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.factory import make_engine
from mocoflow.engines.loader import load_model
from mocoflow.engines.stepper import same_tokenizer
from mocoflow.engines.transformers_engine import TransformersEngine
from mocoflow.models import model_fingerprint

PROMPTS = [
    "What is 2 + 3?",
    "hello",
    "Answer the question. Which option is correct? A) yes B) no C) maybe D) none",
    "x",
    "The answer is",
    "def f(x):\n    return x + 1",
    "Question: which letter comes after C?",
]


@pytest.fixture(scope="module")
def gpt2(tiny_model_dir: Path) -> TransformersEngine:
    return TransformersEngine("gpt2", tiny_model_dir, device="cpu")


@pytest.fixture(scope="module")
def llama(tiny_llama_dir: Path) -> TransformersEngine:
    return TransformersEngine("llama", tiny_llama_dir, device="cpu")


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_batched_greedy_equals_batch_size_one(arch: str, request: pytest.FixtureRequest):
    engine: TransformersEngine = request.getfixturevalue(arch)
    one = engine.generate(PROMPTS, DecodingConfig(max_new_tokens=10, batch_size=1))
    four = engine.generate(PROMPTS, DecodingConfig(max_new_tokens=10, batch_size=4))
    assert [g.text for g in one] == [g.text for g in four]
    assert [g.generated_tokens for g in one] == [g.generated_tokens for g in four]
    assert [g.prompt_tokens for g in one] == [g.prompt_tokens for g in four]
    for a, b in zip(one, four, strict=True):
        assert a.sum_logprob == pytest.approx(b.sum_logprob, abs=1e-3)
    # the outputs depend on the prompt (otherwise this test could not catch a padding bug)
    assert len({g.text for g in one}) > 3


def test_shared_prefix_length_leaves_every_row_a_token_of_its_own():
    assert loader.shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert loader.shared_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # a row never becomes all prefix
    assert loader.shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert loader.shared_prefix_length([[5, 2], [1, 2]]) == 0
    assert loader.shared_prefix_length([[1, 2, 3]]) == 0 and loader.shared_prefix_length([]) == 0


INSTRUCTION = "Answer the question with the letter of the correct option, for example Answer: A. "


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_shared_prefix_is_run_once_and_changes_no_output(arch: str, temperature: float,
                                                         request: pytest.FixtureRequest):
    model_dir = request.getfixturevalue("tiny_model_dir" if arch == "gpt2" else "tiny_llama_dir")
    prompts = [INSTRUCTION + p for p in PROMPTS]
    decoding = DecodingConfig(max_new_tokens=8, batch_size=3, temperature=temperature, seed=3)
    plain = TransformersEngine(arch, model_dir, device="cpu", prefix_sharing=False)
    shared = TransformersEngine(arch, model_dir, device="cpu")
    rows = shared.encode(prompts)
    n = loader.shared_prefix_length(rows)
    assert n >= 8  # the precondition: the prompts share enough tokens for the prefix path to be taken
    widths: list[int] = []  # tokens per row of every forward pass of the sharing engine
    forward = shared.model.forward

    @functools.wraps(forward)  # generate reads forward's signature to decide on position ids
    def counting_forward(*args, **kw):
        widths.append(kw["input_ids"].shape[1])
        return forward(*args, **kw)

    request.getfixturevalue("monkeypatch").setattr(shared.model, "forward", counting_forward)
    a, b = plain.generate(prompts, decoding), shared.generate(prompts, decoding)
    # the prefix ran once, alone; no later pass re-read it
    assert widths[0] == n and max(widths[1:]) == max(len(r) for r in rows) - n
    assert [g.text for g in a] == [g.text for g in b]
    assert [(g.prompt_tokens, g.generated_tokens) for g in a] == [(g.prompt_tokens, g.generated_tokens) for g in b]
    for x, y in zip(a, b, strict=True):
        assert x.sum_logprob == pytest.approx(y.sum_logprob, abs=1e-3)
    assert len({g.text for g in a}) > 2  # outputs depend on the prompt, so a misplaced prefix would show
    # model work: the prefix once, then each row's own tokens
    assert plain.usage.prompt_tokens == sum(len(r) for r in rows)
    assert shared.usage.prompt_tokens == n + sum(len(r) - n for r in rows)


def test_results_come_back_in_prompt_order(gpt2: TransformersEngine):
    decoding = DecodingConfig(max_new_tokens=6, batch_size=3)
    together = gpt2.generate(PROMPTS, decoding)
    alone = [gpt2.generate([p], decoding)[0] for p in PROMPTS]
    assert [g.text for g in together] == [g.text for g in alone]
    dup = gpt2.generate([PROMPTS[1], PROMPTS[0], PROMPTS[1]], decoding)
    assert dup[0].text == dup[2].text == alone[1].text and dup[1].text == alone[0].text


def test_chat_template_applied_when_present(gpt2: TransformersEngine, tiny_model_dir: Path, tmp_path: Path):
    tok = gpt2.tokenizer
    assert tok.chat_template
    templated = tok.apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=True,
                                        tokenize=False)
    assert templated.startswith("<|user|>hello") and templated.endswith("<|assistant|>")
    expected = tok(templated, add_special_tokens=False)["input_ids"]
    assert gpt2.encode(["hello"]) == [expected]
    assert gpt2.generate(["hello"], DecodingConfig(max_new_tokens=2))[0].prompt_tokens == len(expected)

    plain_dir = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, plain_dir)
    (plain_dir / "chat_template.jinja").unlink()
    plain = TransformersEngine("plain", plain_dir, device="cpu")
    assert not plain.tokenizer.chat_template
    raw = tok("hello")["input_ids"]
    assert plain.encode(["hello"]) == [raw]
    assert plain.generate(["hello"], DecodingConfig(max_new_tokens=2))[0].prompt_tokens == len(raw)
    assert len(raw) < len(expected)


def test_trained_model_answers_stops_at_eos_and_counts_tokens(tiny_answer_a_model_dir: Path):
    engine = TransformersEngine("a", tiny_answer_a_model_dir, device="cpu")
    gens = engine.generate(["Which option is correct?", "What is 2 + 3?"], DecodingConfig(max_new_tokens=20))
    answer_tokens = len(engine.tokenizer("Answer: A", add_special_tokens=False)["input_ids"])
    for g in gens:
        assert g.text == "Answer: A"
        assert g.generated_tokens == answer_tokens + 1  # eos counted, nothing after it
        assert g.sum_logprob < 0
    # sum_logprob is the model's log-probability of exactly those tokens, eos included
    eos = engine.tokenizer.eos_token
    scored = engine.score_continuations(["Which option is correct?"], ["Answer: A" + eos])
    assert gens[0].sum_logprob == pytest.approx(scored[0], abs=1e-3)


def test_max_new_tokens_bounds_generation(gpt2: TransformersEngine):
    gens = gpt2.generate(PROMPTS[:3], DecodingConfig(max_new_tokens=5, batch_size=2))
    assert all(1 <= g.generated_tokens <= 5 for g in gens)
    assert all(g.prompt_tokens == len(ids) for g, ids in zip(gens, gpt2.encode(PROMPTS[:3]), strict=True))
    assert gpt2.generate([], DecodingConfig()) == []
    assert gpt2.score_continuations([], []) == []


def test_usage_counted_and_model_loaded_once(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from mocoflow.engines import transformers_engine

    loads = []
    real = transformers_engine.load_model
    monkeypatch.setattr(transformers_engine, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    engine = TransformersEngine("m", tiny_model_dir, device="cpu")
    total_prompt = total_gen = 0
    for size in (1, 3, 5):
        gens = engine.generate(PROMPTS[:size], DecodingConfig(max_new_tokens=4, batch_size=2))
        total_prompt += sum(g.prompt_tokens for g in gens)
        total_gen += sum(g.generated_tokens for g in gens)
    u = engine.usage
    assert len(loads) == 1 and u.model_loads == 1 and u.load_seconds > 0
    assert u.calls == 1 + 3 + 5
    assert u.prompt_tokens == total_prompt and u.generated_tokens == total_gen
    assert u.cache_hits == 0 and u.generate_seconds > 0 and u.device == "cpu"
    assert u.parameters == {"m": sum(p.numel() for p in engine.model.parameters())}


def test_sampling_is_seeded_per_prompt_and_leaves_global_rng_alone(gpt2: TransformersEngine):
    d1 = DecodingConfig(max_new_tokens=12, temperature=1.0, seed=1, batch_size=4)
    state = torch.random.get_rng_state()
    a = gpt2.generate(PROMPTS[:4], d1)
    assert torch.equal(state, torch.random.get_rng_state())
    b = gpt2.generate([PROMPTS[3], PROMPTS[0]], d1)  # other batch composition and order
    assert [b[0].text, b[1].text] == [a[3].text, a[0].text]
    c = gpt2.generate(PROMPTS[:4], DecodingConfig(max_new_tokens=12, temperature=1.0, seed=2))
    assert [g.text for g in c] != [g.text for g in a]
    greedy = gpt2.generate(PROMPTS[:4], DecodingConfig(max_new_tokens=12))
    assert [g.text for g in greedy] != [g.text for g in a]


def test_sampling_with_a_tiny_top_p_is_greedy(gpt2: TransformersEngine):
    greedy = gpt2.generate(PROMPTS[:4], DecodingConfig(max_new_tokens=8, batch_size=4))
    nucleus = gpt2.generate(PROMPTS[:4], DecodingConfig(max_new_tokens=8, temperature=1.0, top_p=1e-6,
                                                        batch_size=4))
    assert [g.text for g in nucleus] == [g.text for g in greedy]


def test_row_sampler_draws_each_row_from_its_own_distribution():
    from mocoflow.engines.transformers_engine import RowSampler

    n = 4000
    scores = torch.log(torch.tensor([[0.7, 0.2, 0.1, 0.0]])).repeat(n, 1)
    out = RowSampler(list(range(n)), temperature=1.0)(torch.zeros(n, 1, dtype=torch.long), scores)
    assert bool((torch.isfinite(out).sum(-1) == 1).all())  # exactly one token left per row
    freq = torch.bincount(out.argmax(-1), minlength=4).float() / n
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1, 0.0]), atol=0.03)
    again = RowSampler(list(range(n)), temperature=1.0)(torch.zeros(n, 1, dtype=torch.long), scores)
    assert torch.equal(out, again)  # seeded per row
    cold = RowSampler(list(range(n)), temperature=0.05)(torch.zeros(n, 1, dtype=torch.long), scores)
    assert float((cold.argmax(-1) == 0).float().mean()) > 0.99  # low temperature: nearly always the mode
    top = RowSampler(list(range(n)), temperature=1.0, top_p=0.75)(torch.zeros(n, 1, dtype=torch.long), scores)
    assert set(top.argmax(-1).tolist()) == {0, 1}  # the smallest set reaching 0.75 is {0.7, 0.2}
    with pytest.raises(ValueError, match="temperature > 0"):
        RowSampler([0], temperature=0.0)


def _manual_score(engine: TransformersEngine, prompt: str, continuation: str) -> float:
    head = engine.encode([prompt])[0]
    tail = engine.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([head + tail])
    with torch.no_grad():
        logp = torch.log_softmax(engine.model(input_ids=ids).logits[0].float(), -1)
    return sum(float(logp[len(head) + j - 1, t]) for j, t in enumerate(tail))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_score_continuations_matches_manual_computation(arch: str, request: pytest.FixtureRequest):
    engine: TransformersEngine = request.getfixturevalue(arch)
    prompts = PROMPTS[:5]
    conts = ["Answer: A", " B", "the answer is 42 because 6 times 7", "x", ""]
    scores = engine.score_continuations(prompts, conts, batch_size=3)
    assert scores[-1] == 0.0
    for p, c, s in zip(prompts[:-1], conts[:-1], scores[:-1], strict=True):
        assert s == pytest.approx(_manual_score(engine, p, c), abs=1e-3)
    assert len(set(scores[:-1])) == 4 and all(s < 0 for s in scores[:-1])
    with pytest.raises(ValueError):
        engine.score_continuations(["a", "b"], ["c"])


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_continuations_differing_in_their_last_token_share_one_forward(arch: str, request: pytest.FixtureRequest):
    engine: TransformersEngine = request.getfixturevalue(arch)
    prompts = [PROMPTS[0]] * 4 + [PROMPTS[1]] * 2
    conts = ["Answer: A", "Answer: B", " A", " B", "Answer: A", "the answer is 42"]
    before = engine.usage.prompt_tokens
    scores = engine.score_continuations(prompts, conts, batch_size=2)
    for p, c, s in zip(prompts, conts, scores, strict=True):
        assert s == pytest.approx(_manual_score(engine, p, c), abs=1e-3)
    assert scores[0] != scores[1] and scores[2] != scores[3]
    tails = [engine.tokenizer(c, add_special_tokens=False)["input_ids"] for c in conts]
    assert tails[0][:-1] == tails[1][:-1] and len(tails[2]) == len(tails[3]) == 1  # forks on the last token
    heads = engine.encode(PROMPTS[:2])
    # 6 rows, 4 forward passes: "Answer: A/B" share one, " A"/" B" share the bare prompt
    forwarded = {tuple(heads[0] + tails[0][:-1]), tuple(heads[0]), tuple(heads[1] + tails[4][:-1]),
                 tuple(heads[1] + tails[5][:-1])}
    assert len(forwarded) == 4
    assert engine.usage.prompt_tokens - before == sum(len(f) for f in forwarded)


def test_model_loads_only_when_a_prompt_misses_the_cache(tiny_model_dir: Path, tmp_path: Path):
    from mocoflow.engines.cache import ResponseCache
    from mocoflow.engines.caching import CachingEngine

    cache = ResponseCache(tmp_path / "cache")
    first = CachingEngine(TransformersEngine("m", tiny_model_dir, device="cpu"), cache)
    assert first.usage.model_loads == 0 and first.usage.parameters["m"] > 0
    dec = DecodingConfig(max_new_tokens=4, batch_size=2)
    want = first.generate(PROMPTS[:3], dec)
    assert first.usage.model_loads == 1
    assert first.usage.parameters["m"] == sum(p.numel() for p in first.model.parameters())
    again = CachingEngine(TransformersEngine("m", tiny_model_dir, device="cpu"), cache)
    assert [g.text for g in again.generate(PROMPTS[:3], dec)] == [g.text for g in want]
    assert again.usage.model_loads == 0 and again.usage.cache_hits == 3
    again.generate(PROMPTS[:4], dec)
    assert again.usage.model_loads == 1


def test_load_model_pads_left_and_falls_back_to_eos(tiny_model_dir: Path, tmp_path: Path):
    model, tok = load_model(tiny_model_dir, device="cpu")
    assert tok.padding_side == "left" and tok.pad_token == "<|pad|>" and not model.training
    assert next(model.parameters()).dtype == torch.float32
    no_pad = tmp_path / "no-pad"
    shutil.copytree(tiny_model_dir, no_pad)
    tok.pad_token = None
    tok.padding_side = "right"
    tok.save_pretrained(no_pad)
    _, tok2 = load_model(no_pad, device="cpu")
    assert tok2.pad_token == tok2.eos_token and tok2.padding_side == "left"


def test_load_model_never_downloads():
    with pytest.raises(OSError):
        load_model("surely-not/a-cached-model-xyz", device="cpu")


def test_fingerprint_is_stable_and_sees_weights_config_and_tokenizer(tiny_model_dir: Path, tmp_path: Path):
    fp = model_fingerprint(tiny_model_dir)
    assert fp == model_fingerprint(tiny_model_dir) and len(fp) == 64
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert model_fingerprint(copy) == fp  # content, not location
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    changed_weights = model_fingerprint(copy)
    assert changed_weights != fp
    (copy / "config.json").write_text((copy / "config.json").read_text().replace("64", "65", 1))
    assert model_fingerprint(copy) not in (fp, changed_weights)
    tok_copy = tmp_path / "tok"
    shutil.copytree(tiny_model_dir, tok_copy)
    (tok_copy / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    assert model_fingerprint(tok_copy) != fp


def test_tiny_builders_are_deterministic(tiny_model_dir: Path, tmp_path: Path):
    from mocoflow.testing import build_tiny_model

    again = build_tiny_model(tmp_path / "again", arch="gpt2", seed=0)
    assert model_fingerprint(again) == model_fingerprint(tiny_model_dir)
    other_seed = build_tiny_model(tmp_path / "seed1", arch="gpt2", seed=1)
    assert model_fingerprint(other_seed) != model_fingerprint(tiny_model_dir)
    assert (other_seed / "tokenizer.json").read_bytes() == (tiny_model_dir / "tokenizer.json").read_bytes()


def test_same_tokenizer(gpt2: TransformersEngine, llama: TransformersEngine,
                        tiny_model_other_tokenizer_dir: Path, tiny_tokenizer_dir: Path):
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(tiny_model_other_tokenizer_dir, local_files_only=True)
    plain = AutoTokenizer.from_pretrained(tiny_tokenizer_dir, local_files_only=True)
    assert same_tokenizer(gpt2.tokenizer, llama.tokenizer)
    assert same_tokenizer(gpt2.tokenizer, plain)
    assert not same_tokenizer(gpt2.tokenizer, other)


def test_make_engine_backends(tiny_model_dir: Path, tmp_path: Path):
    from mocoflow.engines.caching import CachingEngine

    engine = make_engine("m", {"path": str(tiny_model_dir)}, cache_dir=tmp_path / "cache", device="cpu")
    assert isinstance(engine, CachingEngine) and isinstance(engine.backend_engine, TransformersEngine)
    assert engine.fingerprint == model_fingerprint(tiny_model_dir) and engine.name == "m"
    assert engine.backend == "transformers" and engine.usage is engine.backend_engine.usage
    bare = make_engine("m", {"path": str(tiny_model_dir), "dtype": "float32"}, cache_dir=None, device="cpu")
    assert isinstance(bare, TransformersEngine)
    try:
        import vllm  # noqa: F401
    except ImportError:  # the optional backend is routed to the vLLM engine, which names what is missing
        with pytest.raises(RuntimeError, match="needs the vllm package"):
            make_engine("m", {"path": str(tiny_model_dir), "backend": "vllm"}, cache_dir=None)
    with pytest.raises(ValueError, match="unknown backend"):
        make_engine("m", {"path": str(tiny_model_dir), "backend": "onnx"}, cache_dir=None)
    with pytest.raises(ValueError, match="path"):
        make_engine("m", {}, cache_dir=None)


def test_resolve_device_and_dtype(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loader.resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert loader.resolve_device("auto") == "cuda"
    assert loader.resolve_device("cuda:1") == "cuda:1"
    assert loader.resolve_dtype("auto", "cpu") == torch.float32
    assert loader.resolve_dtype("bf16", "cuda") == torch.bfloat16
    with pytest.raises(ValueError):
        loader.resolve_dtype("int3", "cpu")
