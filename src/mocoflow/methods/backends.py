"""What a method's needs ask of the engines that serve its models, checked when the DAG is built.

A served model (``backend: openai``) generates text but has no logits or weights in process; a replayed one
(``backend: replay``) only answers the prompts it recorded; a vLLM model generates and scores, and its weights are
loaded with transformers by runs that step through it or copy it (:func:`mocoflow.engines.factory.serving_backend`).
A run whose method needs more than a model can give is refused before any job starts, with the run, the model,
its backend and what would work named in the message.
"""

from __future__ import annotations

from typing import Any

from mocoflow.engines.base import BACKEND_CAPABILITIES, Capability, EngineCapabilityError
from mocoflow.engines.factory import backend_of, serving_backend
from mocoflow.methods.base import MethodError, Need

# the capability each need requires of every model the run uses
NEED_CAPABILITY: dict[Need, Capability] = {
    Need.MODELS: Capability.GENERATE,  # new text for new prompts
    Need.SAME_TOKENIZER: Capability.LOGITS,  # next-token distributions, step by step
    Need.LOGITS: Capability.LOGITS,
    Need.WEIGHTS: Capability.WEIGHTS,  # training copies
    Need.SAME_ARCHITECTURE: Capability.WEIGHTS,  # parameters to merge
    Need.MERGED_MODEL: Capability.WEIGHTS,
}
WHAT = {Capability.GENERATE: "new generations", Capability.LOGITS: "next-token log-probabilities",
        Capability.WEIGHTS: "the weights"}


def required_capabilities(needs: frozenset[Need]) -> frozenset[Capability]:
    """What every model of a run with these needs must give (pass to ``make_engine(requires=...)``)."""
    return frozenset(NEED_CAPABILITY[n] for n in needs if n in NEED_CAPABILITY)


def check_backends(run: str, method: str, needs: frozenset[Need], models: dict[str, dict[str, Any]]) -> None:
    """Raise :class:`MethodError` when a model cannot give what the run's method needs."""
    for model, spec in models.items():
        for need in sorted(needs, key=lambda n: n.value):
            capability = NEED_CAPABILITY.get(need)
            if capability is None:
                continue
            try:
                serving_backend(model, spec, {capability})
            except EngineCapabilityError:
                backend = backend_of(model, spec)
                offers = ", ".join(sorted(c.value for c in BACKEND_CAPABILITIES[backend]))
                raise MethodError(
                    f"run {run!r} (method {method!r}) needs {WHAT[capability]} ({need.value}) of model {model!r}, "
                    f"but its backend {backend!r} offers only: {offers}, and has no weights in process. Use a "
                    "model with local weights (backend 'transformers' or 'vllm') for this run, or remove the model "
                    "from its pools.") from None


def check_study_backends(config: dict[str, Any], runs: list[Any], method_of: Any, named_models: Any) -> None:
    """Check every configured run (``runs``: objects with ``run`` and ``pool``) against its models' backends.
    ``method_of(run)`` gives the configured method instance, ``named_models(run)`` the models its
    hyperparameters name."""
    seen = set()
    for r in runs:
        if (r.run, r.pool) in seen:
            continue
        seen.add((r.run, r.pool))
        method = method_of(r.run)
        names = list(config["pools"][r.pool]) + [m for m in named_models(r.run) if m not in config["pools"][r.pool]]
        check_backends(r.run, method.name, method.needs, {m: config["models"][m] for m in names})
