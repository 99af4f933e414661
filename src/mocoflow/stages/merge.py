"""Plan a weight-level method's merge for one pool (``results/merged/{run}/{pool}/card.json``, or
``.../{pool}/{task}/card.json`` for merges that choose on dev).

The card holds the merge's ``recipe`` (method, hyperparameters, what it chose: coefficients, thresholds,
seeds; the pool models' fingerprints), a few KB, and no weights: the collaborate job materialises the merged
model in memory from it (``MergeMethod.merged_model``). Its ``fingerprint`` is the recipe's hash (the
response cache's key); ``architecture``, ``tokenizer`` and ``parameters`` are the pool's. It also carries
``decisions``: what the merge decided (coefficients or weights per pool model and, where the merged model is
a linear combination of pool models, their ``reliance``); the collaborate stage copies them into the run's
``decisions.json``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mocoflow.data.prompts import with_prompt_style
from mocoflow.io import write_json
from mocoflow.methods import METHODS
from mocoflow.methods.base import MergeContext, MergeMethod, MethodError, TaskScorer, recipe_fingerprint
from mocoflow.models import ModelRef
from mocoflow.scoring.sandbox import SandboxPolicy
from mocoflow.stages.common import json_arg, parser, read_items, setup_logging

log = logging.getLogger("mocoflow.merge")


def merge_context(params: dict, dev: Path | None) -> MergeContext:
    """Dev items, decoding, an uncached engine factory and the task's scorer under the study's sandbox policy
    (``params["sandbox"]``) for merges that evaluate candidates on dev."""
    from mocoflow.engines.base import DecodingConfig
    from mocoflow.engines.factory import make_engine

    device = params.get("device", "auto")
    decoding = DecodingConfig.from_dict(params.get("decoding"))
    dev_items = with_prompt_style(read_items(dev), params.get("prompt_style", "default")) if dev else []
    return MergeContext(dev_items=dev_items, decoding=decoding,
                        engine_factory=lambda path: make_engine("merge-candidate", {"path": str(path)},
                                                                cache_dir=None, device=device),
                        score=TaskScorer(SandboxPolicy.from_config(params.get("sandbox"))), seed=decoding.seed)


def merge(cards: list[Path], card_out: Path, params: dict, dev: Path | None = None) -> dict:
    method = METHODS.get(params["method"])(params.get("method_params", {}))
    if not isinstance(method, MergeMethod):
        raise MethodError(f"{params['method']} is not a weight-level method; it has no merge step")
    pool = [ModelRef.from_card(c) for c in cards]
    method.check_pool(pool)
    t0 = time.perf_counter()
    ctx = merge_context(params, dev)  # merges without dev use only its ``decide``
    recipe = method.recipe(pool, ctx)
    seconds = time.perf_counter() - t0
    name = f"{params['run']}@{params['pool']}"
    card = {"name": name, "source": "merge", "fingerprint": recipe_fingerprint(recipe),
            "parameters": pool[0].card.get("parameters"), "architecture": pool[0].card.get("architecture"),
            "tokenizer": pool[0].card.get("tokenizer"),
            "spec": {"source": "merge", "method": params["method"], "params": params.get("method_params", {})},
            "recipe": recipe, "merged_from": [r.name for r in pool], "build_seconds": round(seconds, 3),
            "decisions": ctx.decisions}
    write_json(card_out, card)
    log.info("planned merge %s in %.1fs (recipe %s)", name, seconds, card["fingerprint"][:19])
    return card


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--cards", type=Path, nargs="+", required=True)
    p.add_argument("--card-out", type=Path, required=True)
    p.add_argument("--params", type=json_arg, required=True)
    p.add_argument("--dev", type=Path, help="dev split (merges that evaluate candidates on dev)")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    merge(args.cards, args.card_out, args.params, args.dev)


if __name__ == "__main__":
    main()
