def pool_members(pool):
    return config["pools"][pool]


def generation_inputs(wc):
    """The shared per-model generations a run reads, keyed "model/split"."""
    need = needs(wc.run)
    splits = []
    if Need.TEST_GENERATIONS in need:
        splits.append("test")
    if Need.DEV_GENERATIONS in need:
        splits.append("dev")
    return {
        f"{m}/{s}": f"{RESULTS}/generations/{m}/{wc.task}/{s}.jsonl"
        for m in pool_members(wc.pool)
        for s in splits
    }


def collaborate_inputs(wc):
    inputs = {
        "cards": [f"{RESULTS}/models/{m}/card.json" for m in pool_members(wc.pool)],
        "named": [
            f"{RESULTS}/models/{m}/card.json"
            for m in named_models(wc.run)
            if m not in pool_members(wc.pool)
        ],
        "dev": f"{RESULTS}/data/{wc.task}/dev.jsonl",
        "test": f"{RESULTS}/data/{wc.task}/test.jsonl",
        "gens": list(generation_inputs(wc).values()),
    }
    if Need.MERGED_MODEL in needs(wc.run):
        inputs["merged"] = merged_card(wc)
    return inputs


def merged_card(wc):
    """Merges that choose weights on dev are per task; the others are built once per pool."""
    if getattr(method_of(wc.run), "uses_dev", False):
        return f"{RESULTS}/merged/{wc.run}/{wc.pool}/{wc.task}/card.json"
    return f"{RESULTS}/merged/{wc.run}/{wc.pool}/card.json"


def run_params(wc):
    return json.dumps(
        {
            "run": wc.run,
            "method": RUN_METHOD[wc.run],
            "method_params": config["methods"][wc.run].get("params", {}),
            "pool": wc.pool,
            "task": wc.task,
            "decoding": task_decoding(wc.task),
            "cache_dir": CACHE,
            "device": DEVICE,
            "gpus": run_gpus(wc),
            "model_specs": {m: config["models"][m] for m in pool_members(wc.pool)},
        }
    )


def run_gpus(wc):
    need = needs(wc.run)
    if Need.MODELS in need:
        return sum(model_gpus(m) for m in pool_members(wc.pool))
    if Need.MERGED_MODEL in need:
        return 1
    return 0


def merge_params(wc):
    return json.dumps(
        {
            "run": wc.run,
            "pool": wc.pool,
            "method": RUN_METHOD[wc.run],
            "method_params": config["methods"][wc.run].get("params", {}),
            "decoding": task_decoding(wc.task) if "task" in wc.keys() else DECODING,
            "device": DEVICE,
        }
    )


rule merge:
    """Weight-level methods: build the merged model of one pool once (cached like any model)."""
    input:
        cards=lambda wc: [
            f"{RESULTS}/models/{m}/card.json" for m in pool_members(wc.pool)
        ],
    output:
        card=f"{RESULTS}/merged/{{run}}/{{pool}}/card.json",
    log:
        f"{RESULTS}/logs/merge/{{run}}/{{pool}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge/{{run}}/{{pool}}.tsv"
    resources:
        gpu=0,
        mem_mb=16000,
    params:
        spec=merge_params,
    shell:
        "{PY} -m mocoflow.stages.merge --cards {input.cards} --card-out {output.card}"
        " --params {params.spec:q} 2> {log}"


rule merge_dev:
    """Merges that evaluate candidates on the task's dev split (greedy soup, ExPO, swarms, LoraHub)."""
    input:
        cards=lambda wc: [
            f"{RESULTS}/models/{m}/card.json" for m in pool_members(wc.pool)
        ],
        dev=f"{RESULTS}/data/{{task}}/dev.jsonl",
    output:
        card=f"{RESULTS}/merged/{{run}}/{{pool}}/{{task}}/card.json",
    log:
        f"{RESULTS}/logs/merge/{{run}}/{{pool}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge/{{run}}/{{pool}}/{{task}}.tsv"
    threads: min(4, workflow.cores)
    resources:
        gpu=1,
        mem_mb=16000,
    params:
        spec=merge_params,
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m mocoflow.stages.merge --cards {input.cards} --dev {input.dev}"
        " --card-out {output.card} --params {params.spec:q} 2> {log}"


rule collaborate:
    """One configured method (a run) on one pool and one task."""
    input:
        unpack(collaborate_inputs),
    output:
        preds=f"{RESULTS}/runs/{{run}}/{{pool}}/{{task}}/test.jsonl",
        usage=f"{RESULTS}/runs/{{run}}/{{pool}}/{{task}}/usage.json",
    log:
        f"{RESULTS}/logs/collaborate/{{run}}/{{pool}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/collaborate/{{run}}/{{pool}}/{{task}}.tsv"
    threads: min(4, workflow.cores)
    resources:
        gpu=run_gpus,
        mem_mb=8000,
        runtime=240,
    params:
        spec=run_params,
        gens=lambda wc: json.dumps(generation_inputs(wc)),
        merged=lambda wc, input: (
            f"--merged-card {input.merged}" if "merged" in input.keys() else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} {PY} -m mocoflow.stages.collaborate --params {params.spec:q}"
        " --cards {input.cards} --dev {input.dev} --test {input.test} --gens {params.gens:q} {params.merged}"
        " --out {output.preds} --usage {output.usage} 2> {log}"
