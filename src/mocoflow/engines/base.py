"""The engine interface every backend implements, and the records it returns."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any


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


class Engine(ABC):
    """A loaded model that generates text and scores tokens."""

    name: str
    fingerprint: str
    usage: Usage

    @abstractmethod
    def generate(self, prompts: list[str], decoding: DecodingConfig, *, progress: str | None = None
                 ) -> list[Generation]:
        """Generate one response per prompt (chat template applied where the tokenizer has one)."""

    @abstractmethod
    def score_continuations(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """Sum of log-probabilities of each continuation given its (templated) prompt."""
