"""The replay backend: answers recorded in an exported generations table (:mod:`mocoflow.export_table`).

A ``source: replay`` model (:mod:`mocoflow.models_weightless`) names a table and a column group; its ``generate``
jobs read the recorded answer of every prompt instead of running a model, so routers, cascades and votes run on
generations computed elsewhere (another study, another machine, a served API, a hand-scripted pool) with no
model loaded. A prompt is found by its text (the prompt before any chat template, as the study builds it) and the
decoding seed (a table with one seed per prompt -- greedy generations -- serves every seed). A prompt the table
does not hold is an error naming the table and the prompt: replay never makes an answer up.

Replayed answers keep their recorded costs (prompt and generated tokens, log-probability); the work was done
elsewhere, so usage counts it as ``cached_tokens`` (as for response-cache hits), not as this job's model work.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mocoflow.engines.base import BACKEND_CAPABILITIES, DecodingConfig, Engine, Generation, Usage


class ReplayMiss(KeyError):
    """A prompt the recorded table does not hold."""

    def __str__(self) -> str:
        return str(self.args[0])


def _number(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        f = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(f) else f


class ReplayEngine(Engine):
    """Recorded answers of one column group of a table, looked up by prompt and seed."""

    backend = "replay"
    capabilities = BACKEND_CAPABILITIES["replay"]

    def __init__(self, name: str, table: str | Path, column: str, *, fingerprint: str, parameters: int = 0) -> None:
        from mocoflow.export_table import column as col
        from mocoflow.export_table import read_columns, read_table

        self.name = name
        self.table = Path(table)
        self.column = column
        self.fingerprint = fingerprint
        self.usage = Usage(device="none")
        if parameters:
            self.usage.parameters[name] = int(parameters)
        available = read_columns(self.table)
        if col(column, "output") not in available or "prompt" not in available:
            raise ValueError(f"model {name!r}: {self.table} has no 'prompt' and {col(column, 'output')!r} columns "
                             f"(models in it: {sorted(c.split('|')[0] for c in available if c.endswith('|output'))})")
        fields = ("output", "prompt_tokens", "generated_tokens", "sum_logprob")
        wanted = ["prompt", "seed"] + [col(column, f) for f in fields if col(column, f) in available]
        df = read_table(self.table, columns=[c for c in wanted if c in available])
        self._answers: dict[str, dict[int, Generation]] = {}
        for row in df.to_dict("records"):
            output = row.get(col(column, "output"))
            if output is None or (isinstance(output, float) and math.isnan(output)) or row["prompt"] is None:
                continue  # this model has no generation for this row
            gen = Generation(text=str(output), prompt_tokens=int(_number(row.get(col(column, "prompt_tokens")), 0)),
                             generated_tokens=int(_number(row.get(col(column, "generated_tokens")), 0)),
                             sum_logprob=_number(row.get(col(column, "sum_logprob")), math.nan))
            seeds = self._answers.setdefault(str(row["prompt"]), {})
            seed = int(_number(row.get("seed"), 0))
            if seed in seeds and seeds[seed].text != gen.text:
                raise ValueError(f"model {name!r}: {self.table} records two different answers to one prompt with "
                                 f"seed {seed} (the same prompt in two tasks or splits?): {str(row['prompt'])[:80]!r}")
            seeds[seed] = gen

    @classmethod
    def from_descriptor(cls, name: str, descriptor: str | Path) -> ReplayEngine:
        """The engine a ``source: replay`` card points to (``replay.json``: table, column, fingerprint, ...)."""
        d = json.loads(Path(descriptor).read_text())
        return cls(name, d["table"], d["column"], fingerprint=d["fingerprint"], parameters=int(d.get("parameters", 0)))

    def __len__(self) -> int:
        return sum(len(v) for v in self._answers.values())

    def answer(self, prompt: str, seed: int) -> Generation:
        seeds = self._answers.get(prompt)
        if not seeds:
            raise ReplayMiss(f"model {self.name!r}: {self.table} (column group {self.column!r}) holds no answer to "
                             f"the prompt {prompt[:100]!r}; replay answers only the prompts the table recorded "
                             "(same task, split and prompt style)")
        if seed in seeds:
            return seeds[seed]
        if len(seeds) == 1:  # recorded once (greedy): the same answer serves every seed
            return next(iter(seeds.values()))
        raise ReplayMiss(f"model {self.name!r}: {self.table} records seeds {sorted(seeds)} for the prompt "
                         f"{prompt[:60]!r}, not seed {seed}")

    def generate_batches(self, prompts: list[str], decoding: DecodingConfig, *, chat: bool = True
                         ) -> Iterator[list[tuple[int, Generation]]]:
        if not chat:
            self.refuse_raw()
        gens = [self.answer(p, decoding.seed) for p in prompts]  # every prompt checked before any is returned
        for g in gens:
            self.usage.cached_tokens += g.prompt_tokens + g.generated_tokens
        yield list(enumerate(gens))

    def refuse_raw(self) -> None:
        raise ValueError(f"model {self.name!r}: replay answers the study's (chat) prompts only, not raw completions")
