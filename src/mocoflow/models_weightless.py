"""Model sources without weights in process: recorded answers (``replay``) and served models (``endpoint``).

Each writes a small JSON descriptor next to the card and returns its path; the card then records the
descriptor's fingerprint and parameter count, and no architecture or tokenizer (so logit- and weight-level
methods are refused for these models when the DAG is built: see :mod:`mocoflow.methods.backends`).

``replay``  (``backend: replay``) one column group of an exported generations table (:mod:`mocoflow.export_table`)
    table (required): path to the Parquet file; column (default: the config name): the model's column group;
    sha256 (optional): the table's expected sha256, checked. Writes ``replay.json`` (table, column, table
    sha256, fingerprint = sha256 of table sha256 and column, parameters from the table's metadata).
``endpoint``  (``backend: openai``) a model behind an OpenAI-compatible server (keys in
    :mod:`mocoflow.engines.openai_engine`). Writes ``endpoint.json`` (base_url, model, api, fingerprint); the
    API key stays in its environment variable. Nothing is contacted when the card is built.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from mocoflow.io import write_json
from mocoflow.models import MODEL_SOURCES, file_sha256

log = logging.getLogger(__name__)


@MODEL_SOURCES.register("replay")
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


@MODEL_SOURCES.register("endpoint")
def endpoint_source(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    from mocoflow.engines.openai_engine import endpoint_fingerprint, endpoint_settings

    settings = endpoint_settings(name, spec)  # refuses a key in the config, a missing base_url
    descriptor = {"base_url": settings.base_url, "model": settings.model, "api": settings.api,
                  "fingerprint": spec.get("fingerprint") or endpoint_fingerprint(settings),
                  "parameters": int(spec.get("parameters") or 0)}
    path = out_dir / "endpoint.json"
    write_json(path, descriptor)
    return path


def weightless_card(name: str, spec: dict[str, Any], descriptor: Path, **extra: Any) -> dict[str, Any]:
    """The card of a model whose source wrote a descriptor instead of weights."""
    from mocoflow.io import read_json

    d = read_json(descriptor)
    return {"name": name, "source": spec.get("source"), "path": str(descriptor.resolve()),
            "fingerprint": d["fingerprint"], "parameters": int(d.get("parameters") or 0),
            "architecture": None, "tokenizer": None, "spec": spec, **extra}
