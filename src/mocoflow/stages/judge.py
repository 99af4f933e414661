"""Run one model-based judge over one predictions file (a model's shared generations or a run's predictions).

Writes one JSON line per item and decoding seed (``results/judgments/{judge}/...jsonl``: ``id``, ``seed``,
``judge``, ``kind``, ``status``, ``score``, ``correct``, ``value``, ``detail``) and the job's usage beside it
(model loads, seconds, ``status_counts``; ``skipped`` with the reason when the weights are missing). The
judging itself is :mod:`mocoflow.scoring.judges`; the score stage folds the judgments into score tables.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mocoflow.io import by_seed, read_jsonl, write_json, write_jsonl
from mocoflow.scoring.judges import JudgeSpec, Judgment, run_judge_by_seed
from mocoflow.stages.common import json_arg, parser, read_items, setup_logging

log = logging.getLogger("mocoflow.judge")


def judge_spec(params: dict[str, Any]) -> JudgeSpec:
    """The judge from the rule's ``--judge`` JSON: its ``name`` and the keys of its ``judges:`` block
    (checked by :meth:`JudgeSpec.from_config`, which refuses unknown keys)."""
    name = params["name"]
    return JudgeSpec.from_config(name, {k: v for k, v in params.items() if k != "name"})


def status_counts(judged: dict[int, list[Judgment]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for j in (j for js in judged.values() for j in js):
        counts[j.status] = counts.get(j.status, 0) + 1
    return counts


def judge_predictions(spec: JudgeSpec, items_path: Path, preds_path: Path, out: Path, usage_path: Path
                      ) -> dict[str, int]:
    """Judge every item's output for every decoding seed of ``preds_path``; return the status counts."""
    from mocoflow.gpu import claim_devices

    items = read_items(items_path)
    outputs = {seed: {i: r.get("output", "") for i, r in recs.items()}
               for seed, recs in by_seed(read_jsonl(preds_path)).items()}
    with claim_devices(spec.gpus):
        judged, usage = run_judge_by_seed(spec, items, outputs or {0: {}})
    write_jsonl(out, [{**j.to_dict(), "seed": seed} for seed, js in sorted(judged.items()) for j in js])
    counts = status_counts(judged)
    write_json(usage_path, {**usage, "status_counts": counts})
    log.info("judge %s on %s: %s", spec.name, preds_path, json.dumps(counts))
    return counts


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--judge", type=json_arg, required=True, help='{"name": ..., "kind": ..., "model": ...}')
    p.add_argument("--items", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--usage", type=Path, required=True)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    judge_predictions(judge_spec(args.judge), args.items, args.predictions, args.out, args.usage)


if __name__ == "__main__":
    main()
