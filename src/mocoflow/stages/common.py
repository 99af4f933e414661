"""Shared plumbing for stage entry points: argument parsing of JSON params and logging set-up."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--log-level", default="INFO")
    return p


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err.msg}: {text[:200]!r}") from err


def read_items(path: str | Path) -> list[Any]:
    from mocoflow.data.schema import Item
    from mocoflow.io import read_jsonl

    return [Item.from_dict(row) for row in read_jsonl(path)]


def job_seeds(params: dict[str, Any], default: int) -> list[int]:
    """The decoding seeds a job runs (the rule passes ``seeds`` only when there are several)."""
    return [int(s) for s in params.get("seeds") or [default]]
