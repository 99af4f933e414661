"""Convert MoCo-format benchmark JSON into canonical :class:`Item` records.

A MoCo file is ``{"name" | "dataset": str, "task_type": str, "dev": [row, ...], "test": [row, ...]}``
(a ``train`` list is accepted too). Row fields by task type, as MoCo's reader (``model_collaboration/data/
eval.py``) and the published files use them:

- multiple_choice: ``question``, ``choices`` (dict key -> text, or a list), ``answer`` (a key); extra fields
  such as ``domain`` or ``country`` go to ``metadata``. Choice keys are letters (either case, optionally
  written ``(A)``/``A)``/``A.``/``Option A``) or digits; ARC uses ``"1".."4"`` on some rows: they are remapped
  to ``A..D`` in numeric order (answer remapped the same way) and the original keys kept in
  ``metadata["original_choice_keys"]``. Keys that are neither (``"id"``, ``"explanation"``) are not options:
  they are ignored with a warning and listed in ``metadata["ignored_choice_keys"]``. Options with identical
  text are kept (the gold key decides) and listed in ``metadata["duplicate_options"]``. A null or blank
  option is an option that is not there (culturalbench_hard ``dev[221]`` has ``"D": null``; MoCo would show
  "D) None"): it is dropped with a warning and listed in ``metadata["dropped_blank_options"]``; when it is
  the answer's option, :class:`DataError`.
  BLEnD repeats the options inside the question text; that inline copy is cut off
  (``metadata["inline_options_stripped"] = True``) so prompts do not list the options twice.
- exact_match: ``input``, ``output`` (the gold; ``answer_type`` such as TheoremQA's ``float`` /
  ``list of integer`` stays in ``metadata``). A flat JSON list gold is written as ``[a, b]`` (the form
  TheoremQA uses as text); a nested one is a DataError.
- f1_match: ``input``, ``output`` (or ``answers`` / ``answer``): a list of aliases, one string, or -- as
  MoCo's PopQA -- a list literal inside one string (``"[\\"football\\", \\"soccer\\"]"``, JSON or Python
  syntax), which is parsed into aliases (never split on commas). Aliases may contain newlines.
- coding: ``input``, ``test`` (defines ``check(candidate)``), optional ``entry_point``. Without that field the
  entry point is the last top-level ``def`` of the prompt code (HumanEval) or the function named in the
  prompt's ``assert NAME(`` (MBPP). HumanEval prompt code goes to ``metadata["prompt_code"]``.
- noncompliance: ``input``, ``category`` (to ``metadata["category"]``); gold is None.
- reward_model: ``input``; an ``output`` is a reference response (``metadata["reference"]``), gold is None.
- generation_diversity: ``input``, ``reference`` (a non-empty list of reference responses) -> gold.

Gold and option values: strings are used as they are; JSON numbers and booleans are written as Python
writes them (``7``, ``0.5``, ``1e-07``, ``True``) -- lossless, and documented here rather than silent. NaN or
infinite numbers, null or nested values inside a gold (an alias list, a reference list), nested option
texts, integer MC answers that are not a choice key, and anything nested deeper than :data:`MAX_NESTING`
raise :class:`DataError`.

Integer MC answers: MoCo compares ``item["answer"]`` to the chosen option's *letter* (a string), so an
answer is always a choice key, never an index. An integer is accepted only where it names a digit key
(``1`` for ARC's ``"1"``); with letter keys it is refused (0-based and 1-based readings disagree), with the
fix in the message.

Defects handled: missing ids become ``f"{split}-{index}"``; duplicate ids inside a split get a ``#k``
suffix (the first keeps its id; ``metadata["source_id"]`` keeps the original); rows without a single gold
answer -- a gold field that is ``null``, ``""`` or ``[]``, or a multiple-choice answer listing several keys
(MoCo compares the answer with one letter, so such rows can never score there) -- are dropped with a warning
(``on_missing_gold="drop"``, the default; MATH has 12 such rows) or rejected (``"error"``). Every other
malformed value raises :class:`DataError` naming the file, split, row index (and line, for JSONL) and field;
a file that is not UTF-8 names the byte offset, line and column of the first bad byte.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mocoflow.data.errors import DataError
from mocoflow.data.json_text import MAX_NESTING, decode_utf8, parse_json_text, read_json_file, read_jsonl_rows
from mocoflow.data.moco_values import (
    check_nesting,
    gold_aliases,
    is_empty,
    normalise_choices,
    parse_alias_literal,
    scalar_text,
    short_repr,
)
from mocoflow.data.schema import SPLITS, TASK_TYPES, Item

__all__ = ["MAX_NESTING", "MISSING_GOLD_POLICIES", "DataError", "decode_utf8", "find_entry_point", "load_moco_file",
           "moco_to_items", "parse_alias_literal", "parse_json_text", "read_jsonl_rows", "read_moco_json",
           "scalar_text"]

log = logging.getLogger("mocoflow.data.moco")

MISSING_GOLD_POLICIES = ("drop", "error")
_HUMANEVAL_PREFIX = re.compile(r"^\s*Complete the following code\s*\n")
_TOP_LEVEL_DEF = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.M)
_ASSERT_CALL = re.compile(r"assert\s*\(*\s*([A-Za-z_]\w*)\s*\(")
_INLINE_OPTIONS = re.compile(
    r"\s*Without any explanation, choose only one from the given alphabet choices.*$", re.S
)
_GOLD_FIELDS = ("output", "answers", "answer")


# Rows dropped for an empty gold answer, per split, while a caller counts them (count_dropped_golds).
_DROPPED_GOLDS: contextvars.ContextVar[Counter[str] | None] = contextvars.ContextVar("dropped_golds",
                                                                                  default=None)


@contextlib.contextmanager
def count_dropped_golds() -> Iterator[Counter[str]]:
    """Count, per split, the rows the converters drop for want of a single gold answer (``on_missing_gold:
    drop``) while the block runs: ``prepare`` records them in the task's ``meta.json``."""
    counter: Counter[str] = Counter()
    token = _DROPPED_GOLDS.set(counter)
    try:
        yield counter
    finally:
        _DROPPED_GOLDS.reset(token)


class _MissingGold(Exception):
    """Internal: a row has no single gold answer (its gold field is null, '', [], or -- multiple choice -- it
    lists several answer keys, which MoCo's scorer can never match)."""

    def __init__(self, field: str, reason: str = "is empty (no gold answer)") -> None:
        super().__init__(field)
        self.field = field
        self.reason = reason


# --------------------------------------------------------------------------- values


def _require(row: dict[str, Any], field: str, where: str) -> Any:
    if field not in row:
        raise DataError(f"{where}: field {field!r} missing")
    return row[field]


def _require_text(row: dict[str, Any], fields: tuple[str, ...], where: str) -> tuple[str, str]:
    """Return (field, text) for the first of ``fields`` present; the text must be a non-empty string."""
    for field in fields:
        if field in row:
            value = row[field]
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: field {field!r} must be a non-empty string, got {value!r:.80}")
            return field, value
    raise DataError(f"{where}: field {fields[0]!r} missing")


def _extras(row: dict[str, Any], used: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in used and k != "id"}


def _gold_field(row: dict[str, Any], where: str) -> str:
    for field in _GOLD_FIELDS:
        if field in row:
            return field
    raise DataError(f"{where}: field 'output' missing")


# --------------------------------------------------------------------------- multiple choice


def _multiple_choice(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("question", "input"), where)
    raw = _require(row, "choices", where)
    answer = _require(row, "answer", where)
    if is_empty(answer):
        raise _MissingGold("answer")
    if isinstance(answer, list):  # AGIEval-style multi-answer rows: a one-key list is that key
        if len(answer) > 1:
            raise _MissingGold("answer", f"lists {len(answer)} answer keys (multi-answer rows are not graded)")
        answer = answer[0]
    choices, gold, meta = normalise_choices(raw, answer, where)
    stripped = _INLINE_OPTIONS.sub("", question)
    if stripped != question and stripped.strip():
        question = stripped
        meta["inline_options_stripped"] = True
    meta.update(_extras(row, {qfield, "choices", "answer"}))
    return {"question": question, "choices": choices, "gold": gold, "metadata": meta}


# --------------------------------------------------------------------------- exact / f1


def _exact_match(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    field = _gold_field(row, where)
    gold = row[field]
    if is_empty(gold):
        raise _MissingGold(field)
    if isinstance(gold, list):  # a list answer given as a JSON list (TheoremQA writes "[1, 6]" as text)
        text = "[" + ", ".join(scalar_text(x, where, f"{field}[{k}]") for k, x in enumerate(gold)) + "]"
    else:
        text = scalar_text(gold, where, field)
    meta = _extras(row, {qfield, field})
    if "answer_type" in meta and not isinstance(meta["answer_type"], str):
        raise DataError(f"{where}: field 'answer_type' must be a string, got {short_repr(meta['answer_type'])}")
    return {"question": question, "gold": text, "metadata": meta}


def _f1_match(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    field = _gold_field(row, where)
    gold = row[field]
    if is_empty(gold):
        raise _MissingGold(field)
    aliases = gold_aliases(gold, where, field)
    if not aliases:
        raise _MissingGold(field)
    return {"question": question, "gold": aliases, "metadata": _extras(row, {qfield, field})}


# --------------------------------------------------------------------------- other task types


def find_entry_point(prompt: str, test: str = "") -> str | None:
    """Name of the function under test: the last top-level ``def`` in prompt code (HumanEval), else the
    first name called in an ``assert NAME(`` of the prompt (MBPP), else one in the test that is not
    ``candidate``."""
    defs = _TOP_LEVEL_DEF.findall(prompt)
    if defs:
        return defs[-1]
    for text in (prompt, test):
        names = [n for n in _ASSERT_CALL.findall(text) if n not in ("candidate", "isinstance", "abs", "set")]
        if names:
            return names[0]
    return None


def _coding(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    test = _require(row, "test", where)
    if is_empty(test):
        raise _MissingGold("test")
    if not isinstance(test, str) or "def check(" not in test:
        raise DataError(f"{where}: field 'test' must define check(candidate)")
    meta = _extras(row, {qfield, "test", "entry_point"})
    code = _HUMANEVAL_PREFIX.sub("", question, count=1)
    if _TOP_LEVEL_DEF.search(code):
        meta["prompt_code"] = code
    entry = row.get("entry_point") or find_entry_point(code, test)
    if not entry:
        raise DataError(f"{where}: field 'entry_point' missing and not found in the prompt or test")
    if not isinstance(entry, str):
        raise DataError(f"{where}: field 'entry_point' must be a string, got {short_repr(entry)}")
    meta["entry_point"] = entry
    return {"question": question, "gold": test, "metadata": meta}


def _noncompliance(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    _, category = _require_text(row, ("category",), where)
    return {"question": question, "gold": None,
            "metadata": {**_extras(row, {qfield, "category"}), "category": category}}


def _reward_model(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    meta = _extras(row, {qfield, "output"})
    if not is_empty(row.get("output")):
        meta["reference"] = row["output"]
    return {"question": question, "gold": None, "metadata": meta}


def _generation_diversity(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    refs = _require(row, "reference", where)
    if is_empty(refs):
        raise _MissingGold("reference")
    if not isinstance(refs, list):
        raise DataError(f"{where}: field 'reference' must be a list of reference responses, got "
                        f"{type(refs).__name__}")
    texts = [scalar_text(r, where, f"reference[{k}]") for k, r in enumerate(refs)]
    if not all(t.strip() for t in texts):
        raise DataError(f"{where}: field 'reference' holds an empty reference response")
    extras = _extras(row, {qfield, "reference"})
    if is_empty(extras.get("output")):
        extras.pop("output", None)
    return {"question": question, "gold": texts, "metadata": extras}


_CONVERTERS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "multiple_choice": _multiple_choice,
    "exact_match": _exact_match,
    "f1_match": _f1_match,
    "coding": _coding,
    "noncompliance": _noncompliance,
    "reward_model": _reward_model,
    "generation_diversity": _generation_diversity,
}

# metadata flags a converter sets on a row, reported once per split: flag -> what it means
_FLAGS = {"ignored_choice_keys": "ignored non-option key(s) in 'choices'",
          "duplicate_options": "options with identical text (graded by the gold key)",
          "dropped_blank_options": "null or blank options dropped (none was the answer)"}


# --------------------------------------------------------------------------- splits and files


def _unique_ids(raw_ids: list[str]) -> tuple[list[str], int]:
    """Keep the first of each id; later duplicates get ``#1``, ``#2``, ... (skipping ids already taken)."""
    taken = set(raw_ids)
    seen: set[str] = set()
    counts: dict[str, int] = {}
    out, n_dups = [], 0
    for rid in raw_ids:
        if rid not in seen:
            seen.add(rid)
            out.append(rid)
            continue
        n_dups += 1
        k = counts.get(rid, 0)
        while True:
            k += 1
            new = f"{rid}#{k}"
            if new not in taken and new not in seen:
                break
        counts[rid] = k
        seen.add(new)
        out.append(new)
    return out, n_dups


def _row_id(row: dict[str, Any], split: str, index: int, where: str) -> str:
    raw_id = row.get("id")
    if is_empty(raw_id):
        return f"{split}-{index}"
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise DataError(f"{where}: field 'id' must be a string or integer, got {short_repr(raw_id)}")
    return str(raw_id)


def _convert_split(rows: Any, *, task: str, split: str, task_type: str, label: str,
                   on_missing_gold: str, lines: list[int] | None = None) -> list[Item]:
    if not isinstance(rows, list):
        raise DataError(f"{label}: {split}: must be a list of rows, got {type(rows).__name__}")
    convert = _CONVERTERS[task_type]
    kept: list[tuple[int, str, dict[str, Any]]] = []
    dropped: dict[str, list[int]] = {}
    flagged: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        where = f"{label}: {split}[{index}]" + (f" (line {lines[index]})" if lines else "")
        if not isinstance(row, dict):
            raise DataError(f"{where}: row must be a JSON object, got {type(row).__name__}")
        check_nesting(row, where)
        try:
            fields = convert(row, where)
        except _MissingGold as missing:
            if on_missing_gold == "error":
                raise DataError(f"{where}: field {missing.field!r} {missing.reason}") from None
            dropped.setdefault(f"field {missing.field!r} {missing.reason}", []).append(index)
            continue
        for flag in _FLAGS:
            if flag in fields["metadata"]:
                flagged.setdefault(flag, []).append(index)
        fields["metadata"]["source_index"] = index
        kept.append((index, _row_id(row, split, index, where), fields))
    counter = _DROPPED_GOLDS.get()
    if counter is not None and dropped:
        counter[split] += sum(len(indices) for indices in dropped.values())
    for why, indices in dropped.items():
        log.warning("%s: %s: dropped %d row(s) whose %s (indices %s)", label, split, len(indices), why,
                    indices[:20])
    for flag, indices in flagged.items():
        example = kept[[k for k, _, _ in kept].index(indices[0])][2]["metadata"][flag]
        log.warning("%s: %s: %d row(s) with %s (indices %s; e.g. %s)", label, split, len(indices), _FLAGS[flag],
                    indices[:10], example)
    ids, n_dups = _unique_ids([rid for _, rid, _ in kept])
    if n_dups:
        log.warning("%s: %s: %d duplicate id(s) made unique with a '#k' suffix", label, split, n_dups)
    items = []
    for (_, raw_id, fields), uid in zip(kept, ids, strict=True):
        if uid != raw_id:
            fields["metadata"]["source_id"] = raw_id
        items.append(Item(id=uid, task=task, split=split, task_type=task_type, **fields))
    return items


def moco_to_items(data: Any, *, task: str | None = None, label: str = "<moco>", task_type: str | None = None,
                  on_missing_gold: str = "drop",
                  lines: dict[str, list[int]] | None = None) -> dict[str, list[Item]]:
    """Convert a parsed MoCo JSON object into items per split (``train``/``dev``/``test``; absent -> []).

    ``lines`` (split -> the source line of each row) makes errors name lines, for rows read from JSONL."""
    if on_missing_gold not in MISSING_GOLD_POLICIES:
        raise DataError(f"{label}: on_missing_gold must be one of {MISSING_GOLD_POLICIES}, "
                        f"got {on_missing_gold!r}")
    if not isinstance(data, dict):
        raise DataError(f"{label}: top level must be a JSON object, got {type(data).__name__}")
    task = task or data.get("name") or data.get("dataset") or Path(label).stem
    task_type = task_type or data.get("task_type")
    if task_type is None:
        raise DataError(f"{label}: field 'task_type' missing")
    if task_type not in TASK_TYPES:
        raise DataError(f"{label}: field 'task_type': unknown {task_type!r}; valid: {', '.join(TASK_TYPES)}")
    if not any(s in data for s in SPLITS):
        raise DataError(f"{label}: no split found; expected one of {', '.join(SPLITS)}")
    return {split: _convert_split(data.get(split, []), task=str(task), split=split, task_type=task_type,
                                  label=label, on_missing_gold=on_missing_gold,
                                  lines=(lines or {}).get(split)) for split in SPLITS}


def read_moco_json(path: str | Path) -> Any:
    """Parse a MoCo JSON file; a file that is not UTF-8 or not JSON raises :class:`DataError` naming it
    (byte offset, line and column)."""
    return read_json_file(path)


def load_moco_file(path: str | Path, *, task: str | None = None, task_type: str | None = None,
                   on_missing_gold: str = "drop") -> dict[str, list[Item]]:
    """Read and convert one MoCo JSON file; errors name the file by its base name.

    The task is named by the file (``task`` overrides), as MoCo names a set by its file: the name inside
    may differ (``culturebench.json`` says ``"name": "culturebench_hard"``, which is another set's name)."""
    path = Path(path)
    data = read_moco_json(path)
    inner = data.get("name") or data.get("dataset") if isinstance(data, dict) else None
    if task is None and inner and inner != path.stem:
        log.info("%s: its inner name %r differs from the file name; the set is named %r", path.name, inner,
                 path.stem)
    return moco_to_items(data, task=task or path.stem, label=path.name, task_type=task_type,
                         on_missing_gold=on_missing_gold)

