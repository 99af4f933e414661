"""The transformers backend: one causal LM, loaded once, on CPU or GPU.

Generation
  - Prompts are chat-templated when the tokenizer has a template (one user turn plus the generation
    prompt), else used as is.
  - Distinct prompts (the response cache, when there is one, is consulted first by
    :class:`mocoflow.engines.caching.CachingEngine`) are sorted by length (longest first) and generated in
    batches of ``decoding.batch_size`` with left padding and attention masks; each finished batch is yielded
    so the caller can cache it before the next one starts.
  - Greedy decoding batches freely (outputs do not depend on batch composition). Sampling batches too:
    every row draws from its own ``torch.Generator`` seeded with ``sha256(seed, prompt)`` (``RowSampler``,
    a logits processor that samples and leaves one finite score for the greedy step to pick), so a sampled
    answer is reproducible whatever else is in the batch or the cache, and global RNG state is untouched.
  - ``sum_logprob`` is the model's own log-probability (temperature 1, before top-p) of the tokens it
    produced, eos included; ``generated_tokens`` counts them (eos included, padding excluded); the text
    stops before eos and skips special tokens.
  - Shared prefix: when all prompts of a call start with the same ``MIN_SHARED_PREFIX`` or more tokens (a
    chat template's default system turn, a shared instruction), that prefix is run through the model once
    and its KV cache is copied into every batch; rows are laid out as prefix, padding, own tokens, with the
    attention mask and position ids skipping the padding, so each row sees exactly the positions it would
    see alone. SmolLM2's template adds a 24-token system turn to every prompt: a quarter to a half of the
    prompt tokens of the default study's tasks. ``prefix_sharing=False`` turns it off.

Usage: ``model_loads``/``load_seconds``/``parameters`` at construction; ``calls`` counts prompts and
continuations actually run through the model (cache hits are not calls); ``prompt_tokens`` and
``generated_tokens`` count only model work done by this engine; ``cache_hits`` counts cached answers.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mocoflow.engines.base import BACKEND_CAPABILITIES, DecodingConfig, Engine, Generation, Usage
from mocoflow.engines.loader import DerivedWeights, load_model, parameter_count, resolve_device
from mocoflow.engines.tokens import (
    MIN_SHARED_PREFIX,
    encode_prompts,
    encode_text,
    left_pad,
    position_ids_from_mask,
    sample_seed,
    shared_prefix_length,
)
from mocoflow.models import model_fingerprint
from mocoflow.models import parameter_count as stored_parameter_count

log = logging.getLogger(__name__)



class RowSampler:
    """A transformers logits processor that samples each row's next token from its own seeded generator
    (temperature, then top-p) and returns scores that are -inf except at the drawn token, so the greedy step
    of ``generate`` takes it. Batched sampling then gives every prompt the same draws as generating it
    alone (up to the float noise of padding, as for greedy decoding)."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float = 1.0) -> None:
        if temperature <= 0:
            raise ValueError(f"RowSampler needs temperature > 0, got {temperature}")
        self.seeds, self.temperature, self.top_p = seeds, temperature, top_p
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.generators is None:
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:  # keep the smallest top set whose mass reaches top_p
            top, order = probs.sort(dim=-1, descending=True)
            top = top.masked_fill(top.cumsum(-1) - top > self.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, top)
        drawn = torch.cat([torch.multinomial(probs[b], 1, generator=g) for b, g in enumerate(self.generators)])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, drawn.view(-1, 1), 0.0)


class TransformersEngine(Engine):
    """A Hugging Face causal LM behind the ``Engine`` interface, with every capability. ``.model``,
    ``.tokenizer`` and ``.device`` stay public for methods not yet moved to engine methods."""

    backend = "transformers"
    capabilities = BACKEND_CAPABILITIES["transformers"]

    def __init__(self, name: str, path: str | os.PathLike[str], *, device: str = "auto", dtype: Any = "auto",
                 local_files_only: bool = True, attn_implementation: str | None = None,
                 prefix_sharing: bool = True, derived: DerivedWeights | None = None) -> None:
        self.name = name
        self.derived = derived  # weights built in memory from ``path`` at load (fingerprint: the derivation's)
        self.prefix_sharing = prefix_sharing
        self.path = str(path)
        self.usage = Usage()
        self.fingerprint = derived.fingerprint if derived is not None else model_fingerprint(path)
        self._load_args = {"device": resolve_device(device), "dtype": dtype, "local_files_only": local_files_only,
                           "attn_implementation": attn_implementation}
        self._loaded: tuple[Any, Any] | None = None
        self.usage.device = self._load_args["device"]
        # stored tensor sizes until the model is loaded (then the exact count, tied weights once)
        self.usage.parameters[name] = stored_parameter_count(Path(self.path))

    def _load(self) -> tuple[Any, Any]:
        """Load the model on first use: a job whose prompts are all in the response cache never loads it."""
        if self._loaded is None:
            t0 = time.perf_counter()
            self._loaded = load_model(self.path, **self._load_args)
            if self.derived is not None:
                self._loaded = (self.derived.build(self._loaded[0]).eval(), self._loaded[1])
            self.usage.load_seconds += time.perf_counter() - t0
            self.usage.model_loads += 1
            self.usage.device = str(next(self._loaded[0].parameters()).device)
            self.usage.parameters[self.name] = parameter_count(self._loaded[0])
            log.info("%s: loaded %s on %s in %.1fs (%d parameters)", self.name, Path(self.path).name,
                     self.usage.device, self.usage.load_seconds, self.usage.parameters[self.name])
        return self._loaded

    @property
    def model(self) -> Any:
        return self._load()[0]

    @property
    def tokenizer(self) -> Any:
        return self._load()[1]

    @property
    def device(self) -> str:
        self._load()
        return self.usage.device

    @functools.cached_property
    def eos_ids(self) -> list[int]:
        return self._eos_ids()

    # -- generation -------------------------------------------------------------------------------

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        gc_eos = self.model.generation_config.eos_token_id
        for e in (gc_eos if isinstance(gc_eos, list) else [gc_eos]) + [self.tokenizer.eos_token_id]:
            if e is not None and int(e) not in ids:
                ids.append(int(e))
        if not ids:
            raise ValueError(f"{self.name}: tokenizer and generation config name no eos token")
        return ids

    def _generation_config(self, decoding: DecodingConfig) -> Any:
        gc = copy.deepcopy(self.model.generation_config)
        gc.max_new_tokens = decoding.max_new_tokens
        gc.max_length = None
        gc.min_new_tokens = None
        gc.min_length = 0
        gc.do_sample = False  # sampling is done per row by RowSampler, then taken greedily
        gc.temperature = 1.0
        gc.top_p = 1.0
        gc.top_k = None
        gc.num_beams = 1
        gc.repetition_penalty = 1.0
        gc.eos_token_id = self.eos_ids
        gc.pad_token_id = self.tokenizer.pad_token_id
        gc.return_dict_in_generate = True
        gc.output_logits = True
        return gc

    def encode(self, prompts: list[str], *, chat: bool = True) -> list[list[int]]:
        """Token ids of each templated prompt (what ``generate`` feeds the model)."""
        return encode_prompts(self.tokenizer, prompts, chat=chat)

    def tokenize(self, text: str) -> list[int]:
        return encode_text(self.tokenizer, text)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def eos_token_ids(self) -> list[int]:
        return list(self.eos_ids)

    def generate_batches(self, prompts: list[str], decoding: DecodingConfig, *, chat: bool = True
                         ) -> Iterator[list[tuple[int, Generation]]]:
        ids = self.encode(prompts, chat=chat)
        order = sorted(range(len(prompts)), key=lambda i: -len(ids[i]))
        size = max(1, decoding.batch_size)
        prefix = self._prefix_cache([ids[i] for i in order])
        for start in range(0, len(order), size):
            batch = order[start:start + size]
            seeds = [sample_seed(decoding.seed, prompts[i]) for i in batch] if decoding.do_sample else None
            gens = self._generate_batch([ids[i] for i in batch], decoding, seeds=seeds, prefix=prefix)
            yield list(zip(batch, gens, strict=True))

    @torch.no_grad()
    def _prefix_cache(self, rows: list[list[int]]) -> tuple[torch.Tensor, Any] | None:
        """``(ids [1, n], kv_cache)`` of the tokens all rows start with, or None when sharing does not pay."""
        n = shared_prefix_length(rows) if self.prefix_sharing else 0
        if n < MIN_SHARED_PREFIX:
            return None
        head = torch.tensor([rows[0][:n]], dtype=torch.long, device=self.device)
        cache = self.model(input_ids=head, use_cache=True).past_key_values
        self.usage.prompt_tokens += n  # the prefix is run once; rows then count only their own tokens
        return head, cache

    @torch.no_grad()
    def _generate_batch(self, rows: list[list[int]], decoding: DecodingConfig, seeds: list[int] | None,
                        prefix: tuple[torch.Tensor, Any] | None = None) -> list[Generation]:
        from transformers import LogitsProcessorList

        pad = self.tokenizer.pad_token_id
        kwargs: dict[str, Any] = {}
        shared = 0 if prefix is None else prefix[0].shape[1]
        if prefix is None:
            input_ids, mask = left_pad(rows, pad, self.device)
        else:  # prefix, then padding, then each row's own tokens; the prefix KV cache is copied per batch
            head, cache = prefix[0].expand(len(rows), shared), prefix[1]
            own_ids, own_mask = left_pad([r[shared:] for r in rows], pad, self.device)
            input_ids = torch.cat([head, own_ids], dim=1)
            mask = torch.cat([torch.ones_like(head), own_mask], dim=1)
            past = copy.deepcopy(cache)
            past.batch_repeat_interleave(len(rows))
            kwargs["past_key_values"] = past
        width = input_ids.shape[1]
        processors = LogitsProcessorList(
            [RowSampler(seeds, decoding.temperature, decoding.top_p)] if seeds is not None else [])
        out = self.model.generate(input_ids=input_ids, attention_mask=mask, logits_processor=processors,
                                  generation_config=self._generation_config(decoding), **kwargs)
        new = out.sequences[:, width:]
        if new.shape[1] == 0:
            return [Generation("", len(r), 0, 0.0) for r in rows]
        logits = torch.stack(out.logits, dim=1).float()  # [B, T, V]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        gens = []
        eos = torch.tensor(self.eos_ids, device=new.device)
        for b, row in enumerate(rows):
            is_eos = torch.isin(new[b], eos)
            n = int(is_eos.nonzero()[0, 0]) + 1 if bool(is_eos.any()) else new.shape[1]
            tokens = new[b, :n].tolist()
            body = tokens[:-1] if tokens and tokens[-1] in self.eos_ids else tokens
            text = self.tokenizer.decode(body, skip_special_tokens=True)
            gens.append(Generation(text=text, prompt_tokens=len(row), generated_tokens=n,
                                   sum_logprob=float(logp[b, :n].sum())))
            self.usage.calls += 1
            self.usage.prompt_tokens += len(row) - shared
            self.usage.generated_tokens += n
        return gens

    # -- scoring ----------------------------------------------------------------------------------

    @torch.no_grad()
    def score_continuations(self, prompts: list[str], continuations: list[str], *, batch_size: int = 8,
                            chat: bool = True) -> list[float]:
        """Sum of log-probabilities of each continuation's tokens after its templated prompt.

        The prompt and the continuation are tokenised separately (the continuation without special
        tokens) and concatenated, so the scored tokens are exactly the continuation's own tokens. An empty
        continuation scores 0.0. Rows whose token sequences differ only in their last token (one prompt
        scored with "Yes" and "No", or "Answer: A" and "Answer: B") share one forward pass: the last token
        is read from the distribution at the final position."""
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        t0 = time.perf_counter()
        heads = encode_prompts(self.tokenizer, prompts, chat=chat)
        bos = self.tokenizer.bos_token_id
        heads = [h if h or bos is None else [bos] for h in heads]
        tails = [list(self.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in continuations]
        scores = [0.0] * len(prompts)
        # tokens to score per row: the whole tail, less its first token when there is no context for it
        n_scored = [len(t) - (0 if h else 1) for h, t in zip(heads, tails, strict=True)]
        groups: dict[tuple[int, ...], list[int]] = {}  # shared sequence (all but the last token) -> rows
        for i in range(len(prompts)):
            if n_scored[i] > 0:
                groups.setdefault(tuple(heads[i] + tails[i][:-1]), []).append(i)
        shared = sorted(groups, key=len, reverse=True)
        for start in range(0, len(shared), max(1, batch_size)):
            seqs = shared[start:start + batch_size]
            ids, mask = left_pad([list(s) for s in seqs], self.tokenizer.pad_token_id, self.device)
            positions = position_ids_from_mask(mask)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits.float()
            inner = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            last = torch.log_softmax(logits[:, -1], dim=-1)
            for b, seq in enumerate(seqs):
                for i in groups[seq]:
                    k = n_scored[i] - 1  # scored tokens inside the shared sequence
                    scores[i] = float(inner[b, inner.shape[1] - k:].sum()) if k > 0 else 0.0
                    scores[i] += float(last[b, tails[i][-1]])
                    self.usage.calls += 1
                self.usage.prompt_tokens += len(seq)
        self.usage.generate_seconds += time.perf_counter() - t0
        return scores

    def stepper(self, prompts: list[str], *, hidden: bool = False, chat: bool = True) -> Any:
        """A ``Stepper`` over these prompts (token-level methods decode many items in lockstep through it)."""
        from mocoflow.engines.stepper import Stepper

        return Stepper(self, prompts, hidden=hidden, chat=chat)

    @torch.no_grad()
    def forward(self, ids: list[int], *, hidden_states: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        out = self.model(input_ids=x, output_hidden_states=hidden_states)
        self.usage.prompt_tokens += len(ids)
        self.usage.calls += 1
        logp = torch.log_softmax(out.logits[0].float(), dim=-1)
        return logp, out.hidden_states[-1][0].float() if hidden_states else None

    def hf_model(self) -> tuple[Any, Any]:
        return self._load()

    def load_state_dict(self, state: dict[str, Any], *, strict: bool = False) -> tuple[list[str], list[str]]:
        missing, unexpected = self.model.load_state_dict(state, strict=strict)
        return list(missing), list(unexpected)
