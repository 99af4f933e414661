rule generate:
    """One model x one task x one split: the shared generations every method reads."""
    input:
        card=f"{RESULTS}/models/{{model}}/card.json",
        split_items=f"{RESULTS}/data/{{task}}/{{split}}.jsonl",
    output:
        gens=f"{RESULTS}/generations/{{model}}/{{task}}/{{split}}.jsonl",
        usage=f"{RESULTS}/generations/{{model}}/{{task}}/{{split}}.usage.json",
    log:
        f"{RESULTS}/logs/generate/{{model}}/{{task}}/{{split}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate/{{model}}/{{task}}/{{split}}.tsv"
    priority: 20
    conda:
        "../envs/gpu.yaml"
    threads: JOB_THREADS
    resources:
        gpu=lambda wc: model_gpus(wc.model),
        mem_mb=8000,
        runtime=120,
    params:
        spec=lambda wc: as_param(
            {
                "decoding": task_decoding(wc.task),
                "model_spec": study.model_spec_param(config["models"][wc.model]),
                "cache_dir": CACHE,
                "device": DEVICE,
                "gpus": model_gpus(wc.model),
                **seeds_param(wc.task),
                **prompt_style_param(wc.task),
            }
        ),
    shell:
        "OMP_NUM_THREADS={threads} python -m mocoflow.stages.generate --card {input.card} --items {input.split_items}"
        " --out {output.gens} --usage {output.usage} --params {params.spec:q} 2> {log}"
