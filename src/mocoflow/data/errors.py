"""The one exception every task source raises for malformed input."""

from __future__ import annotations


class DataError(ValueError):
    """A task source is malformed; the message names the file, split, row index (or line) and field."""
