"""Tiny local models for tests and smoke runs: built in about a second, never downloaded.

- ``build_tiny_tokenizer(out_dir, variant="default"|"other")``: a byte-level BPE tokenizer trained with the
  ``tokenizers`` library on a small built-in corpus, saved as a ``PreTrainedTokenizerFast`` with bos/eos/pad
  tokens and a simple Jinja chat template. Building is deterministic: the same variant gives byte-identical
  files, so two tiny models built with the same variant share a tokenizer signature. ``"other"`` has a
  different vocabulary (for "different tokenizer" refusal tests).
- ``build_tiny_model(out_dir, arch="gpt2"|"llama", ...)``: a randomly initialised causal LM (seeded), saved
  with ``save_pretrained`` (safetensors) plus its tokenizer in the same directory.
- ``train_tiny_model_briefly(model_dir, texts, steps)``: a few Adam steps so the model prefers ``texts`` as
  answers (e.g. always "Answer: A"); overwrites the weights in place.
- ``tiny_source(name, spec, out_dir)``: the ``tiny`` model source (listed in :mod:`mocoflow.model_sources`),
  the two above driven by a model spec.
- ``build_tiny_sentence_transformer(out_dir, words)``: a randomly initialised one-layer BERT with mean pooling,
  saved as a sentence-transformers model (the format of the routers' default ``minilm`` embedder).
- ``ScriptedEngine(name, respond, judge=None)``: a deterministic stand-in engine whose replies are a function
  of the prompt, to test methods' logic without real models.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mocoflow.engines.base import Capability, DecodingConfig, Engine, Generation, Usage

log = logging.getLogger(__name__)

BOS, EOS, PAD, UNK = "<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]
INIT_RANGE = 0.3

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

_WORDS = (
    "Answer the question . The answer is A B C D E . Question : which option is correct ? "
    "Options : A ) B ) C ) D ) E ) Let us think step by step . So the final answer is "
    "yes no true false what is the sum of and plus minus times equals "
    "0 1 2 3 4 5 6 7 8 9 10 11 12 100 a b c d e , ! ' \" ( ) [ ] { } - + * / = < > "
    "user assistant system hello world you are a helpful model please reply with one letter"
)

_DEFAULT_CORPUS = [
    _WORDS,
    "Answer: A", "Answer: B", "Answer: C", "Answer: D", "Answer: E",
    "The answer is 42.", "Question: What is 2 + 3? Answer: 5",
    "<|user|>hello\n<|assistant|>Answer: A\n",
    "def f(x):\n    return x + 1\n",
]
# A different corpus and vocabulary size give a different vocabulary.
_OTHER_CORPUS = [
    "zebra quantum violet xylophone jumps over lazy dogs " * 2,
    "Answer answer ANSWER options letters numbers 0123456789 ABCDE abcde",
    "<|user|>hi\n<|assistant|>Answer: B\n",
]


class ScriptedEngine(Engine):
    """An engine whose reply to a prompt is ``respond(prompt)`` and whose continuation score is
    ``judge(prompt, continuation)`` (default 0). Token counts are whitespace word counts. Counts one model
    load at construction, and ``generate_calls``/``prompts_seen``/``requests`` (prompt, decoding) record what
    it was asked. A sampled request (``do_sample``) sees ``prompt + "\\0seed=<seed>"``, so a script can vary
    its replies by seed."""

    def __init__(self, name: str, respond: Callable[[str], str],
                 judge: Callable[[str, str], float] | None = None) -> None:
        self.name = name
        self.fingerprint = f"scripted-{name}"
        self.usage = Usage(model_loads=1)
        self.respond = respond
        self.judge = judge or (lambda p, c: 0.0)
        self.generate_calls = 0
        self.prompts_seen: list[str] = []
        self.requests: list[tuple[str, DecodingConfig]] = []

    backend = "scripted"
    capabilities = frozenset({Capability.SCORE})

    def generate_batches(self, prompts: list[str], decoding: DecodingConfig, *, chat: bool = True
                         ) -> Iterator[list[tuple[int, Generation]]]:
        yield list(enumerate(self.generate(prompts, decoding)))

    def generate(self, prompts: list[str], decoding: DecodingConfig, *, progress: str | None = None,
                 chat: bool = True) -> list[Generation]:
        """Every prompt is answered (no dedupe), so ``prompts_seen`` records exactly what was asked."""
        self.generate_calls += 1
        self.prompts_seen += prompts
        self.requests += [(p, decoding) for p in prompts]
        out = []
        for p in prompts:
            text = self.respond(p) if not decoding.do_sample else self.respond(f"{p}\0seed={decoding.seed}")
            out.append(Generation(text, len(p.split()), max(1, len(text.split())), -1.0))
            self.usage.calls += 1
            self.usage.prompt_tokens += len(p.split())
            self.usage.generated_tokens += max(1, len(text.split()))
        return out

    def score_continuations(self, prompts: list[str], continuations: list[str], *, chat: bool = True
                            ) -> list[float]:
        self.usage.prompt_tokens += sum(len(p.split()) for p in prompts)
        return [float(self.judge(p, c)) for p, c in zip(prompts, continuations, strict=True)]


def build_tiny_tokenizer(out_dir: str | os.PathLike[str], *, variant: str = "default") -> Path:
    """Train and save a tiny byte-level BPE tokenizer (``variant`` "default" or "other")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if variant not in ("default", "other"):
        raise ValueError(f"unknown tiny tokenizer variant {variant!r} (default, other)")
    corpus, vocab_size = (_DEFAULT_CORPUS, 400) if variant == "default" else (_OTHER_CORPUS, 330)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=UNK, padding_side="left")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))
    return out


def _model_config(arch: str, vocab_size: int, n_layer: int, n_embd: int, bos: int, eos: int, pad: int):
    from transformers import GPT2Config, LlamaConfig

    # A wide initialisation makes a random model's greedy output depend on its prompt (with the default
    # 0.02 every prompt decodes to the same repeated token), which makes batching tests meaningful.
    ids = dict(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad, initializer_range=INIT_RANGE)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_positions=512, n_embd=n_embd, n_layer=n_layer,
                          n_head=max(1, n_embd // 32), resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                          tie_word_embeddings=True, **ids)
    if arch == "llama":
        return LlamaConfig(vocab_size=vocab_size, hidden_size=n_embd, intermediate_size=2 * n_embd,
                           num_hidden_layers=n_layer, num_attention_heads=max(1, n_embd // 16),
                           num_key_value_heads=max(1, n_embd // 32), max_position_embeddings=512,
                           tie_word_embeddings=False, **ids)
    raise ValueError(f"unknown tiny model arch {arch!r} (gpt2, llama)")


def build_tiny_model(out_dir: str | os.PathLike[str], *, arch: str = "gpt2", seed: int = 0, n_layer: int = 2,
                     n_embd: int = 64, tokenizer: str = "default") -> Path:
    """Build a randomly initialised causal LM (seeded) with a tiny tokenizer; save both to ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    build_tiny_tokenizer(out, variant=tokenizer)
    tok = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    config = _model_config(arch, len(tok), n_layer, n_embd, tok.bos_token_id, tok.eos_token_id,
                           tok.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out), safe_serialization=True)
    log.debug("built tiny %s model in %s", arch, out)
    return out


def _fit_and_save(model: Any, path: Path, ids: Any, mask: Any, labels: Any, *, steps: int, lr: float,
                  seed: int) -> Path:
    """``steps`` full-batch Adam steps (seeded) on the labelled tokens; the weights are saved in place."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for _ in range(steps):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    log.debug("trained %s for %d steps, final loss %.3f", path, steps, loss.item())
    model.save_pretrained(str(path), safe_serialization=True)
    return path


def train_tiny_model_briefly(model_dir: str | os.PathLike[str], texts: list[str], steps: int = 30, *,
                             lr: float = 1e-2, seed: int = 0, prompt: str | None = None) -> Path:
    """Train the model in ``model_dir`` for ``steps`` Adam steps on ``texts`` (saved in place).

    Each text is trained as an assistant reply (after the chat template's generation prompt, or after
    ``prompt`` when given) followed by eos, so greedy decoding of any short prompt tends to produce it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not texts:
        raise ValueError("train_tiny_model_briefly needs at least one text")
    path = Path(model_dir)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    prefixes = ["Question: hello", "Answer the question.", "What is 2 + 3?", "Which option is correct?"]
    examples: list[list[int]] = []
    for text in texts:
        for p in ([prompt] if prompt is not None else prefixes):
            if tok.chat_template:
                head = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                               tokenize=False)
            else:
                head = p
            examples.append(tok(head + text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id])
    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(examples):  # right padding is fine for training
        ids[i, :len(e)] = torch.tensor(e)
        mask[i, :len(e)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return _fit_and_save(model, path, ids, mask, labels, steps=steps, lr=lr, seed=seed)


def tiny_source(name: str, spec: dict[str, Any], out_dir: Path) -> Path:
    """The ``tiny`` model source: a tiny randomly initialised model built locally (tests and smoke runs). Spec
    keys: arch, seed, n_layer, n_embd, tokenizer ("default" or "other"), train_texts + train_steps to bias its
    outputs."""
    weights = out_dir / "weights"
    build_tiny_model(weights, arch=spec.get("arch", "gpt2"), seed=int(spec.get("seed", 0)),
                     n_layer=int(spec.get("n_layer", 2)), n_embd=int(spec.get("n_embd", 64)),
                     tokenizer=spec.get("tokenizer", "default"))
    if spec.get("train_texts"):
        train_tiny_model_briefly(weights, list(spec["train_texts"]), steps=int(spec.get("train_steps", 30)))
    return weights


def train_tiny_model_on_pairs(model_dir: str | os.PathLike[str], pairs: list[tuple[str, str]], steps: int = 40,
                              *, lr: float = 1e-2, seed: int = 0) -> Path:
    """Like ``train_tiny_model_briefly`` for (prompt, reply) pairs: each reply is trained after its own
    chat-templated prompt (loss on the reply and eos only), so a tiny model can answer different prompts
    differently (e.g. one kind of question "Answer: A", another "Answer: B")."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not pairs:
        raise ValueError("train_tiny_model_on_pairs needs at least one (prompt, reply) pair")
    path = Path(model_dir)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=torch.float32)
    rows: list[tuple[list[int], int]] = []
    for prompt, reply in pairs:
        head = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                       tokenize=False) if tok.chat_template else prompt
        head_ids = tok(head, add_special_tokens=False)["input_ids"]
        rows.append((head_ids + tok(reply, add_special_tokens=False)["input_ids"] + [tok.eos_token_id],
                     len(head_ids)))
    width = max(len(r) for r, _ in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for i, (r, start) in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
        labels[i, start:len(r)] = torch.tensor(r[start:])
    return _fit_and_save(model, path, ids, mask, labels, steps=steps, lr=lr, seed=seed)


def build_tiny_sentence_transformer(out_dir: str | os.PathLike[str], words: list[str], *, seed: int = 0,
                                    dim: int = 32) -> Path:
    """A sentence-transformers model (one-layer BERT, random init seeded, mean pooling) whose WordPiece
    vocabulary is ``words`` plus the letters, saved to ``out_dir/model``; returns that folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = Path(out_dir)
    bert = out / "bert"
    bert.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted({w.lower() for w in words} - set(vocab)) + [c for c in "abcdefghijklmnopqrstuvwxyz0123456789"
                                                                 if c not in words]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))})
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=dim, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * dim, max_position_embeddings=128, initializer_range=INIT_RANGE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(str(bert))
    tokenizer.save_pretrained(str(bert))
    encoder = Transformer(str(bert), max_seq_length=64)
    model = SentenceTransformer(modules=[encoder, Pooling(dim, "mean")], device="cpu")
    model.save(str(out / "model"))
    return out / "model"
