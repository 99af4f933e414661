"""Prepare one task: load it from its source and write ``{out_dir}/{split}.jsonl`` plus ``meta.json``.

Usage::

    python -m mocoflow.data.prepare --task NAME --spec-json '{"source": "builtin", ...}' \\
        --cache-dir DIR --out-dir DIR

Every split in ``train``/``dev``/``test`` is written (an empty file for an empty split). ``meta.json``
records the task, source, task_type, counts per split, the pinned sha256 (if any), the spec and the
sha256 of each written split file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mocoflow.data.schema import SPLITS
from mocoflow.data.sources import DataError, load_task, sha256_file
from mocoflow.io import write_json, write_jsonl
from mocoflow.registry import UnknownNameError

log = logging.getLogger("mocoflow.data.prepare")


def _task_type(name: str, spec: dict[str, Any], splits: dict[str, list[Any]]) -> str | None:
    types = {item.task_type for items in splits.values() for item in items}
    if len(types) > 1:
        raise DataError(f"task {name!r}: items of several task types {sorted(types)}")
    return types.pop() if types else spec.get("task_type")


def prepare_task(name: str, spec: dict[str, Any], cache_dir: str | Path,
                 out_dir: str | Path) -> dict[str, Any]:
    """Load task ``name`` and write its split files and ``meta.json`` into ``out_dir``; return the meta."""
    out_dir = Path(out_dir)
    splits = load_task(name, spec, cache_dir=Path(cache_dir))
    meta: dict[str, Any] = {
        "task": name,
        "source": spec.get("source"),
        "task_type": _task_type(name, spec, splits),
        "counts": {split: len(splits[split]) for split in SPLITS},
        "sha256": spec.get("sha256"),
        "seed": spec.get("seed", 0),
        "spec": spec,
        "files": {},
    }
    for split in SPLITS:
        path = out_dir / f"{split}.jsonl"
        write_jsonl(path, (item.to_dict() for item in splits[split]))
        meta["files"][split] = sha256_file(path)
    write_json(out_dir / "meta.json", meta)
    log.info("task %s (%s, %s): %s -> %s", name, meta["source"], meta["task_type"],
             ", ".join(f"{s}={n}" for s, n in meta["counts"].items()), out_dir)
    return meta


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err.msg}: {text[:200]!r}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--spec-json must be a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", required=True, help="task name (becomes Item.task)")
    p.add_argument("--spec-json", type=_json_object, required=True, help="the task's config block as JSON")
    p.add_argument("--cache-dir", type=Path, required=True, help="download cache folder")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for {split}.jsonl and meta.json")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        prepare_task(args.task, args.spec_json, args.cache_dir, args.out_dir)
    except (DataError, UnknownNameError) as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
