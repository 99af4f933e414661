"""Token-level methods: items decoded in lockstep through the stepping API vs one item at a time.

    .venv/bin/python bench/bench_tokenlevel.py                     # tiny Llamas built in a temp dir
    .venv/bin/python bench/bench_tokenlevel.py --models-dir /work/study0/results/models   # SmolLM2 (+ smol-sci)

Two methods, each with both arms run interleaved in one process (``--repeats`` rounds of lockstep then
one-at-a-time, so a shared CPU's load hits both alike): nudging (``nudge_decode``: a base and a nudger) and
logit fusion (``combined_generate`` with uniform weights; both model pairs share a tokenizer, so nudging exchanges
token ids; lockstep = ``batch_size`` items, one at a time =
batch size 1). Prints generated tokens per second of each arm, the ratio (target >= 4x at 8 items), and
whether the outputs are identical; then the same after subtracting the prompts' prefill (timed on its own in
every round, for both arms: prefill is compute-bound and costs about the same batched or not, so short
answers to long prompts bound the end-to-end ratio). Without ``--models-dir`` (or when
``{models-dir}/smollm2/card.json`` is missing) it uses two tiny random Llamas; with it, SmolLM2 is the base /
first model and ``smol-sci`` (when built, else SmolLM2 again) the nudger / second model.

Also printed: forward passes of each arm (counted by a forward hook; independent of the machine's load) and
the regime: the time of one decoding step at batch 8 over batch 1. Lockstep pays off where a step at batch 8
costs little more than at batch 1 (overhead- or memory-bound decoding: small models on an idle CPU, any model
on a GPU); on a saturated CPU a step costs about 8x more at batch 8 and no batching can help.

Ceilings, read the ratios against them (timed in every round, interleaved with the arms): plain Hugging Face
decoding steps (one ``DynamicCache``, no stepper) at every batch size up to ``--in-flight``; the most N rows in
lockstep can give is N x step(1) / step(N), and per method the ratio a perfect lockstep would reach at the
answer lengths it produced (the batch shrinks as items end, refilled while items wait). ``--in-flight N`` with
more ``--items`` measures continuous batching (an item joins as another ends).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("bench_tokenlevel")

PROMPTS = [
    "Which gas do plants take in from the air to make food?\n\nA. oxygen\nB. carbon dioxide\nC. nitrogen\n"
    "D. helium\n\nAnswer with the letter of the correct option, e.g. 'Answer: B'.",
    "What is 7 + 5? Answer with a number, e.g. 'Answer: 3'.",
    "Which organ pumps blood through the body?\n\nA. lungs\nB. brain\nC. heart\nD. liver\n\n"
    "Answer with the letter of the correct option, e.g. 'Answer: B'.",
    "Name the planet closest to the Sun.",
    "Write a Python function that returns the square of a number.",
    "What is 12 - 4? Answer with a number, e.g. 'Answer: 3'.",
    "Why do we see lightning before we hear thunder?",
    "Which state of matter has a fixed shape?\n\nA. gas\nB. liquid\nC. solid\n\n"
    "Answer with the letter of the correct option, e.g. 'Answer: B'.",
]


def model_paths(models_dir: Path | None, tmp: Path, n_layer: int, n_embd: int) -> tuple[list[str], str]:
    """Two model folders (first, second) and a label: SmolLM2 (+ smol-sci) from cards, or tiny Llamas."""
    if models_dir is not None and (models_dir / "smollm2" / "card.json").exists():
        from mocoflow.models import card_weights

        first = str(card_weights(models_dir / "smollm2" / "card.json"))
        sci = models_dir / "smol-sci" / "card.json"
        second = str(card_weights(sci)) if sci.exists() else first
        return [first, second], "smollm2 + " + ("smol-sci" if sci.exists() else "smollm2")
    from mocoflow.testing import build_tiny_model

    paths = [str(build_tiny_model(tmp / f"m{s}", arch="llama", seed=s, n_layer=n_layer, n_embd=n_embd))
             for s in (0, 1)]
    return paths, f"tiny llama x2 ({n_layer} layers, {n_embd} wide)"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def step_ratio(engine: Any, prompts: list[str], steps: int = 6) -> float:
    """Time of one greedy step of ``len(prompts)`` rows over one step of a single row (eos ignored)."""
    times = []
    for batch in (prompts[:1], prompts, prompts[:1], prompts):
        stepper = engine.stepper(batch)
        rows = list(range(len(batch)))
        t0 = time.perf_counter()
        for _ in range(steps):
            stepper.emit({r: t for r, (t, _) in zip(rows, stepper.top(rows), strict=True)}, eos_ends=False)
        times.append(time.perf_counter() - t0)
    return (times[1] + times[3]) / (times[0] + times[2])


def plain_step_seconds(engine: Any, prompts: list[str], batch: int, steps: int = 8) -> float:
    """Seconds of one greedy decoding step at ``batch`` rows in plain Hugging Face code (one ``DynamicCache``,
    the mask grown by a column per step; no stepper, eos ignored): what batching itself buys on this machine."""
    from mocoflow.engines.loader import encode_prompts, left_pad

    model, tok = engine.model, engine.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ids, mask = left_pad(encode_prompts(tok, prompts[:batch], chat=True), pad, "cpu")
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, use_cache=True)
        t0 = time.perf_counter()
        for _ in range(steps):
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones_like(nxt)], 1)
            out = model(input_ids=nxt, attention_mask=mask, past_key_values=out.past_key_values, use_cache=True)
            torch.log_softmax(out.logits[:, -1].float(), -1)
    return (time.perf_counter() - t0) / steps


def ideal_ratio(lengths: list[int], step: dict[int, float], flight: int) -> float:
    """Lockstep over one at a time if decoding cost only plain steps: items of ``lengths`` tokens, one at a time
    (``sum(lengths)`` steps at batch 1) against lockstep (``flight`` items at once, the next item joining as
    one ends: each step at the batch of items in flight)."""
    waiting, left, batched = list(lengths), [], 0.0
    while waiting or left:
        while waiting and len(left) < flight:
            left.append(waiting.pop(0))
        left = [n for n in left if n > 0]
        if left:
            batched += step[len(left)]
            left = [n - 1 for n in left]
    return sum(lengths) * step[1] / max(batched, 1e-9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=None, help="a study's results/models (cards)")
    p.add_argument("--items", type=int, default=8, help="items decoded")
    p.add_argument("--in-flight", type=int, default=None,
                   help="items in lockstep at once (default: all); more items join as rows end")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--gamma", type=float, default=0.4, help="nudging threshold")
    p.add_argument("--repeats", type=int, default=2, help="interleaved rounds of both arms")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=256)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("mocoflow").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    from mocoflow.engines.base import DecodingConfig
    from mocoflow.engines.factory import make_engine
    from mocoflow.engines.stepper import open_steppers
    from mocoflow.methods.api.nudging import nudge_decode
    from mocoflow.methods.logit.decode import combined_generate
    from mocoflow.methods.logit.fusion import fused_logprobs

    paths, label = model_paths(args.models_dir, Path(tempfile.mkdtemp(prefix="bench-tokenlevel-")),
                               args.n_layer, args.n_embd)
    engines = [make_engine(f"m{i}", {"path": m}, cache_dir=None, device="cpu") for i, m in enumerate(paths)]
    prompts = (PROMPTS * (args.items // len(PROMPTS) + 1))[:args.items]
    weights = [0.5, 0.5]
    new = args.max_new_tokens

    flight = args.in_flight or len(prompts)

    def nudge_lockstep() -> list[Any]:
        return nudge_decode(engines[0], engines[1], prompts, gamma=args.gamma, max_new_tokens=new,
                            share_tokens=True, batch_size=flight)

    def nudge_single() -> list[Any]:
        return [nudge_decode(engines[0], engines[1], [q], gamma=args.gamma, max_new_tokens=new,
                             share_tokens=True)[0]
                for q in prompts]

    def fuse(batch_size: int) -> Callable[[], list[Any]]:
        return lambda: combined_generate(engines, prompts, lambda lps, rows: fused_logprobs(lps, weights),
                                         DecodingConfig(max_new_tokens=new, batch_size=batch_size))

    arms = {"nudging": (nudge_lockstep, nudge_single), "logit fusion": (fuse(flight), fuse(1))}
    prefill = {"lockstep": lambda: [open_steppers(engines, prompts[i:i + flight])
                                    for i in range(0, len(prompts), flight)],
               "single": lambda: [open_steppers(engines, [q]) for q in prompts]}
    nudge_decode(engines[0], engines[1], prompts[:1], gamma=args.gamma, max_new_tokens=2)  # warm-up
    passes = [0]

    def count(*_: Any) -> None:
        passes[0] += 1

    for e in engines:
        e.model.register_forward_hook(count)
    forwards: dict[tuple[str, str], int] = {}
    seconds = {(m, a): 0.0 for m in [*arms, "prefill"] for a in ("lockstep", "single")}
    outputs: dict[tuple[str, str], list[Any]] = {}
    plain = {b: 0.0 for b in range(1, flight + 1)}  # plain step seconds by batch, summed over rounds
    for rnd in range(args.repeats):
        for b in sorted(plain, reverse=bool(rnd % 2)):  # alternate directions: load drift hits all sizes
            plain[b] += plain_step_seconds(engines[0], prompts, b)
        for arm, fn in prefill.items():
            seconds[("prefill", arm)] += timed(fn)[0]
        for method, (lockstep, single) in arms.items():
            for arm, fn in (("lockstep", lockstep), ("single", single)):
                passes[0] = 0
                t, out = timed(fn)
                forwards[(method, arm)] = passes[0]
                seconds[(method, arm)] += t
                outputs[(method, arm)] = out
    log.info("models: %s; %d items, %d in lockstep at once, %d new tokens at most, %d thread(s), %d interleaved "
             "rounds", label, len(prompts), flight, new, torch.get_num_threads(), args.repeats)
    log.info("regime: one decoding step at batch %d takes %.2fx the time of one at batch 1", flight,
             step_ratio(engines[0], prompts[:flight]))
    log.info("ceiling (plain HF decoding, no stepper): a step at batch %d takes %.2fx one at batch 1, so %d rows "
             "in lockstep give at most %.2fx the tokens/s of one at a time", flight,
             plain[flight] / plain[1], flight, flight * plain[1] / plain[flight])
    lengths: dict[str, list[int]] = {}
    for method in arms:
        lock, single = outputs[(method, "lockstep")], outputs[(method, "single")]
        if method == "nudging":
            lengths[method] = [r.cost["generated_tokens"] for r in lock]
            same = [a.text for a in lock] == [b.text for b in single]
        else:
            lengths[method] = [len(d.tokens) for d in lock]
            same = [a.tokens for a in lock] == [b.tokens for b in single]
        tokens = sum(lengths[method])
        arms_ = ("lockstep", "single")
        rate = {arm: tokens * args.repeats / seconds[(method, arm)] for arm in arms_}
        decode = {arm: tokens * args.repeats / max(seconds[(method, arm)] - seconds[("prefill", arm)], 1e-9)
                  for arm in arms_}
        log.info("%-13s lockstep %8.1f tokens/s | one at a time %8.1f tokens/s | ratio %5.2fx | identical "
                 "outputs: %s", method, rate["lockstep"], rate["single"], rate["lockstep"] / rate["single"], same)
        log.info("%-13s after prefill: lockstep %8.1f tokens/s | one at a time %8.1f tokens/s | ratio %5.2fx",
                 "", decode["lockstep"], decode["single"], decode["lockstep"] / decode["single"])
        log.info("%-13s forward passes: lockstep %d | one at a time %d", "", forwards[(method, "lockstep")],
                 forwards[(method, "single")])
        log.info("%-13s ceiling at these answer lengths (%s tokens; plain steps, batch as items end and join): "
                 "%.2fx after prefill", "", ",".join(map(str, lengths[method])),
                 ideal_ratio(lengths[method], plain, flight))
    log.info("prefill of %d prompts x %d models: lockstep %.2fs, one at a time %.2fs (per round)", len(prompts),
             len(engines), seconds[("prefill", "lockstep")] / args.repeats,
             seconds[("prefill", "single")] / args.repeats)


if __name__ == "__main__":
    main()
