# Tables and figures from score files (analysis and plots never import torch). Every file the analyze stage
# reads is a declared input (score files, usage JSONs and the generations beside them, decisions, and the
# benchmark TSVs of the collaborate, generate and merge jobs), so Snakemake orders and reruns it correctly.
# Analysis settings are code defaults (2000 bootstrap resamples, seed 0); plot settings come from
# config["plots"] (global dpi/context/width/font_scale plus one sub-dict per figure) and only reach
# the plot rules, so changing one reruns only that figure.


rule analyze:
    """Tables from score files, usage JSONs, decisions and benchmark TSVs, every one an input: main (+ win
    share, markdown, LaTeX; ``degenerate`` from the decisions), singles, emergence, scaling (by size and by
    pool) and efficiency (with the routers' RouteLLM metrics)."""
    input:
        singles=expand(
            f"{RESULTS}/scores/single/{{model}}/{{task}}.parquet",
            model=POOL_MODELS,
            task=TASKS,
        ),
        runs=[f"{RESULTS}/scores/runs/{r.run}/{r.pool}/{r.task}.parquet" for r in RUNS],
        run_usage=[f"{RESULTS}/runs/{r.run}/{r.pool}/{r.task}/usage.json" for r in RUNS],
        decisions=[
            f"{RESULTS}/runs/{r.run}/{r.pool}/{r.task}/decisions.json" for r in RUNS
        ],
        gen_usage=generation_usage(),
        gen_records=generation_records(),
        benchmarks=analysis_benchmarks(),
    output:
        main=report(
            f"{RESULTS}/tables/main.csv",
            category="Main results",
            caption="../report/main_table.rst",
        ),
        main_md=report(
            f"{RESULTS}/tables/main.md",
            category="Main results",
            caption="../report/main_md.rst",
        ),
        main_tex=report(
            f"{RESULTS}/tables/main.tex",
            category="Main results",
            caption="../report/main_tex.rst",
        ),
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
    conda:
        "../envs/cpu.yaml"
    resources:
        gpu=0,
    params:
        spec=analysis_spec(),
    shell:
        "python -m mocoflow.stages.analyze --singles {input.singles} --runs {input.runs}"
        " --run-usage {input.run_usage} --decisions {input.decisions} --gen-usage {input.gen_usage}"
        " --benchmarks {input.benchmarks}"
        " --params {params.spec:q} --main {output.main} --main-md {output.main_md} --main-tex {output.main_tex}"
        " --win-share {output.win_share} --singles-out {output.singles} --emergence {output.emergence}"
        " --scaling {output.scaling} --scaling-pools {output.scaling_pools} --efficiency {output.efficiency}"
        " 2> {log}"


# One rule per figure; the others are the main figure's rule with their own tables, outputs and settings.
rule plot_main:
    """Each run's gain over its pool's best single model per task and pool (heatmap)."""
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
    conda:
        "../envs/cpu.yaml"
    resources:
        gpu=0,
    params:
        figure="main",
        spec=plot_spec("main"),
    shell:
        "python -m mocoflow.stages.plot --figure {params.figure} --tables {input.tables} --out {output}"
        " --params {params.spec:q} 2> {log}"


use rule plot_main as plot_scaling with:
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
    params:
        figure="scaling",
        spec=plot_spec("scaling"),


use rule plot_main as plot_efficiency with:
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
    params:
        figure="efficiency",
        spec=plot_spec("efficiency"),


use rule plot_main as plot_emergence with:
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
    params:
        figure="emergence",
        spec=plot_spec("emergence"),
