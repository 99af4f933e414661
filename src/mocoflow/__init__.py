"""mocoflow: a reproducible Snakemake pipeline for model-collaboration research."""

__version__ = "0.1.0"
