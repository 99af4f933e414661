"""Every pinned MoCo set carries MoCo's own task type: in the checksum table and in configs/paper.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from mocoflow.data.moco_remote import checksums

# MoCo's dataset table (BunsenFeng/model_collaboration, docs/eval_readme.md, "Dataset Table"), which also
# matches the branches of model_collaboration/data/eval.py's get_scores. The "_tiny" sets are subsets of
# the set they are named after and share its type.
MOCO_DOCS = {
    "agieval": "multiple_choice", "arc_challenge": "multiple_choice", "mmlu_redux": "multiple_choice",
    "bbh": "exact_match", "gsm8k": "exact_match", "math": "exact_match", "wikidyk": "f1_match",
    "sciencemeter": "multiple_choice", "popqa": "f1_match", "blend": "multiple_choice",
    "truthfulqa": "multiple_choice", "coconot": "noncompliance", "alpacaeval": "reward_model",
    "sciriff": "exact_match", "culturebench": "exact_match", "human_interest": "reward_model",
    "tablemwp_multiple_choice": "multiple_choice", "tablemwp_free_text": "exact_match", "mbpp": "coding",
    "humaneval": "coding", "gpqa_diamond": "multiple_choice", "gpqa_extended": "multiple_choice",
    "gpqa_main": "multiple_choice", "medmcqa": "multiple_choice", "medqa": "multiple_choice",
    "pubmedqa": "exact_match", "theoremqa": "exact_match", "culturalbench_hard": "multiple_choice",
    "kaleidoscope": "multiple_choice", "infinite_chat_diversity": "generation_diversity",
}


def _docs_type(name: str) -> str:
    return MOCO_DOCS[name.removesuffix("_tiny")]


def test_checksum_table_uses_mocos_task_types() -> None:
    table = checksums()
    assert len(table) == 32
    assert {name: f.task_type for name, f in table.items()} == {name: _docs_type(name) for name in table}


def test_paper_config_uses_the_pinned_task_types() -> None:
    cfg = yaml.safe_load((Path(__file__).parents[1] / "configs" / "paper.yaml").read_text(encoding="utf-8"))
    pinned = {spec["name"]: spec["task_type"] for spec in cfg["tasks"].values() if spec["source"] == "moco_pinned"}
    assert pinned == {name: f.task_type for name, f in checksums().items()}
