"""Weight merging: formulas on small tensors, streaming checkpoint merge, architecture checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mocoflow.methods import METHODS
from mocoflow.methods.base import MethodError
from mocoflow.models import ModelRef
from mocoflow.training.merging import linear, merge_checkpoints, task_arithmetic


def fake_model(d: Path, tensors: dict[str, torch.Tensor], model_type: str = "gpt2") -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model_type": model_type}))
    (d / "tokenizer.json").write_text("{}")
    save_file(tensors, str(d / "model.safetensors"))
    return d


def test_linear_is_weighted_sum():
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -2.0])
    assert torch.equal(linear([a, b], [0.25, 0.75]), torch.tensor([2.5, -1.0]))


def test_task_arithmetic_by_hand():
    base = torch.tensor([1.0, 1.0, 1.0])
    t1, t2 = torch.tensor([2.0, 1.0, 0.0]), torch.tensor([1.0, 3.0, 1.0])
    # deltas (1,0,-1) and (0,2,0); 0.5*(1,0,-1) + 1.0*(0,2,0) = (0.5,2,-0.5); scale 2 -> base + (1,4,-1)
    out = task_arithmetic(base, [t1, t2], [0.5, 1.0], scale=2.0)
    assert torch.allclose(out, torch.tensor([2.0, 5.0, 0.0]))


def test_merge_checkpoints_streams_every_tensor_and_copies_config(tmp_path: Path):
    a = fake_model(tmp_path / "a", {"w": torch.ones(2, 2), "b": torch.zeros(3)})
    b = fake_model(tmp_path / "b", {"w": 3 * torch.ones(2, 2), "b": torch.ones(3)})
    out = merge_checkpoints([a, b], tmp_path / "m", lambda _k, ts: linear(ts, [0.5, 0.5]))
    merged = load_file(str(out / "model.safetensors"))
    assert torch.equal(merged["w"], 2 * torch.ones(2, 2)) and torch.equal(merged["b"], 0.5 * torch.ones(3))
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()


def test_merge_refuses_different_shapes(tmp_path: Path):
    a = fake_model(tmp_path / "a", {"w": torch.ones(2, 2)})
    b = fake_model(tmp_path / "b", {"w": torch.ones(2, 3)})
    with pytest.raises(ValueError, match="different parameters"):
        merge_checkpoints([a, b], tmp_path / "m", lambda _k, ts: ts[0])


def ref(name: str, path: Path, arch: str = "gpt2-x") -> ModelRef:
    return ModelRef(name=name, path=str(path), card={"architecture": arch, "tokenizer": "t"}, spec={})


def test_linear_merge_method_task_arithmetic(tmp_path: Path):
    base = fake_model(tmp_path / "base", {"w": torch.zeros(2)})
    s1 = fake_model(tmp_path / "s1", {"w": torch.tensor([1.0, 0.0])})
    s2 = fake_model(tmp_path / "s2", {"w": torch.tensor([0.0, 2.0])})
    method = METHODS.get("linear_merge")({"mode": "task_arithmetic", "base": "base", "scale": 0.5})
    out = method.merge([ref("s1", s1), ref("base", base), ref("s2", s2)], tmp_path / "out")
    assert torch.allclose(load_file(str(out / "model.safetensors"))["w"], torch.tensor([0.5, 1.0]))


def test_linear_merge_refuses_mixed_architectures_before_loading(tmp_path: Path):
    method = METHODS.get("linear_merge")({})
    with pytest.raises(MethodError, match="linear_merge needs one architecture; pool has 2 different"):
        method.merge([ref("a", tmp_path / "nope-a", "gpt2-1"), ref("b", tmp_path / "nope-b", "llama-2")],
                     tmp_path / "out")


def test_linear_merge_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="mode must be"):
        METHODS.get("linear_merge")({"mode": "soup"})
