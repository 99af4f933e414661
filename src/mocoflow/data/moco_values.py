"""Values inside MoCo rows: gold and option text, alias lists stored as list literals, choice dictionaries.

Conversions are explicit and documented in :mod:`mocoflow.data.moco`: strings as they are, JSON numbers and
booleans as Python writes them; NaN, null and nested values raise :class:`DataError` naming the field.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from mocoflow.data.errors import DataError
from mocoflow.data.json_text import MAX_NESTING

_CHOICE_KEY = re.compile(r"^\s*(?:option\s+)?\(?\s*([A-Za-z]|\d{1,2})\s*[).:]?\s*$", re.IGNORECASE)


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, list | dict) and len(value) == 0)


def scalar_text(value: Any, where: str, field: str) -> str:
    """A gold or option value as text: strings as they are, JSON numbers/booleans as Python writes them.

    NaN/infinity, null, lists and objects raise :class:`DataError` naming ``field`` (never ``'nan'`` or
    ``'None'`` by accident)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DataError(f"{where}: field {field!r} is {value!r}, not a usable value (NaN or infinity)")
        return repr(value)
    if value is None:
        raise DataError(f"{where}: field {field!r} is null")
    raise DataError(f"{where}: field {field!r} must be a string or number, got a nested "
                    f"{type(value).__name__}: {short_repr(value)}")


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests lists/dicts deeper than ``limit`` (iterative: no RecursionError)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return False


def check_nesting(row: dict[str, Any], where: str) -> None:
    for field, value in row.items():
        if _depth_exceeds(value, MAX_NESTING - 1):
            raise DataError(f"{where}: field {field!r} nests lists/objects deeper than {MAX_NESTING} levels")


def parse_alias_literal(text: str) -> list[Any] | None:
    """The list inside a string holding a list literal (JSON or Python syntax), else None.

    ``'["association football", "football"]'`` -> ``['association football', 'football']``; a string that
    merely starts with ``[`` (``"[citation needed]"``) or holds a non-list literal gives None."""
    t = text.strip()
    if not (t.startswith("[") and t.endswith("]")):
        return None
    for parse in (lambda s: json.loads(s, strict=False), ast.literal_eval):
        try:
            value = parse(t)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return list(value) if isinstance(value, list | tuple) else None
    return None


def gold_aliases(gold: Any, where: str, field: str) -> list[str]:
    """Gold aliases, deduplicated in order; each one a string (see :func:`scalar_text`), empty ones dropped."""
    values: list[Any]
    if isinstance(gold, list):
        values, names = gold, [f"{field}[{k}]" for k in range(len(gold))]
    else:
        literal = parse_alias_literal(gold) if isinstance(gold, str) else None
        if literal:  # each element is checked below: null or nested ones are errors
            values, names = literal, [f"{field} (list literal)[{k}]" for k in range(len(literal))]
        else:
            values, names = [gold], [field]
    out: list[str] = []
    for alias, name in zip(values, names, strict=True):
        text = scalar_text(alias, where, name)
        if text.strip() and text not in out:
            out.append(text)
    return out


def _letter_keys(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def _key_range(keys: list[str]) -> str:
    return f"{keys[0]}-{keys[-1]}" if len(keys) > 1 else keys[0]


def _split_choice_keys(raw: dict[Any, Any], where: str) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """(normalised key -> value, normalised -> original key, ignored keys); letters upper-cased, digits kept."""
    options: dict[str, Any] = {}
    originals: dict[str, str] = {}
    ignored: list[str] = []
    upper: set[bool] = set()
    for key, value in raw.items():
        m = _CHOICE_KEY.match(str(key))
        if not m:
            ignored.append(str(key))
            continue
        norm = m.group(1).upper()
        if norm in options:
            raise DataError(f"{where}: field 'choices': keys {originals[norm]!r} and {key!r} name the same "
                            f"option {norm}")
        options[norm] = value
        originals[norm] = str(key)
        if norm.isalpha():
            upper.add(m.group(1).isupper())
    if any(k.isalpha() for k in options) and any(k.isdigit() for k in options):
        raise DataError(f"{where}: field 'choices': keys mix letters and digits: {list(originals.values())}")
    if len(upper) > 1:
        raise DataError(f"{where}: field 'choices': keys mix upper- and lower-case letters: "
                        f"{list(originals.values())}")
    return options, originals, ignored


def _answer_key(answer: Any, keys: list[str], where: str) -> str:
    """The normalised choice key the answer names; integer answers only name digit keys (see module doc)."""
    shown = _key_range(sorted(keys, key=lambda k: (len(k), k)))
    if isinstance(answer, bool) or isinstance(answer, float) or not isinstance(answer, str | int):
        raise DataError(f"{where}: field 'answer' must be a choice key ({shown}), got {short_repr(answer)}")
    if isinstance(answer, int):
        if str(answer) in keys:
            return str(answer)
        if all(k.isalpha() for k in keys):
            raise DataError(
                f"{where}: field 'answer': integer {answer} is not a choice key ({shown}). MoCo compares the "
                f"answer with the chosen option's letter, so an answer is a key, never an index; write the "
                f"letter (0-based index {answer} is {_letter_or_q(answer)}, 1-based is {_letter_or_q(answer - 1)})")
        raise DataError(f"{where}: field 'answer': answer {answer!r} not among choices {shown}")
    m = _CHOICE_KEY.match(answer)
    if m and m.group(1).upper() in keys:
        return m.group(1).upper()
    raise DataError(f"{where}: field 'answer': answer {answer.strip()!r:.60} not among choices {shown}")


def _letter_or_q(index: int) -> str:
    return repr(chr(ord("A") + index)) if 0 <= index < 26 else "out of range"


def normalise_choices(raw: Any, answer: Any, where: str) -> tuple[dict[str, str], str, dict[str, Any]]:
    """Return (choices keyed A.., answer letter, metadata) from a MoCo choices dict or list."""
    meta: dict[str, Any] = {}
    if isinstance(raw, list):
        raw = dict(zip(_letter_keys(len(raw)), raw, strict=True)) if len(raw) <= 26 else raw
    if not isinstance(raw, dict):
        raise DataError(f"{where}: field 'choices' must be a dict of at least 2 options, got {short_repr(raw)}")
    options, originals, ignored = _split_choice_keys(raw, where)
    if ignored:
        meta["ignored_choice_keys"] = ignored
    keys = list(options)
    gold = _answer_key(answer, keys, where) if len(keys) >= 2 else None
    blank = [k for k, v in options.items() if v is None or (isinstance(v, str) and not v.strip())]
    if gold in blank:
        raise DataError(f"{where}: field 'choices.{originals[gold]}' is {short_repr(options[gold])} but it is "
                        f"the answer")
    if blank:  # an option that is not there (culturalbench_hard dev[221] has D: null): drop it, say so
        meta["dropped_blank_options"] = [originals[k] for k in blank]
        keys = [k for k in keys if k not in blank]
    if len(keys) < 2 or gold is None:
        raise DataError(f"{where}: field 'choices' must hold at least 2 options keyed A.. or 1.., got keys "
                        f"{[str(k) for k in raw]}")
    texts = {k: scalar_text(options[k], where, f"choices.{originals[k]}") for k in keys}
    if all(k.isdigit() for k in keys):  # ARC: "1".."4" -> "A".."D" in numeric order, answer remapped
        order = sorted(keys, key=int)
        mapping = dict(zip(order, _letter_keys(len(order)), strict=True))
        meta["original_choice_keys"] = [originals[k] for k in keys]
        choices = {mapping[k]: texts[k] for k in order}
        gold = mapping[gold]
    else:
        choices = dict(sorted(texts.items()))
    by_text: dict[str, list[str]] = {}
    for letter, text in choices.items():
        by_text.setdefault(" ".join(text.split()), []).append(letter)  # case matters: ARC's Rr vs RR
    duplicates = [letters for letters in by_text.values() if len(letters) > 1]
    if duplicates:
        meta["duplicate_options"] = duplicates
    return choices, gold, meta
