"""The engine interface every backend implements, the records it returns, and the one generation loop.

An :class:`Engine` is a model behind one interface, whatever serves it (``backend``): ``transformers`` (in
process, CPU or GPU), ``vllm`` (in process), ``openai`` (an OpenAI-compatible HTTP server) or ``replay`` (answers
recorded in an exported table). A backend implements ``generate_batches`` and whatever else its ``capabilities``
promise; everything else answers with an :class:`EngineCapabilityError` that names the model, its backend and
what it can do. The response cache is not a backend's business: :class:`mocoflow.engines.caching.CachingEngine`
wraps any backend (as lm-evaluation-harness's ``CachingLM`` wraps any LM), and both it and a bare backend run
:func:`generate_with`, the one lookup / dedupe / batch loop.

Methods use engine methods (``generate``, ``score_continuations``, ``encode``, ``tokenize``, ``decode``,
``eos_token_ids``, ``stepper``, ``forward``, ``hf_model``, ``load_state_dict``, ``record``), never attributes of a
particular backend.
"""

from __future__ import annotations

import enum
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, NoReturn


@dataclass(frozen=True)
class DecodingConfig:
    """How to decode. Greedy by default; ``temperature > 0`` samples with ``seed``.

    max_new_tokens: upper bound on generated tokens per prompt.
    temperature: 0 means greedy; > 0 enables seeded sampling.
    top_p: nucleus sampling mass (only used when sampling).
    seed: random seed for sampling; recorded with every result.
    batch_size: prompts per forward pass (does not change outputs for greedy decoding).
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 8

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def cache_key(self) -> str:
        """The settings that change outputs (batch size does not)."""
        d = asdict(self)
        d.pop("batch_size")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> DecodingConfig:
        return cls(**(d or {}))


@dataclass
class Generation:
    """One generated response and what it cost."""

    text: str
    prompt_tokens: int
    generated_tokens: int
    sum_logprob: float  # sum of the chosen tokens' log-probabilities
    cached: bool = False

    @property
    def mean_logprob(self) -> float:
        return self.sum_logprob / max(self.generated_tokens, 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean_logprob"] = self.mean_logprob
        return d


@dataclass
class Usage:
    """Cost accounting for one job: written as JSON next to the job's outputs."""

    model_loads: int = 0
    load_seconds: float = 0.0
    generate_seconds: float = 0.0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    calls: int = 0
    cache_hits: int = 0
    cached_tokens: int = 0  # prompt + generated tokens of the cache hits (work done once, in an earlier job)
    device: str = "cpu"
    parameters: dict[str, int] = field(default_factory=dict)  # model name -> parameter count
    training_seconds: float = 0.0

    def add(self, other: Usage) -> None:
        for name in ("model_loads", "load_seconds", "generate_seconds", "prompt_tokens", "generated_tokens",
                     "calls", "cache_hits", "cached_tokens", "training_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.parameters.update(other.parameters)
        if other.device != "cpu":
            self.device = other.device

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Capability(enum.Enum):
    """What an engine can do beyond answering the prompts it is asked."""

    GENERATE = "generate"  # answer any prompt
    REPLAY = "replay"  # answer only the prompts recorded in a table
    SCORE = "score"  # log-probability of a given continuation (score_continuations)
    TOKENS = "tokens"  # the model's own tokenizer: encode, tokenize, decode, eos_token_ids
    LOGITS = "logits"  # next-token distributions step by step (stepper, forward)
    WEIGHTS = "weights"  # the in-process model's parameters (training copies, weight swaps)


# What each backend offers (the DAG check reads this without importing any backend).
BACKEND_CAPABILITIES: dict[str, frozenset[Capability]] = {
    "transformers": frozenset(Capability) - {Capability.REPLAY},
    "vllm": frozenset({Capability.GENERATE, Capability.SCORE, Capability.TOKENS}),
    "openai": frozenset({Capability.GENERATE}),
    "replay": frozenset({Capability.REPLAY}),
}


class EngineCapabilityError(RuntimeError):
    """An engine was asked for something its backend cannot do (e.g. logits of a served model)."""


class Engine(ABC):
    """A model that generates text (and, depending on its backend, scores tokens or exposes logits)."""

    name: str
    fingerprint: str  # identity of the weights (or of the served model / recorded table): the cache key's root
    usage: Usage
    backend: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    # -- what every backend implements --------------------------------------------------------------

    @abstractmethod
    def generate_batches(self, prompts: list[str], decoding: DecodingConfig, *, chat: bool = True
                         ) -> Iterator[list[tuple[int, Generation]]]:
        """Generate one answer per prompt (distinct prompts; chat-templated when ``chat`` and the model has a
        template) and yield each finished batch as ``(index into prompts, generation)`` pairs, so that a
        caller can store a batch before the next one starts. Counts model work in ``usage``."""

    def generate(self, prompts: list[str], decoding: DecodingConfig, *, progress: str | None = None,
                 chat: bool = True) -> list[Generation]:
        """One generation per prompt, in order; identical prompts are generated once. No cache (see
        :class:`mocoflow.engines.caching.CachingEngine`)."""
        return generate_with(self, prompts, decoding, progress=progress, chat=chat)

    # -- what some backends offer (see ``capabilities``) ----------------------------------------------

    def score_continuations(self, prompts: list[str], continuations: list[str], *, chat: bool = True
                            ) -> list[float]:
        """Sum of log-probabilities of each continuation given its (templated) prompt."""
        self.refuse(Capability.SCORE, "score continuations")

    def encode(self, prompts: list[str], *, chat: bool = True) -> list[list[int]]:
        """Token ids of each (templated) prompt, as ``generate`` feeds them to the model."""
        self.refuse(Capability.TOKENS, "encode prompts")

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a continuation (no template, no special tokens)."""
        self.refuse(Capability.TOKENS, "tokenize text")

    def decode(self, ids: list[int]) -> str:
        """Text of token ids, special tokens skipped."""
        self.refuse(Capability.TOKENS, "decode token ids")

    def eos_token_ids(self) -> list[int]:
        """Every id that ends a generation (tokenizer and generation config)."""
        self.refuse(Capability.TOKENS, "name its end-of-sequence tokens")

    def stepper(self, prompts: list[str], *, hidden: bool = False, chat: bool = True) -> Any:
        """A :class:`mocoflow.engines.stepper.Stepper` over these prompts (token-level methods decode many items
        in lockstep through it)."""
        self.refuse(Capability.LOGITS, "decode step by step")

    def forward(self, ids: list[int], *, hidden_states: bool = False) -> tuple[Any, Any]:
        """``(log_probs [T, V], last hidden states [T, H] or None)`` of one token sequence (float32), where row
        ``t`` is the distribution of the token after position ``t``. Counts the tokens as prompt tokens."""
        self.refuse(Capability.LOGITS, "run a forward pass")

    def hf_model(self) -> tuple[Any, Any]:
        """``(model, tokenizer)`` of the in-process Hugging Face model (for training copies)."""
        self.refuse(Capability.WEIGHTS, "hand out its weights")

    def load_state_dict(self, state: dict[str, Any], *, strict: bool = False) -> tuple[list[str], list[str]]:
        """Swap (some of) the model's parameters in place; returns ``(missing, unexpected)`` keys. Never use a
        cached engine for this: the fingerprint no longer matches the weights."""
        self.refuse(Capability.WEIGHTS, "swap its weights")

    def record(self, **deltas: float) -> None:
        """Add work done outside the engine's own calls (a method's step-wise decoding) to ``usage``."""
        for key, value in deltas.items():
            if key in ("device", "parameters") or not hasattr(self.usage, key):
                raise ValueError(f"record: {key!r} is not a usage counter")
            setattr(self.usage, key, getattr(self.usage, key) + value)

    def __getattr__(self, attr: str) -> Any:
        """``engine.model`` / ``.tokenizer`` of a backend without them: the capability error, not a bare
        AttributeError (methods not yet moved to engine methods still read these)."""
        needed = {"model": Capability.WEIGHTS, "tokenizer": Capability.TOKENS}.get(attr)
        if needed is not None and needed not in type(self).capabilities:
            self.refuse(needed, f"give its {attr}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def refuse(self, capability: Capability, what: str) -> NoReturn:
        offers = ", ".join(sorted(c.value for c in self.capabilities)) or "nothing"
        raise EngineCapabilityError(
            f"model {self.name!r} (backend {self.backend!r}) cannot {what}: that needs {capability.value!r}, and "
            f"this backend offers: {offers}. Use a transformers model for methods that need logits or weights.")


CachedLookup = Callable[[str], "Generation | None"]
CacheStore = Callable[[str, Generation], None]


def generate_with(engine: Engine, prompts: list[str], decoding: DecodingConfig, *, progress: str | None = None,
                  chat: bool = True, lookup: CachedLookup | None = None, store: CacheStore | None = None,
                  after_batch: Callable[[], None] | None = None) -> list[Generation]:
    """The one generation loop: look each prompt up (``lookup``), generate each distinct miss once through the
    backend's ``generate_batches``, ``store`` every finished batch at once (a killed job loses at most one
    batch), and return one generation per prompt in the caller's order. Cache hits are counted in the engine's
    usage (``cache_hits``, ``cached_tokens``: the work done once, in an earlier job)."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    results: list[Generation | None] = [None] * len(prompts)
    pending: dict[str, list[int]] = {}  # prompt -> indices still to generate
    for i, prompt in enumerate(prompts):
        if prompt in pending:
            pending[prompt].append(i)
            continue
        hit = lookup(prompt) if lookup is not None else None
        if hit is not None:
            results[i] = hit
            engine.usage.cache_hits += 1
            engine.usage.cached_tokens += hit.prompt_tokens + hit.generated_tokens
        else:
            pending[prompt] = [i]
    todo = list(pending)
    if todo:  # everything from the cache: the backend is not asked (a lazy model is not even loaded)
        bar = tqdm(total=len(prompts), desc=progress, disable=progress is None, unit="prompt")
        bar.update(len(prompts) - sum(len(v) for v in pending.values()))
        try:
            for batch in engine.generate_batches(todo, decoding, chat=chat):
                for j, gen in batch:
                    if store is not None:
                        store(todo[j], gen)
                    for i in pending[todo[j]]:
                        results[i] = gen
                    bar.update(len(pending[todo[j]]))
                if after_batch is not None:
                    after_batch()
        finally:
            bar.close()
            engine.usage.generate_seconds += time.perf_counter() - t0
    missing = [prompts[i][:60] for i, r in enumerate(results) if r is None]
    if missing:
        raise RuntimeError(f"{engine.name}: the backend returned no generation for {len(missing)} prompt(s), "
                           f"e.g. {missing[0]!r}")
    return [r for r in results if r is not None]
