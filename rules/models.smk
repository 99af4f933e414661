rule build_model:
    """Build or locate one model's weights and write its card (source, fingerprint, parameters)."""
    input:
        base_model_cards,
    output:
        card=f"{RESULTS}/models/{{model}}/card.json",
    log:
        f"{RESULTS}/logs/models/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/models/{{model}}.tsv"
    priority: 30
    conda:
        "../envs/gpu.yaml"
    threads: JOB_THREADS
    resources:
        gpu=lambda wc: 1 if config["models"][wc.model]["source"] == "lora" else 0,
    params:
        spec=lambda wc: as_param(study.model_spec_param(config["models"][wc.model])),
        cache=CACHE,
    shell:
        "OMP_NUM_THREADS={threads} MOCOFLOW_CACHE={params.cache}/downloads python -m mocoflow.stages.build_model --name {wildcards.model} --spec {params.spec:q}"
        " --card {output.card} 2> {log}"
