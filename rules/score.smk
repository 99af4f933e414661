# Scoring: one job per predictions file. score_single (a model's shared test generations, the single-model
# baselines) is score_run (one run's predictions) with its own inputs, outputs and labels.


rule score_run:
    """Score one run's predictions item by item, with cost columns."""
    input:
        split_items=f"{RESULTS}/data/{{task}}/test.jsonl",
        preds=f"{RESULTS}/runs/{{run}}/{{pool}}/{{task}}/test.jsonl",
        usage=f"{RESULTS}/runs/{{run}}/{{pool}}/{{task}}/usage.json",
        judgments=lambda wc: list(judgments_run(wc).values()),
    output:
        f"{RESULTS}/scores/runs/{{run}}/{{pool}}/{{task}}.parquet",
    log:
        f"{RESULTS}/logs/score/runs/{{run}}/{{pool}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score/runs/{{run}}/{{pool}}/{{task}}.tsv"
    conda:
        "../envs/cpu.yaml"
    resources:
        gpu=0,
    params:
        labels=lambda wc: as_param({"run": wc.run, "pool": wc.pool, "model": ""}),
        judgments=lambda wc: as_param(judgments_run(wc)),
        sandbox=as_param(config.get("sandbox", {})),
    shell:
        "python -m mocoflow.stages.score --items {input.split_items} --predictions {input.preds}"
        " --usage {input.usage} --labels {params.labels:q} --judgments {params.judgments:q}"
        " --sandbox {params.sandbox:q} --out {output} 2> {log}"


use rule score_run as score_single with:
    input:
        split_items=f"{RESULTS}/data/{{task}}/test.jsonl",
        preds=f"{RESULTS}/generations/{{model}}/{{task}}/test.jsonl",
        usage=f"{RESULTS}/generations/{{model}}/{{task}}/test.usage.json",
        judgments=lambda wc: list(judgments_single(wc).values()),
    output:
        f"{RESULTS}/scores/single/{{model}}/{{task}}.parquet",
    log:
        f"{RESULTS}/logs/score/single/{{model}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/score/single/{{model}}/{{task}}.tsv"
    priority: 20
    params:
        labels=lambda wc: as_param(
            {"run": "single", "pool": wc.model, "model": wc.model}
        ),
        judgments=lambda wc: as_param(judgments_single(wc)),
        sandbox=as_param(config.get("sandbox", {})),
