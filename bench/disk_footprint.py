"""Disk footprint of a study's ``results/`` by output kind, estimated from its DAG (no job runs).

    .venv/bin/python bench/disk_footprint.py --configfile configs/paper.yaml [--items-json items.json]

Reads the job list of ``snakemake -n`` (rule and wildcards of every job) and multiplies by per-kind sizes:
weights from the models' parameter counts (``PARAMS``, from the hub ids' model cards; bf16 = 2 bytes per
parameter, fp32 = 4), generated text per record (``--bytes-per-record``), the response cache per entry
(``--bytes-per-cache-entry``, file-system block included). Test and dev items per task come from
``--items-json`` (``{"task": [dev, test]}``) or, for a task missing there, from ``--default-items``. Prints
one row per kind for the current layout (recipes, adapters, in-memory fine-tunes) and for the layout before
(merged weights written per pool and per pool and task, full copies of LoRA specialists, fine-tuned models
written inside run folders), with how each kind scales.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

GB = 1e9
PARAMS = {  # parameters (billions), from the models' hub cards
    "Qwen/Qwen2.5-7B-Instruct": 7.62, "Qwen/Qwen2.5-7B": 7.62, "chtmp223/Qwen2.5-7B-CLIPPER": 7.62,
    "AgentFlow/agentflow-planner-7b": 7.62, "bunsenfeng/parti_3_full": 7.62,
    "meta-llama/Llama-3.1-8B-Instruct": 8.03, "google/gemma-2-9b-it": 9.24,
    "Qwen/Qwen2.5-72B-Instruct": 72.7, "Qwen/Qwen2.5-0.5B-Instruct": 0.49, "Qwen/Qwen2.5-32B": 32.8,
}
# LoRA adapter parameters per rank of an all-linear adapter: sum over layers of (in + out) of every linear
LORA_PER_RANK = {"Qwen/Qwen2.5-7B-Instruct": 28 * (2 * 7168 + 2 * 4096 + 3 * 22528)}


def dry_run_jobs(snakefile: Path, configfile: Path, directory: Path) -> list[tuple[str, dict[str, str]]]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(snakefile), "--directory", str(directory),
           "--configfile", str(configfile)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    jobs, seen = [], set()
    for rule, body in re.findall(r"rule (\w+):\n((?:    .*\n)+)", out):
        m = re.search(r"wildcards: (.*)", body)
        wc = dict(kv.split("=", 1) for kv in m.group(1).split(", ")) if m else {}
        key = (rule, tuple(sorted(wc.items())))
        if key not in seen:
            seen.add(key)
            jobs.append((rule, wc))
    return jobs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configfile", type=Path, default=Path("configs/paper.yaml"))
    p.add_argument("--items-json", type=Path, help='{"task": [dev items, test items]}')
    p.add_argument("--default-items", type=int, nargs=2, default=[500, 500], metavar=("DEV", "TEST"))
    p.add_argument("--bytes-per-record", type=float, default=2000, help="a generation or prediction record")
    p.add_argument("--bytes-per-cache-entry", type=float, default=6000, help="one cache file, block included")
    p.add_argument("--bytes-per-score-row", type=float, default=100)
    p.add_argument("--calls-per-new-item", type=float, default=4.0,
                   help="model calls a text- or weight-level run makes per test item it answers with new text")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/footprint-dag"))
    args = p.parse_args()
    config = yaml.safe_load(args.configfile.read_text())
    items = json.loads(args.items_json.read_text()) if args.items_json else {}
    dev = {t: items.get(t, args.default_items)[0] for t in config["tasks"]}
    test = {t: items.get(t, args.default_items)[1] for t in config["tasks"]}
    args.workdir.mkdir(parents=True, exist_ok=True)
    jobs = dry_run_jobs(Path("Snakefile").resolve(), args.configfile.resolve(), args.workdir)
    count = Counter(rule for rule, _ in jobs)
    models = config["models"]

    def params(name: str) -> float:
        spec = models[name]
        return PARAMS[spec["id"]] if spec.get("source") == "hub" else params(spec["base"])

    def lora_adapter_bytes(name: str) -> float:
        spec = models[name]
        base_id = models[spec["base"]]["id"]
        return LORA_PER_RANK[base_id] * int(spec.get("rank", 8)) * 1e-9 * 4 * GB  # fp32 adapter

    runs = [wc for rule, wc in jobs if rule == "collaborate"]
    method_of = {run: (spec or {}).get("method", run) for run, spec in config["methods"].items()}
    pools = {**config["pools"], **{wc["pool"]: [] for wc in runs if wc["pool"] not in config["pools"]}}
    hub = [m for m, s in models.items() if s.get("source") == "hub"]
    lora = [m for m, s in models.items() if s.get("source") == "lora"]
    gen_records = sum(dev[wc["task"]] if wc["split"] == "dev" else test[wc["task"]]
                      for rule, wc in jobs if rule == "generate")
    pred_records = sum(test[wc["task"]] for wc in runs)
    new_text = {"text", "weight"}
    from mocoflow.methods import METHODS

    new_items = sum(test[wc["task"]] for wc in runs if METHODS.get(method_of[wc["run"]]).level in new_text)
    cache_entries = gen_records + args.calls_per_new_item * new_items
    merge_pool = [wc for rule, wc in jobs if rule == "merge"]
    merge_task = [wc for rule, wc in jobs if rule == "merge_dev"]

    def pool_bf16(pool: str) -> float:
        return params(pools[pool][0]) * 2 * GB

    before_merged = sum(pool_bf16(wc["pool"]) for wc in merge_pool) + sum(
        pool_bf16(wc["pool"]) * (2 if method_of[wc["run"]] == "lorahub" else 1) for wc in merge_task)
    tuned = {"sparta": 1, "multiagent_finetuning": 2, "agglm": 0}  # tuned copies per pool model (agglm: one)
    before_runs = 0.0
    for wc in runs:
        method = method_of[wc["run"]]
        if method in tuned:
            members = pools[wc["pool"]]
            if method == "agglm":
                before_runs += params(members[0]) * 4 * GB  # the aggregator, fp32
            else:
                before_runs += tuned[method] * sum(params(m) * 4 * GB for m in members)
    rows = [
        ("hub weights (HF cache, outside results/)", sum(params(m) * 2 * GB for m in hub),
         sum(params(m) * 2 * GB for m in hub), "models"),
        ("LoRA specialists", sum(lora_adapter_bytes(m) for m in lora),
         sum(params(m) * 4 * GB + lora_adapter_bytes(m) for m in lora), "models"),
        ("merged models", 4096 * (len(merge_pool) + len(merge_task)), before_merged,
         "recipes: pools x tasks x KB; before: pools x tasks x model"),
        ("fine-tuned models in run folders", 0.0, before_runs, "before: pools x tasks x pool size x model"),
        ("generations", gen_records * args.bytes_per_record, gen_records * args.bytes_per_record, "models x items"),
        ("predictions + decisions", pred_records * args.bytes_per_record, pred_records * args.bytes_per_record,
         "runs x items"),
        ("scores", pred_records * args.bytes_per_score_row * 2, pred_records * args.bytes_per_score_row * 2,
         "runs x items"),
        ("response cache", cache_entries * args.bytes_per_cache_entry, cache_entries * args.bytes_per_cache_entry,
         "(generations + new text) x items"),
    ]
    print(f"jobs: {dict(count)}")
    print(f"items: dev {sum(dev.values())}, test {sum(test.values())}; generation records {gen_records}, "
          f"predictions {pred_records}, cache entries ~{cache_entries:,.0f}")
    print(f"{'kind':42s} {'now':>12s} {'before':>12s}  scales with")
    for kind, now, before, scales in rows:
        print(f"{kind:42s} {now / GB:10.2f}GB {before / GB:10.1f}GB  {scales}")
    inside = [r for r in rows if not r[0].startswith("hub")]
    print(f"{'results/ total':42s} {sum(r[1] for r in inside) / GB:10.1f}GB {sum(r[2] for r in inside) / GB:10.1f}GB")


if __name__ == "__main__":
    main()
