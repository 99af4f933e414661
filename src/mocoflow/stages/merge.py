"""Build a weight-level method's merged model for one pool (``results/merged/{run}/{pool}/card.json``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mocoflow.io import write_json
from mocoflow.methods import METHODS
from mocoflow.methods.base import MergeMethod, MethodError
from mocoflow.models import ModelRef, make_card
from mocoflow.stages.common import json_arg, parser, setup_logging

log = logging.getLogger("mocoflow.merge")


def merge(cards: list[Path], card_out: Path, params: dict) -> dict:
    method = METHODS.get(params["method"])(params.get("method_params", {}))
    if not isinstance(method, MergeMethod):
        raise MethodError(f"{params['method']} is not a weight-level method; it has no merge step")
    pool = [ModelRef.from_card(c) for c in cards]
    method.check_pool(pool)
    t0 = time.perf_counter()
    weights = method.merge(pool, card_out.parent / "weights")
    seconds = time.perf_counter() - t0
    name = f"{params['run']}@{params['pool']}"
    card = make_card(name, {"source": "merge", "method": params["method"],
                            "params": params.get("method_params", {})}, weights,
                     merged_from=[r.name for r in pool], build_seconds=round(seconds, 3))
    write_json(card_out, card)
    log.info("merged %s in %.1fs", name, seconds)
    return card


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--cards", type=Path, nargs="+", required=True)
    p.add_argument("--card-out", type=Path, required=True)
    p.add_argument("--params", type=json_arg, required=True)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    merge(args.cards, args.card_out, args.params)


if __name__ == "__main__":
    main()
