"""Build the engine a model spec asks for: the backend, wrapped in the response-cache layer.

This module sits above the backends (it imports them; they never import it), so there is no import cycle
between the loader, the token helpers and the backends. Backends are imported only when an engine is built:
vLLM and torch stay out of processes that never load a model (building the DAG, scoring, analysis).

Backends (the ``backend`` key of a model spec) and what they can do (``base.BACKEND_CAPABILITIES``):

``transformers``  default; in-process Hugging Face model: everything (generate, score, tokens, logits, weights)
``vllm``          in-process vLLM (``gpus`` = tensor parallelism): generate, score, tokens
``openai``        a model behind an OpenAI-compatible HTTP server: generate (see :mod:`.openai_engine`)
``replay``        answers recorded in an exported table (source ``replay``): only the prompts it recorded

A job that needs more of a model than its backend offers (``requires``: a logit-level method stepping through a
vLLM model) loads the same weights with transformers instead (``IN_PROCESS_FALLBACK``); a served or replayed
model has no weights to fall back to, and is refused (the DAG check, :mod:`mocoflow.methods.backends`, refuses it
before any job starts).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mocoflow.engines.base import BACKEND_CAPABILITIES, Capability, Engine, EngineCapabilityError
from mocoflow.engines.cache import ResponseCache
from mocoflow.engines.caching import CachingEngine
from mocoflow.engines.loader import derived_weights

WEIGHTLESS_BACKENDS = frozenset({"openai", "replay"})  # no weights in process: their jobs claim no GPU
# sources that only some backends can serve: a recorded table answers only through the replay backend, an
# endpoint only through the openai backend
SOURCE_BACKEND = {"replay": "replay", "endpoint": "openai"}
# backends whose weights are on local disk: transformers can load them when a job needs logits or weights
IN_PROCESS_FALLBACK = {"vllm": "transformers"}

log = logging.getLogger(__name__)


def backend_of(name: str, spec: dict[str, Any]) -> str:
    """The backend a model spec asks for (default ``transformers``), checked against its source."""
    backend = spec.get("backend") or "transformers"
    if backend not in BACKEND_CAPABILITIES:
        raise ValueError(f"model {name!r}: unknown backend {backend!r} ({', '.join(BACKEND_CAPABILITIES)})")
    source = spec.get("source")
    needed = SOURCE_BACKEND.get(str(source))
    if needed is not None and backend != needed:
        raise ValueError(f"model {name!r}: source {source!r} has no weights to load; set 'backend: {needed}' "
                         f"(it is {backend!r})")
    if backend == "replay" and source not in (None, "replay"):
        raise ValueError(f"model {name!r}: backend 'replay' answers from a recorded table: it needs "
                         f"'source: replay' (it is {source!r})")
    return backend


def serving_backend(name: str, spec: dict[str, Any], requires: Iterable[Capability] = ()) -> str:
    """The backend that serves a model for a job that ``requires`` these capabilities: the spec's, or its
    in-process fallback; :class:`EngineCapabilityError` when neither offers them."""
    backend = backend_of(name, spec)
    needed = frozenset(requires)
    if needed <= BACKEND_CAPABILITIES[backend]:
        return backend
    fallback = IN_PROCESS_FALLBACK.get(backend)
    if fallback is not None and needed <= BACKEND_CAPABILITIES[fallback]:
        return fallback
    lacking = ", ".join(sorted(c.value for c in needed - BACKEND_CAPABILITIES[backend]))
    offers = ", ".join(sorted(c.value for c in BACKEND_CAPABILITIES[backend]))
    raise EngineCapabilityError(f"model {name!r}: backend {backend!r} cannot give {lacking} (it offers: {offers}), "
                                "and it has no weights in process to load otherwise")


def make_engine(name: str, spec: dict[str, Any], *, cache_dir: Path | None, device: str = "auto",
                requires: Iterable[Capability] = ()) -> Engine:
    """Build the engine a model spec asks for, behind the response cache when ``cache_dir`` is given.

    spec keys: ``path`` (required: a model directory or hub id; for ``replay`` the table descriptor its source
    wrote; for ``openai`` optional weights whose fingerprint and tokenizer describe the served model),
    ``backend`` (see the module docstring), ``dtype`` ("auto", "float32", "bfloat16", ...), ``allow_hub``
    (default False), ``derived`` (a :class:`mocoflow.engines.loader.DerivedWeights`: weights built in memory
    from ``path``; always the transformers backend), ``lora_adapter`` (a LoRA adapter merged into ``path`` in
    memory: :func:`mocoflow.engines.loader.derived_weights`); backend-specific keys are documented in each backend's
    module. ``requires``: capabilities the job needs (see :func:`serving_backend`)."""
    if "path" not in spec:
        raise ValueError(f"model {name!r}: spec needs 'path'")
    derived = derived_weights(spec)
    # in-memory weights (a merge recipe, base + adapter) live in this process: the transformers backend serves them
    backend = "transformers" if derived is not None else serving_backend(name, spec, requires)
    if derived is None and backend != backend_of(name, spec):
        log.info("model %s: this job needs %s; loading its weights with %s instead of %s", name,
                 sorted(c.value for c in requires), backend, spec.get("backend"))
    engine: Engine
    if backend == "transformers":
        from mocoflow.engines.transformers_engine import TransformersEngine

        engine = TransformersEngine(name, spec["path"], device=device, dtype=spec.get("dtype", "auto"),
                                    local_files_only=not bool(spec.get("allow_hub", False)), derived=derived)
    elif backend == "vllm":
        from mocoflow.engines.vllm_engine import make_vllm_engine

        engine = make_vllm_engine(name, spec)
    elif backend == "openai":
        from mocoflow.engines.openai_engine import make_openai_engine

        engine = make_openai_engine(name, spec)
    else:
        from mocoflow.engines.replay import ReplayEngine

        engine = ReplayEngine.from_descriptor(name, spec["path"])
    if cache_dir is None:
        return engine
    return CachingEngine(engine, ResponseCache(Path(cache_dir)))
