"""Merged models from a recipe in memory vs written merged weights, side by side on one pool.

    nice -n 10 .venv/bin/python bench/bench_merge_recipe.py \
        [--models results/models/smollm2/weights results/models/smol-sci/weights results/models/smol-math/weights]

For each weight method without a dev search (linear, task arithmetic, TIES, DARE), in a fresh process each
(peak RSS is that process's): the merge job before (plan + merge + write the weights: what the merge rule
did) and now (plan only: the recipe), and the generating job's model load before (load the written merged
folder) and now (load a pool member, then materialise the recipe into it, tensor by tensor). Prints
seconds, peak RSS and bytes written. The pool files are read once first, so every timing reads warm files.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = {
    "linear_merge": ("linear_merge", {}),
    "task_arithmetic": ("linear_merge", {"mode": "task_arithmetic", "scale": 0.5}),
    "ties": ("ties", {"density": 0.2}),
    "dare": ("dare", {"density": 0.5}),
}


def pool_refs(paths: list[Path]):
    from mocoflow.models import ModelRef, make_card

    return [ModelRef(p.parent.name, str(p), make_card(p.parent.name, {"source": "local"}, p), {}) for p in paths]


def one(run: str, step: str, paths: list[Path], work: Path) -> dict:
    """One measurement in this process: ``plan``, ``plan_and_write``, ``load_written`` or ``materialise``."""
    import torch

    from mocoflow.engines.loader import load_model
    from mocoflow.methods import METHODS
    from mocoflow.methods.base import recipe_fingerprint
    from mocoflow.training.merging import save_state

    torch.set_num_threads(2)
    name, params = RUNS[run]
    method = METHODS.get(name)(params)
    pool = pool_refs(paths)
    card_path = work / f"{run}.json"
    t0 = time.perf_counter()
    written = 0
    if step in ("plan", "plan_and_write"):
        recipe = method.recipe(pool)
        card_path.write_text(json.dumps({"name": run, "fingerprint": recipe_fingerprint(recipe), "recipe": recipe}))
        written = card_path.stat().st_size
        if step == "plan_and_write":
            plan = recipe["plan"]
            out = save_state(method.merged_state(pool, plan), method.template(pool, plan), work / run)
            written += sum(f.stat().st_size for f in out.iterdir())
    elif step == "load_written":
        load_model(work / run, device="cpu")
    else:  # materialise
        ref = method.merged_model(json.loads(card_path.read_text()), pool)
        model, _tok = load_model(ref.path, device="cpu")
        ref.spec["derived"].build(model)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_rss_mb": peak, "bytes_written": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, nargs="+", default=[
        Path("results/models") / m / "weights" for m in ("smollm2", "smol-sci", "smol-math")])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--one", nargs=3, metavar=("RUN", "STEP", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.models, Path(args.one[2]))))
        return
    for p in args.models:  # warm the page cache: every timing below reads warm files
        for f in p.glob("*.safetensors"):
            f.read_bytes()
    print(f"pool: {[str(p) for p in args.models]}")
    print(f"{'run':16s} {'step':15s} {'seconds':>8s} {'peak RSS MB':>12s} {'bytes written':>14s}")
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        for run in args.runs:
            for step in ("plan_and_write", "plan", "load_written", "materialise"):
                cmd = [sys.executable, __file__, "--models", *map(str, args.models), "--one", run, step, tmp]
                out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
                                 .splitlines()[-1])
                print(f"{run:16s} {step:15s} {out['seconds']:8.1f} {out['peak_rss_mb']:12.0f} "
                      f"{out['bytes_written']:14,d}", flush=True)


if __name__ == "__main__":
    main()
