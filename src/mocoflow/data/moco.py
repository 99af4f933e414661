"""Convert MoCo-format benchmark JSON into canonical :class:`Item` records.

A MoCo file is ``{"name" | "dataset": str, "task_type": str, "dev": [row, ...], "test": [row, ...]}``
(a ``train`` list is accepted too). Row fields by task type, as found in the published files:

- multiple_choice: ``question``, ``choices`` (dict key -> text), ``answer`` (a key); extra fields such as
  ``domain`` or ``country`` go to ``metadata``. ARC uses keys ``"1".."4"`` on some rows: they are remapped
  to ``A..D`` (answer remapped the same way) and the original keys kept in
  ``metadata["original_choice_keys"]``.
  BLEnD repeats the options inside the question text; that inline copy is cut off
  (``metadata["inline_options_stripped"] = True``) so prompts do not list the options twice.
- exact_match / f1_match: ``input``, ``output`` (gold; for f1_match a string or a list of aliases).
- coding: ``input``, ``test`` (defines ``check(candidate)``), optional ``entry_point``. Without that field the
  entry point is the last top-level ``def`` of the prompt code (HumanEval) or the function named in the
  prompt's ``assert NAME(`` (MBPP). HumanEval prompt code goes to ``metadata["prompt_code"]``.
- noncompliance: ``input``, ``category`` (to ``metadata["category"]``); gold is None.
- reward_model: ``input``; an ``output`` is a reference response (``metadata["reference"]``), gold is None.

Defects handled: missing ids become ``f"{split}-{index}"``; duplicate ids inside a split get a ``#k``
suffix (the first keeps its id; ``metadata["source_id"]`` keeps the original); rows whose gold field is
present but empty/null are dropped with a warning (``on_missing_gold="drop"``, the default) or rejected
(``"error"``). A missing field, a bad answer key or a non-JSON file raises :class:`DataError` naming the
file, split, row index and field.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mocoflow.data.schema import SPLITS, TASK_TYPES, Item

log = logging.getLogger("mocoflow.data.moco")

MISSING_GOLD_POLICIES = ("drop", "error")
_HUMANEVAL_PREFIX = re.compile(r"^\s*Complete the following code\s*\n")
_TOP_LEVEL_DEF = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.M)
_ASSERT_CALL = re.compile(r"assert\s*\(*\s*([A-Za-z_]\w*)\s*\(")
_INLINE_OPTIONS = re.compile(
    r"\s*Without any explanation, choose only one from the given alphabet choices.*$", re.S
)


class DataError(ValueError):
    """A task source is malformed; the message names the file, split, row index and field."""


class _MissingGold(Exception):
    """Internal: a row's gold field is present but empty (null, '', [])."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def _where(label: str, split: str, index: int) -> str:
    return f"{label}: {split}[{index}]"


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


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | dict) and len(value) == 0)


def _extras(row: dict[str, Any], used: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in used and k != "id"}


def _letter_keys(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def _key_range(keys: list[str]) -> str:
    return f"{keys[0]}-{keys[-1]}" if len(keys) > 1 else keys[0]


def _normalise_choices(raw: Any, answer: Any, where: str) -> tuple[dict[str, str], str, dict[str, Any]]:
    """Return (choices keyed A.., answer letter, metadata) from a MoCo choices dict or list."""
    meta: dict[str, Any] = {}
    if isinstance(raw, list):
        raw = dict(zip(_letter_keys(len(raw)), raw, strict=True))
    if not isinstance(raw, dict) or len(raw) < 2:
        raise DataError(f"{where}: field 'choices' must be a dict of at least 2 options, got {raw!r:.80}")
    keys = [str(k) for k in raw]
    texts = [str(v) for v in raw.values()]
    answer = str(answer).strip()
    if all(k.isdigit() for k in keys):  # ARC: "1".."4" -> "A".."D", answer remapped the same way
        order = sorted(range(len(keys)), key=lambda i: int(keys[i]))
        mapping = {keys[i]: letter for letter, i in zip(_letter_keys(len(keys)), order, strict=True)}
        if answer not in mapping:
            raise DataError(f"{where}: field 'answer': answer {answer!r} not among choices "
                            f"{_key_range(sorted(keys, key=int))}")
        meta["original_choice_keys"] = keys
        choices = {mapping[keys[i]]: texts[i] for i in order}
        return choices, mapping[answer], meta
    if not all(len(k) == 1 and "A" <= k <= "Z" for k in keys):
        raise DataError(f"{where}: field 'choices': keys must be letters A.. or digits 1.., got {keys}")
    choices = {k: t for k, t in sorted(zip(keys, texts, strict=True))}
    if answer not in choices:
        raise DataError(f"{where}: field 'answer': answer {answer!r} not among choices "
                        f"{_key_range(sorted(choices))}")
    return choices, answer, meta


def _multiple_choice(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("question", "input"), where)
    raw = _require(row, "choices", where)
    answer = _require(row, "answer", where)
    if _empty(answer):
        raise _MissingGold("answer")
    choices, gold, meta = _normalise_choices(raw, answer, where)
    stripped = _INLINE_OPTIONS.sub("", question)
    if stripped != question and stripped.strip():
        question = stripped
        meta["inline_options_stripped"] = True
    meta.update(_extras(row, {qfield, "choices", "answer"}))
    return {"question": question, "choices": choices, "gold": gold, "metadata": meta}


def _exact_match(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    gold = _require(row, "output", where)
    if _empty(gold):
        raise _MissingGold("output")
    if isinstance(gold, list | dict):
        raise DataError(f"{where}: field 'output' must be a string or number, got {type(gold).__name__}")
    return {"question": question, "gold": str(gold), "metadata": _extras(row, {qfield, "output"})}


def _f1_match(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    gold = _require(row, "output", where)
    if _empty(gold):
        raise _MissingGold("output")
    aliases = [str(g) for g in gold] if isinstance(gold, list) else [str(gold)]
    return {"question": question, "gold": aliases, "metadata": _extras(row, {qfield, "output"})}


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
    if _empty(test):
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
    meta["entry_point"] = entry
    return {"question": question, "gold": test, "metadata": meta}


def _noncompliance(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    category = _require(row, "category", where)
    return {"question": question, "gold": None,
            "metadata": {**_extras(row, {qfield, "category"}), "category": category}}


def _reward_model(row: dict[str, Any], where: str) -> dict[str, Any]:
    qfield, question = _require_text(row, ("input", "question"), where)
    meta = _extras(row, {qfield, "output"})
    if not _empty(row.get("output")):
        meta["reference"] = row["output"]
    return {"question": question, "gold": None, "metadata": meta}


_CONVERTERS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "multiple_choice": _multiple_choice,
    "exact_match": _exact_match,
    "f1_match": _f1_match,
    "coding": _coding,
    "noncompliance": _noncompliance,
    "reward_model": _reward_model,
}


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


def _convert_split(rows: Any, *, task: str, split: str, task_type: str, label: str,
                   on_missing_gold: str) -> list[Item]:
    if not isinstance(rows, list):
        raise DataError(f"{label}: {split}: must be a list of rows, got {type(rows).__name__}")
    convert = _CONVERTERS[task_type]
    kept: list[tuple[int, str, dict[str, Any]]] = []
    dropped: list[int] = []
    for index, row in enumerate(rows):
        where = _where(label, split, index)
        if not isinstance(row, dict):
            raise DataError(f"{where}: row must be a JSON object, got {type(row).__name__}")
        try:
            fields = convert(row, where)
        except _MissingGold as missing:
            if on_missing_gold == "error":
                raise DataError(f"{where}: field {missing.field!r} is empty (no gold answer)") from None
            dropped.append(index)
            continue
        raw_id = row.get("id")
        rid = f"{split}-{index}" if _empty(raw_id) else str(raw_id)
        fields["metadata"]["source_index"] = index
        kept.append((index, rid, fields))
    if dropped:
        log.warning("%s: %s: dropped %d row(s) with an empty gold field (indices %s)", label, split,
                    len(dropped), dropped[:20])
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
                  on_missing_gold: str = "drop") -> dict[str, list[Item]]:
    """Convert a parsed MoCo JSON object into items per split (``train``/``dev``/``test``; absent -> [])."""
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
                                  label=label, on_missing_gold=on_missing_gold) for split in SPLITS}


def read_moco_json(path: str | Path) -> Any:
    """Parse a MoCo JSON file; a file that is not JSON raises :class:`DataError` naming it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise DataError(f"{path.name}: not valid JSON: {err.msg} "
                        f"at line {err.lineno} column {err.colno}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path.name}: not UTF-8 text ({err.reason})") from None


def load_moco_file(path: str | Path, *, task: str | None = None, task_type: str | None = None,
                   on_missing_gold: str = "drop") -> dict[str, list[Item]]:
    """Read and convert one MoCo JSON file; errors name the file by its base name."""
    path = Path(path)
    return moco_to_items(read_moco_json(path), task=task, label=path.name, task_type=task_type,
                         on_missing_gold=on_missing_gold)
