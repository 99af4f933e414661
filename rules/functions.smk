# Input, params and resource functions used by the rules (kept apart from the rules, as --lint asks).
import functools

from mocoflow.scoring.judges import weights_state

# --- models ---


def base_model_cards(wc):
    """Models derived from another configured model (LoRA specialists) wait for its card."""
    base = config["models"][wc.model].get("base")
    return [f"{RESULTS}/models/{base}/card.json"] if base in config["models"] else []


# --- collaborate ---


def pool_members(pool):
    return config["pools"][pool]


def generation_inputs(wc):
    """The shared per-model generations a run reads, keyed "model/split"."""
    need = needs(wc.run)
    splits = []
    if Need.TEST_GENERATIONS in need:
        splits.append("test")
    if Need.DEV_GENERATIONS in need:
        splits.append("dev")
    return {
        f"{m}/{s}": f"{RESULTS}/generations/{m}/{wc.task}/{s}.jsonl"
        for m in pool_members(wc.pool)
        for s in splits
    }


def collaborate_inputs(wc):
    inputs = {
        "cards": [f"{RESULTS}/models/{m}/card.json" for m in pool_members(wc.pool)],
        "named": [
            f"{RESULTS}/models/{m}/card.json"
            for m in named_models(wc.run)
            if m not in pool_members(wc.pool)
        ],
        "dev": f"{RESULTS}/data/{wc.task}/dev.jsonl",
        "test": f"{RESULTS}/data/{wc.task}/test.jsonl",
        "gens": list(generation_inputs(wc).values()),
    }
    if Need.MERGED_MODEL in needs(wc.run):
        inputs["merged"] = merged_card(wc)
    return inputs


def merged_card(wc):
    """Merges that choose weights on dev are per task; the others are planned once per pool. Either card
    holds a recipe, not weights."""
    if getattr(method_of(wc.run), "uses_dev", False):
        return f"{RESULTS}/merged/{wc.run}/{wc.pool}/{wc.task}/card.json"
    return f"{RESULTS}/merged/{wc.run}/{wc.pool}/card.json"


def prompt_style_param(task):
    """{"prompt_style": ...} when the task sets a style other than "default", else {} (the params of jobs on
    default-style tasks stay as they were, so nothing reruns)."""
    style = config["tasks"][task].get("prompt_style", "default")
    return {"prompt_style": style} if style != "default" else {}


def sandbox_param():
    """{"sandbox": ...} when the config sets a sandbox policy, else {} (methods grade dev outputs with the
    task's scorer, which runs model-written code under it; jobs of a study without the key stay as they
    were, so nothing reruns)."""
    return {"sandbox": config["sandbox"]} if config.get("sandbox") else {}


def run_params(wc):
    return as_param(
        {
            "run": wc.run,
            "method": RUN_METHOD[wc.run],
            "method_params": config["methods"][wc.run].get("params", {}),
            "pool": wc.pool,
            "task": wc.task,
            "decoding": task_decoding(wc.task),
            "cache_dir": CACHE,
            "device": DEVICE,
            "gpus": run_gpus(wc),
            "model_specs": {
                m: study.model_spec_param(config["models"][m])
                for m in pool_members(wc.pool)
            },
            **seeds_param(wc.task, method_of(wc.run).stochastic),
            **prompt_style_param(wc.task),
            **sandbox_param(),
        }
    )


def run_gpus(wc):
    need = needs(wc.run)
    if Need.MODELS in need:
        return sum(model_gpus(m) for m in pool_members(wc.pool))
    if Need.MERGED_MODEL in need:
        return 1
    return 0


def run_threads(wc):
    """Runs that load no model (routers over shared generations, votes) take one thread."""
    if run_gpus(wc) or named_models(wc.run):
        return JOB_THREADS
    return 1


def merge_params(wc):
    return as_param(
        {
            "run": wc.run,
            "pool": wc.pool,
            "method": RUN_METHOD[wc.run],
            "method_params": config["methods"][wc.run].get("params", {}),
            "decoding": task_decoding(wc.task) if "task" in wc.keys() else DECODING,
            "device": DEVICE,
            # merges that choose on dev prompt and grade candidates: the prompt style and the sandbox policy
            **(
                prompt_style_param(wc.task) | sandbox_param()
                if "task" in wc.keys()
                else {}
            ),
        }
    )


# --- judge ---


@functools.cache
def judge_weights(judge):
    return weights_state(JUDGES[judge])


def judge_gpus(wc):
    return JUDGES[wc.judge].gpus if judge_weights(wc.judge) == "available" else 0


def judge_json(wc):
    return as_param({"name": wc.judge, **JUDGES[wc.judge].to_dict()})


def judges_for(task):
    return [name for name, spec in JUDGES.items() if task in spec.tasks]


def judgments_single(wc):
    """Judge name -> judgments file for one model's test generations on wc.task (for score_single)."""
    return {
        j: f"{RESULTS}/judgments/{j}/single/{wc.model}/{wc.task}.jsonl"
        for j in judges_for(wc.task)
    }


def judgments_run(wc):
    """Judge name -> judgments file for one run's predictions on wc.task (for score_run)."""
    return {
        j: f"{RESULTS}/judgments/{j}/runs/{wc.run}/{wc.pool}/{wc.task}.jsonl"
        for j in judges_for(wc.task)
    }


# --- analyze ---


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


def generation_records():
    """The generations beside those usage JSONs (the efficiency table counts their tokens)."""
    return [u.removesuffix(".usage.json") + ".jsonl" for u in generation_usage()]


def analysis_benchmarks():
    """Benchmark TSVs the efficiency table reads: every run's collaborate job, every shared generation it
    counts and every merge (once per pool, or per task where the merge chose its weights on dev).
    """
    gens = [
        u.replace(
            f"{RESULTS}/generations/", f"{RESULTS}/benchmarks/generate/", 1
        ).removesuffix(".usage.json")
        + ".tsv"
        for u in generation_usage()
    ]
    merges = {
        os.path.dirname(merged_card(r)).replace(
            f"{RESULTS}/merged/", f"{RESULTS}/benchmarks/merge/", 1
        )
        + ".tsv"
        for r in RUNS
        if Need.MERGED_MODEL in needs(r.run)
    }
    runs = [
        f"{RESULTS}/benchmarks/collaborate/{r.run}/{r.pool}/{r.task}.tsv" for r in RUNS
    ]
    return runs + gens + sorted(merges)


def analysis_spec():
    return as_param(
        {
            "pools": config["pools"],
            "methods": RUN_METHOD,
            "levels": {m: LEVELS[m] for m in sorted(set(RUN_METHOD.values()))},
            "domains": {
                t: spec.get("area", "other") for t, spec in config["tasks"].items()
            },
            "shared_splits": {run: shared_splits(run) for run in config["methods"]},
            "scaling_pools": SCALING_POOLS or None,
            # each LoRA specialist's base, for its gain over the base in singles.csv
            "bases": {
                m: config["models"][m]["base"]
                for m in POOL_MODELS
                if config["models"][m].get("source") == "lora"
                and config["models"][m].get("base") in POOL_MODELS
            },
            "n_boot": 2000,
            "seed": 0,
        }
    )


def plot_spec(figure):
    """Global plot settings plus this figure's own sub-dict: other figures' settings do not rerun it."""
    plots = config.get("plots", {})
    spec = {k: v for k, v in plots.items() if not isinstance(v, dict)}
    spec[figure] = plots.get(figure, {})
    return as_param(spec)
