import json
import os
import sys

from snakemake.logging import logger
from snakemake.utils import validate

from mocoflow import config as study
from mocoflow.engines.factory import WEIGHTLESS_BACKENDS, backend_of
from mocoflow.methods import METHODS
from mocoflow.methods.backends import check_study_backends
from mocoflow.methods.base import Need

# Snakemake keeps the last of two equal YAML keys silently: re-read every config file strictly.
study.check_config_files(workflow.configfiles)
validate(config, "../schemas/config.schema.yaml")

# --- scaling pools ---
# config["scaling"] generates pools scale-k{size}-{i} from one configured pool and adds them to
# config["pools"] and to the runs listed in scaling.methods (mocoflow.analysis.pools.apply_scaling).
from mocoflow.analysis.pools import apply_scaling

SCALING_POOLS = list(apply_scaling(config))
# --- end scaling pools ---

study.validate(config)
RESULTS = "results"
for warning in study.data_warnings(config, RESULTS):
    logger.warning(f"Warning: {warning}")

# Jobs call `python -m mocoflow...`: put the interpreter running Snakemake (the one with mocoflow installed)
# first on PATH so jobs find it without an activated environment (MOCOFLOW_PYTHON overrides it).
study.interpreter_first_on_path(sys.executable)
CACHE = config.get("cache_dir", f"{RESULTS}/cache")
DEVICE = config.get("device", "auto")
DECODING = study.decoding(config)
# threads of a job that runs models; jobs that only read generations take one thread
JOB_THREADS = min(int(config.get("threads_per_job", 4)), workflow.cores)
SPLITS = ["dev", "test"]
RUNS = study.runs(config)
POOL_MODELS = sorted(study.pool_models(config))
TASKS = list(config["tasks"])
RUN_METHOD = {r: spec.get("method", r) for r, spec in config["methods"].items()}
# only the configured methods: params must not change when an unrelated method is registered
LEVELS = {m: METHODS.get(m).level for m in sorted(set(RUN_METHOD.values()))}


wildcard_constraints:
    model="[^/]+",
    task="[^/]+",
    pool="[^/]+",
    run="[^/]+",
    split="dev|test|train",


def as_param(obj):
    """A config value as a params string: JSON with sorted keys, so reordering keys in a YAML file does not
    look like a change and rerun the node."""
    return json.dumps(obj, sort_keys=True)


def method_of(run):
    """The configured method instance of a run (its needs may depend on its hyperparameters)."""
    return METHODS.get(RUN_METHOD[run])(config["methods"][run].get("params", {}))


def needs(run):
    return method_of(run).needs


def named_models(run):
    """Configured models a run's hyperparameters name (e.g. a router's embedder): their cards are inputs."""
    import dataclasses

    params = method_of(run).params
    values = [getattr(params, f.name) for f in dataclasses.fields(params)]
    return sorted({v for v in values if isinstance(v, str) and v in config["models"]})


def task_decoding(task):
    """The study's decoding settings with the task's own overrides (e.g. longer outputs for coding)."""
    return {**DECODING, **config["tasks"][task].get("decoding", {})}


def seeds_param(task, stochastic=False):
    """{"seeds": [...]} when a job repeats over the study's seeds (see mocoflow.config.job_seeds), else {}:
    single-seed jobs keep the params they had before seeds existed, so adding seeds reruns only what samples.
    """
    seeds = study.job_seeds(
        task_decoding(task), config.get("seeds"), stochastic=stochastic
    )
    return {"seeds": seeds} if len(seeds) > 1 else {}


def model_gpus(model):
    spec = config["models"][model]
    # served or replayed: no weights in the job
    if backend_of(model, spec) in WEIGHTLESS_BACKENDS:
        return 0
    return int(spec.get("gpus", 1))


# runs whose method needs logits or weights of a served or replayed model are refused before any job runs
check_study_backends(config, RUNS, method_of, named_models)


TABLES = expand(
    f"{RESULTS}/tables/{{name}}",
    name=[
        "main.csv",
        "main.md",
        "main.tex",
        "win_share.csv",
        "singles.csv",
        "emergence.csv",
        "scaling.csv",
        "scaling_pools.csv",
        "efficiency.csv",
    ],
)
FIGURES = expand(
    "figures/{name}.{ext}",
    name=["main", "scaling", "efficiency", "emergence"],
    ext=["pdf", "png"],
)
