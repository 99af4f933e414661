rule analyze:
    """Tables from score files: main (method x pool x task vs best single) and singles."""
    input:
        singles=expand(f"{RESULTS}/scores/single/{{model}}/{{task}}.parquet", model=POOL_MODELS, task=TASKS),
        runs=[f"{RESULTS}/scores/runs/{r.run}/{r.pool}/{r.task}.parquet" for r in RUNS],
    output:
        main=report(f"{RESULTS}/tables/main.csv", category="Tables"),
        singles=report(f"{RESULTS}/tables/singles.csv", category="Tables"),
    params:
        spec=json.dumps({"pools": config["pools"], "methods": RUN_METHOD, "levels": LEVELS}),
    log:
        f"{RESULTS}/logs/analyze.log",
    benchmark:
        f"{RESULTS}/benchmarks/analyze.tsv"
    resources:
        gpu=0,
    shell:
        "{PY} -m mocoflow.stages.analyze --singles {input.singles} --runs {input.runs}"
        " --params {params.spec:q} --main {output.main} --singles-out {output.singles} 2> {log}"


rule plot_main:
    """Each method's score per task against the pool's best single model."""
    input:
        main=f"{RESULTS}/tables/main.csv",
    output:
        pdf="figures/main.pdf",
        png=report("figures/main.png", category="Figures", caption="../report/main.rst"),
    params:
        spec=json.dumps(config.get("plots", {})),
    log:
        f"{RESULTS}/logs/plot/main.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/main.tsv"
    resources:
        gpu=0,
    shell:
        "{PY} -m mocoflow.stages.plot --main {input.main} --out {output} --params {params.spec:q} 2> {log}"
