"""Run one collaboration method on one pool and one task; write predictions, decisions and the job's cost.

What a method sees: the dev split with its gold, and the test split WITHOUT gold (``Item.gold`` is None),
unless the method declares ``Need.TEST_GOLD`` (the oracle router, a reference row). Answer parsing takes its
mode from the task type and metadata (``methods.common.answer_key``), so no method needs the test gold. A
method grades outputs (dev selection, rewards) with ``ctx.score``: the task's scorer under the study's
``sandbox:`` policy (``params["sandbox"]``, passed by the rule when the config sets it).

``decisions.json`` (beside the predictions): what the run decided, per seed (``ctx.decide``):
``{"run", "method", "pool", "task", "seeds": [...], "by_seed": {"<seed>": {...}}}``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mocoflow.data.prompts import with_prompt_style
from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig, Usage
from mocoflow.engines.factory import make_engine
from mocoflow.io import by_seed, read_jsonl, write_json, write_jsonl
from mocoflow.methods import METHODS
from mocoflow.methods.backends import required_capabilities
from mocoflow.methods.base import EngineProvider, MergeMethod, Method, MethodError, Need, RunContext, TaskScorer
from mocoflow.methods.common import without_gold
from mocoflow.models import ModelRef
from mocoflow.scoring.sandbox import SandboxPolicy
from mocoflow.stages.common import job_seeds, json_arg, parser, read_items, setup_logging

log = logging.getLogger("mocoflow.collaborate")


Generations = dict[str, dict[str, dict[str, dict[str, Any]]]]  # model -> split -> id -> record


def load_generations(paths: dict[str, str]) -> dict[int, Generations]:
    """``{"model/split": path}`` -> decoding seed -> model -> split -> id -> record."""
    out: dict[int, Generations] = {}
    for key, path in paths.items():
        model, split = key.rsplit("/", 1)
        for seed, records in by_seed(read_jsonl(path)).items():
            out.setdefault(seed, {}).setdefault(model, {})[split] = records
    return out


def generations_for_seed(seeded: dict[int, Generations], seed: int) -> Generations:
    """The shared generations a run with decoding seed ``seed`` reads: that seed's records, or the only
    seed's when the shared generations were greedy (one seed serves every seed of a stochastic method)."""
    if seed in seeded:
        return seeded[seed]
    if len(seeded) <= 1:
        return next(iter(seeded.values()), {})
    raise ValueError(f"shared generations have seeds {sorted(seeded)}, not the run's seed {seed}")


def read_splits(paths: dict[str, Path], prompt_style: str = "default") -> dict[str, list[Item]]:
    """The task's items per split, marked with the task's prompt style (every prompt built from them shows
    it: :func:`mocoflow.data.prompts.with_prompt_style`)."""
    return {split: with_prompt_style(read_items(path), prompt_style) for split, path in paths.items()}


def method_items(method: Method, split_items: dict[str, list[Item]]) -> dict[str, list[Item]]:
    """The items a method may see: the dev split as it is, the test split without gold unless the method
    needs it (``Need.TEST_GOLD``)."""
    out = dict(split_items)
    if Need.TEST_GOLD not in method.needs:
        out["test"] = without_gold(out["test"])
    return out


def merged_model(method: Method, card_path: Path, pool: list[ModelRef]) -> ModelRef:
    """The merged model of a weight-level run: its card's recipe, materialised in memory when its engine
    loads (no merged weights on disk)."""
    if not isinstance(method, MergeMethod):
        raise MethodError(f"{method.name} is not a weight-level method; it takes no merged model")
    return method.merged_model(json.loads(Path(card_path).read_text()), pool)


def collaborate(params: dict[str, Any], cards: list[Path], items: dict[str, Path], gens: dict[str, str],
                merged_card: Path | None, out: Path, usage_path: Path, decisions_path: Path | None = None
                ) -> None:
    method = METHODS.get(params["method"])(params.get("method_params", {}))
    specs = params.get("model_specs", {})
    pool = [ModelRef.from_card(c) for c in cards]
    pool = [ModelRef(r.name, r.path, r.card, {**specs.get(r.name, {}), **r.spec}) for r in pool]
    method.check_pool(pool)
    cache_dir = Path(params["cache_dir"])
    device = params.get("device", "auto")
    requires = required_capabilities(method.needs)  # e.g. logits: a vLLM model is loaded with transformers
    provider = EngineProvider(lambda ref: make_engine(ref.name, {**ref.spec, "path": ref.path},
                                                      cache_dir=cache_dir, device=device, requires=requires))
    decoding = DecodingConfig.from_dict(params["decoding"])
    seeds = job_seeds(params, decoding.seed)
    split_items = method_items(method, read_splits(items, params.get("prompt_style", "default")))
    test_ids = [i.id for i in split_items["test"]]
    generations = load_generations(gens)
    merged = merged_model(method, merged_card, pool) if merged_card else None
    score = TaskScorer(SandboxPolicy.from_config(params.get("sandbox")))
    rows: list[dict[str, Any]] = []
    decisions: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for seed in seeds:  # engines are shared across seeds: each model still loads once per job
        ctx = RunContext(
            run=params["run"], pool_name=params["pool"], pool=pool, task=params["task"], items=split_items,
            generations=generations_for_seed(generations, seed), decoding=replace(decoding, seed=seed),
            engines=provider, workdir=out.parent if len(seeds) == 1 else out.parent / f"seed{seed}", seed=seed,
            merged_model=merged, score=score,
        )
        preds = method.run(ctx)
        if [p["id"] for p in preds] != test_ids:
            raise RuntimeError(f"{params['method']} returned predictions for different items than the test split")
        rows += [{**p, "run": params["run"], "pool": params["pool"], "seed": seed} for p in preds]
        decisions[str(seed)] = ctx.decisions
    seconds = time.perf_counter() - t0
    write_jsonl(out, rows)
    write_json(decisions_path or out.with_name("decisions.json"),
               {"run": params["run"], "method": params["method"], "pool": params["pool"],
                "task": params["task"], "seeds": seeds, "by_seed": decisions})
    usage = Usage()
    for engine in provider.loaded().values():
        usage.add(engine.usage)
    write_json(usage_path, {"job": "collaborate", "run": params["run"], "method": params["method"],
                            "pool": params["pool"], "task": params["task"], "seeds": seeds,
                            "wall_seconds": round(seconds, 3),
                            **usage.to_dict()})
    log.info("%s on %s/%s: %d predictions (%d seeds) in %.1fs (%d model loads)", params["run"], params["pool"],
             params["task"], len(rows), len(seeds), seconds, usage.model_loads)


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--params", type=json_arg, required=True)
    p.add_argument("--cards", type=Path, nargs="+", required=True)
    p.add_argument("--dev", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--gens", type=json_arg, default={}, help='JSON {"model/split": path}')
    p.add_argument("--merged-card", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--usage", type=Path, required=True)
    p.add_argument("--decisions", type=Path, help="decisions.json (default: beside --out)")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    from mocoflow.gpu import claim_devices

    with claim_devices(int(args.params.get("gpus", 0))):
        collaborate(args.params, args.cards, {"dev": args.dev, "test": args.test}, args.gens, args.merged_card,
                    args.out, args.usage, args.decisions)


if __name__ == "__main__":
    main()
