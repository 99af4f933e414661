# Model-based scorers (judges): one GPU job per judge x predictions file x task, output cached like any node.
# Config: the optional `judges:` block (see src/mocoflow/scoring/judges.py). Without the judge's weights a job
# writes status "skipped" with the reason, asks for no GPU, and reruns by itself once the weights appear
# (the weights state is a param).
from mocoflow.scoring.judges import judge_specs

JUDGES = judge_specs(config)


wildcard_constraints:
    judge="[^/]+",


JUDGMENTS = [
    f"{RESULTS}/judgments/{j}/single/{m}/{t}.jsonl"
    for j, spec in JUDGES.items()
    for t in spec.tasks
    for m in POOL_MODELS
] + [
    f"{RESULTS}/judgments/{j}/runs/{r.run}/{r.pool}/{r.task}.jsonl"
    for j, spec in JUDGES.items()
    for r in RUNS
    if r.task in spec.tasks
]


# judge_single (a model's shared test generations) is judge_run (one run's predictions) with its own inputs,
# outputs, log and benchmark.


rule judge_run:
    """One judge on one run's predictions (a method on a pool) for one task."""
    input:
        split_items=f"{RESULTS}/data/{{task}}/test.jsonl",
        preds=f"{RESULTS}/runs/{{run}}/{{pool}}/{{task}}/test.jsonl",
    output:
        judgments=f"{RESULTS}/judgments/{{judge}}/runs/{{run}}/{{pool}}/{{task}}.jsonl",
        usage=f"{RESULTS}/judgments/{{judge}}/runs/{{run}}/{{pool}}/{{task}}.usage.json",
    log:
        f"{RESULTS}/logs/judge/{{judge}}/runs/{{run}}/{{pool}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/judge/{{judge}}/runs/{{run}}/{{pool}}/{{task}}.tsv"
    conda:
        "../envs/gpu.yaml"
    threads: JOB_THREADS
    resources:
        gpu=judge_gpus,
        mem_mb=32000,
        runtime=120,
    params:
        judge=judge_json,
        weights=lambda wc: judge_weights(wc.judge),
    shell:
        "OMP_NUM_THREADS={threads} python -m mocoflow.stages.judge --judge {params.judge:q}"
        " --items {input.split_items} --predictions {input.preds} --out {output.judgments}"
        " --usage {output.usage} 2> {log}"


use rule judge_run as judge_single with:
    input:
        split_items=f"{RESULTS}/data/{{task}}/test.jsonl",
        preds=f"{RESULTS}/generations/{{model}}/{{task}}/test.jsonl",
    output:
        judgments=f"{RESULTS}/judgments/{{judge}}/single/{{model}}/{{task}}.jsonl",
        usage=f"{RESULTS}/judgments/{{judge}}/single/{{model}}/{{task}}.usage.json",
    log:
        f"{RESULTS}/logs/judge/{{judge}}/single/{{model}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/judge/{{judge}}/single/{{model}}/{{task}}.tsv"
