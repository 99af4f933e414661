"""Provenance of the "real" rows of labelled.jsonl: the default pool's own answers to builtin safety requests.

Run from the repository root (the weights are those a default study built; greedy decoding, 32 new tokens,
exactly the default config's ``safety`` task settings)::

    PYTHONPATH=src nice -n 10 .venv/bin/python tests/data/noncompliance/generate_real.py \
        --models /work/study0/results/models --names smollm2 gemma3 --seed 1 --n 40 --out /tmp/real_seed1.jsonl

Each output row: request, category, response, model, item id, seed. Labels are written by hand afterwards
(see ``labelled.jsonl``); this script never labels anything.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from mocoflow.data.builtin import generate_splits
from mocoflow.data.prompts import build_prompt
from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.factory import make_engine
from mocoflow.io import write_jsonl

log = logging.getLogger("generate_real")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, required=True, help="results/models folder of a built study")
    p.add_argument("--names", nargs="+", required=True)
    p.add_argument("--seed", type=int, required=True, help="generator seed (the default study uses 0)")
    p.add_argument("--n", type=int, default=40, help="test items (the default study: 30)")
    p.add_argument("--n-dev", type=int, default=0, help="dev items too (the default study: 12)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy (the default study); > 0 samples")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO)
    splits = generate_splits("noncompliance_requests", seed=args.seed, n_test=args.n, n_dev=args.n_dev)
    items = splits["test"] + splits["dev"]
    decoding = DecodingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, seed=args.seed,
                              batch_size=args.batch_size)
    rows = []
    for name in args.names:
        card = json.loads((args.models / name / "card.json").read_text())
        engine = make_engine(name, {"path": card["path"]}, cache_dir=args.cache_dir, device="cpu")
        prompts = [build_prompt(item) for item in items]
        gens = engine.generate(prompts, decoding, progress=name)
        rows += [{"request": it.question, "category": it.metadata["category"], "response": g.text, "model": name,
                  "item": it.id, "split": it.split, "seed": args.seed,
                  "decoding": {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature}}
                 for it, g in zip(items, gens, strict=True)]
        log.info("%s: %d responses", name, len(gens))
    write_jsonl(args.out, rows)


if __name__ == "__main__":
    main()
