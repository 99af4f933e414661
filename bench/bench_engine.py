"""Generation throughput of the engine vs MoCo's per-call pattern, on the same prompts in one run.

    .venv/bin/python bench/bench_engine.py [--model results/models/smollm2/weights]

Prints tokens/s of ``TransformersEngine.generate`` at batch sizes 1, 8 and 32 (model loaded once,
cache disabled; and batch 8 without shared-prefix reuse), of a plain loop that calls ``from_pretrained``
+ ``generate`` per prompt (MoCo's pattern), their ratio, and the fraction of the machine's compute-bound
limit reached: the limit is the measured fp32 matmul GFLOP/s divided by 2 x parameters (FLOPs per
generated token).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

log = logging.getLogger("bench_engine")

PROMPTS = [f"Question {i}: what is {i} plus {2 * i + 1}? Answer with a number." for i in range(64)]


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def engine_throughput(path: Path, batch_size: int, prompts: list[str], max_new_tokens: int, *,
                      prefix_sharing: bool = True) -> float:
    from mocoflow.engines.base import DecodingConfig
    from mocoflow.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine("bench", str(path), device="cpu", cache=None, prefix_sharing=prefix_sharing)
    dec = DecodingConfig(max_new_tokens=max_new_tokens, batch_size=batch_size)
    t0 = time.perf_counter()
    gens = engine.generate(prompts, dec)
    return sum(g.generated_tokens for g in gens) / (time.perf_counter() - t0)


def per_call_throughput(path: Path, prompts: list[str], max_new_tokens: int) -> float:
    """MoCo's pattern: load the model for every call, generate one prompt, throw the model away."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokens = 0
    t0 = time.perf_counter()
    for prompt in prompts:
        tok = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                       add_generation_prompt=True) if tok.chat_template else prompt
        ids = tok(text, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id or tok.eos_token_id)
        tokens += out.shape[1] - ids["input_ids"].shape[1]
    return tokens / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("results/models/smollm2/weights"))
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--baseline-prompts", type=int, default=4, help="per-call loop is slow: fewer prompts")
    p.add_argument("--max-new-tokens", type=int, default=32)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.model / "config.json").exists():
        raise SystemExit(f"{args.model} is not a model directory; build the default study's models first "
                         "(snakemake --cores all --until build_model) or pass --model")
    from mocoflow.models import parameter_count

    params = parameter_count(args.model)
    gflops = matmul_gflops()
    limit = gflops * 1e9 / (2 * params)
    log.info("model %s: %.1fM parameters; fp32 matmul %.1f GFLOP/s; compute-bound limit %.0f tokens/s "
             "(threads: %d)", args.model, params / 1e6, gflops, limit, torch.get_num_threads())
    prompts = PROMPTS[: args.prompts]
    base = per_call_throughput(args.model, prompts[: args.baseline_prompts], args.max_new_tokens)
    log.info("%-28s %8.1f tokens/s", "per-call from_pretrained", base)
    for bs, sharing in ((1, True), (8, True), (32, True), (8, False)):
        tps = engine_throughput(args.model, bs, prompts, args.max_new_tokens, prefix_sharing=sharing)
        log.info("%-28s %8.1f tokens/s  ratio vs per-call %5.1fx  %5.1f%% of compute-bound limit",
                 f"engine batch {bs}" + ("" if sharing else ", no prefix reuse"), tps, tps / base,
                 100 * tps / limit)


if __name__ == "__main__":
    main()
