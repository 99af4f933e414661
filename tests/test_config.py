"""Config validation: schema shape and cross-references with the valid names listed."""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from mocoflow import config as study

REPO = Path(__file__).resolve().parents[1]


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


@pytest.fixture
def smoke() -> dict:
    return load("configs/smoke.yaml")


def test_shipped_configs_validate_against_schema_and_names():
    from snakemake.utils import validate

    for name in ["config.yaml", *(str(p.relative_to(REPO)) for p in sorted((REPO / "configs").glob("*.yaml")))]:
        cfg = load(name)
        validate(cfg, str(REPO / "schemas" / "config.schema.yaml"))
        study.validate(cfg)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["pools"].__setitem__("trio", ["tiny-a", "tiny-z"]),
         "pools.trio: unknown model 'tiny-z'; valid models: tiny-a, tiny-b, tiny-c, tiny-lora-arith"),
        (lambda c: c["methods"].__setitem__("debait", {}), "methods.debait: unknown method 'debait'; valid methods:"),
        (lambda c: c["methods"]["cascade"].__setitem__("pools", ["quartet"]),
         "methods.cascade.pools: unknown pool 'quartet'; valid pools: duo, loras, trio"),
        (lambda c: c["methods"]["cascade"].__setitem__("tasks", ["gsm9k"]),
         "methods.cascade.tasks: unknown task 'gsm9k'; valid tasks: arith, facts"),
        (lambda c: c["tasks"]["arith"].__setitem__("source", "hub"), "tasks.arith: unknown task source 'hub'"),
        (lambda c: c["models"]["tiny-a"].__setitem__("source", "ollama"), "models.tiny-a: unknown model source"),
        (lambda c: c["methods"]["cascade"].__setitem__("params", {"thresh": 1}), "unknown hyperparameter"),
    ],
)
def test_bad_names_fail_listing_valid_ones(smoke: dict, mutate, message: str):
    cfg = copy.deepcopy(smoke)
    mutate(cfg)
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")):
        study.validate(cfg)


def test_schema_rejects_unknown_top_level_key(smoke: dict):
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    smoke["modles"] = {}
    with pytest.raises(WorkflowError):
        validate(smoke, str(REPO / "schemas" / "config.schema.yaml"))


def test_runs_expand_methods_over_pools_and_tasks(smoke: dict):
    runs = study.runs(smoke)
    assert study.Run("single", "single", "duo", "facts") in runs
    assert study.Run("task_arithmetic", "linear_merge", "trio", "arith") in runs
    assert not any(r.run == "logit_fusion" and r.pool == "trio" for r in runs)
    expected = sum(len(spec.get("pools") or smoke["pools"]) * len(spec.get("tasks") or smoke["tasks"])
                   for spec in smoke["methods"].values())
    assert len(runs) == expected and len(set(runs)) == len(runs)


# --- strict YAML: syntax errors and repeated keys name file, line and column ---


def test_repeated_key_is_refused_with_file_line_and_column(tmp_path: Path):
    path = tmp_path / "study.yaml"
    path.write_text("models:\n  a: {source: tiny}\npools:\n  p: [a]\n  p: [a, a]\n")
    with pytest.raises(study.ConfigError, match=rf"^{path}:5:3: duplicate key 'p' \(first at line 4, column 3\)"):
        study.check_config_file(path)
    assert yaml.safe_load(path.read_text())["pools"] == {"p": ["a", "a"]}  # what PyYAML would silently keep


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path):
    path = tmp_path / "study.yaml"
    path.write_text("models:\n  a: {source: tiny}\npools:\n  p: [a, b\ntasks: {}\n")
    with pytest.raises(study.ConfigError, match=rf"^{path}:5:6: .*expected ',' or '\]'"):
        study.check_config_file(path)


def test_merge_keys_and_shipped_configs_pass_the_strict_loader(tmp_path: Path):
    path = tmp_path / "anchors.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")
    assert study.load_yaml_strict(path) == {"base": {"x": 1, "y": 2}, "d": {"x": 3, "y": 2}}
    for name in ["config.yaml", *(str(p.relative_to(REPO)) for p in sorted((REPO / "configs").glob("*.yaml")))]:
        study.check_config_file(REPO / name)


def test_snakemake_refuses_a_configfile_with_a_repeated_key(tmp_path: Path):
    """Snakemake loads --configfile itself (keeping the last key); the DAG build re-reads it strictly."""
    import subprocess
    import sys

    text = (REPO / "configs" / "smoke.yaml").read_text()
    configfile = tmp_path / "dup.yaml"
    configfile.write_text(text + "\nplots: {dpi: 90}\n")  # smoke.yaml already has plots:
    line = len(text.splitlines()) + 2
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--configfile", str(configfile), "--cores", "1"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert proc.returncode != 0
    assert f"{configfile}:{line}:1: duplicate key 'plots'" in proc.stdout + proc.stderr


# --- hyperparameters checked against their typed fields at DAG build ---


@pytest.mark.parametrize(
    ("run", "params", "message"),
    [
        ("sparta", {"train_steps": 2, "lr": "0.01"}, "methods.sparta.params.lr: expected float, got str '0.01'"),
        ("cascade", {"target_precision": "high"},
         "methods.cascade.params.target_precision: expected float or None, got str 'high'"),
        ("graph_router", {"embedder": "tfidf", "epochs": 2.5},
         "methods.graph_router.params.epochs: expected int, got float 2.5"),
        ("graph_router", {"embedder": "tfidf", "epochs": True},
         "methods.graph_router.params.epochs: expected int, got bool True"),
        ("lorahub", {"weights": [0.5, "half"]}, r"methods.lorahub.params.weights\[1\]: expected float, got str 'half'"),
        ("cascade", {"confidence": "vibes"}, "methods.cascade.params: cascade confidence must be"),
    ],
)
def test_wrong_hyperparameter_types_fail_naming_the_key(smoke: dict, run: str, params: dict, message: str):
    smoke["methods"][run]["params"] = params
    with pytest.raises(study.ConfigError, match="^" + message):
        study.validate(smoke)


def test_lora_training_settings_are_typed_too(smoke: dict):
    smoke["models"]["tiny-lora-arith"]["lr"] = "1e-3"
    with pytest.raises(study.ConfigError, match=r"^models.tiny-lora-arith.lr: expected float, got str '1e-3'"):
        study.validate(smoke)


@dataclass(frozen=True)
class _Inner:
    k: int = 1


@dataclass(frozen=True)
class _Params:
    lr: float = 0.1
    pair: tuple[int, int] = (1, 2)
    names: tuple[str, ...] = ()
    mode: Literal["a", "b"] = "a"
    inner: _Inner = field(default_factory=_Inner)
    table: dict[str, list[float]] = field(default_factory=dict)
    path: Path | None = None


def test_check_value_converts_what_yaml_cannot_say():
    from mocoflow.methods.base import MethodError, build_params

    P, Inner = _Params, _Inner
    p = build_params(P, {"lr": 1, "pair": [3, 4], "names": ["x"], "inner": {"k": 5}, "table": {"a": [1, 2.5]},
                         "path": "w"}, "m")
    assert p == P(lr=1.0, pair=(3, 4), names=("x",), inner=Inner(5), table={"a": [1.0, 2.5]}, path=Path("w"))
    assert isinstance(p.lr, float)
    for values, message in [({"mode": "c"}, "m.mode: expected one of 'a', 'b', got str 'c'"),
                            ({"pair": [1]}, r"m.pair: expected a list of 2 \(int, int\), got list \[1\]"),
                            ({"inner": {"k": "5"}}, "m.inner.k: expected int, got str '5'"),
                            ({"inner": {"j": 1}}, r"m.inner: unknown hyperparameter\(s\) \['j'\]"),
                            ({"table": {"a": ["x"]}}, r"m.table.a\[0\]: expected float, got str 'x'")]:
        with pytest.raises(MethodError, match="^" + message):
            build_params(P, values, "m")


def test_every_registered_method_builds_with_its_defaults_and_checks_every_field():
    """The check must cover every method: each field's annotation resolves, defaults pass their own check."""
    import dataclasses

    from mocoflow.methods import METHODS
    from mocoflow.methods.base import _field_types, build_params

    for name in METHODS.names():
        params_cls = METHODS.get(name).Params
        hints = _field_types(params_cls)
        assert set(hints) == {f.name for f in dataclasses.fields(params_cls)}, name
        defaults = {f.name: getattr(params_cls(), f.name) for f in dataclasses.fields(params_cls)}
        build_params(params_cls, defaults, name)


# --- pool needs and bring-your-own paths checked at DAG build ---


def test_logit_method_on_pool_with_two_tokenizers_fails_at_dag_build(smoke: dict):
    smoke["models"]["tiny-b"]["tokenizer"] = "other"
    smoke["methods"] = {"single": {}, "logit_fusion": {"pools": ["duo"]}}
    study.validate({**smoke, "methods": {"single": {}}})  # methods that need no shared tokenizer still pass
    with pytest.raises(study.ConfigError, match=r"^methods.logit_fusion: logit_fusion needs one tokenizer, but pool "
                                                r"'duo' has 2: tiny-a \(tiny default\); tiny-b \(tiny other\)"):
        study.validate(smoke)


def test_weight_method_on_pool_with_two_architectures_fails_at_dag_build(smoke: dict):
    smoke["models"]["tiny-c"]["n_layer"] = 3
    smoke["methods"] = {"linear_merge": {"pools": ["trio"]}}
    with pytest.raises(study.ConfigError, match=r"^methods.linear_merge: linear_merge needs one architecture, but "
                                                r"pool 'trio' has 2"):
        study.validate(smoke)


def test_declared_labels_and_lora_bases_decide_pool_needs(smoke: dict):
    from mocoflow.models import expected_signature

    models = smoke["models"]
    assert expected_signature("tiny-lora-arith", models, "architecture") == expected_signature("tiny-a", models,
                                                                                                "architecture")
    pypi = {"a": {"source": "pypi_gguf"}, "b": {"source": "pypi_gguf", "tokenizer_id": "gemma"},
            "c": {"source": "pypi_gguf", "tokenizer_id": "smol"}, "d": {"source": "lora", "base": "c"}}
    assert expected_signature("a", pypi, "tokenizer") is None  # unknown before the weights exist
    assert expected_signature("d", pypi, "tokenizer") == ("declared", "smol")
    smoke["models"] = {**models, **{k: v for k, v in pypi.items() if k in "bcd"}}
    smoke["models"]["c"]["tokenizer_id"] = "smol"
    smoke["pools"]["mixed"] = ["b", "c"]
    smoke["methods"] = {"logit_fusion": {"pools": ["mixed"]}}
    with pytest.raises(study.ConfigError, match="pool 'mixed' has 2: b \\(declared gemma\\); c \\(declared smol\\)"):
        study.validate(smoke)
    smoke["pools"]["mixed"] = ["c", "d"]  # a LoRA specialist shares its base's tokenizer
    study.validate(smoke)


def test_local_model_folders_read_their_signatures(smoke: dict, tiny_model_dir: Path,
                                                   tiny_model_other_tokenizer_dir: Path):
    smoke["methods"] = {"logit_fusion": {"pools": ["duo"]}}
    smoke["models"]["tiny-a"] = {"source": "local", "path": str(tiny_model_dir)}
    smoke["models"]["tiny-b"] = {"source": "local", "path": str(tiny_model_other_tokenizer_dir)}
    with pytest.raises(study.ConfigError, match="logit_fusion needs one tokenizer, but pool 'duo' has 2"):
        study.validate(smoke)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c, tmp: c["models"].__setitem__("mine", {"source": "local", "path": str(tmp / "nowhere")}),
         "models.mine.path: {tmp}/nowhere does not exist"),
        (lambda c, tmp: c["models"].__setitem__("mine", {"source": "local", "path": str(tmp)}),
         "models.mine.path: {tmp} is not a Hugging Face model folder"),
        (lambda c, tmp: c["models"]["tiny-lora-arith"].__setitem__("base", "tiny-z"),
         "models.tiny-lora-arith.base: unknown model 'tiny-z'"),
        (lambda c, tmp: c["tasks"].__setitem__("byo", {"source": "jsonl", "path": str(tmp / "items.jsonl"),
                                                       "task_type": "exact_match"}),
         "tasks.byo.path: {tmp}/items.jsonl does not exist"),
        (lambda c, tmp: c["tasks"].__setitem__("byo", {"source": "moco", "name": "gsm8k",
                                                       "url": f"file://{tmp}"}),
         "tasks.byo.url: {tmp}/gsm8k.json does not exist"),
    ],
)
def test_missing_byo_paths_fail_at_dag_build(smoke: dict, tmp_path: Path, mutate, message: str):
    mutate(smoke, tmp_path)
    with pytest.raises(study.ConfigError, match="^" + re.escape(message.format(tmp=tmp_path))):
        study.validate(smoke)


# --- what reaches the rules' params ---


def test_prepare_reads_only_the_keys_that_change_the_data(smoke: dict):
    spec = {**smoke["tasks"]["arith"], "decoding": {"max_new_tokens": 9}, "prompt_style": "cot"}
    assert study.task_data_spec(spec) == {k: v for k, v in smoke["tasks"]["arith"].items() if k != "area"}
    declared = {**smoke["models"]["tiny-a"], "tokenizer_id": "x", "architecture_id": "y"}
    assert study.model_spec_param(declared) == smoke["models"]["tiny-a"]


def test_a_specialists_task_blocks_reach_its_params_without_decoding_or_area(smoke: dict):
    """exclude_tasks/train_task are often YAML aliases of evaluated tasks: their decoding must not retrain."""
    task = {**smoke["tasks"]["arith"], "decoding": {"max_new_tokens": 9}}
    lora = {"source": "lora", "base": "tiny-a", "train_task": {**task, "seed": 5, "n_train": 10},
            "exclude_tasks": {"arith": task}}
    other = {**lora, "train_task": {**lora["train_task"], "decoding": {"max_new_tokens": 3}},
             "exclude_tasks": {"arith": {**task, "decoding": {"max_new_tokens": 30}, "area": "x"}}}
    param = study.model_spec_param(lora)
    assert param == study.model_spec_param(other)
    assert param["exclude_tasks"] == {"arith": study.task_data_spec(task)} and "decoding" not in param["train_task"]
    listed = study.model_spec_param({**lora, "exclude_tasks": [task]})
    assert listed["exclude_tasks"] == [study.task_data_spec(task)]
    changed = {**lora, "exclude_tasks": {"arith": {**task, "seed": 7}}}  # other items: other params
    assert study.model_spec_param(changed) != param


def test_data_warnings_report_short_splits_and_null_golds_of_the_current_spec(smoke: dict, tmp_path: Path):
    meta = tmp_path / "data" / "arith" / "meta.json"
    meta.parent.mkdir(parents=True)
    record = {"spec": study.task_data_spec(smoke["tasks"]["arith"]),
              "short": {"test": {"requested": 5, "available": 3}}, "null_gold": {"dev": 2},
              "dropped_without_gold": {"test": 4}}
    meta.write_text(json.dumps(record))
    warnings = study.data_warnings(smoke, tmp_path)
    assert warnings == [f"tasks.arith.n_test: asked for 5 items, the data has 3 ({meta})",
                        f"tasks.arith: items without a gold answer: dev=2 ({meta})",
                        f"tasks.arith: rows dropped without a single gold answer: test=4 ({meta})"]
    smoke["tasks"]["arith"]["n_test"] = 3  # a changed spec: prepare reruns, the old record says nothing
    assert study.data_warnings(smoke, tmp_path) == []
