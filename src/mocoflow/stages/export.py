"""Export every shared generation of the study, with its score and cost, as one wide Parquet table.

Inputs follow the DAG's layout: ``generations/{model}/{task}/{split}.jsonl``, ``scores/single/{model}/{task}.parquet``
(test scores, judged where the task has a judge), ``data/{task}/{split}.jsonl`` and ``models/{model}/card.json``.
The table's schema is documented in :mod:`mocoflow.export_table`; ``source: replay`` models read it back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from mocoflow.export_table import to_wide, write_table
from mocoflow.io import read_json, read_jsonl
from mocoflow.stages.common import json_arg, parser, read_items, setup_logging

log = logging.getLogger("mocoflow.export")

GENERATION_FIELDS = ("prompt", "output", "prompt_tokens", "generated_tokens", "sum_logprob")


def _layout(path: Path, depth: int) -> tuple[str, ...]:
    """The last ``depth`` path parts, the file's suffixes dropped: the wildcards of a DAG path."""
    parts = path.parts[-depth:]
    return (*parts[:-1], parts[-1].split(".")[0])


def export(generations: list[Path], scores: list[Path], items: list[Path], cards: list[Path],
           params: dict[str, Any], out: Path) -> pd.DataFrame:
    from mocoflow.scoring import score_item

    item_index = {}
    item_rows = []
    for path in items:
        for item in read_items(path):
            item_index[(item.task, item.split, item.id)] = item
            item_rows.append({"task": item.task, "split": item.split, "id": item.id, "task_type": item.task_type,
                              "question": item.question, "choices": item.choices, "gold": item.gold})
    judged: dict[tuple[str, str], pd.DataFrame] = {}
    for path in scores:
        model, task = _layout(path, 2)
        df = pd.read_parquet(path, columns=["id", "seed", "correct", "score", "status"])
        judged[(model, task)] = df.set_index(["id", "seed"])
    records = []
    for path in generations:
        model, task, split = _layout(path, 3)
        scored = judged.get((model, task)) if split == "test" else None
        for row in read_jsonl(path):
            key = (task, split, str(row["id"]))
            if key not in item_index:
                raise ValueError(f"{path}: generation for item {row['id']!r}, which {task}/{split} does not hold")
            seed = int(row.get("seed", 0))
            if scored is not None:
                s = scored.loc[(str(row["id"]), seed)]
                verdict = {"correct": bool(s["correct"]), "score": float(s["score"]), "status": str(s["status"])}
            else:  # dev: the task scorer, without judges
                r = score_item(item_index[key], row["output"])
                verdict = {"correct": bool(r.correct), "score": float(r.score), "status": r.status}
            records.append({"task": task, "split": split, "id": str(row["id"]), "seed": seed, "model": model,
                            **{f: row.get(f) for f in GENERATION_FIELDS}, **verdict})
    card_list = [read_json(c) for c in cards]
    parameters = {c["name"]: int(c.get("parameters") or 0) for c in card_list}
    wide = to_wide(records, item_rows, parameters)
    specs = params.get("models", {})
    metadata = {"study": params.get("study", ""), "decoding": params.get("decoding", {}),
                "models": {c["name"]: {"source": c.get("source"), "backend": specs.get(c["name"], {}).get("backend"),
                                       "fingerprint": c.get("fingerprint"), "parameters": parameters[c["name"]]}
                           for c in card_list}}
    write_table(wide, out, metadata)
    log.info("exported %d rows x %d models (%d generations) to %s", len(wide), len(card_list), len(records), out)
    return wide


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--generations", type=Path, nargs="+", required=True)
    p.add_argument("--scores", type=Path, nargs="+", required=True)
    p.add_argument("--items", type=Path, nargs="+", required=True)
    p.add_argument("--cards", type=Path, nargs="+", required=True)
    p.add_argument("--params", type=json_arg, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    export(args.generations, args.scores, args.items, args.cards, args.params, args.out)


if __name__ == "__main__":
    main()
