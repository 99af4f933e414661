"""Token helpers every backend shares: chat templating, prompt encoding, padding, shared prefixes, sampling seeds.

One module so that every backend feeds a model the same token ids for the same prompt (which is what lets
backends share response-cache entries) and seeds a sampled answer the same way.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def sample_seed(seed: int, prompt: str) -> int:
    """The per-prompt sampling seed: stable across runs, batch sizes, cache states and backends."""
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63 - 1)


def render_prompt(tokenizer: Any, prompt: str, *, chat: bool = True) -> tuple[str, bool]:
    """The text fed to the model and whether the tokenizer should add its special tokens.

    With a chat template (and ``chat``), the prompt becomes one user turn plus the generation prompt;
    the template already places any bos token, so special tokens are not added again."""
    if chat and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return text, False
    return prompt, True


def encode_prompts(tokenizer: Any, prompts: list[str], *, chat: bool = True) -> list[list[int]]:
    """Token ids of each (templated) prompt, unpadded."""
    out = []
    for p in prompts:
        text, special = render_prompt(tokenizer, p, chat=chat)
        out.append(list(tokenizer(text, add_special_tokens=special)["input_ids"]))
    return out


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a continuation: no special tokens, no template."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def left_pad(rows: list[list[int]], pad_id: int, device: Any = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` with rows left-padded to the longest."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


MIN_SHARED_PREFIX = 8  # shared tokens below which running a prefix once and copying its KV cache does not pay


def shared_prefix_length(rows: list[list[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own (0 for < 2 rows)."""
    if len(rows) < 2:
        return 0
    limit = min(len(r) for r in rows) - 1
    n = 0
    first = rows[0]
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions that start at 0 at each row's first real token (pads get 0)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)
