"""Command-line entry points the Snakemake rules call (``python -m mocoflow.stages.<stage>``)."""
