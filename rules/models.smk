rule build_model:
    """Build or locate one model's weights and write its card (source, fingerprint, parameters)."""
    output:
        card=f"{RESULTS}/models/{{model}}/card.json",
    params:
        spec=lambda wc: json.dumps(config["models"][wc.model]),
    log:
        f"{RESULTS}/logs/models/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/models/{{model}}.tsv"
    resources:
        gpu=lambda wc: 1 if config["models"][wc.model].get("train") else 0,
    shell:
        "{PY} -m mocoflow.stages.build_model --name {wildcards.model} --spec {params.spec:q}"
        " --card {output.card} 2> {log}"
