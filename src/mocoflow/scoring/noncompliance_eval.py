"""Agreement of noncompliance scorers with hand labels: the table in the README's "Noncompliance scoring".

    python -m mocoflow.scoring.noncompliance_eval                                # the offline rules
    python -m mocoflow.scoring.noncompliance_eval --judge-model PATH [--decision logprob]   # + a judge model

The labelled set (default ``tests/data/noncompliance/labelled.jsonl``) has one JSON object per line:
``id``, ``category`` (a CoCoNot category), ``request``, ``response``, ``label`` (``noncompliant`` |
``compliant``, written by hand), ``reason``, ``source`` and ``split`` (``tune``: the rules were developed
looking at these; ``heldout``: never looked at while tuning). The positive class is ``noncompliant`` (what
the scorer credits): precision = of the responses a scorer credits, the share the label credits; recall =
of the responses the label credits, the share the scorer credits.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("mocoflow.noncompliance_eval")

DEFAULT_SET = Path(__file__).resolve().parents[3] / "tests" / "data" / "noncompliance" / "labelled.jsonl"
LABELS = ("noncompliant", "compliant")
SPLITS = ("tune", "heldout")
FIELDS = ("id", "category", "request", "response", "label", "reason", "source", "split")
SHORT = {"Requests with safety concerns": "unsafe", "Incomplete requests": "incomplete",
         "Unsupported requests": "unsupported", "Humanizing requests": "humanizing",
         "Indeterminate requests": "indeterminate"}


class LabelledSetError(ValueError):
    """A labelled-set row is malformed (the message names the file, line and field)."""


@dataclass(frozen=True)
class Example:
    id: str
    category: str
    request: str
    response: str
    label: str
    reason: str
    source: str
    split: str

    @property
    def noncompliant(self) -> bool:
        return self.label == "noncompliant"


def load_labelled(path: Path) -> list[Example]:
    """Read and check the labelled set (every field present and a string; known label, split, category)."""
    from mocoflow.scoring.noncompliance import CATEGORY_RULES

    out, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise LabelledSetError(f"{where}: not JSON ({err})") from None
            for key in FIELDS:
                if not isinstance(row.get(key), str):
                    raise LabelledSetError(f"{where}: field {key!r} missing or not a string")
            if row["label"] not in LABELS:
                raise LabelledSetError(f"{where}: field 'label' must be one of {LABELS}, got {row['label']!r}")
            if row["split"] not in SPLITS:
                raise LabelledSetError(f"{where}: field 'split' must be one of {SPLITS}, got {row['split']!r}")
            if row["category"] not in CATEGORY_RULES:
                raise LabelledSetError(f"{where}: field 'category' {row['category']!r} is not one of "
                                       f"{sorted(CATEGORY_RULES)}")
            if row["id"] in seen:
                raise LabelledSetError(f"{where}: duplicate id {row['id']!r}")
            seen.add(row["id"])
            out.append(Example(**{k: row[k] for k in FIELDS}))
    return out


@dataclass(frozen=True)
class Agreement:
    n: int
    agree: int
    tp: int
    fp: int
    fn: int
    missing: int = 0  # no verdict (judge output unparseable or skipped): counted as disagreement

    @property
    def agreement(self) -> float:
        return self.agree / self.n if self.n else float("nan")

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")


def agreement(examples: Sequence[Example], verdicts: dict[str, bool | None]) -> Agreement:
    """Compare verdicts (id -> noncompliant?, None when the scorer gave none) with the hand labels."""
    n = agree = tp = fp = fn = missing = 0
    for ex in examples:
        v = verdicts.get(ex.id)
        n += 1
        if v is None:
            missing += 1
            fn += ex.noncompliant
            continue
        agree += v == ex.noncompliant
        tp += v and ex.noncompliant
        fp += v and not ex.noncompliant
        fn += (not v) and ex.noncompliant
    return Agreement(n, agree, tp, fp, fn, missing)


def rules_verdicts(examples: Sequence[Example]) -> dict[str, bool | None]:
    from mocoflow.scoring.noncompliance import judge

    return {ex.id: judge(ex.category, ex.request, ex.response).noncompliant for ex in examples}


def judge_verdicts(examples: Sequence[Example], spec_dict: dict[str, Any]) -> dict[str, bool | None]:
    """Run a noncompliance judge (see :mod:`mocoflow.scoring.judges`) over the set; None where it gave no
    verdict."""
    from mocoflow.data.schema import Item
    from mocoflow.scoring.judges import JudgeSpec, run_judge

    spec = JudgeSpec.from_config("noncompliance_eval", {"kind": "noncompliance", **spec_dict})
    items = [Item(id=ex.id, task="labelled", split="test", task_type="noncompliance", question=ex.request,
                  metadata={"category": ex.category}) for ex in examples]
    rows, usage = run_judge(spec, items, {ex.id: ex.response for ex in examples})
    log.info("judge usage: %s", json.dumps(usage))
    return {r.id: (r.correct if r.status == "ok" else None) for r in rows}


def table(examples: Sequence[Example], scorers: dict[str, dict[str, bool | None]],
          split: str | None = None) -> list[dict[str, Any]]:
    """One row per scorer and category (plus "all"): n, agreement, precision, recall."""
    subset = [ex for ex in examples if split is None or ex.split == split]
    cats = [c for c in SHORT if any(ex.category == c for ex in subset)]
    rows = []
    for name, verdicts in scorers.items():
        for cat in [*cats, None]:
            group = [ex for ex in subset if cat is None or ex.category == cat]
            a = agreement(group, verdicts)
            rows.append({"scorer": name, "split": split or "all", "category": SHORT.get(cat, "all") if cat else "all",
                         "n": a.n, "agreement": a.agreement, "precision": a.precision, "recall": a.recall,
                         "missing": a.missing})
    return rows


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    def pct(x: float) -> str:
        return "–" if x != x else f"{100 * x:.0f}"  # NaN -> dash

    cats = list(dict.fromkeys(r["category"] for r in rows))
    lines = ["| scorer | split | " + " | ".join(f"{c} agr / P / R (n)" for c in cats) + " |",
             "|---|---|" + "---|" * len(cats)]
    for key in dict.fromkeys((r["scorer"], r["split"]) for r in rows):
        cells = []
        for c in cats:
            r = next((r for r in rows if (r["scorer"], r["split"], r["category"]) == (*key, c)), None)
            cells.append("" if r is None else f"{pct(r['agreement'])} / {pct(r['precision'])} / "
                                              f"{pct(r['recall'])} ({r['n']})")
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def disagreements(examples: Sequence[Example], verdicts: dict[str, bool | None],
                  keep: Callable[[Example], bool]) -> list[str]:
    return [f"[{ex.split}] {SHORT[ex.category]} label={ex.label} scorer="
            f"{'none' if verdicts.get(ex.id) is None else LABELS[not verdicts[ex.id]]} {ex.id}\n"
            f"    request:  {ex.request}\n    response: {ex.response!r}"
            for ex in examples if keep(ex) and verdicts.get(ex.id) != ex.noncompliant]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labelled", type=Path, default=DEFAULT_SET)
    p.add_argument("--judge-model", help="a local causal LM folder to run as the noncompliance judge")
    p.add_argument("--decision", choices=("generate", "logprob"), default="generate")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--split", choices=SPLITS, help="measure on this split only (default: all rows)")
    p.add_argument("--limit", type=int, default=0, help="measure on the first N examples only (0: all)")
    p.add_argument("--errors", choices=("none", *SPLITS, "all"), default="none",
                   help="print the rules' disagreements on this split")
    p.add_argument("--json", type=Path, help="also write the table rows here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    examples = [ex for ex in load_labelled(args.labelled) if args.split in (None, ex.split)]
    examples = examples[:args.limit] if args.limit else examples
    scorers = {"rules": rules_verdicts(examples)}
    if args.judge_model:
        where = Path(args.judge_model)
        name = where.parent.name if where.name == "weights" else where.name  # a study's results/models/X/weights
        scorers[f"judge ({name}, {args.decision})"] = judge_verdicts(
            examples, {"model": args.judge_model, "decision": args.decision, "gpus": 0,
                       "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size})
    splits = [args.split] if args.split else [None, "heldout"]
    rows = [r for split in splits for r in table(examples, scorers, split)]
    print(markdown(rows))
    if args.errors != "none":
        for line in disagreements(examples, scorers["rules"],
                                  lambda ex: args.errors == "all" or ex.split == args.errors):
            print(line)
    if args.json:
        from mocoflow.io import write_json

        write_json(args.json, rows)


if __name__ == "__main__":
    main()
