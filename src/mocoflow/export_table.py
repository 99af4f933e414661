"""The exported generations table: every (model, task, split, item, seed) generation with its score and cost.

One Parquet file in a wide layout, as routing benchmarks publish theirs (RouterBench: one row per prompt, one
column group per model), readable with pandas, pyarrow or ``datasets.Dataset.from_parquet``.

Rows: one per ``(task, split, id, seed)``. Columns:

========================  ========  ===================================================================
``task``                  string    task name in the study config
``split``                 string    ``dev`` or ``test``
``id``                    string    item id (unique within task and split)
``seed``                  int64     decoding seed of the generation (greedy generations: the study's seed)
``task_type``             string    multiple_choice, exact_match, f1_match, coding, noncompliance, ...
``question``              string    the item's question
``choices``               string    JSON object letter -> option text (``null`` when not multiple choice)
``gold``                  string    JSON of the reference answer (a letter, a string, a list of aliases, ...)
``prompt``                string    the prompt every model was asked (before its chat template)
``<model>|output``        string    the model's answer (text after the chat template's generation prompt)
``<model>|score``         float64   the task scorer's score (1.0/0.0 for accuracy tasks; F1 for f1_match)
``<model>|correct``       bool      the scorer's verdict
``<model>|status``        string    the scorer's status (ok, unparseable, judged, ...)
``<model>|prompt_tokens``     int64  templated prompt tokens
``<model>|generated_tokens``  int64  generated tokens (eos included when reached)
``<model>|sum_logprob``   float64   the model's log-probability of its answer (NaN when not available)
``<model>|mean_logprob``  float64   ``sum_logprob / generated_tokens``
``<model>|flops``         float64   estimated cost: 2 x parameters x (prompt + generated tokens)
========================  ========  ===================================================================

A model without a generation for a row (dev generations exist only where a method reads them) has nulls there.
Test scores are the study's own (``results/scores/single``: judged where the task has a judge); dev scores come
from the task scorer without judges. The file's Parquet metadata holds, under ``mocoflow``, a JSON object with
``schema`` (:data:`SCHEMA`), ``study``, ``models`` (name -> source, backend, fingerprint, parameters) and
``decoding`` (task -> decoding settings).

To script a pool by hand (answers chosen per item, no model): build long records with :func:`to_wide` and write
them with :func:`write_table`; ``source: replay`` models then read them back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA = "mocoflow-generations/1"
METADATA_KEY = b"mocoflow"
SEP = "|"
KEY_COLUMNS = ("task", "split", "id", "seed")
ITEM_COLUMNS = ("task_type", "question", "choices", "gold", "prompt")
MODEL_FIELDS = ("output", "score", "correct", "status", "prompt_tokens", "generated_tokens", "sum_logprob",
                "mean_logprob", "flops")
FIELD_DTYPES = {"output": "string", "score": "float64", "correct": "boolean", "status": "string",
                "prompt_tokens": "Int64", "generated_tokens": "Int64", "sum_logprob": "float64",
                "mean_logprob": "float64", "flops": "float64"}


def column(model: str, field: str) -> str:
    """The column of one model's field, e.g. ``column("smollm2", "output") == "smollm2|output"``."""
    if SEP in model:
        raise ValueError(f"model name {model!r} contains {SEP!r}, which separates model and field in the table")
    return f"{model}{SEP}{field}"


def models_in(columns: Iterable[str]) -> list[str]:
    """The models with an output column, in column order."""
    suffix = SEP + "output"
    return [c[: -len(suffix)] for c in columns if c.endswith(suffix)]


def to_wide(records: Iterable[dict[str, Any]], items: Iterable[dict[str, Any]] = (),
            parameters: dict[str, int] | None = None) -> pd.DataFrame:
    """The wide table from long records.

    records: one per generation, with ``task``, ``split``, ``id``, ``model``, ``output`` and optionally ``seed``
        (default 0), ``prompt``, ``score``, ``correct``, ``status``, ``prompt_tokens``, ``generated_tokens``,
        ``sum_logprob``.
    items: item columns per ``(task, split, id)``: ``task_type``, ``question``, ``choices``, ``gold`` (any JSON
        value; encoded here), ``prompt`` (else taken from the records, which must agree across models).
    parameters: model -> parameter count, for the ``flops`` column (0 when unknown).
    """
    long = pd.DataFrame(list(records))
    if long.empty:
        raise ValueError("no generations to tabulate")
    for key in ("task", "split", "id", "model", "output"):
        if key not in long:
            raise ValueError(f"generation records need {key!r}")
    long["seed"] = long["seed"].fillna(0).astype("int64") if "seed" in long else 0
    long["id"] = long["id"].astype(str)
    for name in long["model"].unique():
        column(str(name), "output")  # refuses a separator in a model name
    dup = long.duplicated(["task", "split", "id", "seed", "model"])
    if dup.any():
        raise ValueError(f"two generations for one (task, split, id, seed, model): {long[dup].iloc[0].to_dict()}")
    params = parameters or {}
    if "generated_tokens" in long and "sum_logprob" in long:
        long["mean_logprob"] = long["sum_logprob"] / long["generated_tokens"].clip(lower=1)
    if "prompt_tokens" in long and "generated_tokens" in long:
        long["flops"] = [2.0 * params.get(m, 0) * (p + g) for m, p, g in
                         zip(long["model"], long["prompt_tokens"], long["generated_tokens"], strict=True)]
    keys = list(KEY_COLUMNS)
    base = long[keys].drop_duplicates().sort_values(keys, kind="stable").reset_index(drop=True)
    item_rows = pd.DataFrame(list(items))
    if not item_rows.empty:
        item_rows = item_rows.assign(id=item_rows["id"].astype(str))
        for name in ("choices", "gold"):
            if name in item_rows:
                item_rows[name] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else
                                   json.dumps(v, ensure_ascii=False, sort_keys=True) for v in item_rows[name]]
        base = base.merge(item_rows[[c for c in ("task", "split", "id", *ITEM_COLUMNS) if c in item_rows]],
                          on=["task", "split", "id"], how="left")
    if "prompt" not in base and "prompt" in long:
        prompts = long.groupby(keys)["prompt"].agg(lambda s: sorted(set(s.dropna())))
        clash = prompts[prompts.map(len) > 1]
        if len(clash):
            raise ValueError(f"models were asked different prompts for {clash.index[0]}: the table keeps one prompt "
                             "per row")
        base = base.merge(prompts.map(lambda v: v[0] if v else None).rename("prompt").reset_index(), on=keys,
                          how="left")
    for name in ITEM_COLUMNS:
        if name not in base:
            base[name] = None
        base[name] = base[name].astype("string")
    out = [base[[*keys, *ITEM_COLUMNS]]]
    for model, group in long.groupby("model", sort=False):
        part = group.set_index(keys)
        cols = {}
        for field in MODEL_FIELDS:
            dtype = FIELD_DTYPES[field]
            values = part[field].astype(dtype) if field in part else pd.Series(None, index=part.index, dtype=dtype)
            cols[column(str(model), field)] = values
        out.append(base[keys].join(pd.DataFrame(cols), on=keys).drop(columns=keys))
    return pd.concat(out, axis=1)


def write_table(df: pd.DataFrame, path: str | Path, metadata: dict[str, Any]) -> None:
    """Write the table atomically with the ``mocoflow`` metadata (``schema`` is filled in)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mocoflow.io import atomic_path

    missing = [c for c in (*KEY_COLUMNS, *ITEM_COLUMNS) if c not in df]
    if missing:
        raise ValueError(f"table lacks columns {missing}")
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {**(table.schema.metadata or {}), METADATA_KEY: json.dumps({**metadata, "schema": SCHEMA},
                                                                       sort_keys=True).encode()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``mocoflow`` metadata of a table ({} for a table written by other tools)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def read_columns(path: str | Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def read_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(path, columns=columns)
