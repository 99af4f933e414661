"""Weight merging: formulas on small tensors, streaming tensor merge (into a state or a model), architecture
checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mocoflow.methods import METHODS
from mocoflow.methods.base import MethodError
from mocoflow.models import ModelRef
from mocoflow.training.merging import CheckpointTensors, linear, merge_into, merge_state, task_arithmetic


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


def test_merge_state_streams_every_tensor(tmp_path: Path):
    a = fake_model(tmp_path / "a", {"w": torch.ones(2, 2), "b": torch.zeros(3)})
    b = fake_model(tmp_path / "b", {"w": 3 * torch.ones(2, 2), "b": torch.ones(3)})
    merged = merge_state([CheckpointTensors(a), CheckpointTensors(b)], lambda _k, ts: linear(ts, [0.5, 0.5]))
    assert torch.equal(merged["w"], 2 * torch.ones(2, 2)) and torch.equal(merged["b"], 0.5 * torch.ones(3))


def test_merge_into_overwrites_the_models_tensors_in_its_dtype(tmp_path: Path):
    a = fake_model(tmp_path / "a", {"lin.weight": torch.ones(2, 2, dtype=torch.bfloat16)})
    b = fake_model(tmp_path / "b", {"lin.weight": 3 * torch.ones(2, 2, dtype=torch.bfloat16)})
    model = torch.nn.Sequential()
    model.add_module("lin", torch.nn.Linear(2, 2))  # float32, with a bias the checkpoints do not have
    bias = model.lin.bias.detach().clone()
    assert merge_into(model, [CheckpointTensors(a), CheckpointTensors(b)], lambda _k, ts: linear(ts, [0.5, 0.5])) \
        is model
    assert model.lin.weight.dtype == torch.float32 and torch.equal(model.lin.weight, 2 * torch.ones(2, 2))
    assert torch.equal(model.lin.bias, bias)  # tensors the merge does not name are left alone
    other = fake_model(tmp_path / "c", {"other.weight": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="'other.weight' is not a tensor of the Sequential"):
        merge_into(model, [CheckpointTensors(other)], lambda _k, ts: ts[0])


def test_merge_refuses_different_shapes(tmp_path: Path):
    a = fake_model(tmp_path / "a", {"w": torch.ones(2, 2)})
    b = fake_model(tmp_path / "b", {"w": torch.ones(2, 3)})
    with pytest.raises(ValueError, match="different parameters"):
        merge_state([CheckpointTensors(a), CheckpointTensors(b)], lambda _k, ts: ts[0])


def ref(name: str, path: Path, arch: str = "gpt2-x") -> ModelRef:
    return ModelRef(name=name, path=str(path), card={"architecture": arch, "tokenizer": "t"}, spec={})


def test_linear_merge_method_task_arithmetic(tmp_path: Path):
    base = fake_model(tmp_path / "base", {"w": torch.zeros(2)})
    s1 = fake_model(tmp_path / "s1", {"w": torch.tensor([1.0, 0.0])})
    s2 = fake_model(tmp_path / "s2", {"w": torch.tensor([0.0, 2.0])})
    method = METHODS.get("linear_merge")({"mode": "task_arithmetic", "base": "base", "scale": 0.5})
    pool = [ref("s1", s1), ref("base", base), ref("s2", s2)]
    assert torch.allclose(method.merged_state(pool, method.plan(pool))["w"], torch.tensor([0.5, 1.0]))


def test_linear_merge_refuses_mixed_architectures_before_loading(tmp_path: Path):
    method = METHODS.get("linear_merge")({})
    with pytest.raises(MethodError, match="linear_merge needs one architecture; pool has 2 different"):
        method.plan([ref("a", tmp_path / "nope-a", "gpt2-1"), ref("b", tmp_path / "nope-b", "llama-2")])


def test_linear_merge_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="mode must be"):
        METHODS.get("linear_merge")({"mode": "soup"})
