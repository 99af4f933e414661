"""Score predictions (a method's run, or one model's shared generations) item by item."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from mocoflow.io import atomic_path, by_seed, read_json, read_jsonl
from mocoflow.stages.common import json_arg, parser, read_items, setup_logging

log = logging.getLogger("mocoflow.score")

COST_COLUMNS = ("prompt_tokens", "generated_tokens", "new_generated_tokens")


def costs(pred: dict[str, Any]) -> dict[str, int]:
    """Cost columns; a single model's shared generation is all new tokens."""
    out = {c: int(pred.get(c, 0)) for c in COST_COLUMNS}
    if "new_generated_tokens" not in pred:
        out["new_generated_tokens"] = out["generated_tokens"]
    return out


def score_predictions(items_path: Path, preds_path: Path, labels: dict[str, Any],
                      sandbox: dict[str, Any] | None = None) -> pd.DataFrame:
    """``sandbox``: the config's ``sandbox:`` mapping, passed to the coding scorer (``SandboxPolicy``)."""
    from tqdm import tqdm

    from mocoflow.scoring import score_item
    from mocoflow.scoring.coding import CodingScorer
    from mocoflow.scoring.sandbox import SandboxPolicy

    coding_scorer = CodingScorer(SandboxPolicy.from_config(sandbox))

    items = read_items(items_path)
    seeded = by_seed(read_jsonl(preds_path))
    for seed, preds in sorted(seeded.items()) or [(0, {})]:
        missing = [i.id for i in items if i.id not in preds]
        if missing:
            raise ValueError(f"{preds_path}: no prediction for {len(missing)} items (seed {seed}), "
                             f"e.g. {missing[:3]}")
    rows = []
    pairs = [(seed, item) for seed in sorted(seeded) for item in items]
    for seed, item in tqdm(pairs, desc=f"scoring {preds_path.parent.name}", mininterval=5, disable=None):
        p = seeded[seed][item.id]
        r = coding_scorer.score(item, p["output"]) if item.task_type == "coding" else score_item(item, p["output"])
        rows.append({**labels, "task": item.task, "id": item.id, "seed": seed, "task_type": item.task_type,
                     "domain": item.metadata.get("domain", ""), "correct": bool(r.correct), "score": float(r.score),
                     "status": r.status, "parsed": r.parsed,
                     "answered_by": p.get("answered_by", labels.get("model", "")),
                     "reference": p.get("reference", ""),
                     "training_seconds": float(p.get("training_seconds", 0.0) or 0.0),
                     **costs(p)})
    df = pd.DataFrame(rows)
    counts = Counter(df["status"]) if len(df) else Counter()
    log.info("%s: accuracy %.3f over %d items; status counts %s", labels, df["correct"].mean() if len(df) else 0,
             len(df), dict(counts))
    return df


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--items", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--usage", type=Path, required=True, help="the producing job's usage JSON")
    p.add_argument("--labels", type=json_arg, required=True, help='e.g. {"run": ..., "pool": ..., "model": ...}')
    p.add_argument("--judgments", type=json_arg, default={}, help='{"judge name": judgments.jsonl} (optional)')
    p.add_argument("--sandbox", type=json_arg, default={}, help='the config\'s sandbox mapping, e.g. '
                   '{"allow_unisolated": true}')
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    df = score_predictions(args.items, args.predictions, args.labels, args.sandbox)
    if args.judgments:
        from mocoflow.scoring.judges import apply_judgments

        df = apply_judgments(df, {name: read_jsonl(path) for name, path in args.judgments.items()})
    usage = read_json(args.usage)
    for key in ("model_loads", "generate_seconds", "load_seconds", "training_seconds", "wall_seconds"):
        df[f"job_{key}"] = float(usage.get(key, 0.0) or 0.0)
    with atomic_path(args.out) as tmp:
        df.to_parquet(tmp, index=False)


if __name__ == "__main__":
    main()
