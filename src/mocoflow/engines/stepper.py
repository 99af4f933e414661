"""Incremental decoding over one Hugging Face causal LM with a KV cache, for logit-level methods.

``IncrementalDecoder.start`` left-pads a batch of prompts, runs them once and keeps the KV cache and the
attention mask; ``step`` feeds one token per row and returns the next-token log-probabilities. Position
ids are computed from the attention mask, so a left-padded row sees exactly the positions it would see
unpadded (the test suite checks every step against a full re-encode of each row on its own).
"""

from __future__ import annotations

from typing import Any

import torch

from mocoflow.engines.loader import encode_prompts, left_pad, position_ids_from_mask


class IncrementalDecoder:
    """Decode a batch one token at a time; each row keeps its own position under left padding."""

    def __init__(self, model: Any, tokenizer: Any, device: str | torch.device | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.past: Any = None
        self.mask: torch.Tensor | None = None
        self.next_position: torch.Tensor | None = None
        self._prompt_lengths: list[int] = []

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    @torch.no_grad()
    def start(self, prompt_texts: list[str], chat: bool = True) -> torch.Tensor:
        """Encode (chat-templated when ``chat`` and the tokenizer has a template) and run the prompts;
        returns next-token log-probabilities ``[B, V]`` (float32)."""
        return self.start_ids(encode_prompts(self.tokenizer, prompt_texts, chat=chat))

    @torch.no_grad()
    def start_ids(self, rows: list[list[int]]) -> torch.Tensor:
        """Like ``start`` from token ids (one unpadded list per row)."""
        if not rows or any(len(r) == 0 for r in rows):
            raise ValueError("IncrementalDecoder.start needs at least one non-empty prompt per row")
        ids, mask = left_pad(rows, self.pad_id, self.device)
        positions = position_ids_from_mask(mask)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        self.past = out.past_key_values
        self.mask = mask
        self.next_position = positions[:, -1] + 1
        self._prompt_lengths = [len(r) for r in rows]
        return torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)

    @torch.no_grad()
    def step(self, next_tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (``LongTensor[B]``); returns next-token log-probabilities ``[B, V]``."""
        if self.mask is None or self.next_position is None:
            raise RuntimeError("IncrementalDecoder.step called before start")
        tokens = next_tokens.to(self.device, dtype=torch.long).view(-1, 1)
        if tokens.shape[0] != self.mask.shape[0]:
            raise ValueError(f"step got {tokens.shape[0]} tokens for a batch of {self.mask.shape[0]}")
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        positions = self.next_position.view(-1, 1)
        out = self.model(input_ids=tokens, attention_mask=self.mask, position_ids=positions,
                         past_key_values=self.past, use_cache=True)
        self.past = out.past_key_values
        self.next_position = self.next_position + 1
        return torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)

    def prompt_lengths(self) -> list[int]:
        """Unpadded prompt length of each row of the current batch."""
        return list(self._prompt_lengths)


def same_tokenizer(tok_a: Any, tok_b: Any) -> bool:
    """True when two tokenizers map the same strings to the same ids: same vocabulary (added tokens
    included) and the same special tokens."""
    if tok_a.get_vocab() != tok_b.get_vocab():
        return False
    for attr in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if getattr(tok_a, attr, None) != getattr(tok_b, attr, None):
            return False
    return sorted(tok_a.all_special_tokens) == sorted(tok_b.all_special_tokens)
