"""Gold round-trip check: load every set, write each item's own gold the way a model would, score it.

    python -m mocoflow.data.check FOLDER_OR_CONFIG [--markdown] [--show-failures N]

FOLDER: every ``*.json`` MoCo file in it (e.g. ``../shared/benchmarks/moco``). CONFIG: a study YAML; every
task under ``tasks:`` is loaded as the pipeline loads it (its source, caps and ``cache_dir``).

Responses written per item (the gold, as a model that knows it would answer):

- multiple_choice: ``Answer: X``; ``The answer is X.``; the option's text alone (reported as its own
  column: an option whose text is ambiguous, e.g. a substring problem, may legitimately not map);
- exact_match: ``Answer: <gold>``; ``The answer is <gold>.``; ``\\box{<gold>}`` (MoCo's prompt format);
- f1_match: for each alias: ``Answer: <alias>``; ``The answer is <alias>.``; the alias alone;
- coding, noncompliance, reward_model, generation_diversity: no gold answer to write back (``n/a``).

A set passes when every required column (all but multiple choice's text-alone one) is 100 %. Exit status
1 when a set fails or cannot be loaded, 2 when the target is neither a folder nor a file. This is a tool on
top of ``data`` and ``scoring`` (it imports the scorers); nothing in the pipeline imports it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mocoflow.data.errors import DataError
from mocoflow.data.schema import Item

log = logging.getLogger("mocoflow.data.check")

def _brace_safe(text: str) -> str:
    """``text`` with its braces escaped when they do not balance (BBH's Dyck golds ``} }``), as LaTeX needs."""
    depth = 0
    for ch in text.replace("\\{", "").replace("\\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    return text if depth == 0 else text.replace("{", "\\{").replace("}", "\\}")


FORMATS: dict[str, tuple[tuple[str, Callable[[str], str]], ...]] = {
    "multiple_choice": (("Answer: X", lambda g: f"Answer: {g}"), ("The answer is X.", lambda g: f"The answer is {g}.")),
    "exact_match": (("Answer: X", lambda g: f"Answer: {g}"), ("The answer is X.", lambda g: f"The answer is {g}."),
                    ("\\box{X}", lambda g: f"\\box{{{_brace_safe(g)}}}")),
    "f1_match": (("Answer: X", lambda g: f"Answer: {g}"), ("The answer is X.", lambda g: f"The answer is {g}."),
                 ("X alone", lambda g: g)),
}
TEXT_ALONE = "option text alone"
"""The multiple-choice column that is reported, not required."""


@dataclass
class SetResult:
    """Round-trip outcome of one set: column -> (correct, total), or why it could not be checked."""

    name: str
    task_type: str = ""
    items: int = 0
    columns: dict[str, list[int]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and all(c == t for col, (c, t) in self.columns.items() if col != TEXT_ALONE)


def _responses(item: Item) -> list[tuple[str, str]]:
    """(column, response) pairs for one item."""
    fmts = FORMATS.get(item.task_type, ())
    if item.task_type == "multiple_choice":
        out = [(col, fn(str(item.gold))) for col, fn in fmts]
        return out + [(TEXT_ALONE, (item.choices or {}).get(str(item.gold), ""))]
    if item.task_type == "exact_match":
        return [(col, fn(str(item.gold))) for col, fn in fmts]
    if item.task_type == "f1_match":
        return [(col, fn(alias)) for alias in item.gold for col, fn in fmts]
    return []


def check_items(name: str, items: list[Item], show: int = 3) -> SetResult:
    """Score every item's own gold in every format; keep up to ``show`` failing examples per column."""
    from mocoflow.scoring import score_item

    result = SetResult(name, items[0].task_type if items else "", len(items))
    for item in items:
        for col, response in _responses(item):
            tally = result.columns.setdefault(col, [0, 0])
            ok = score_item(item, response).correct
            tally[0] += int(ok)
            tally[1] += 1
            if not ok and len(result.failures.setdefault(col, [])) < show:
                result.failures[col].append(f"{item.split}/{item.id}: gold {item.gold!r:.60} <- {response!r:.80}")
    return result


def _folder_sets(folder: Path) -> list[tuple[str, Callable[[], list[Item]]]]:
    from mocoflow.data.moco import load_moco_file

    def loader(path: Path) -> Callable[[], list[Item]]:
        return lambda: [i for items in load_moco_file(path).values() for i in items]

    return [(p.stem, loader(p)) for p in sorted(folder.glob("*.json"))]


def _config_sets(path: Path) -> list[tuple[str, Callable[[], list[Item]]]]:
    import yaml

    from mocoflow.data.sources import load_task

    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    cache_dir = Path(config.get("cache_dir", "results/cache"))

    def loader(name: str, spec: dict[str, Any]) -> Callable[[], list[Item]]:
        return lambda: [i for items in load_task(name, spec, cache_dir=cache_dir).values() for i in items]

    return [(name, loader(name, spec)) for name, spec in (config.get("tasks") or {}).items()]


def run_check(target: str | Path, show: int = 3) -> list[SetResult]:
    """Round-trip every set of a folder of MoCo files or of a study config."""
    target = Path(target)
    if target.is_dir():
        sets = _folder_sets(target)
    elif target.is_file():
        sets = _config_sets(target)
    else:
        raise DataError(f"{target}: no such folder or config file")
    results = []
    for name, load in sets:
        try:
            items = load()
        except (DataError, OSError, ValueError) as err:
            results.append(SetResult(name, error=str(err)))
            continue
        results.append(check_items(name, items, show))
    return results


def _cell(tally: list[int] | None) -> str:
    if not tally:
        return "n/a"
    correct, total = tally
    if not total:
        return "n/a"
    share = (1000 * correct // total) / 10  # rounded down: 1999/2000 is 99.9 %, never 100.0 %
    return f"{share:.1f}% ({correct}/{total})"


def format_table(results: list[SetResult], markdown: bool = False) -> str:
    """The per-set shares as an aligned text table (or a Markdown table)."""
    columns = ["Answer: X", "The answer is X.", "\\box{X}", "X alone", TEXT_ALONE]
    header = ["set", "task type", "items", *columns, "result"]
    rows = []
    for r in results:
        if r.error:
            rows.append([r.name, r.task_type or "?", "-", *(["-"] * len(columns)), f"LOAD ERROR: {r.error}"])
            continue
        status = "n/a (no gold to write back)" if not r.columns else "pass" if r.passed else "FAIL"
        rows.append([r.name, r.task_type, str(r.items), *(_cell(r.columns.get(c)) for c in columns), status])
    if markdown:
        lines = ["| " + " | ".join(h.replace("|", "\\|") for h in header) + " |",
                 "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("target", help="a folder of MoCo JSON files, or a study config YAML")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--show-failures", type=int, default=3, metavar="N", help="failing examples per column")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        results = run_check(args.target, args.show_failures)
    except DataError as err:
        log.error("%s", err)
        return 2
    print(format_table(results, markdown=args.markdown))
    for r in results:
        for col, examples in r.failures.items():
            for example in examples:
                print(f"  {r.name} [{col}] {example}")
    return 0 if results and all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
