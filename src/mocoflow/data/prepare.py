"""Prepare one task: load it from its source and write ``{out_dir}/{split}.jsonl`` plus ``meta.json``.

Usage::

    python -m mocoflow.data.prepare --task NAME --spec-json '{"source": "builtin", ...}' \\
        --cache-dir DIR --out-dir DIR

Every split in ``train``/``dev``/``test`` is written (an empty file for an empty split). ``meta.json``
records the task, source, task_type, counts per split, the pinned sha256 (if any), the spec and the
sha256 of each written split file, and what the data could not give:

- ``short``: splits with fewer items than their ``n_<split>`` asked for (``{"requested", "available"}``);
  logged as a warning here and again whenever the DAG is built. A split that asked for items and got none
  (e.g. ``n_dev: 50`` where ``n_test`` took every row) is an error, never a silent empty split.
- ``null_gold``: items without a gold answer in task types that need one, per split;
  ``dropped_without_gold``: source rows dropped without a single gold answer (an empty gold, several MC answer
  keys; ``on_missing_gold: drop``), per split.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mocoflow.data.moco import count_dropped_golds
from mocoflow.data.schema import SPLITS, Item
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
    with count_dropped_golds() as dropped:
        splits = load_task(name, spec, cache_dir=Path(cache_dir))
    short = shortfalls(name, spec, splits)
    null_gold = {split: n for split in SPLITS if (n := count_null_golds(splits[split]))}
    meta: dict[str, Any] = {
        "task": name,
        "source": spec.get("source"),
        "task_type": _task_type(name, spec, splits),
        "counts": {split: len(splits[split]) for split in SPLITS},
        "sha256": spec.get("sha256"),
        "seed": spec.get("seed", 0),
        "spec": spec,
        "files": {},
        "short": short,
        "null_gold": null_gold,
        "dropped_without_gold": {split: n for split, n in sorted(dropped.items()) if n},
    }
    for split in SPLITS:
        path = out_dir / f"{split}.jsonl"
        write_jsonl(path, (item.to_dict() for item in splits[split]))
        meta["files"][split] = sha256_file(path)
    write_json(out_dir / "meta.json", meta)
    log.info("task %s (%s, %s): %s -> %s", name, meta["source"], meta["task_type"],
             ", ".join(f"{s}={n}" for s, n in meta["counts"].items()), out_dir)
    for split, s in short.items():
        log.warning("task %s: n_%s asked for %d items, the data has %d", name, split, s["requested"],
                    s["available"])
    for key, what in (("null_gold", "items without a gold answer"),
                      ("dropped_without_gold", "rows dropped without a single gold answer")):
        if meta[key]:
            log.warning("task %s: %s: %s", name, what, ", ".join(f"{s}={n}" for s, n in meta[key].items()))
    return meta


# Task types whose items are scored against a gold answer (noncompliance and reward-model items have none).
NEEDS_GOLD = frozenset({"multiple_choice", "exact_match", "f1_match", "coding", "generation_diversity"})


def count_null_golds(items: list[Item]) -> int:
    """Items of a gold-scored task type whose gold answer is missing (None, "" or [])."""
    return sum(1 for i in items if i.task_type in NEEDS_GOLD and (i.gold is None or i.gold in ("", [])))


def shortfalls(name: str, spec: dict[str, Any], splits: dict[str, list[Any]]) -> dict[str, dict[str, int]]:
    """Splits with fewer items than ``n_<split>`` asked for; DataError for a split that asked for items
    and got none."""
    out: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        requested = spec.get(f"n_{split}")
        if requested is None or int(requested) <= len(splits[split]):
            continue
        if not splits[split]:
            raise DataError(f"task {name!r}: n_{split}: {requested} {split} items asked for, the data gives "
                            f"none (counts: {', '.join(f'{s}={len(splits[s])}' for s in SPLITS)}); lower the "
                            f"other splits' sizes or set n_{split}: 0")
        out[split] = {"requested": int(requested), "available": len(splits[split])}
    return out


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
