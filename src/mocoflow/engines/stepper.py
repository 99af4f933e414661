"""The stepping API: many rows (one per item, plus forks) decoding through one causal LM in lockstep.

Every token-level method (nudging, switch generation, mentor collaboration, Co-LLM, the logit decoders)
drives its items through a ``Stepper``, one per model: ``engine.stepper(prompts)`` encodes and runs the
prompts once, left-padded, and keeps one KV cache for the whole batch.

Rows
  Each row has its own attention mask, positions, next-token log-probabilities (``logprobs``/``top``), last
  hidden state (``hidden=True``), the answer text it has consumed (``text``) and its costs. A forward pass
  feeds any number of tokens to any subset of rows: chunks are right-aligned and padded on the left, the
  padding is masked and every real token gets the position it would have unpadded, so a row computes what it
  would compute alone (the tests check every step against a full re-encode of each row on its own, and
  every method's batched outputs against one item at a time). Rows that feed nothing are not computed: only
  the feeding rows' cache rows go through the model (plain dynamic caches; others compute every row, the idle
  ones on masked padding) and the pass's new cache columns stay masked for the rest. Rows stepping one token
  and rows reading a long chunk go in separate passes when padding would cost more than a pass
  (``pass_groups``).

Operations
  ``emit`` feeds one token per row that the model chose itself (eos is counted, not fed, and ends the row's
  text); ``feed_tokens`` feeds token ids chosen by another same-tokenizer model; ``sync`` brings a row up to
  the answer text written so far by any model (only the new part is tokenised, with this model's tokenizer:
  methods exchange whole words, so re-tokenising starts at a word boundary); ``advance`` does both in one
  forward pass. ``score_tokens``/``score`` return the log-probability (and optionally the hidden state before)
  each token of a continuation, optionally keeping it. ``snapshot``/``rewind`` roll a row back (its newer
  cache columns are masked out, so other rows are untouched), ``fork`` copies a row, ``release`` marks rows
  finished and compacts the batch (released rows leave the cache; cache columns no live row uses are
  dropped); ``add`` prefills new prompts and joins them to the running batch (continuous batching).

Costs
  Every forward pass is charged to the engine's ``Usage`` (``prompt_tokens`` for tokens the model read,
  ``generated_tokens`` for tokens it chose, eos included, ``generate_seconds``; one ``call`` per row) and to
  the row (``cost``), never rolled back by ``rewind``.

Greedy helpers: ``greedy_patches`` lets rows append up to n greedy tokens each in lockstep (optionally
finishing the current word), returning a ``Patch`` per row.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mocoflow.engines.loader import encode_prompts, left_pad, position_ids_from_mask

TOKEN_BUDGET = 32  # token slots (rows x chunk width) a decoding forward pass may use; see Stepper._forward
PASS_OVERHEAD = 6  # a forward pass's fixed cost (weights read once) in token slots; see pass_groups
PREFILL_SLACK = 1.25  # prompts prefill together while padding adds at most this factor; see Stepper._prefill


class StepperError(ValueError):
    """Misuse of the stepping API (unknown row, released row, text that does not extend the row's text)."""


@dataclass(frozen=True)
class Snapshot:
    """A row's state at one moment (see ``Stepper.snapshot``)."""

    epoch: int
    width: int
    next_position: int
    logprobs: torch.Tensor
    hidden: torch.Tensor | None
    text: str


@dataclass
class Patch:
    """What ``greedy_patches`` appended to one row: text, whether the row chose eos, and per chosen token its
    id and log-probability (eos included)."""

    text: str = ""
    ended: bool = False
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


def engine_eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The tokenizer's eos and every eos the generation config names."""
    ids = {tokenizer.eos_token_id}
    cfg = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(cfg if isinstance(cfg, list) else [cfg])
    return frozenset(int(i) for i in ids if i is not None)


class Stepper:
    """Rows of one model decoding in lockstep; see the module docstring."""

    def __init__(self, engine: Any, prompts: Sequence[str] | None = None, *,
                 ids: Sequence[Sequence[int]] | None = None, hidden: bool = False, chat: bool = True,
                 token_budget: int | None = TOKEN_BUDGET) -> None:
        if (prompts is None) == (ids is None):
            raise StepperError("Stepper needs either prompts or token ids")
        self.engine = engine
        self.model = engine.model
        self.tokenizer = engine.tokenizer
        self.device = torch.device(engine.device)
        self.usage = engine.usage
        self.want_hidden = hidden
        self.eos = engine_eos_ids(self.model, self.tokenizer)
        self.eos_token = int(self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None
                             else min(self.eos))
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.eos_token)
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self._pieces: dict[int, str] = {}
        self.token_budget = token_budget
        self._queue: dict[int, list[tuple[int, bool]]] = {}  # row -> tokens not fed yet (token, chosen by it)
        self._epoch = 0  # bumped when cache columns move (snapshots from before cannot be rewound to)
        rows = [list(r) for r in ids] if ids is not None else encode_prompts(self.tokenizer, list(prompts or []),
                                                                             chat=chat)
        if not rows or any(len(r) == 0 for r in rows):
            raise StepperError("Stepper needs at least one row, each with a non-empty prompt")
        # per logical row
        self._phys: list[int] = list(range(len(rows)))  # physical index, -1 once released
        self._text: list[str] = [""] * len(rows)
        self.prompt_tokens: list[int] = [len(r) for r in rows]
        self._spent_prompt: list[int] = [0] * len(rows)
        self._spent_generated: list[int] = [0] * len(rows)
        # per physical row
        self._next: list[int] = []
        self.past: Any = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)
        self._logp = torch.zeros((0, 0))
        self._hidden: torch.Tensor | None = None
        self.prefill_seconds = 0.0
        self._prefill(rows)
        self.usage.calls += len(rows)

    # -- reading state ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._phys)

    def live(self) -> list[int]:
        """Rows not released."""
        return [r for r, p in enumerate(self._phys) if p >= 0]

    def _p(self, row: int) -> int:
        if not 0 <= row < len(self._phys):
            raise StepperError(f"row {row} does not exist (the stepper has {len(self._phys)} rows)")
        p = self._phys[row]
        if p < 0:
            raise StepperError(f"row {row} was released")
        return p

    def _idx(self, rows: Sequence[int]) -> torch.Tensor:
        """Physical indices of rows whose state is readable (nothing queued)."""
        for r in rows:
            self._p(r)
            if self._queue.get(r):
                raise StepperError(f"row {r} has {len(self._queue[r])} queued tokens not fed yet (flush first)")
        return torch.tensor([self._phys[r] for r in rows], dtype=torch.long, device=self._logp.device)

    def logprobs(self, rows: Sequence[int]) -> torch.Tensor:
        """Next-token log-probabilities ``[len(rows), V]`` (float32)."""
        return self._logp[self._idx(rows)]

    def top(self, rows: Sequence[int]) -> list[tuple[int, float]]:
        """Per row the greedy next token and its log-probability."""
        lp, tok = self.logprobs(rows).max(-1)
        return list(zip(tok.tolist(), lp.tolist(), strict=True))

    def hidden(self, rows: Sequence[int]) -> torch.Tensor:
        """Last-layer hidden state at each row's last token ``[len(rows), H]`` (needs ``hidden=True``)."""
        if self._hidden is None:
            raise StepperError("this stepper was opened without hidden=True")
        return self._hidden[self._idx(rows)]

    def text(self, row: int) -> str:
        """The answer text this row has consumed (its own pieces and synced text)."""
        self._p(row)
        return self._text[row]

    def cost(self, row: int) -> dict[str, int]:
        """Tokens this row ran: prompt and fed text (prompt side), its own choices (generated side)."""
        return {"prompt_tokens": self._spent_prompt[row], "generated_tokens": self._spent_generated[row]}

    # -- tokenizer helpers -----------------------------------------------------------------------------

    def piece(self, token: int) -> str:
        """The text of one token (special tokens skipped)."""
        if token not in self._pieces:
            self._pieces[token] = self.tokenizer.decode([token], skip_special_tokens=True)
        return self._pieces[token]

    def decode(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens`` without eos and special tokens."""
        return self.tokenizer.decode([t for t in tokens if t not in self.eos], skip_special_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    # -- feeding -----------------------------------------------------------------------------------------

    def count_generated(self, rows: Sequence[int], n: int = 1) -> None:
        """Charge ``n`` chosen-but-not-fed tokens (e.g. eos) to each row and the engine."""
        for r in rows:
            self._p(r)
            self._spent_generated[r] += n
        self.usage.generated_tokens += n * len(rows)

    def advance(self, tokens: Mapping[int, int] | None = None, texts: Mapping[int, str] | None = None, *,
                foreign: Mapping[int, Sequence[int]] | None = None, eos_ends: bool = True) -> set[int]:
        """One forward pass for any mix of rows: rows in ``tokens`` feed one token the model chose itself (eos
        is charged, not fed, and returned among the ended rows; fed like any token when not ``eos_ends``);
        rows in ``texts`` are synced to that answer text; rows in ``foreign`` feed token ids another model
        (same tokenizer) chose, charged as read. A row may appear once. Returns the rows whose token was eos.
        Long chunks may stay partly queued (``pending``): the row's state is readable once a later pass (any
        ``advance``, or ``flush``) has fed them, which lets a lockstep loop keep the other rows going."""
        tokens, texts, foreign = dict(tokens or {}), dict(texts or {}), dict(foreign or {})
        seen = [*tokens, *texts, *foreign]
        if len(seen) != len(set(seen)):
            raise StepperError(f"rows {sorted({r for r in seen if seen.count(r) > 1})} appear twice in one advance")
        chunks: dict[int, list[int]] = {}
        own: dict[int, int] = {}
        ended: set[int] = set()
        for r, tok in tokens.items():
            self._p(r)
            if tok in self.eos and eos_ends:
                ended.add(r)
                continue
            chunks[r] = [int(tok)]
            own[r] = 1
        for r, text in texts.items():
            self._p(r)
            if not text.startswith(self._text[r]):
                raise StepperError(f"row {r}: the new text does not extend the text the row has consumed "
                                   f"({self._text[r][-40:]!r} ...)")
            chunks[r] = self.encode(text[len(self._text[r]):])
        for r, toks in foreign.items():
            self._p(r)
            chunks[r] = [int(t) for t in toks]
        self.count_generated(sorted(ended))
        for r in chunks:
            if r in texts:
                self._text[r] = texts[r]
            else:
                self._text[r] += "".join(self.piece(t) for t in chunks[r] if t not in self.eos)
        self._forward(chunks, own=own)
        return ended

    def emit(self, tokens: Mapping[int, int], *, eos_ends: bool = True) -> set[int]:
        """Feed each row a token the model chose itself; returns the rows whose token was eos."""
        return self.advance(tokens=tokens, eos_ends=eos_ends)

    def sync(self, texts: Mapping[int, str]) -> None:
        """Bring each row up to ``texts[row]``, which must extend the text it has consumed (fed in full)."""
        self.advance(texts=texts)
        self.flush()

    def feed_tokens(self, chunks: Mapping[int, Sequence[int]]) -> None:
        """Feed token ids another model (same tokenizer) chose, in full; their text is appended to the row's
        text."""
        self.advance(foreign=chunks)
        self.flush()

    def score_tokens(self, chunks: Mapping[int, Sequence[int]], *, keep: bool = False, hidden: bool = False
                     ) -> dict[int, tuple[list[float], torch.Tensor | None]]:
        """Per row, the log-probability of each token of its chunk given everything before it, and (with
        ``hidden``) the hidden state that predicted it ``[len(chunk), H]``. With ``keep`` the chunk stays fed
        (its text is appended to the row's text); else the row is rewound. Empty chunks score ``[]``."""
        if hidden and self._hidden is None:
            raise StepperError("score_tokens(hidden=True) needs a stepper opened with hidden=True")
        chunks = {r: list(t) for r, t in chunks.items()}
        self.flush()
        snaps = {r: self.snapshot(r) for r in chunks}
        first = {r: (self._logp[self._p(r)].clone(),
                     None if self._hidden is None else self._hidden[self._p(r)].clone()) for r in chunks}
        out_lp, out_h = self._forward(chunks, all_positions=True)
        result: dict[int, tuple[list[float], torch.Tensor | None]] = {}
        for r, toks in chunks.items():
            if not toks:
                result[r] = ([], None)
                continue
            lp0, h0 = first[r]
            lps = [float(lp0[toks[0]])]
            if len(toks) > 1:
                inner = out_lp[r][:-1].gather(-1, torch.tensor(toks[1:], device=out_lp[r].device)[:, None])
                lps += inner.squeeze(-1).tolist()
            hs = None
            if hidden:
                hs = torch.cat([h0[None], out_h[r][:-1]]) if len(toks) > 1 else h0[None]
            result[r] = (lps, hs)
            if keep:
                self._text[r] += "".join(self.piece(t) for t in toks if t not in self.eos)
            else:
                self.rewind(r, snaps[r])
        return result

    def score(self, texts: Mapping[int, str], *, keep: bool = False) -> dict[int, list[float]]:
        """Log-probabilities of each token of each row's continuation text (see ``score_tokens``)."""
        before = {r: self.text(r) for r in texts}
        got = self.score_tokens({r: self.encode(t) for r, t in texts.items()}, keep=keep)
        if keep:  # the row's text is the continuation as given, not its re-decoded pieces
            for r, t in texts.items():
                self._text[r] = before[r] + t
        return {r: lps for r, (lps, _) in got.items()}

    # -- rows -----------------------------------------------------------------------------------------

    def snapshot(self, row: int) -> Snapshot:
        p = int(self._idx([row])[0])
        return Snapshot(epoch=self._epoch, width=self.mask.shape[1], next_position=self._next[p],
                        logprobs=self._logp[p].clone(),
                        hidden=None if self._hidden is None else self._hidden[p].clone(), text=self._text[row])

    def rewind(self, row: int, snap: Snapshot) -> None:
        """Return ``row`` to ``snap`` (taken from this row): its later cache columns are masked out."""
        p = self._p(row)
        if snap.epoch != self._epoch:
            raise StepperError(f"row {row}: the snapshot predates a compaction of the batch (release)")
        self._queue.pop(row, None)
        self.mask[p, snap.width:] = 0
        self._next[p] = snap.next_position
        self._logp[p] = snap.logprobs
        if self._hidden is not None and snap.hidden is not None:
            self._hidden[p] = snap.hidden
        self._text[row] = snap.text

    def fork(self, row: int) -> int:
        """A new row with ``row``'s history and state (its costs start at zero); returns its index."""
        p = int(self._idx([row])[0])
        keep = torch.tensor(list(range(self.mask.shape[0])) + [p], dtype=torch.long, device=self.device)
        self._select(keep)
        self._phys.append(self.mask.shape[0] - 1)
        self._text.append(self._text[row])
        self.prompt_tokens.append(self.prompt_tokens[row])
        self._spent_prompt.append(0)
        self._spent_generated.append(0)
        return len(self._phys) - 1

    def add(self, prompts: Sequence[str] | None = None, *, ids: Sequence[Sequence[int]] | None = None,
            chat: bool = True) -> list[int]:
        """New rows for ``prompts`` (or token ids) joining the batch (continuous batching: a row that ended can
        be replaced without waiting for the others). The new prompts are prefilled on their own and their
        caches joined to the batch's, left-padded and masked (plain dynamic layers only, see ``can_add``; once
        every row is released any cache works: the new rows replace the batch); released rows leave the cache
        first. Snapshots are invalidated. Returns the new rows' indices."""
        if (prompts is None) == (ids is None):
            raise StepperError("add needs either prompts or token ids")
        rows = [list(r) for r in ids] if ids is not None else encode_prompts(self.tokenizer, list(prompts or []),
                                                                             chat=chat)
        if not rows or any(len(r) == 0 for r in rows):
            raise StepperError("add needs at least one row, each with a non-empty prompt")
        if not self.can_add():
            raise StepperError("rows join a running batch only with a cache of plain dynamic layers (this model's "
                               "is not): add them once every row is released")
        t0 = time.perf_counter()
        live = sorted(p for p in self._phys if p >= 0)
        groups = similar_lengths([len(r) for r in rows], PREFILL_SLACK)
        parts = [self._prefill_group([rows[i] for i in g], 0, None) for g in groups]
        if (live or len(parts) > 1) and not all(_plain_layers(past) for past, *_ in parts):
            if live:
                raise StepperError("rows join a running batch only with a cache of plain dynamic layers")
            groups = [list(range(len(rows)))]  # caches that cannot be joined: one batch
            parts = [self._prefill_group(rows, 0, None)]
        if live:
            if len(live) < self.mask.shape[0]:
                self.release([])  # compacts: only live rows stay
                live = list(range(len(live)))
            here = (self.past, self.mask, torch.tensor(self._next, dtype=torch.long, device=self.device),
                    self._logp, self._hidden)
            parts = [here, *parts]
        self.past, self.mask, positions, self._logp, self._hidden = parts[0] if len(parts) == 1 else _join(parts)
        self._drop_unused_columns()
        self._next = positions.tolist()
        order = [i for g in groups for i in g]  # physical order of the new rows after the live ones
        first = len(self._phys)
        phys_of = {i: len(live) + k for k, i in enumerate(order)}
        for i, row in enumerate(rows):
            self._phys.append(phys_of[i])
            self._text.append("")
            self.prompt_tokens.append(len(row))
            self._spent_prompt.append(len(row))
            self._spent_generated.append(0)
        self._epoch += 1
        self.usage.calls += len(rows)
        self.usage.prompt_tokens += sum(len(r) for r in rows)
        self.usage.generate_seconds += time.perf_counter() - t0
        return list(range(first, first + len(rows)))

    def can_add(self) -> bool:
        """Whether ``add`` works now: the cache is plain dynamic layers, or every row is released."""
        return not self.live() or _plain_layers(self.past)

    def release(self, rows: Sequence[int]) -> None:
        """Mark rows finished (their state can no longer be read); the batch is compacted at once (released rows
        leave the cache, so later forward passes no longer compute them), which invalidates snapshots."""
        for r in rows:
            if self._phys[r] >= 0:
                self._phys[r] = -1
                self._queue.pop(r, None)
        live = sorted(p for p in self._phys if p >= 0)
        if live and len(live) < self.mask.shape[0]:
            self._select(torch.tensor(live, dtype=torch.long, device=self.device))
            remap = {old: new for new, old in enumerate(live)}
            self._phys = [remap[p] if p >= 0 else -1 for p in self._phys]
            self._drop_unused_columns()
            self._epoch += 1

    def _select(self, keep: torch.Tensor) -> None:
        """Keep (or repeat) physical rows ``keep`` in the cache and every per-row tensor."""
        if self.past is not None:
            self.past.batch_select_indices(keep)
        self.mask = self.mask[keep]
        self._logp = self._logp[keep.to(self._logp.device)]
        if self._hidden is not None:
            self._hidden = self._hidden[keep.to(self._hidden.device)]
        self._next = [self._next[i] for i in keep.tolist()]

    def _drop_unused_columns(self) -> None:
        """Remove cache columns no physical row attends to (plain dynamic layers only)."""
        layers = getattr(self.past, "layers", None)
        if not layers or any(getattr(layer, "is_sliding", False) or not hasattr(layer, "keys") for layer in layers):
            return
        used = self.mask.bool().any(0)
        if bool(used.all()):
            return
        cols = used.nonzero().view(-1)
        for layer in layers:
            if getattr(layer, "keys", None) is not None and layer.keys.numel():
                layer.keys = layer.keys[:, :, cols]
                layer.values = layer.values[:, :, cols]
        self.mask = self.mask[:, cols]

    # -- forward passes -------------------------------------------------------------------------------

    @torch.no_grad()
    def _prefill(self, rows: list[list[int]]) -> None:
        """Run the prompts once. Tokens every row starts with (a chat template's system turn, a shared
        instruction) run once and their KV cache is copied to every row, laid out as prefix, padding, own
        tokens (as ``TransformersEngine.generate`` does). Prompts of very different lengths run in groups of
        similar length (padding within ``PREFILL_SLACK``) whose caches are then joined, left-padded and
        masked, so the batch does not compute padding. Each row is charged its whole prompt, the engine the
        work done."""
        from mocoflow.engines.loader import shared_prefix_length
        from mocoflow.engines.tokens import MIN_SHARED_PREFIX

        t0 = time.perf_counter()
        shared = shared_prefix_length(rows) if getattr(self.engine, "prefix_sharing", True) else 0
        head = None
        if shared >= MIN_SHARED_PREFIX:
            ids = torch.tensor([rows[0][:shared]], dtype=torch.long, device=self.device)
            head = self._run(ids, torch.ones_like(ids), torch.arange(shared, device=self.device)[None], None,
                             all_positions=False).past_key_values
        else:
            shared = 0
        groups = similar_lengths([len(r) - shared for r in rows], PREFILL_SLACK)
        parts = [self._prefill_group([rows[i] for i in g], shared, head) for g in groups]
        if len(parts) > 1 and not all(_plain_layers(past) for past, *_ in parts):
            parts = [self._prefill_group(rows, shared, head)]  # caches that cannot be joined: one batch
            groups = [list(range(len(rows)))]
        self.past, self.mask, positions, self._logp, self._hidden = parts[0] if len(parts) == 1 else _join(parts)
        order = torch.tensor([i for g in groups for i in g])
        if order.tolist() != list(range(len(rows))):  # back to the callers' row order
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(len(order))
            self._reorder(inverse.to(self.device))
            positions = positions[inverse.to(positions.device)]
        self._next = positions.tolist()
        for r, row in enumerate(rows):
            self._spent_prompt[r] += len(row)
        self.usage.prompt_tokens += shared + sum(len(r) - shared for r in rows)
        self.usage.generate_seconds += time.perf_counter() - t0
        self.prefill_seconds = time.perf_counter() - t0

    def _prefill_group(self, rows: list[list[int]], shared: int, head: Any) -> tuple[Any, ...]:
        """(cache, mask, next positions, log-probs, hidden) of ``rows`` after the shared prefix ``head``."""
        past = None
        if head is not None:
            past = copy.deepcopy(head)
            past.batch_repeat_interleave(len(rows))
        ids, own_mask = left_pad([r[shared:] for r in rows], self.pad_id, self.device)
        mask = torch.cat([torch.ones((len(rows), shared), dtype=torch.long, device=self.device), own_mask], 1)
        positions = shared + position_ids_from_mask(own_mask)
        out = self._run(ids, mask, positions, past=past, all_positions=False)
        hidden = out.hidden_states[-1][:, -1].float() if self.want_hidden else None
        return (out.past_key_values, mask, positions[:, -1] + 1, torch.log_softmax(out.logits[:, -1].float(), -1),
                hidden)

    def _reorder(self, keep: torch.Tensor) -> None:
        """Reorder the physical rows right after prefill (next positions are reordered by the caller)."""
        self.past.batch_select_indices(keep)
        self.mask = self.mask[keep]
        self._logp = self._logp[keep.to(self._logp.device)]
        if self._hidden is not None:
            self._hidden = self._hidden[keep.to(self._hidden.device)]

    def _run(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, past: Any,
             all_positions: bool) -> Any:
        kwargs: dict[str, Any] = {"output_hidden_states": self.want_hidden}
        if self._keeps_logits:
            kwargs["logits_to_keep"] = 0 if all_positions else 1
        return self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=past,
                          use_cache=True, **kwargs)

    def pending(self, row: int) -> int:
        """Tokens queued for ``row`` that no forward pass has fed yet (its state is readable at 0)."""
        return len(self._queue.get(row, ()))

    def flush(self) -> None:
        """Run forward passes until no row has queued tokens."""
        while any(self._queue.values()):
            self._forward({})

    @torch.no_grad()
    def _forward(self, chunks: Mapping[int, Sequence[int]], *, own: Mapping[int, int] | None = None,
                 all_positions: bool = False) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """Feed queued tokens: each row's chunk joins its queue, and every row with queued tokens feeds up to
        ``width`` of them (right-aligned, left padding masked) in one or two forward passes that compute only
        the rows that feed something (see ``_pass``). ``width`` keeps ``rows x width`` of a pass within
        ``token_budget`` (at least 1; the rest stays queued for the next call, so one row reading a long text
        neither blocks nor pads the others). Rows stepping one token and rows reading a chunk go in separate
        passes when padding the steppers to the chunk's width would compute more than a pass's fixed cost
        (``PASS_OVERHEAD`` token slots). ``own[row]`` tokens of a chunk are charged as generated, the rest as
        prompt. With ``all_positions`` (scoring) the whole chunks go in one pass, and per row the
        log-probabilities ``[len, V]`` (and hidden states) at every position of its chunk are returned."""
        own = own or {}
        for r, toks in chunks.items():
            if len(toks):
                mine = min(own.get(r, 0), len(toks))
                self._queue.setdefault(r, []).extend((int(t), i < mine) for i, t in enumerate(toks))
        queued = [r for r, q in self._queue.items() if q]
        if not queued:
            return {}, {}
        if all_positions or self.token_budget is None:
            groups = [queued]
        else:
            groups = pass_groups({r: len(self._queue[r]) for r in queued}, self.token_budget)
        seq_lp: dict[int, torch.Tensor] = {}
        seq_h: dict[int, torch.Tensor] = {}
        for rows in groups:
            width = max(len(self._queue[r]) for r in rows)
            if not all_positions and self.token_budget is not None:
                width = min(width, max(1, self.token_budget // len(rows)))
            work: dict[int, list[tuple[int, bool]]] = {}
            for r in rows:
                work[r], self._queue[r] = self._queue[r][:width], self._queue[r][width:]
            lp, h = self._pass(work, all_positions)
            seq_lp.update(lp)
            seq_h.update(h)
        return seq_lp, seq_h

    def _pass(self, work: Mapping[int, Sequence[tuple[int, bool]]], all_positions: bool
              ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """One forward pass over the rows in ``work``. When they are fewer than the batch (and the cache is
        plain dynamic layers), only their cache rows go through the model: the pass's new cache columns are
        written back for them and left masked (zero) for the other rows, which are not computed at all."""
        t0 = time.perf_counter()
        rows = list(work)
        n_phys = self.mask.shape[0]
        width = max(len(t) for t in work.values())
        phys = [self._phys[r] for r in rows]
        subset = len(rows) < n_phys and _plain_layers(self.past)
        slot = dict(zip(rows, range(len(rows)), strict=True)) if subset else dict(zip(rows, phys, strict=True))
        n_batch = len(rows) if subset else n_phys
        ids = torch.full((n_batch, width), self.pad_id, dtype=torch.long)
        new_mask = torch.zeros((n_batch, width), dtype=torch.long)
        positions = torch.zeros((n_batch, width), dtype=torch.long)
        for r, toks in work.items():
            i, p, k = slot[r], self._phys[r], len(toks)
            ids[i, width - k:] = torch.tensor([t for t, _ in toks], dtype=torch.long)
            new_mask[i, width - k:] = 1
            positions[i, width - k:] = torch.arange(self._next[p], self._next[p] + k)
        new_mask = new_mask.to(self.device)
        if subset:
            sel = torch.tensor(phys, dtype=torch.long, device=self.device)
            full = [(layer.keys, layer.values) for layer in self.past.layers]
            old_width = self.mask.shape[1]
            for layer, (k_, v_) in zip(self.past.layers, full, strict=True):
                layer.keys, layer.values = k_[sel], v_[sel]
            out = self._run(ids.to(self.device), torch.cat([self.mask[sel], new_mask], dim=1),
                            positions.to(self.device), self.past, all_positions)
            for layer, (k_, v_) in zip(self.past.layers, full, strict=True):
                keys = torch.cat([k_, k_.new_zeros((*k_.shape[:2], width, *k_.shape[3:]))], dim=2)
                values = torch.cat([v_, v_.new_zeros((*v_.shape[:2], width, *v_.shape[3:]))], dim=2)
                keys[sel, :, old_width:] = layer.keys[:, :, old_width:]
                values[sel, :, old_width:] = layer.values[:, :, old_width:]
                layer.keys, layer.values = keys, values
            grown = torch.zeros((n_phys, width), dtype=torch.long, device=self.device)
            grown[sel] = new_mask
            self.mask = torch.cat([self.mask, grown], dim=1)
        else:
            mask = torch.cat([self.mask, new_mask], dim=1)
            out = self._run(ids.to(self.device), mask, positions.to(self.device), self.past, all_positions)
            self.past = out.past_key_values
            self.mask = mask
        idx = torch.tensor(phys, dtype=torch.long, device=self._logp.device)
        at = torch.tensor([slot[r] for r in rows], dtype=torch.long, device=out.logits.device)
        self._logp[idx] = torch.log_softmax(out.logits[at, -1].float(), dim=-1).to(self._logp.device)
        if self._hidden is not None:
            self._hidden[idx] = out.hidden_states[-1][at, -1].float().to(self._hidden.device)
        seq_lp: dict[int, torch.Tensor] = {}
        seq_h: dict[int, torch.Tensor] = {}
        n_own = n_all = 0
        for r in rows:
            p, k, i = self._phys[r], len(work[r]), slot[r]
            mine = sum(is_own for _, is_own in work[r])
            self._next[p] += k
            self._spent_generated[r] += mine
            self._spent_prompt[r] += k - mine
            n_own, n_all = n_own + mine, n_all + k
            if all_positions:
                seq_lp[r] = torch.log_softmax(out.logits[i, width - k:].float(), dim=-1)
                if self._hidden is not None:
                    seq_h[r] = out.hidden_states[-1][i, width - k:].float()
        self.usage.generated_tokens += n_own
        self.usage.prompt_tokens += n_all - n_own
        self.usage.generate_seconds += time.perf_counter() - t0
        return seq_lp, seq_h


def pass_groups(lengths: Mapping[int, int], budget: int) -> list[list[int]]:
    """Rows (by queued length) in one forward pass, or two: rows stepping one token, rows reading a chunk. Two
    when padding the steppers to the chunk width (within ``budget``) computes more token slots than a pass's
    fixed cost (``PASS_OVERHEAD``)."""
    steps = [r for r, n in lengths.items() if n == 1]
    reads = [r for r, n in lengths.items() if n > 1]
    if not steps or not reads:
        return [steps or reads]
    width = min(max(lengths[r] for r in reads), max(1, budget // len(reads)))
    merged = (len(steps) + len(reads)) * width
    split = len(steps) + len(reads) * width + PASS_OVERHEAD
    return [steps + reads] if merged <= split else [steps, reads]


def similar_lengths(lengths: Sequence[int], slack: float) -> list[list[int]]:
    """Indices grouped by length (shortest first) so that each group, left-padded to its longest, computes
    at most ``slack`` times its real tokens."""
    groups: list[list[int]] = []
    total = longest = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        n = max(lengths[i], 1)
        if groups and max(longest, n) * (len(groups[-1]) + 1) <= slack * (total + n):
            groups[-1].append(i)
            total, longest = total + n, max(longest, n)
        else:
            groups.append([i])
            total, longest = n, n
    return groups


def _plain_layers(past: Any) -> bool:
    layers = getattr(past, "layers", None)
    return bool(layers) and all(type(layer).__name__ == "DynamicLayer" and getattr(layer, "keys", None) is not None
                                for layer in layers)


def _join(parts: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """One batch from group caches of different widths: each is left-padded with masked zero columns."""
    width = max(mask.shape[1] for _, mask, *_ in parts)
    past = parts[0][0]
    for i, layer in enumerate(past.layers):
        keys, values = [], []
        for p, *_ in parts:
            k, v = p.layers[i].keys, p.layers[i].values
            pad = width - k.shape[2]
            keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
            values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
        layer.keys, layer.values = torch.cat(keys), torch.cat(values)
    mask = torch.cat([torch.nn.functional.pad(m, (width - m.shape[1], 0)) for _, m, *_ in parts])
    positions = torch.cat([pos for _, _, pos, *_ in parts])
    logp = torch.cat([lp for *_, lp, _ in parts])
    hidden = None if parts[0][4] is None else torch.cat([h for *_, h in parts])
    return past, mask, positions, logp, hidden


def open_steppers(engines: Sequence[Any], prompts: Sequence[str], *, hidden: bool = False) -> list[Stepper]:
    """One ``Stepper`` per engine over ``prompts``; a clear error for an engine without token-level access."""
    out = []
    for e in engines:
        if not callable(getattr(e, "stepper", None)):
            raise StepperError(f"model {getattr(e, 'name', e)!r}: its engine ({type(e).__name__}) cannot decode "
                               "token by token; token- and logit-level methods need the transformers backend")
        out.append(e.stepper(list(prompts), hidden=hidden))
    return out


def greedy_patches(stepper: Stepper, rows: Sequence[int], n_tokens: int, *, finish_word: bool = False,
                   max_word_tokens: int = 8) -> dict[int, Patch]:
    """Each row appends up to ``n_tokens`` of its own greedy tokens, in lockstep (one forward pass per token
    for all rows still writing). A row stops early at eos. With ``finish_word``, a row that has written its
    ``n_tokens`` goes on (at most ``max_word_tokens`` more) until the next token would start a new word
    (begins with whitespace) or end the text, so the patch ends on a word boundary and another tokenizer
    re-tokenises whole words."""
    patches = {r: Patch() for r in rows}
    active = list(rows)
    limit = n_tokens + (max_word_tokens if finish_word else 0)
    for k in range(limit):
        if not active:
            break
        feed: dict[int, int] = {}
        for r, (tok, lp) in zip(active, stepper.top(active), strict=True):
            if k >= n_tokens and (tok in stepper.eos or stepper.piece(tok)[:1].isspace()):
                continue  # the word is complete: stop before the next one
            patch = patches[r]
            patch.tokens.append(tok)
            patch.logprobs.append(lp)
            if tok not in stepper.eos:
                patch.text += stepper.piece(tok)
            feed[r] = tok
        for r in stepper.emit(feed):
            patches[r].ended = True
        active = [r for r in feed if not patches[r].ended]
    return patches


def same_tokenizer(tok_a: Any, tok_b: Any) -> bool:
    """True when two tokenizers map the same strings to the same ids: same vocabulary (added tokens
    included) and the same special tokens."""
    if tok_a.get_vocab() != tok_b.get_vocab():
        return False
    for attr in ("bos_token", "eos_token", "unk_token", "pad_token"):
        if getattr(tok_a, attr, None) != getattr(tok_b, attr, None):
            return False
    return sorted(tok_a.all_special_tokens) == sorted(tok_b.all_special_tokens)
