"""Shared test setup: offline Hugging Face settings and tiny local models (built once per session).

Fixtures (session-scoped, each a ``Path`` to a directory; built in about a second, never downloaded):

- ``tiny_tokenizer_dir``: the default tiny byte-level BPE tokenizer (bos/eos/pad, chat template).
- ``tiny_model_dir``: a random GPT-2 (2 layers, 64 wide, seed 0) with the default tokenizer.
- ``tiny_llama_dir``: a random Llama (2 layers, 64 wide, seed 0) with the default tokenizer.
- ``tiny_model_other_tokenizer_dir``: a random GPT-2 (seed 1) with the "other" tokenizer (different vocab).
- ``tiny_answer_a_model_dir``: a GPT-2 (seed 2) trained for a few steps to answer "Answer: A" then eos.

Treat them as read-only: copy a directory before changing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_root: Path) -> Path:
    from mocoflow.testing import build_tiny_tokenizer

    return build_tiny_tokenizer(tiny_root / "tokenizer")


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_root: Path) -> Path:
    from mocoflow.testing import build_tiny_model

    return build_tiny_model(tiny_root / "gpt2", arch="gpt2", seed=0)


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_root: Path) -> Path:
    from mocoflow.testing import build_tiny_model

    return build_tiny_model(tiny_root / "llama", arch="llama", seed=0)


@pytest.fixture(scope="session")
def tiny_model_other_tokenizer_dir(tiny_root: Path) -> Path:
    from mocoflow.testing import build_tiny_model

    return build_tiny_model(tiny_root / "gpt2-other-tok", arch="gpt2", seed=1, tokenizer="other")


@pytest.fixture(scope="session")
def tiny_answer_a_model_dir(tiny_root: Path) -> Path:
    from mocoflow.testing import build_tiny_model, train_tiny_model_briefly

    path = build_tiny_model(tiny_root / "gpt2-answer-a", arch="gpt2", seed=2)
    return train_tiny_model_briefly(path, ["Answer: A"], steps=30)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, with the reason printed in the summary (-ra), GPU tests without CUDA and slow tests unless asked."""
    import torch

    no_gpu = pytest.mark.skip(reason="needs a CUDA device; none is visible (torch.cuda.is_available() is False)")
    not_slow = pytest.mark.skip(reason="slow test; set MOCOFLOW_SLOW=1 to run it")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_gpu)
        if "slow" in item.keywords and os.environ.get("MOCOFLOW_SLOW") != "1":
            item.add_marker(not_slow)
