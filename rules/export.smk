# Every shared generation of the study, with its score and cost, as one wide Parquet table (one row per
# task/split/item/seed, one column group per model; schema in mocoflow.export_table). `source: replay` models
# read it back, so routers, cascades and votes can run on it elsewhere with no model loaded.


rule export:
    """Export every (model, task, split, item) generation with its score and cost."""
    input:
        gens=[p.replace(".usage.json", ".jsonl") for p in generation_usage()],
        scores=expand(
            f"{RESULTS}/scores/single/{{model}}/{{task}}.parquet",
            model=POOL_MODELS,
            task=TASKS,
        ),
        split_items=expand(
            f"{RESULTS}/data/{{task}}/{{split}}.jsonl", task=TASKS, split=SPLITS
        ),
        cards=expand(f"{RESULTS}/models/{{model}}/card.json", model=POOL_MODELS),
    output:
        f"{RESULTS}/export/generations.parquet",
    log:
        f"{RESULTS}/logs/export.log",
    benchmark:
        f"{RESULTS}/benchmarks/export.tsv"
    conda:
        "../envs/cpu.yaml"
    resources:
        gpu=0,
    params:
        spec=as_param(
            {
                "study": config.get("study", ""),
                "decoding": {t: task_decoding(t) for t in TASKS},
                "models": {m: config["models"][m] for m in POOL_MODELS},
            }
        ),
    shell:
        "python -m mocoflow.stages.export --generations {input.gens} --scores {input.scores}"
        " --items {input.split_items} --cards {input.cards} --params {params.spec:q} --out {output} 2> {log}"
