# mocoflow: download -> models -> generate -> collaborate -> score -> analyze -> plot.
# Run the default study:   snakemake --cores all
# Use another study config: snakemake --cores all --configfile configs/smoke.yaml
import sys

from snakemake.utils import min_version

min_version("9.20")  # as pyproject.toml pins (snakemake>=9.20,<10)

from mocoflow import config as study
from mocoflow import interrupts, runlock

# One run per working directory: a second run stops here with "another run holds this directory"
# (mocoflow.runlock); dry runs, --report and --unlock never take the lock.
RUN_LOCK = runlock.claim(workflow.is_main_process, sys.argv)
if workflow.is_main_process:
    interrupts.stop_jobs_on_sigint()  # Ctrl-C terminates running jobs instead of waiting for them

# --configfile replaces the default study instead of being merged into it.
if "models" not in config:
    # syntax errors and repeated keys with file, line and column (Snakemake's loader names neither)
    study.check_config_file("config.yaml")

    configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/functions.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/generate.smk"
include: "rules/collaborate.smk"
include: "rules/judge.smk"
include: "rules/score.smk"
include: "rules/analyze.smk"
include: "rules/export.smk"


# Light jobs (reading and writing small files) run in the Snakemake process on a cluster, not as jobs.
localrules:
    prepare,
    score_single,
    score_run,
    analyze,
    plot_main,
    plot_scaling,
    plot_efficiency,
    plot_emergence,
    export,


rule all:
    default_target: True
    input:
        TABLES,
        FIGURES,
        f"{RESULTS}/export/generations.parquet",


onstart:
    # Snakemake's Python API: argv said nothing, take the lock now
    runlock.ensure_held(RUN_LOCK)


onsuccess:
    interrupts.cancel_pending_timers()


onerror:
    interrupts.cancel_pending_timers()
