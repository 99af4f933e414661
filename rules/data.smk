rule prepare:
    """Fetch or generate one task and write its canonical items per split."""
    output:
        train=f"{RESULTS}/data/{{task}}/train.jsonl",
        dev=f"{RESULTS}/data/{{task}}/dev.jsonl",
        test=f"{RESULTS}/data/{{task}}/test.jsonl",
        meta=f"{RESULTS}/data/{{task}}/meta.json",
    log:
        f"{RESULTS}/logs/prepare/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare/{{task}}.tsv"
    priority: 30
    conda:
        "../envs/cpu.yaml"
    resources:
        gpu=0,
    params:
        # only the keys that change the data: a task's area, decoding or prompt style does not rerun it
        spec=lambda wc: as_param(study.task_data_spec(config["tasks"][wc.task])),
        cache=CACHE,
    shell:
        "python -m mocoflow.data.prepare --task {wildcards.task} --spec-json {params.spec:q}"
        " --cache-dir {params.cache}/downloads --out-dir $(dirname {output.meta}) 2> {log}"
