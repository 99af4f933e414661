import json
import os
import sys

from snakemake.utils import validate

from mocoflow import config as study
from mocoflow.methods import METHODS
from mocoflow.methods.base import Need


validate(config, "../schemas/config.schema.yaml")
study.validate(config)

PY = os.environ.get("MOCOFLOW_PYTHON", sys.executable)
RESULTS = "results"
CACHE = config.get("cache_dir", f"{RESULTS}/cache")
DEVICE = config.get("device", "auto")
DECODING = study.decoding(config)
SPLITS = ["dev", "test"]
RUNS = study.runs(config)
POOL_MODELS = sorted(study.pool_models(config))
TASKS = list(config["tasks"])
LEVELS = {name: METHODS.get(name).level for name in METHODS.names()}
RUN_METHOD = {r: spec.get("method", r) for r, spec in config["methods"].items()}


wildcard_constraints:
    model="[^/]+",
    task="[^/]+",
    pool="[^/]+",
    run="[^/]+",
    split="dev|test|train",


def method_of(run):
    return METHODS.get(RUN_METHOD[run])


def needs(run):
    return method_of(run).needs


def model_gpus(model):
    spec = config["models"][model]
    return int(spec.get("gpus", 1))


TABLES = [f"{RESULTS}/tables/main.csv", f"{RESULTS}/tables/singles.csv"]
FIGURES = expand("figures/main.{ext}", ext=["pdf", "png"])
