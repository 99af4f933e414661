"""Model source ``hub``: a Hugging Face hub id (paper-scale studies on GPU machines and clusters).

Spec keys: ``id`` (required, e.g. "Qwen/Qwen2.5-7B-Instruct"), ``revision`` (branch, tag or commit; default
"main" -- pin a commit for reproducible studies), ``backend`` / ``gpus`` / ``dtype`` as for every model.

The DAG only records the id: building the DAG (``snakemake -n``) never touches the network or the weights.
When the ``build_model`` job runs, the id is resolved to a local snapshot directory -- the HF cache if the
files are there, else a download of config, tokenizer and safetensors files (never ``.bin``/``.pth``) unless
the hub is switched off. With ``HF_HUB_OFFLINE=1`` (or spec ``offline: true``) a model that is not in the
local HF cache is refused with a message saying how to fetch it. The weights are loaded only by the jobs
that generate (``generate``, ``collaborate``), from the snapshot path written into the model card.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


class HubModelUnavailable(RuntimeError):
    """The model is not in the local HF cache and the hub may not be used."""


def hub_offline(spec: dict[str, Any] | None = None) -> bool:
    spec = spec or {}
    if spec.get("offline") is not None:
        return bool(spec["offline"])
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def model_id(name: str, spec: dict[str, Any]) -> str:
    repo = spec.get("id") or spec.get("path")
    if not repo:
        raise ValueError(f"model {name!r}: source 'hub' needs 'id' (a hub id such as Qwen/Qwen2.5-7B-Instruct)")
    return str(repo)


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The local snapshot directory of ``repo_id`` if its config is in the HF cache (never downloads)."""
    try:
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(repo_id, revision=revision, local_files_only=True,
                                      allow_patterns=ALLOW_PATTERNS))
    except Exception:  # not cached, not a valid id, or huggingface_hub missing
        return None
    return path if (path / "config.json").is_file() else None


def resolve_hub_model(name: str, spec: dict[str, Any]) -> Path:
    """Local snapshot directory of the spec's hub id: cached, else downloaded unless offline."""
    repo = model_id(name, spec)
    revision = spec.get("revision")
    local = cached_snapshot(repo, revision)
    if local is not None:
        log.info("model %s: %s found in the local HF cache at %s", name, repo, local)
        return local
    if hub_offline(spec):
        raise HubModelUnavailable(
            f"model {name!r}: {repo}{'@' + revision if revision else ''} is not in the local Hugging Face cache "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}) and HF_HUB_OFFLINE=1 forbids downloading it. "
            f"Fetch it first on a machine with access (huggingface-cli download {repo}"
            f"{' --revision ' + revision if revision else ''}) into the shared HF cache, or unset HF_HUB_OFFLINE, "
            f"or point the model at a local directory (source: local, path: ...).")
    from huggingface_hub import snapshot_download

    log.info("model %s: downloading %s (revision %s)", name, repo, revision or "main")
    return Path(snapshot_download(repo, revision=revision, allow_patterns=ALLOW_PATTERNS))


def hub_source(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    """A hub id resolved to its local snapshot (nothing is copied; weights load later, where they are used)."""
    return resolve_hub_model(name, spec)
