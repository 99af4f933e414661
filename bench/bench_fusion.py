"""Fused decoding with per-model KV caches vs a stateless loop that re-encodes every sequence at every step
(MoCo's LogitArithmetic pattern), on the same prompts, batched with left padding in both. Prints both times,
whether the greedy tokens agree, and the speed-up at ``--new-tokens`` (128 by default; eos is ignored so
both loops do exactly that many steps). Run on demand, not in tests:

    .venv/bin/python bench/bench_fusion.py                          # two tiny Llamas built in a temp dir
    .venv/bin/python bench/bench_fusion.py --models results/models/smollm2/weights results/models/smol-sci/weights
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mocoflow.engines.base import DecodingConfig
from mocoflow.engines.factory import make_engine
from mocoflow.engines.tokens import encode_prompts, left_pad, position_ids_from_mask
from mocoflow.methods.logit.decode import combined_generate
from mocoflow.methods.logit.fusion import fused_logprobs

PROMPTS = ["What is 2 + 3?", "Which option is correct? A) yes B) no", "Say hello to the world.",
           "Answer the question: what is the sum of 4 and 5?", "Please reply with one letter.",
           "Let us think step by step about 7 times 8.", "Is 11 a prime number?", "Name a colour."]


def stateless(engines, prompts: list[str], weights: list[float], new_tokens: int, batch_size: int):
    out = []
    for start in range(0, len(prompts), batch_size):
        rows = encode_prompts(engines[0].tokenizer, prompts[start:start + batch_size])
        gen: list[list[int]] = [[] for _ in rows]
        for _ in range(new_tokens):
            seqs = [r + g for r, g in zip(rows, gen, strict=True)]
            ids, mask = left_pad(seqs, engines[0].tokenizer.pad_token_id, engines[0].device)
            pos = position_ids_from_mask(mask)
            with torch.no_grad():
                lps = [torch.log_softmax(e.model(input_ids=ids, attention_mask=mask, position_ids=pos,
                                                 use_cache=False).logits[:, -1].float(), -1) for e in engines]
            nxt = fused_logprobs(lps, weights).argmax(-1).tolist()
            for g, t in zip(gen, nxt, strict=True):
                g.append(t)
        out.extend(gen)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="*", help="HF model folders sharing a tokenizer (default: tiny Llamas)")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = args.models
    if not models:
        from mocoflow.testing import build_tiny_model

        tmp = Path(tempfile.mkdtemp(prefix="bench-fusion-"))
        models = [str(build_tiny_model(tmp / f"m{s}", arch="llama", seed=s, n_layer=args.n_layer,
                                       n_embd=args.n_embd)) for s in (0, 1)]
    engines = [make_engine(f"m{i}", {"path": m}, cache_dir=None, device=args.device)
               for i, m in enumerate(models)]
    prompts = (PROMPTS * (args.prompts // len(PROMPTS) + 1))[:args.prompts]
    weights = [1 / len(engines)] * len(engines)
    decoding = DecodingConfig(max_new_tokens=args.new_tokens, batch_size=args.batch_size)
    sync = torch.cuda.synchronize if engines[0].device.startswith("cuda") else (lambda: None)
    combined_generate(engines, prompts[:1], lambda lps, rows: fused_logprobs(lps, weights),
                      DecodingConfig(max_new_tokens=2, batch_size=1))  # warm-up
    sync()
    t0 = time.perf_counter()
    cached = combined_generate(engines, prompts, lambda lps, rows: fused_logprobs(lps, weights), decoding,
                               stop_at_eos=False)
    sync()
    t_cached = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain = stateless(engines, prompts, weights, args.new_tokens, args.batch_size)
    sync()
    t_plain = time.perf_counter() - t0
    agree = sum(a.tokens == b for a, b in zip(cached, plain, strict=True))
    print(f"models: {models}")
    print(f"device {engines[0].device}, {len(prompts)} prompts, batch {args.batch_size}, "
          f"{args.new_tokens} new tokens")
    print(f"kv-cached fused decoding: {t_cached:.2f}s")
    print(f"stateless re-encode loop: {t_plain:.2f}s")
    print(f"identical greedy tokens: {agree}/{len(prompts)} rows")
    print(f"speed-up at {args.new_tokens} new tokens: {t_plain / t_cached:.1f}x")


if __name__ == "__main__":
    main()
