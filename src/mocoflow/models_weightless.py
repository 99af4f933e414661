"""Model sources without weights in process: recorded answers (``replay``) and served models (``endpoint``).

Each writes a small JSON descriptor next to the card and returns its path; the card then records the
descriptor's ``fingerprint`` and ``parameters`` (:func:`mocoflow.models.make_card`), and no architecture or
tokenizer (logit- and weight-level methods are refused for these models when the DAG is built: see
:mod:`mocoflow.methods.backends`).

``replay``  (``backend: replay``) one column group of an exported generations table (:mod:`mocoflow.export_table`)
    table (required): path to the Parquet file; column (default: the config name): the model's column group;
    sha256 (optional): the table's expected sha256, checked. Writes ``replay.json`` (table, column, table
    sha256, fingerprint = sha256 of table sha256 and column, parameters from the table's metadata).
``endpoint``  (``backend: openai``) a model behind an OpenAI-compatible server (keys in
    :mod:`mocoflow.engines.openai_engine`; the settings are read here, below the engines, so that the source
    and the engine compute the same fingerprint). Writes ``endpoint.json`` (base_url, model, api, fingerprint); the
    API key stays in its environment variable. Nothing is contacted when the card is built.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mocoflow.io import write_json
from mocoflow.models import file_sha256

log = logging.getLogger(__name__)

PLACEHOLDER_KEY = "EMPTY"  # what local servers get when no api_key_env is named


@dataclass(frozen=True)
class EndpointSettings:
    """How to reach a served model (documented in the module docstring)."""

    base_url: str
    model: str
    api_key_env: str | None = None
    api: str = "chat"
    concurrency: int = 8
    max_retries: int = 4
    timeout: float = 120.0
    logprobs: bool = True

    def __post_init__(self) -> None:
        if self.api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', not {self.api!r}")
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout <= 0:
            raise ValueError("concurrency must be >= 1, max_retries >= 0 and timeout > 0")

    def api_key(self, name: str) -> str:
        if not self.api_key_env:
            return PLACEHOLDER_KEY
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ValueError(f"model {name!r}: api_key_env names the environment variable {self.api_key_env!r}, "
                             "which is not set")
        return key


SETTING_KEYS = ("base_url", "model", "api_key_env", "api", "concurrency", "max_retries", "timeout", "logprobs")


def endpoint_fingerprint(settings: EndpointSettings) -> str:
    """The cache identity of a served model known only by its URL and name."""
    return hashlib.sha256(f"openai\0{settings.base_url}\0{settings.model}".encode()).hexdigest()


def endpoint_settings(name: str, spec: dict[str, Any]) -> EndpointSettings:
    """The endpoint settings of a model spec, with clear errors for a missing URL or a key in the config."""
    if "api_key" in spec:
        raise ValueError(f"model {name!r}: API keys never go in the config; put the key in an environment "
                         "variable and name that variable with 'api_key_env'")
    if not spec.get("base_url"):
        raise ValueError(f"model {name!r}: backend 'openai' needs 'base_url' (e.g. http://127.0.0.1:8000/v1)")
    values = {k: spec[k] for k in SETTING_KEYS if spec.get(k) is not None}
    values.setdefault("model", name)
    try:
        return EndpointSettings(**values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"model {name!r}: {err}") from None


def replay_source(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    from mocoflow.export_table import column, read_columns, read_metadata

    if not spec.get("table"):
        raise ValueError(f"model {name!r}: source 'replay' needs 'table' (an exported generations Parquet file)")
    table = Path(spec["table"]).expanduser().resolve()
    if not table.is_file():
        raise FileNotFoundError(f"model {name!r}: replay table {table} does not exist")
    sha = file_sha256(table)
    if spec.get("sha256") and spec["sha256"] != sha:
        raise ValueError(f"model {name!r}: {table} has sha256 {sha}, the config expects {spec['sha256']}")
    group = str(spec.get("column") or name)
    if column(group, "output") not in read_columns(table):
        raise ValueError(f"model {name!r}: {table} has no column group {group!r} (no {column(group, 'output')!r})")
    recorded = read_metadata(table).get("models", {}).get(group, {})
    descriptor = {"table": str(table), "column": group, "table_sha256": sha,
                  "fingerprint": hashlib.sha256(f"replay\0{sha}\0{group}".encode()).hexdigest(),
                  "parameters": int(spec.get("parameters") or recorded.get("parameters") or 0),
                  "recorded": recorded}
    path = out_dir / "replay.json"
    write_json(path, descriptor)
    log.info("model %s: replays column group %r of %s", name, group, table)
    return path


def endpoint_source(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    settings = endpoint_settings(name, spec)  # refuses a key in the config, a missing base_url
    descriptor = {"base_url": settings.base_url, "model": settings.model, "api": settings.api,
                  "fingerprint": spec.get("fingerprint") or endpoint_fingerprint(settings),
                  "parameters": int(spec.get("parameters") or 0)}
    path = out_dir / "endpoint.json"
    write_json(path, descriptor)
    return path
