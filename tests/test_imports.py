"""Import hygiene: jobs that only read files (votes, routers over shared generations, scoring, tables,
figures) must not pay torch's import (~3 CPU-seconds per job, hundreds of jobs per study)."""

from __future__ import annotations

import subprocess
import sys

import pytest

LIGHT = ["mocoflow.methods", "mocoflow.model_sources", "mocoflow.stages.collaborate", "mocoflow.stages.score",
         "mocoflow.stages.analyze", "mocoflow.stages.plot", "mocoflow.analysis", "mocoflow.plots"]


@pytest.mark.parametrize("module", LIGHT)
def test_module_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]", f"{module} imports {out.stdout.strip()}"
