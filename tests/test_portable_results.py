"""Portable results: cards store weights paths relative to their folder; readers resolve them in one place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mocoflow.models import ModelRef, WeightsMissingError, card_weights, portable_card, write_card


def _card(folder: Path, weights: Path, source: str = "tiny") -> Path:
    card_path = folder / "card.json"
    write_card(card_path, {"name": folder.name, "path": str(weights.resolve()), "spec": {"source": source}})
    return card_path


def test_weights_inside_the_card_folder_are_stored_relative(tmp_path: Path):
    folder = tmp_path / "results" / "models" / "m"
    (folder / "weights").mkdir(parents=True)
    card_path = _card(folder, folder / "weights")
    assert json.loads(card_path.read_text())["path"] == "weights"
    moved = tmp_path / "elsewhere" / "results"
    shutil.move(tmp_path / "results", moved)
    card = moved / "models" / "m" / "card.json"
    assert card_weights(card) == moved / "models" / "m" / "weights"
    assert ModelRef.from_card(card).path == str(moved / "models" / "m" / "weights")


def test_weights_outside_the_card_folder_keep_their_absolute_path(tmp_path: Path):
    byo = tmp_path / "my-model"
    byo.mkdir()
    card_path = _card(tmp_path / "results" / "models" / "m", byo)
    assert json.loads(card_path.read_text())["path"] == str(byo.resolve())
    assert card_weights(card_path) == byo.resolve()
    legacy = tmp_path / "old" / "card.json"  # cards written before: absolute paths, still read as they are
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"name": "old", "path": str(byo.resolve())}))
    assert card_weights(legacy) == byo.resolve()
    assert portable_card({"path": str(byo)}, legacy) == {"path": str(byo)}


@pytest.mark.parametrize(("source", "rule"), [("tiny", "build_model"), ("lora", "build_model"),
                                              ("merge", "merge merge_dev")])
def test_missing_weights_name_model_path_and_rule(tmp_path: Path, source: str, rule: str):
    folder = tmp_path / "m"
    (folder / "weights").mkdir(parents=True)
    card_path = _card(folder, folder / "weights", source)
    shutil.rmtree(folder / "weights")
    with pytest.raises(WeightsMissingError, match=rf"^weights of m missing at {folder / 'weights'} \(card "
                                                  rf"{card_path}\); rerun with --forcerun {rule}$"):
        ModelRef.from_card(card_path)


def test_build_model_writes_a_portable_card_and_readers_follow_it(tmp_path: Path):
    """build_model (tiny source), then the readers that used to take card["path"] as is: the LoRA base
    resolver and the embedder resolver."""
    from mocoflow.methods.api.common import resolve_embedder
    from mocoflow.stages.build_model import build_model
    from mocoflow.training.lora import resolve_base

    models = tmp_path / "results" / "models"
    build_model("a", {"source": "tiny", "seed": 0}, models / "a" / "card.json")
    assert json.loads((models / "a" / "card.json").read_text())["path"] == "weights"
    moved = tmp_path / "copy" / "results" / "models"
    shutil.copytree(models, moved)
    shutil.rmtree(tmp_path / "results")
    assert resolve_base("spec", {"base": "a"}, moved / "spec") == moved / "a" / "weights"
    assert resolve_embedder("a", moved) == str(moved / "a" / "weights")
