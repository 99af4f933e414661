"""Semantic checks and derived views of a study config (the JSON schema checks its shape)."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

DEFAULT_DECODING: dict[str, Any] = {"max_new_tokens": 64, "temperature": 0.0, "top_p": 1.0, "seed": 0,
                                    "batch_size": 8}


class ConfigError(ValueError):
    """The config names something that does not exist; the message lists the valid names."""


@dataclass(frozen=True)
class Run:
    """One collaboration run: a configured method (by run name) on one pool and one task."""

    run: str
    method: str
    pool: str
    task: str


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *anchor" merges; explicit keys win
                    continue
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    first = seen[key].start_mark
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first.line + 1}, column "
                        f"{first.column + 1})", key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load_yaml_strict(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML (or JSON) config file; ConfigError "FILE:LINE:COLUMN: problem" for a syntax error or a
    repeated key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = " ".join(p for p in (err.context, err.problem) if p)
        raise ConfigError(f"{where}: {problem}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: {err}") from None


def check_config_file(path: str | os.PathLike[str]) -> None:
    """Refuse a config file with a YAML syntax error or a repeated key (file, line and column named).
    Snakemake loads config files itself and silently keeps the last of two equal keys."""
    load_yaml_strict(path)


def check_config_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    for path in dict.fromkeys(str(p) for p in paths):
        check_config_file(path)


def _unknown(kind: str, name: str, valid: Any, where: str) -> ConfigError:
    return ConfigError(f"{where}: unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")


def validate(config: dict[str, Any]) -> None:
    """Check what can be checked before any job runs: cross-references (pool members, method names, method
    pools/tasks, model/task sources), every method hyperparameter against its typed field, LoRA training
    settings, bring-your-own paths, and the pool needs of logit- and weight-level methods (one tokenizer,
    one architecture) wherever the model specs tell. Raises ConfigError naming the config key."""
    from mocoflow.data.sources import SOURCES
    from mocoflow.methods import METHODS
    from mocoflow.methods.base import MethodError, build_params
    from mocoflow.model_sources import MODEL_SOURCES

    models, pools, tasks = config["models"], config["pools"], config["tasks"]
    for name, spec in models.items():
        if spec["source"] not in MODEL_SOURCES:
            raise _unknown("model source", spec["source"], MODEL_SOURCES.names(), f"models.{name}")
    for pool, members in pools.items():
        for m in members:
            if m not in models:
                raise _unknown("model", m, models, f"pools.{pool}")
        if len(set(members)) != len(members):
            raise ConfigError(f"pools.{pool}: a model is listed twice: {members}")
    for name, spec in tasks.items():
        if spec["source"] not in SOURCES:
            raise _unknown("task source", spec["source"], SOURCES.names(), f"tasks.{name}")
    methods = {}
    for run, spec in config["methods"].items():
        method = spec.get("method", run)
        if method not in METHODS:
            raise _unknown("method", method, METHODS.names(), f"methods.{run}")
        for pool in spec.get("pools", []):
            if pool not in pools:
                raise _unknown("pool", pool, pools, f"methods.{run}.pools")
        for task in spec.get("tasks", []):
            if task not in tasks:
                raise _unknown("task", task, tasks, f"methods.{run}.tasks")
        cls = METHODS.get(method)
        try:  # typed hyperparameters: unknown keys and wrong types fail here, naming the key
            build_params(cls.Params, spec.get("params") or {}, method, where=f"methods.{run}.params")
            methods[run] = cls(spec.get("params") or {})
        except MethodError as err:
            raise ConfigError(str(err)) from None
    for name in list(models) + list(pools) + list(tasks) + list(config["methods"]):
        if "/" in name or name.startswith("."):
            raise ConfigError(f"name {name!r} must not contain '/' or start with '.' (it becomes a path)")
    _check_model_specs(models)
    _check_task_paths(tasks)
    _check_pool_needs(config, methods)


def _check_model_specs(models: dict[str, Any]) -> None:
    """LoRA settings typed like hyperparameters, LoRA bases that exist, and local weight folders."""
    from mocoflow.methods.base import MethodError, build_params
    from mocoflow.training.lora import LoraParams

    lora_keys = {f.name for f in dataclasses.fields(LoraParams)}
    for name, spec in models.items():
        where = f"models.{name}"
        if spec["source"] == "lora":
            try:
                build_params(LoraParams, {k: v for k, v in spec.items() if k in lora_keys}, "lora", where=where)
            except MethodError as err:
                raise ConfigError(str(err)) from None
            if spec.get("base_path"):
                _check_model_folder(spec["base_path"], f"{where}.base_path")
            elif spec.get("base") is None:
                raise ConfigError(f"{where}: source 'lora' needs 'base' (a configured model) or 'base_path'")
            elif spec["base"] not in models:
                raise _unknown("model", str(spec["base"]), models, f"{where}.base")
        elif spec["source"] == "local":
            if not spec.get("path"):
                raise ConfigError(f"{where}: source 'local' needs 'path' (a Hugging Face model folder)")
            _check_model_folder(spec["path"], f"{where}.path")


def _check_model_folder(path: str, where: str) -> None:
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{where}: {folder} does not exist (relative paths start at the working directory "
                          f"{Path.cwd()})")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{where}: {folder} is not a Hugging Face model folder (no config.json)")


def _check_task_paths(tasks: dict[str, Any]) -> None:
    """Local data files of bring-your-own tasks (``jsonl`` paths, ``moco`` paths and file:// URLs)."""
    from urllib.parse import unquote, urlparse

    for name, spec in tasks.items():
        where = f"tasks.{name}"
        if spec["source"] == "jsonl" and spec.get("path"):
            target = Path(str(spec["path"])).expanduser()
            if not target.exists():
                raise ConfigError(f"{where}.path: {target} does not exist (relative paths start at the working "
                                  f"directory {Path.cwd()})")
        elif spec["source"] == "moco" and spec.get("url"):
            url = urlparse(str(spec["url"]))
            if url.scheme in ("http", "https"):
                continue
            target = Path(unquote(url.path) if url.scheme == "file" else str(spec["url"])).expanduser()
            if target.is_dir():
                target = target / f"{spec.get('name')}.json"
            if not target.is_file():
                raise ConfigError(f"{where}.url: {target} does not exist")


def _check_pool_needs(config: dict[str, Any], methods: dict[str, Any]) -> None:
    """A method that needs one tokenizer (logit level) or one architecture (weight level) on a pool whose
    model specs already show two: fail now, not when the job runs. Specs tell for tiny models, local
    folders, LoRA specialists (their base's) and models that declare ``tokenizer_id``/``architecture_id``;
    other pools are checked when the job reads the model cards."""
    from mocoflow.methods.base import Need
    from mocoflow.models import expected_signature

    for r in runs(config):
        needs = methods[r.run].needs
        for need, attribute in ((Need.SAME_TOKENIZER, "tokenizer"), (Need.SAME_ARCHITECTURE, "architecture")):
            if need not in needs:
                continue
            members = config["pools"][r.pool]
            signatures = {m: expected_signature(m, config["models"], attribute) for m in members}
            if any(sig is None for sig in signatures.values()) or len({k for k, _ in signatures.values()}) > 1:
                continue  # not known for every member (or known in different terms): the job checks
            groups: dict[str, list[str]] = {}
            for m, (kind, value) in signatures.items():
                groups.setdefault(f"{kind} {value}", []).append(m)
            if len(groups) > 1:
                described = "; ".join(f"{', '.join(ms)} ({label})" for label, ms in groups.items())
                raise ConfigError(f"methods.{r.run}: {r.method} needs one {attribute}, but pool {r.pool!r} has "
                                  f"{len(groups)}: {described}")


def task_data_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The keys of a task's config block that change its data: what ``prepare`` reads and is rerun for
    (not the pipeline's ``area``, ``decoding`` or ``prompt_style``)."""
    from mocoflow.data.sources import PIPELINE_KEYS

    return {k: v for k, v in spec.items() if k not in PIPELINE_KEYS}


def model_spec_param(spec: dict[str, Any]) -> dict[str, Any]:
    """A model's config block as the rules pass it on: without the declarations made for checks at DAG
    build (``tokenizer_id``, ``architecture_id``), which change no weights and no output, and with a LoRA
    specialist's task blocks (``train_task``, ``exclude_tasks``: often YAML aliases of evaluated tasks) reduced
    to the keys that change their items (:func:`task_data_spec`), so a task's decoding or area does not
    retrain the specialist."""
    from mocoflow.models import DECLARATION_KEYS

    out = {k: v for k, v in spec.items() if k not in DECLARATION_KEYS}
    for key in ("train_task", "exclude_tasks"):
        blocks = out.get(key)
        if isinstance(blocks, dict) and "source" in blocks:
            out[key] = task_data_spec(blocks)
        elif isinstance(blocks, dict):
            out[key] = {n: task_data_spec(b) if isinstance(b, dict) else b for n, b in blocks.items()}
        elif isinstance(blocks, list):
            out[key] = [task_data_spec(b) if isinstance(b, dict) else b for b in blocks]
    return out


def data_warnings(config: dict[str, Any], results: str | os.PathLike[str]) -> list[str]:
    """What prepared tasks recorded about their data (splits smaller than asked, null golds), from
    ``results/data/{task}/meta.json`` where it was prepared from the current spec."""
    import json

    out = []
    for task, spec in config["tasks"].items():
        path = Path(results) / "data" / task / "meta.json"
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("spec") != task_data_spec(spec):
            continue  # prepare reruns for this spec
        for split, short in sorted((meta.get("short") or {}).items()):
            out.append(f"tasks.{task}.n_{split}: asked for {short['requested']} items, the data has "
                       f"{short['available']} ({path})")
        for key, label in (("null_gold", "items without a gold answer"),
                           ("dropped_without_gold", "rows dropped without a single gold answer")):
            counts = {s: n for s, n in (meta.get(key) or {}).items() if n}
            if counts:
                out.append(f"tasks.{task}: {label}: "
                           + ", ".join(f"{s}={n}" for s, n in sorted(counts.items())) + f" ({path})")
    return out


def runs(config: dict[str, Any]) -> list[Run]:
    out = []
    for run, spec in config["methods"].items():
        for pool in spec.get("pools") or list(config["pools"]):
            for task in spec.get("tasks") or list(config["tasks"]):
                out.append(Run(run=run, method=spec.get("method", run), pool=pool, task=task))
    return out


def decoding(config: dict[str, Any]) -> dict[str, Any]:
    return {**DEFAULT_DECODING, **config.get("decoding", {})}


def job_seeds(decoding: dict[str, Any], seeds: list[int] | None, *, stochastic: bool = False) -> list[int]:
    """The decoding seeds one job runs: the study's ``seeds`` when its outputs depend on the seed (decoding
    samples, ``temperature > 0``, or the method is ``stochastic``), else only ``decoding["seed"]``: greedy,
    deterministic outputs are the same for every seed, so repeating them would only cost time."""
    samples = float(decoding.get("temperature", 0.0)) > 0 or stochastic
    if seeds and samples:
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds: a seed is listed twice: {seeds}")
        return [int(s) for s in seeds]
    return [int(decoding.get("seed", 0))]


def pool_models(config: dict[str, Any]) -> set[str]:
    return {m for members in config["pools"].values() for m in members}


def interpreter_first_on_path(default: str) -> str:
    """Put the Python that runs Snakemake (or ``MOCOFLOW_PYTHON``) first on PATH, so the rules' ``python -m
    mocoflow...`` commands find the environment with mocoflow installed without activating it."""
    import os

    python = os.environ.get("MOCOFLOW_PYTHON", default)
    os.environ["PATH"] = os.path.dirname(python) + os.pathsep + os.environ.get("PATH", "")
    return python
