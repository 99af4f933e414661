"""The response-cache layer: one wrapper around any backend (as lm-evaluation-harness's ``CachingLM``).

``CachingEngine(backend, cache).generate`` looks every prompt up in the :class:`ResponseCache` under the backend's
fingerprint (weights, served model or recorded table), the prompt (raw, untemplated prompts apart from chat
prompts) and the decoding settings; only misses reach the backend, each distinct prompt once, and every finished
batch is written to the cache before the next one starts. Two backends over the same weights (transformers and
vLLM, or a ``vllm serve`` of those weights behind the openai backend) compute the same fingerprint and so share
entries. Everything else (scoring, tokens, logits, weights, usage) is the backend's own: the wrapper forwards it.

Test hook: ``MOCOFLOW_EXIT_AFTER_BATCHES=k`` makes the process exit (``os._exit(75)``) right after its k-th
generated batch has been cached, to simulate a killed job.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from mocoflow.engines.base import DecodingConfig, Engine, Generation, generate_with
from mocoflow.engines.cache import ResponseCache

log = logging.getLogger(__name__)

EXIT_HOOK_ENV = "MOCOFLOW_EXIT_AFTER_BATCHES"
RAW_PREFIX = "\0raw\0"  # cache-key prefix of prompts generated without the chat template


def cache_prompt(prompt: str, chat: bool) -> str:
    """The prompt as the cache keys it: raw (untemplated) prompts are different requests."""
    return prompt if chat else RAW_PREFIX + prompt


class CachingEngine(Engine):
    """``backend`` behind the response cache. ``usage`` is the backend's own object (one account per model)."""

    def __init__(self, backend: Engine, cache: ResponseCache) -> None:
        self.backend_engine = backend
        self.cache = cache
        self._batches_done = 0

    # identity and accounting are the backend's
    @property
    def name(self) -> str:  # type: ignore[override]
        return self.backend_engine.name

    @property
    def fingerprint(self) -> str:  # type: ignore[override]
        return self.backend_engine.fingerprint

    @property
    def usage(self) -> Any:  # type: ignore[override]
        return self.backend_engine.usage

    @property
    def backend(self) -> str:  # type: ignore[override]
        return self.backend_engine.backend

    @property
    def capabilities(self) -> Any:  # type: ignore[override]
        return self.backend_engine.capabilities

    def generate(self, prompts: list[str], decoding: DecodingConfig, *, progress: str | None = None,
                 chat: bool = True) -> list[Generation]:
        fp = self.fingerprint
        return generate_with(
            self.backend_engine, prompts, decoding, progress=progress, chat=chat,
            lookup=lambda p: self.cache.get(fp, cache_prompt(p, chat), decoding),
            store=lambda p, g: self.cache.put(fp, cache_prompt(p, chat), decoding, g),
            after_batch=self._batch_stored)

    def generate_batches(self, prompts: list[str], decoding: DecodingConfig, *, chat: bool = True):  # type: ignore[override]
        return self.backend_engine.generate_batches(prompts, decoding, chat=chat)

    def _batch_stored(self) -> None:
        self._batches_done += 1
        limit = os.environ.get(EXIT_HOOK_ENV)
        if limit and self._batches_done >= int(limit):
            log.warning("%s=%s: exiting after %d batches (test hook)", EXIT_HOOK_ENV, limit, self._batches_done)
            logging.shutdown()
            os._exit(75)

    # everything else is the backend's
    def score_continuations(self, prompts: list[str], continuations: list[str], *, chat: bool = True
                            ) -> list[float]:
        return self.backend_engine.score_continuations(prompts, continuations, chat=chat)

    def encode(self, prompts: list[str], *, chat: bool = True) -> list[list[int]]:
        return self.backend_engine.encode(prompts, chat=chat)

    def tokenize(self, text: str) -> list[int]:
        return self.backend_engine.tokenize(text)

    def decode(self, ids: list[int]) -> str:
        return self.backend_engine.decode(ids)

    def eos_token_ids(self) -> list[int]:
        return self.backend_engine.eos_token_ids()

    def stepper(self, prompts: list[str], *, hidden: bool = False, chat: bool = True) -> Any:
        return self.backend_engine.stepper(prompts, hidden=hidden, chat=chat)

    def forward(self, ids: list[int], *, hidden_states: bool = False) -> tuple[Any, Any]:
        return self.backend_engine.forward(ids, hidden_states=hidden_states)

    def hf_model(self) -> tuple[Any, Any]:
        return self.backend_engine.hf_model()

    def load_state_dict(self, state: dict[str, Any], *, strict: bool = False) -> tuple[list[str], list[str]]:
        raise RuntimeError(f"{self.name}: swapping weights under a response cache would serve answers of the old "
                           "weights; build the engine without a cache (make_engine(..., cache_dir=None))")

    def record(self, **deltas: float) -> None:
        self.backend_engine.record(**deltas)

    def __getattr__(self, attr: str) -> Any:
        """Backend attributes (``model``, ``tokenizer``, ``device``) for methods not yet moved to engine
        methods. Only reached for names the wrapper does not define."""
        if attr == "backend_engine":  # not set yet (during unpickling): avoid infinite recursion
            raise AttributeError(attr)
        return getattr(self.backend_engine, attr)
