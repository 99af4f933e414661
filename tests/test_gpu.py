"""GPU checks: the same engine on CUDA gives the CPU's greedy outputs (skipped without a GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.transformers_engine import TransformersEngine

pytestmark = pytest.mark.gpu

PROMPTS = ["Answer: A or B?", "What is 2 + 2?", "the the the"]


def test_cuda_greedy_matches_cpu(tiny_model_dir: Path):
    dec = DecodingConfig(max_new_tokens=8, batch_size=3)
    cpu = TransformersEngine("cpu", str(tiny_model_dir), device="cpu").generate(PROMPTS, dec)
    gpu_engine = TransformersEngine("gpu", str(tiny_model_dir), device="cuda", dtype="float32")
    gpu = gpu_engine.generate(PROMPTS, dec)
    assert gpu_engine.usage.device.startswith("cuda")
    assert [g.text for g in gpu] == [c.text for c in cpu]


def test_cuda_logit_fusion_stepper_matches_cpu(tiny_model_dir: Path):
    import torch

    outs = []
    rows = list(range(len(PROMPTS)))
    for device in ("cpu", "cuda"):
        e = TransformersEngine(device, str(tiny_model_dir), device=device, dtype="float32")
        d = e.stepper(PROMPTS)
        lp = d.logprobs(rows)
        d.emit(dict(enumerate(lp.argmax(-1).tolist())), eos_ends=False)
        lp2 = d.logprobs(rows)
        outs.append(torch.stack([lp, lp2]).float().cpu())
    assert torch.allclose(outs[0], outs[1], atol=1e-3)
