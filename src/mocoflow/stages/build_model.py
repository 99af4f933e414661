"""Build or locate one model's weights and write its card (``results/models/{model}/card.json``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mocoflow.io import read_json
from mocoflow.model_sources import MODEL_SOURCES
from mocoflow.models import adapter_card, make_card, write_card
from mocoflow.stages.common import json_arg, parser, setup_logging

log = logging.getLogger("mocoflow.build_model")


def build_model(name: str, spec: dict, card_path: Path) -> dict:
    out_dir = card_path.parent
    t0 = time.perf_counter()
    weights = MODEL_SOURCES.get(spec["source"])(name, spec, out_dir)
    provenance = {f.stem: read_json(f) for f in (out_dir / "source.json", out_dir / "train.json") if f.exists()}
    card = make_card(name, spec, weights, build_seconds=round(time.perf_counter() - t0, 3), **provenance)
    if spec["source"] == "lora":  # stored as its adapter: ``weights`` is the base's folder
        card = adapter_card(card, out_dir / "adapter")
    write_card(card_path, card)
    log.info("model %s: %s parameters, architecture %s, tokenizer %s", name, f"{card['parameters']:,}",
             card["architecture"], card["tokenizer"])
    return card


def main(argv: list[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--name", required=True)
    p.add_argument("--spec", type=json_arg, required=True)
    p.add_argument("--card", type=Path, required=True)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    build_model(args.name, args.spec, args.card)


if __name__ == "__main__":
    main()
