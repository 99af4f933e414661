"""Generate one model's answers for one task split (shared by every method that reads them)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from mocoflow.data.prompts import build_prompt, with_prompt_style
from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.factory import make_engine
from mocoflow.io import write_json, write_jsonl
from mocoflow.models import ModelRef
from mocoflow.stages.common import job_seeds, json_arg, parser, read_items, setup_logging

log = logging.getLogger("mocoflow.generate")


def generate(card: Path, items_path: Path, out: Path, usage_path: Path, params: dict[str, Any]) -> None:
    ref = ModelRef.from_card(card, params.get("model_spec"))
    items = with_prompt_style(read_items(items_path), params.get("prompt_style", "default"))
    decoding = DecodingConfig.from_dict(params["decoding"])
    engine = make_engine(ref.name, {**ref.spec, "path": ref.path}, cache_dir=Path(params["cache_dir"]),
                         device=params.get("device", "auto"))
    prompts = [build_prompt(item) for item in items]
    seeds = job_seeds(params, decoding.seed)
    label = f"{ref.name} on {items_path.parent.name}/{items_path.stem}"
    rows = []
    for seed in seeds:  # one record per item and seed (several seeds only when decoding samples)
        gens = engine.generate(prompts, replace(decoding, seed=seed),
                               progress=label if len(seeds) == 1 else f"{label} seed {seed}")
        rows += [{"id": item.id, "model": ref.name, "prompt": prompt, "output": g.text, **_costs(g.to_dict()),
                  "seed": seed} for item, prompt, g in zip(items, prompts, gens, strict=True)]
    write_jsonl(out, rows)
    write_json(usage_path, {"job": "generate", "model": ref.name, "items": len(items), "seeds": seeds,
                            **engine.usage.to_dict()})
    log.info("%s: %d items, %d generated tokens, %d cache hits", ref.name, len(items),
             engine.usage.generated_tokens, engine.usage.cache_hits)


def _costs(g: dict[str, Any]) -> dict[str, Any]:
    return {k: g[k] for k in ("prompt_tokens", "generated_tokens", "sum_logprob", "mean_logprob", "cached")}


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--card", type=Path, required=True)
    p.add_argument("--items", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--usage", type=Path, required=True)
    p.add_argument("--params", type=json_arg, required=True)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    from mocoflow.gpu import claim_devices

    with claim_devices(int(args.params.get("gpus", 1))):
        generate(args.card, args.items, args.out, args.usage, args.params)


if __name__ == "__main__":
    main()
