"""ARCHITECTURE.md's examples run as written (in a fresh interpreter: they register a method and a scorer)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = r'''
import re, sys
from pathlib import Path
blocks = re.findall(r"```python\n(.*?)```", Path(sys.argv[1]).read_text(), re.S)
assert len(blocks) == 6, len(blocks)
method, source, _registration, scorer, engine, figure = blocks
for block in (method, source, scorer, engine, figure):
    exec(block, {})

from pathlib import Path as P
from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig
from mocoflow.methods import METHODS
from mocoflow.methods.base import EngineProvider, RunContext
from mocoflow.models import ModelRef
from mocoflow.scoring.base import SCORERS

items = [Item(id=f"t{i}", task="t", split="test", task_type="exact_match", question="q") for i in range(2)]
gens = {m: {"test": {i.id: {"output": f"Answer: {o}", "prompt_tokens": 3, "generated_tokens": 2}
                     for i, o in zip(items, outs)}, "dev": {}}
        for m, outs in {"a": ["1", "2"], "b": ["1", "3"], "c": ["4", "3"]}.items()}
ctx = RunContext(run="r", pool_name="p", pool=[ModelRef(n, "/none", {}, {}) for n in "abc"], task="t",
                 items={"dev": [], "test": items}, generations=gens, decoding=DecodingConfig(),
                 engines=EngineProvider(None), workdir=P("."))
preds = METHODS.get("best_of_pool")({"min_votes": 2}).run(ctx)
assert [p["answered_by"] for p in preds] == ["a", "b"], preds
assert ctx.decisions["reliance"] == {"a": 0.5, "b": 0.5, "c": 0.0}
import mocoflow.data.schema as schema
schema.TASK_TYPES += ("yes_no",)  # the doc's "add yes_no to TASK_TYPES in data/schema.py"
yes = Item(id="1", task="t", split="test", task_type="yes_no", question="q", gold="yes")
assert SCORERS.get("yes_no").score(yes, "Answer: Yes").correct
print("ok")
'''


def test_architecture_examples_run():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, "-c", CHECK, str(ROOT / "ARCHITECTURE.md")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
