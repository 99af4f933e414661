# Tables and figures from score files (analysis and plots never import torch).
# Analysis settings are code defaults (2000 bootstrap resamples, seed 0); plot settings come from
# config["plots"] (global dpi/context/width/font_scale plus one sub-dict per figure) and only reach
# the plot rules, so changing one reruns only that figure.


def shared_splits(run):
    need = needs(run)
    return [
        s
        for s, n in (("test", Need.TEST_GENERATIONS), ("dev", Need.DEV_GENERATIONS))
        if n in need
    ]


def generation_usage():
    """Usage JSONs of every shared generation the study produces: test for every pool model and task,
    dev where a run reads it."""
    keys = {(m, t, "test") for m in POOL_MODELS for t in TASKS}
    for r in RUNS:
        if "dev" in shared_splits(r.run):
            keys |= {(m, r.task, "dev") for m in config["pools"][r.pool]}
    return [f"{RESULTS}/generations/{m}/{t}/{s}.usage.json" for m, t, s in sorted(keys)]


def analysis_spec():
    return json.dumps(
        {
            "pools": config["pools"],
            "methods": RUN_METHOD,
            "levels": {m: LEVELS[m] for m in sorted(set(RUN_METHOD.values()))},
            "domains": {
                t: spec.get("area", "other") for t, spec in config["tasks"].items()
            },
            "shared_splits": {run: shared_splits(run) for run in config["methods"]},
            "scaling_pools": SCALING_POOLS or None,
            "n_boot": 2000,
            "seed": 0,
        },
        sort_keys=True,
    )


def plot_spec(figure):
    """Global plot settings plus this figure's own sub-dict: other figures' settings do not rerun it."""
    plots = config.get("plots", {})
    spec = {k: v for k, v in plots.items() if not isinstance(v, dict)}
    spec[figure] = plots.get(figure, {})
    return json.dumps(spec, sort_keys=True)


rule analyze:
    """Tables from score files, usage JSONs and benchmark TSVs: main (+ win share, markdown, LaTeX),
    singles, emergence, scaling (by size and by pool) and efficiency."""
    input:
        singles=expand(
            f"{RESULTS}/scores/single/{{model}}/{{task}}.parquet",
            model=POOL_MODELS,
            task=TASKS,
        ),
        runs=[f"{RESULTS}/scores/runs/{r.run}/{r.pool}/{r.task}.parquet" for r in RUNS],
        run_usage=[f"{RESULTS}/runs/{r.run}/{r.pool}/{r.task}/usage.json" for r in RUNS],
        gen_usage=generation_usage(),
    output:
        main=report(
            f"{RESULTS}/tables/main.csv",
            category="Main results",
            caption="../report/main_table.rst",
        ),
        main_md=f"{RESULTS}/tables/main.md",
        main_tex=f"{RESULTS}/tables/main.tex",
        win_share=report(
            f"{RESULTS}/tables/win_share.csv",
            category="Main results",
            caption="../report/win_share.rst",
        ),
        singles=report(
            f"{RESULTS}/tables/singles.csv",
            category="Main results",
            caption="../report/singles.rst",
        ),
        emergence=report(
            f"{RESULTS}/tables/emergence.csv",
            category="Emergence",
            caption="../report/emergence_table.rst",
        ),
        scaling=report(
            f"{RESULTS}/tables/scaling.csv",
            category="Scaling",
            caption="../report/scaling_table.rst",
        ),
        scaling_pools=report(
            f"{RESULTS}/tables/scaling_pools.csv",
            category="Scaling",
            caption="../report/scaling_pools.rst",
        ),
        efficiency=report(
            f"{RESULTS}/tables/efficiency.csv",
            category="Efficiency",
            caption="../report/efficiency_table.rst",
        ),
    log:
        f"{RESULTS}/logs/analyze.log",
    benchmark:
        f"{RESULTS}/benchmarks/analyze.tsv"
    resources:
        gpu=0,
    params:
        spec=analysis_spec(),
    shell:
        "{PY} -m mocoflow.stages.analyze --singles {input.singles} --runs {input.runs}"
        " --run-usage {input.run_usage} --gen-usage {input.gen_usage} --bench-dir {RESULTS}/benchmarks"
        " --params {params.spec:q} --main {output.main} --main-md {output.main_md} --main-tex {output.main_tex}"
        " --win-share {output.win_share} --singles-out {output.singles} --emergence {output.emergence}"
        " --scaling {output.scaling} --scaling-pools {output.scaling_pools} --efficiency {output.efficiency}"
        " 2> {log}"


rule plot_main:
    """Each run's score per task and pool against the pool's best single model."""
    input:
        tables=[f"{RESULTS}/tables/main.csv"],
    output:
        pdf="figures/main.pdf",
        png=report(
            "figures/main.png", category="Main results", caption="../report/main.rst"
        ),
    log:
        f"{RESULTS}/logs/plot/main.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/main.tsv"
    resources:
        gpu=0,
    params:
        spec=plot_spec("main"),
    shell:
        "{PY} -m mocoflow.stages.plot --figure main --tables {input.tables} --out {output}"
        " --params {params.spec:q} 2> {log}"


rule plot_scaling:
    """Score against pool size and pool diversity."""
    input:
        tables=[f"{RESULTS}/tables/scaling.csv", f"{RESULTS}/tables/scaling_pools.csv"],
    output:
        pdf="figures/scaling.pdf",
        png=report(
            "figures/scaling.png", category="Scaling", caption="../report/scaling.rst"
        ),
    log:
        f"{RESULTS}/logs/plot/scaling.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/scaling.tsv"
    resources:
        gpu=0,
    params:
        spec=plot_spec("scaling"),
    shell:
        "{PY} -m mocoflow.stages.plot --figure scaling --tables {input.tables} --out {output}"
        " --params {params.spec:q} 2> {log}"


rule plot_efficiency:
    """Score against cost with the Pareto front."""
    input:
        tables=[f"{RESULTS}/tables/efficiency.csv"],
    output:
        pdf="figures/efficiency.pdf",
        png=report(
            "figures/efficiency.png",
            category="Efficiency",
            caption="../report/efficiency.rst",
        ),
    log:
        f"{RESULTS}/logs/plot/efficiency.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/efficiency.tsv"
    resources:
        gpu=0,
    params:
        spec=plot_spec("efficiency"),
    shell:
        "{PY} -m mocoflow.stages.plot --figure efficiency --tables {input.tables} --out {output}"
        " --params {params.spec:q} 2> {log}"


rule plot_emergence:
    """Emergence and loss shares by task domain."""
    input:
        tables=[f"{RESULTS}/tables/emergence.csv"],
    output:
        pdf="figures/emergence.pdf",
        png=report(
            "figures/emergence.png",
            category="Emergence",
            caption="../report/emergence.rst",
        ),
    log:
        f"{RESULTS}/logs/plot/emergence.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot/emergence.tsv"
    resources:
        gpu=0,
    params:
        spec=plot_spec("emergence"),
    shell:
        "{PY} -m mocoflow.stages.plot --figure emergence --tables {input.tables} --out {output}"
        " --params {params.spec:q} 2> {log}"
