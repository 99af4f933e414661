"""Engine throughput, side by side on the same prompts in one run: the transformers backend, the vLLM backend,
plain Hugging Face ``generate`` and MoCo's generation pattern, at 1, 8 and 32 prompts in flight.

    .venv-vllm/bin/python bench/bench_engine.py [--model results/models/smollm2/weights]

(``make setup-vllm`` builds ``.venv-vllm``; in ``.venv``, without vllm, the vLLM rows are skipped.)

Rows, each greedy, the same prompts (the default study's kinds, chat-templated), ``--max-new-tokens`` each:

- ``moco``: MoCo's ``batch_generate_text``: every *call* loads the model (``from_pretrained``), generates the
  call's whole list in batches of B with left padding, and drops the model. One call here = all prompts, so its
  load is paid once per call, as in a MoCo method that calls it once per round per model.
- ``plain``: plain ``model.generate`` in batches of B with left padding, the model loaded once (not timed).
- ``transformers``: ``TransformersEngine.generate`` with ``batch_size=B`` (no response cache; shared-prefix reuse).
- ``vllm``: ``VllmEngine.generate`` given B prompts at a time (vLLM schedules them together: B requests in
  flight), ``enforce_eager`` (torch.compile takes minutes on this CPU), float32 like the others.

Batch-1 rows decode only the first ``--prompts-at-1`` prompts (sequential decoding is slow). Tokens/s counts
generated tokens (eos included) over the generation wall time; ``moco`` is reported with and
without its load. Start-up seconds: building the engine until it can generate (transformers: loading the
weights; vLLM: ``LLM(...)`` including its engine process and KV-cache allocation).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("bench_engine")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM on CPU otherwise reserves 90 % of the memory


def bench_prompts(n: int) -> list[str]:
    """Prompts of the default study's kinds (arithmetic, facts, word sorting, letter counting)."""
    from mocoflow.data.builtin import generate_splits
    from mocoflow.data.prompts import build_prompt

    kinds = (("arithmetic", {"n_terms": 2, "max_value": 20, "ops": "+-"}), ("fact_mc", {}), ("word_sort", {}),
             ("letter_count", {}))
    per = -(-n // len(kinds))
    out = [build_prompt(i) for name, params in kinds
           for i in generate_splits(name, seed=11, n_test=per, params=params)["test"]]
    return out[:n]


def hf_batched(model: Any, tok: Any, prompts: list[str], batch: int, max_new_tokens: int) -> int:
    """Left-padded batched greedy ``generate``, as MoCo does it; returns generated tokens (through eos)."""
    eos = {tok.eos_token_id, *([model.generation_config.eos_token_id] if isinstance(
        model.generation_config.eos_token_id, int) else model.generation_config.eos_token_id or [])}
    tokens = 0
    for start in range(0, len(prompts), batch):
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                 for p in prompts[start:start + batch]]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            n = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
            tokens += n
    return tokens


def load_hf(path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, local_files_only=True).eval()
    return model, tok


def moco_call(path: Path, prompts: list[str], batch: int, max_new_tokens: int) -> tuple[int, float, float]:
    """One MoCo generation call: load, generate the list in batches, drop. Returns (tokens, load s, gen s)."""
    t0 = time.perf_counter()
    model, tok = load_hf(path)
    t1 = time.perf_counter()
    tokens = hf_batched(model, tok, prompts, batch, max_new_tokens)
    return tokens, t1 - t0, time.perf_counter() - t1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("results/models/smollm2/weights"))
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--prompts-at-1", type=int, default=8,
                   help="prompts of the batch-1 rows (sequential decoding is slow; the first N of the same prompts)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--skip", nargs="*", default=[], choices=["moco", "plain", "transformers", "vllm"])
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads of the in-process transformers rows (0: torch's default)")
    p.add_argument("--out", type=Path, default=Path("results/bench/engine.json"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.model / "config.json").exists():
        raise SystemExit(f"{args.model} is not a model directory; build the default study's models first "
                         "(snakemake --cores all --until build_model) or pass --model")
    from mocoflow.engines.base import DecodingConfig
    from mocoflow.engines.transformers_engine import TransformersEngine
    from mocoflow.engines.vllm_engine import VllmEngine, vllm_available

    prompts = bench_prompts(args.prompts)
    rows: list[dict[str, Any]] = []
    startup: dict[str, float] = {}

    def record(kind: str, batch: int, tokens: int, seconds: float, **extra: Any) -> None:
        rows.append({"kind": kind, "batch": batch, "prompts": len(prompts), "tokens": tokens,
                     "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 2), **extra})
        log.info("%-13s batch %2d  %5d tokens  %7.1f s  %7.1f tokens/s %s", kind, batch, tokens, seconds,
                 tokens / seconds, extra or "")

    t0 = time.perf_counter()
    engine = TransformersEngine("bench", args.model, device="cpu", dtype="float32")
    engine.hf_model()
    startup["transformers"] = round(time.perf_counter() - t0, 2)
    model, tok = engine.hf_model()
    llm = None
    if "vllm" not in args.skip and vllm_available():
        t0 = time.perf_counter()
        llm = VllmEngine("bench", args.model, dtype="float32", max_model_len=2048, enforce_eager=True)
        startup["vllm"] = round(time.perf_counter() - t0, 2)
    elif "vllm" not in args.skip:
        log.info("vllm is not importable here: no vLLM rows (run in .venv-vllm, `make setup-vllm`)")
    log.info("start-up seconds: %s (threads: %d)", startup, torch.get_num_threads())
    hf_batched(model, tok, prompts[:2], 2, 4)  # warm-up: first-call allocations are not any row's cost
    if llm is not None:
        llm.generate(prompts[:2], DecodingConfig(max_new_tokens=4))
    all_prompts = prompts
    for batch in args.batches:
        prompts = all_prompts[: args.prompts_at_1] if batch == 1 else all_prompts
        if "moco" not in args.skip:
            tokens, load, gen = moco_call(args.model, prompts, batch, args.max_new_tokens)
            record("moco", batch, tokens, load + gen, without_load_tokens_per_s=round(tokens / gen, 2),
                   load_seconds=round(load, 2))
        if "plain" not in args.skip:
            t0 = time.perf_counter()
            tokens = hf_batched(model, tok, prompts, batch, args.max_new_tokens)
            record("plain", batch, tokens, time.perf_counter() - t0)
        if "transformers" not in args.skip:
            t0 = time.perf_counter()
            gens = engine.generate(prompts, DecodingConfig(max_new_tokens=args.max_new_tokens, batch_size=batch))
            record("transformers", batch, sum(g.generated_tokens for g in gens), time.perf_counter() - t0)
        if llm is not None:
            t0 = time.perf_counter()
            tokens = 0
            for start in range(0, len(prompts), batch):
                gens = llm.generate(prompts[start:start + batch], DecodingConfig(max_new_tokens=args.max_new_tokens))
                tokens += sum(g.generated_tokens for g in gens)
            record("vllm", batch, tokens, time.perf_counter() - t0)
    by = {(r["kind"], r["batch"]): r["tokens_per_s"] for r in rows}
    for batch in args.batches:
        base = by.get(("transformers", batch))
        if base:
            log.info("batch %2d, tokens/s relative to the transformers engine: %s", batch,
                     {k: round(v / base, 2) for (k, b), v in by.items() if b == batch})
    if llm is not None:
        llm.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": str(args.model), "prompts": len(all_prompts),
                                    "prompts_at_1": min(args.prompts_at_1, len(all_prompts)),
                                    "max_new_tokens": args.max_new_tokens, "threads": torch.get_num_threads(),
                                    "startup_seconds": startup, "rows": rows}, indent=2))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
