"""What a method's needs ask of the engines that serve its models, checked when the DAG is built.

A served model (``backend: openai``) generates text but has no logits or weights in process; a replayed one
(``backend: replay``) only answers the prompts it recorded; vLLM generates and scores but does not step. A run
whose method needs more than a model's backend offers is refused before any job starts, with the run, the
model, its backend and what would work named in the message.
"""

from __future__ import annotations

from typing import Any

from mocoflow.engines.base import BACKEND_CAPABILITIES, Capability
from mocoflow.engines.factory import backend_of
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


def check_backends(run: str, method: str, needs: frozenset[Need], models: dict[str, dict[str, Any]]) -> None:
    """Raise :class:`MethodError` when a model's backend cannot give what the run's method needs."""
    for model, spec in models.items():
        backend = backend_of(model, spec)
        offers = BACKEND_CAPABILITIES[backend]
        for need in sorted(needs, key=lambda n: n.value):
            capability = NEED_CAPABILITY.get(need)
            if capability is not None and capability not in offers:
                raise MethodError(
                    f"run {run!r} (method {method!r}) needs {WHAT[capability]} ({need.value}) of model {model!r}, "
                    f"but its backend {backend!r} offers only: {', '.join(sorted(c.value for c in offers))}. "
                    "Use a model with backend 'transformers' for this run, or remove the model from its pools.")


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
