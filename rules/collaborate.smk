rule merge:
    """Weight-level methods: plan the merge of one pool once; the card holds its recipe (a few KB, no
    weights), which the collaborate job materialises in memory."""
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
    conda:
        "../envs/cpu.yaml"
    resources:
        gpu=0,
        mem_mb=16000,
    params:
        spec=merge_params,
    shell:
        "python -m mocoflow.stages.merge --cards {input.cards} --card-out {output.card}"
        " --params {params.spec:q} 2> {log}"


rule merge_dev:
    """Merges that evaluate candidates on the task's dev split (greedy soup, ExPO, swarms, LoraHub): one
    recipe per pool and task (a few KB each)."""
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
    conda:
        "../envs/gpu.yaml"
    threads: JOB_THREADS
    resources:
        gpu=1,
        mem_mb=16000,
    params:
        spec=merge_params,
    shell:
        "OMP_NUM_THREADS={threads} python -m mocoflow.stages.merge --cards {input.cards} --dev {input.dev}"
        " --card-out {output.card} --params {params.spec:q} 2> {log}"


rule collaborate:
    """One configured method (a run) on one pool and one task: predictions, what the run decided (per seed)
    and its cost."""
    input:
        unpack(collaborate_inputs),
    output:
        preds=f"{RESULTS}/runs/{{run}}/{{pool}}/{{task}}/test.jsonl",
        decisions=f"{RESULTS}/runs/{{run}}/{{pool}}/{{task}}/decisions.json",
        usage=f"{RESULTS}/runs/{{run}}/{{pool}}/{{task}}/usage.json",
    log:
        f"{RESULTS}/logs/collaborate/{{run}}/{{pool}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/collaborate/{{run}}/{{pool}}/{{task}}.tsv"
    conda:
        "../envs/gpu.yaml"
    threads: run_threads
    resources:
        gpu=run_gpus,
        mem_mb=8000,
        runtime=240,
    params:
        spec=run_params,
        gens=lambda wc: as_param(generation_inputs(wc)),
        merged=lambda wc, input: (
            f"--merged-card {input.merged}" if "merged" in input.keys() else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m mocoflow.stages.collaborate --params {params.spec:q}"
        " --cards {input.cards} --dev {input.dev} --test {input.test} --gens {params.gens:q} {params.merged}"
        " --out {output.preds} --decisions {output.decisions} --usage {output.usage} 2> {log}"
