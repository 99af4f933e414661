"""pyproject.toml declares only entry points that exist (a console script pointing at a missing module installs
fine and fails when someone runs it)."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def entry_points() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = dict(project.get("scripts", {}))
    out.update(project.get("gui-scripts", {}))
    for group in project.get("entry-points", {}).values():
        out.update(group)
    return out


def test_every_declared_entry_point_resolves_to_a_callable():
    for name, target in entry_points().items():
        module, _, attr = target.partition(":")
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise AssertionError(f"pyproject.toml entry point {name!r} -> {target!r}: {err}") from None
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
        assert callable(obj), f"entry point {name!r} -> {target!r} is not callable"


def test_the_stages_the_rules_call_are_runnable_modules():
    """The rules call ``python -m mocoflow.<module>`` (there is no console script): each such module exists
    and has a ``main``."""
    import re

    called = set()
    for smk in (ROOT / "rules").glob("*.smk"):
        called |= set(re.findall(r"python -m (mocoflow(?:\.\w+)+)", smk.read_text()))
    assert {"mocoflow.stages.generate", "mocoflow.stages.analyze"} <= called
    for module in sorted(called):
        assert callable(getattr(importlib.import_module(module), "main", None)), module
