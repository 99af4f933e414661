"""The import graph of src/mocoflow has no cycles and follows the layering of DESIGN.md / ARCHITECTURE.md.

Layers, top to bottom (a module may import its own layer and the ones below):

    entry      stages/ (the rules' entry points), config (the study config, checked against every registry),
               data.check (a command-line tool over data and scoring)
    methods    methods/
    machinery  engines/, training/, scoring/, testing (tiny models and the scripted engine, for tests),
               model_sources (the model-source registry)
    base       data/, models (cards, fingerprints), models_hub/_offline/_weightless (sources), io, registry,
               gpu, export_table, interrupts, runlock

``analysis/`` and ``plots/`` sit beside the stack: they read score files, import only each other (plots may
import analysis, not the other way round), ``io`` and ``registry``, never torch, engines or methods; only
entry modules import them.

The graph is built with ``ast`` from every ``import`` in a module, at module level and inside functions (a
function-level import is still a dependency; deferring it only hides a cycle). Edges are between mocoflow
modules; ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "mocoflow"

# Longest prefix wins. A new top-level module must be placed here (the test says so when one is missing).
LAYER_OF = {
    "mocoflow": "base",  # the package's __init__
    "mocoflow.registry": "base",
    "mocoflow.io": "base",
    "mocoflow.gpu": "base",
    "mocoflow.interrupts": "base",
    "mocoflow.runlock": "base",
    "mocoflow.export_table": "base",
    "mocoflow.data": "base",
    "mocoflow.models": "base",
    "mocoflow.models_hub": "base",
    "mocoflow.models_offline": "base",
    "mocoflow.models_weightless": "base",
    "mocoflow.model_sources": "machinery",  # the model-source table: lists the tiny (testing) and lora sources
    "mocoflow.engines": "machinery",
    "mocoflow.training": "machinery",
    "mocoflow.scoring": "machinery",
    "mocoflow.testing": "machinery",
    "mocoflow.methods": "methods",
    "mocoflow.stages": "entry",
    "mocoflow.config": "entry",
    "mocoflow.cli": "entry",
    "mocoflow.data.check": "entry",
    "mocoflow.analysis": "analysis",
    "mocoflow.plots": "plots",
}
RANK = {"base": 0, "machinery": 1, "methods": 2, "entry": 3}
# what each side package may import (besides itself)
READERS = {"analysis": {"base:mocoflow.io", "base:mocoflow.registry"},
           "plots": {"analysis", "base:mocoflow.io", "base:mocoflow.registry"}}
HEAVY = {"torch", "transformers", "vllm", "peft", "safetensors", "sentence_transformers", "accelerate"}

# Known edges that are cycles or against the layering, each with its reason; empty since the model-source
# registry moved to mocoflow.model_sources (test_allowed_edges_are_still_needed fails for an entry that is no
# longer needed, so it cannot go stale).
ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _imports(path: Path, name: str) -> tuple[set[str], set[str]]:
    """(mocoflow modules, top-level third-party/stdlib names) that ``path`` imports anywhere in its body."""
    mods = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    internal: set[str] = set()
    external: set[str] = set()

    def add(target: str) -> None:
        if target.split(".")[0] != PACKAGE:
            external.add(target.split(".")[0])
            return
        while target and target not in mods:
            target = target.rpartition(".")[0]
        if target:
            internal.add(target)

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                add(full if full in mods else source)
    internal.discard(name)
    return internal, external


@cache
def graph() -> dict[str, frozenset[str]]:
    return {name: frozenset(_imports(path, name)[0]) for name, path in modules().items()}


def layer(module: str) -> str:
    best = max((p for p in LAYER_OF if module == p or module.startswith(p + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{module}: no layer; add it to LAYER_OF in tests/test_layering.py (and to "
                             "ARCHITECTURE.md)")
    return LAYER_OF[best]


def violation(src: str, dst: str) -> str | None:
    """Why ``src`` may not import ``dst``, or None."""
    a, b = layer(src), layer(dst)
    if a in READERS:
        allowed = READERS[a] | {a}
        if b not in allowed and f"{b}:{dst}" not in allowed:
            return f"{a}/ reads score files only: it may import {sorted(allowed)}, not {dst} ({b})"
        return None
    if b in READERS:
        return None if a == "entry" else f"only entry modules import {b}/ ({src} is {a})"
    if RANK[a] < RANK[b]:
        return f"{src} ({a}) imports {dst} ({b}), a higher layer"
    return None


def tangles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan): the modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(set(comp))

    for v in sorted(edges):
        if v not in index:
            strongconnect(v)
    return components


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path back to its start) per tangle."""
    return [_cycle_in(edges, c) for c in tangles(edges)]


def _cycle_in(edges: dict[str, set[str]], comp: set[str]) -> list[str]:
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = min(w for w in edges[path[-1]] if w in comp)
        if nxt in seen:
            return path[path.index(nxt):] + [nxt]
        path.append(nxt)
        seen.add(nxt)


def edges_without_allowed() -> dict[str, set[str]]:
    return {a: {b for b in bs if (a, b) not in ALLOWED} for a, bs in graph().items()}


# -- the checks -------------------------------------------------------------------------------------------


def test_every_module_has_a_layer():
    missing = [m for m in modules() if not any(m == p or m.startswith(p + ".") for p in LAYER_OF)]
    assert not missing, f"add these modules to LAYER_OF (tests/test_layering.py) and ARCHITECTURE.md: {missing}"


def test_no_import_cycles():
    cycles = find_cycles(edges_without_allowed())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_layering():
    bad = sorted(f"{a} -> {b}: {why}" for a, bs in edges_without_allowed().items() for b in bs
                 if (why := violation(a, b)))
    assert not bad, "imports against the layering (DESIGN.md, ARCHITECTURE.md):\n" + "\n".join(bad)


@pytest.mark.parametrize("side", ["analysis", "plots"])
def test_analysis_and_plots_never_import_torch_engines_or_methods(side: str):
    for name, path in modules().items():
        if layer(name) != side:
            continue
        internal, external = _imports(path, name)
        assert not external & HEAVY, f"{name} imports {sorted(external & HEAVY)}"
        assert not {m for m in internal if layer(m) in ("machinery", "methods", "entry")}, (name, internal)


def test_allowed_edges_are_still_needed():
    """An allow-list entry that no longer exists, or is no longer on a cycle nor against the layering, must go."""
    g = {a: set(bs) for a, bs in graph().items()}
    components = tangles(g)
    stale = []
    for a, b in sorted(ALLOWED):
        if b not in g.get(a, set()):
            stale.append(f"{a} -> {b}: no such import any more")
        elif violation(a, b) is None and not any({a, b} <= c for c in components):
            stale.append(f"{a} -> {b}: neither on a cycle nor against the layering")
    assert not stale, "remove from ALLOWED in tests/test_layering.py:\n" + "\n".join(stale)


# -- the checker itself ------------------------------------------------------------------------------------


def test_cycle_finder_reports_a_cycle_and_ignores_a_dag():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_violations_are_recognised():
    assert violation("mocoflow.scoring.base", "mocoflow.stages.common")  # scoring above stages
    assert violation("mocoflow.engines.base", "mocoflow.methods.base")
    assert violation("mocoflow.data.sources", "mocoflow.training.lora")
    assert violation("mocoflow.analysis.stats", "mocoflow.plots.common")  # tables never import figures
    assert violation("mocoflow.plots.common", "mocoflow.engines.base")
    assert violation("mocoflow.methods.common", "mocoflow.analysis.stats")  # only entry modules read tables
    assert violation("mocoflow.stages.plot", "mocoflow.plots.common") is None
    assert violation("mocoflow.methods.text.common", "mocoflow.training.finetune") is None
    assert violation("mocoflow.training.lora", "mocoflow.engines.loader") is None  # sideways in machinery


def test_function_level_imports_are_edges(tmp_path: Path):
    module = tmp_path / "mod.py"
    module.write_text("import json\n\ndef f():\n    from mocoflow.training import merging\n"
                      "    import mocoflow.io\n    from mocoflow.methods.common import prompts_for\n")
    internal, external = _imports(module, "mocoflow.methods.weight.x")
    assert internal == {"mocoflow.training.merging", "mocoflow.io", "mocoflow.methods.common"}
    assert external == {"json"}
