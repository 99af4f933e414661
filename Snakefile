# mocoflow: download -> models -> generate -> collaborate -> score -> analyze -> plot.
# Run the default study:   snakemake --cores all
# Use another study config: snakemake --cores all --configfile configs/smoke.yaml


# --configfile replaces the default study instead of being merged into it.
if "models" not in config:

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


rule all:
    default_target: True
    input:
        TABLES,
        FIGURES,
