def base_model_cards(wc):
    """Models derived from another configured model (LoRA specialists) wait for its card."""
    base = config["models"][wc.model].get("base")
    return [f"{RESULTS}/models/{base}/card.json"] if base in config["models"] else []


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
    resources:
        gpu=lambda wc: 1 if config["models"][wc.model]["source"] == "lora" else 0,
    params:
        spec=lambda wc: json.dumps(config["models"][wc.model]),
        cache=CACHE,
    shell:
        "MOCOFLOW_CACHE={params.cache}/downloads {PY} -m mocoflow.stages.build_model --name {wildcards.model} --spec {params.spec:q}"
        " --card {output.card} 2> {log}"
