"""Reading JSON and JSONL task files with errors that say where: byte offset for bad bytes, line and column
for syntax errors and for nesting too deep for Python's parser (never a bare ``RecursionError``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mocoflow.data.errors import DataError

MAX_NESTING = 32
"""Deepest nesting of lists/objects accepted inside one row (MoCo rows need 3); deeper is a DataError."""


def _too_deep_at(text: str, limit: int) -> tuple[int, int] | None:
    """(line, column) where JSON ``text`` first nests deeper than ``limit`` (strings skipped), else None."""
    depth, line, col, in_string, escaped = 0, 1, 0, False, False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        if in_string:
            escaped = not escaped and ch == "\\"
            if ch == '"' and not escaped:
                in_string = False
            continue
        if ch == '"':
            in_string, escaped = True, False
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return line, col
        elif ch in "]}":
            depth -= 1
    return None


def decode_utf8(data: bytes, name: str) -> str:
    """``data`` as text (a UTF-8 BOM is dropped); bad bytes raise DataError with the byte offset and line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(f"{name}: not UTF-8 text: byte 0x{data[err.start]:02x} at byte offset {err.start} "
                        f"(line {line}, column {col}): {err.reason}") from None


def parse_json_text(text: str, name: str) -> Any:
    """Parse JSON ``text``; syntax errors and too-deep nesting raise DataError with line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{name}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        at = _too_deep_at(text, MAX_NESTING)
        where = f" (deeper than {MAX_NESTING} levels from line {at[0]} column {at[1]})" if at else ""
        raise DataError(f"{name}: JSON nested too deeply for the parser{where}") from None


def read_json_file(path: str | Path) -> Any:
    """Parse a JSON file; a file that is not UTF-8 or not JSON raises :class:`DataError` naming it."""
    path = Path(path)
    return parse_json_text(decode_utf8(path.read_bytes(), path.name), path.name)


def read_jsonl_rows(path: str | Path) -> list[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL file; errors name the line."""
    path = Path(path)
    text = decode_utf8(path.read_bytes(), path.name)
    rows = []
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
        if line.strip():
            rows.append((lineno, parse_json_text(line, f"{path.name}: line {lineno}")))
    return rows
