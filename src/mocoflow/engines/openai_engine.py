"""The openai backend: a model behind an OpenAI-compatible HTTP API (vLLM's ``vllm serve``, llama.cpp's server,
Ollama, hosted APIs), through the maintained ``openai`` client.

Spec keys (``backend: openai``; the source is ``endpoint`` -- no weights -- or any weights source whose files
describe the served model):

``base_url``      required, e.g. ``http://127.0.0.1:8000/v1``
``model``         the served model name (default: the config name)
``api_key_env``   name of the environment variable holding the API key. The key itself never appears in the
                  config, the card, the cache or the logs; without ``api_key_env`` a placeholder key is sent
                  (local servers ignore it). A spec with an ``api_key`` is refused.
``api``           ``chat`` (default: the server applies its chat template to one user turn) or ``completions``
                  (the prompt is rendered here with the chat template of the tokenizer at ``path``)
``concurrency``   requests in flight at once (default 8)
``max_retries``   retries of a failed request (connection errors, 408/409/429/5xx) with the client's
                  exponential backoff (0.5 s doubling to 8 s, with jitter; a server's ``Retry-After`` wins);
                  default 4
``timeout``       seconds per request (default 120)
``logprobs``      ask for per-token log-probabilities (default true); servers that return none give
                  ``sum_logprob = NaN`` (logged once), never a made-up 0
``parameters``    parameter count of the served model, for FLOP estimates (default: counted from ``path``)
``fingerprint``   identity for the response cache (default: the weights' fingerprint when ``path`` is a model
                  directory -- so a served model shares cache entries with the same weights run in process --
                  else sha256 of base_url and model)

Decoding: greedy is ``temperature=0``; sampling sends ``temperature``, ``top_p`` and the per-prompt
``seed=sample_seed(seed, prompt)`` (servers that honour seeds, as vLLM does, reproduce a sampled answer).
Costs: the server's ``usage`` (prompt and completion tokens) per request; ``calls`` counts requests.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mocoflow.engines.base import BACKEND_CAPABILITIES, DecodingConfig, Engine, Generation, Usage
from mocoflow.engines.tokens import render_prompt, sample_seed
from mocoflow.models import local_model_dir, model_fingerprint, parameter_count
from mocoflow.models_weightless import EndpointSettings, endpoint_fingerprint, endpoint_settings

__all__ = ["EndpointSettings", "OpenAIEngine", "endpoint_fingerprint", "endpoint_settings", "make_openai_engine"]

log = logging.getLogger(__name__)


class OpenAIEngine(Engine):
    """A served model behind the ``Engine`` interface (generation only: no logits, no weights)."""

    backend = "openai"
    capabilities = BACKEND_CAPABILITIES["openai"]

    def __init__(self, name: str, settings: EndpointSettings, *, path: str | os.PathLike[str] | None = None,
                 fingerprint: str | None = None, parameters: int | None = None, client: Any = None) -> None:
        self.name = name
        self.settings = settings
        self.usage = Usage(device="remote")
        weights = local_model_dir(path) if path is not None else None
        if weights is not None and not (weights / "config.json").is_file():
            weights = None  # a descriptor file or folder without a model: nothing to fingerprint or tokenize
        self.weights = weights
        self.fingerprint = fingerprint or (model_fingerprint(weights) if weights is not None
                                           else endpoint_fingerprint(settings))
        if parameters is None and weights is not None:
            parameters = parameter_count(weights)
        if parameters:
            self.usage.parameters[name] = int(parameters)
        self._tokenizer: Any = None
        if settings.api == "completions" and weights is None:
            raise ValueError(f"model {name!r}: api 'completions' renders the chat template here, so it needs "
                             "'path' (the served model's weights or tokenizer directory)")
        if client is None:
            import openai

            client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key(name),
                                   timeout=settings.timeout, max_retries=settings.max_retries)
        self.client = client
        self._warned_no_logprobs = False

    def _rendered(self, prompt: str) -> str:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.weights), local_files_only=True)
        text, _special = render_prompt(self._tokenizer, prompt, chat=True)
        return text

    def _request(self, prompt: str, decoding: DecodingConfig, chat: bool) -> Generation:
        s = self.settings
        kwargs: dict[str, Any] = {"model": s.model, "max_tokens": decoding.max_new_tokens,
                                  "temperature": decoding.temperature if decoding.do_sample else 0.0,
                                  "top_p": decoding.top_p if decoding.do_sample else 1.0}
        if decoding.do_sample:
            kwargs["seed"] = sample_seed(decoding.seed, prompt)
        try:
            if chat and s.api == "chat":
                if s.logprobs:
                    kwargs["logprobs"] = True
                resp = self.client.chat.completions.create(messages=[{"role": "user", "content": prompt}], **kwargs)
                choice = resp.choices[0]
                text = choice.message.content or ""
                content = getattr(choice.logprobs, "content", None) if choice.logprobs is not None else None
                token_logprobs = [float(t.logprob) for t in content] if content else None
            else:
                if s.logprobs:
                    kwargs["logprobs"] = 0
                resp = self.client.completions.create(prompt=self._rendered(prompt) if chat else prompt, **kwargs)
                choice = resp.choices[0]
                text = choice.text or ""
                lp = getattr(choice.logprobs, "token_logprobs", None) if choice.logprobs is not None else None
                token_logprobs = [float(x) for x in lp if x is not None] if lp else None
        except Exception as err:  # the client already retried; name the model and the server
            raise RuntimeError(f"model {self.name!r}: request to {s.base_url} (model {s.model!r}) failed after "
                               f"{s.max_retries} retries: {type(err).__name__}: {err}") from err
        usage = getattr(resp, "usage", None)
        generated = int(getattr(usage, "completion_tokens", 0) or 0) or len(token_logprobs or [])
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        if token_logprobs is None:
            if s.logprobs and not self._warned_no_logprobs:
                log.warning("%s: %s returned no log-probabilities; sum_logprob is NaN", self.name, s.base_url)
                self._warned_no_logprobs = True
            total = math.nan
        else:
            total = sum(token_logprobs)
        return Generation(text=text, prompt_tokens=prompt_tokens, generated_tokens=generated, sum_logprob=total)

    def generate_batches(self, prompts: list[str], decoding: DecodingConfig, *, chat: bool = True
                         ) -> Iterator[list[tuple[int, Generation]]]:
        # up to ``concurrency`` requests in flight; a chunk is yielded (and cached) as soon as it is complete
        n = self.settings.concurrency
        chunk = max(n, decoding.batch_size) * 2
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"openai-{self.name}") as pool:
            for start in range(0, len(prompts), chunk):
                idx = list(range(start, min(start + chunk, len(prompts))))
                gens = list(pool.map(lambda i: self._request(prompts[i], decoding, chat), idx))
                for g in gens:
                    self.usage.calls += 1
                    self.usage.prompt_tokens += g.prompt_tokens
                    self.usage.generated_tokens += g.generated_tokens
                yield list(zip(idx, gens, strict=True))


def make_openai_engine(name: str, spec: dict[str, Any]) -> OpenAIEngine:
    """Build an :class:`OpenAIEngine` from a model spec (keys in the module docstring)."""
    settings = endpoint_settings(name, spec)
    path = spec.get("path")
    t0 = time.perf_counter()
    engine = OpenAIEngine(name, settings, path=Path(path) if path else None, fingerprint=spec.get("fingerprint"),
                          parameters=spec.get("parameters"))
    log.info("%s: %s model %r (api %s, concurrency %d) ready in %.2fs", name, settings.base_url, settings.model,
             settings.api, settings.concurrency, time.perf_counter() - t0)
    return engine
