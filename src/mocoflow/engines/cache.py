"""The response cache: one small JSON file per (model fingerprint, prompt, decoding settings) entry.

Key: sha256 of ``json.dumps([fingerprint, prompt, decoding.cache_key()])`` (the seed is part of the
decoding settings; batch size is not). Layout: ``root/<fingerprint[:16]>/<key[:2]>/<key>.json``.
Each entry is written to a temp file and renamed into place, so concurrent jobs (also on NFS) never read
a half-written entry, and a killed job loses at most the batch it was generating. Unreadable entries, and
entries that are valid JSON of another shape (a list, a missing field, a text that is not a string), are
misses with a warning: the item is generated again and the entry overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from mocoflow.engines.base import DecodingConfig, Generation

log = logging.getLogger(__name__)


def cache_key(fingerprint: str, prompt: str, decoding: DecodingConfig) -> str:
    payload = json.dumps([fingerprint, prompt, decoding.cache_key()])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"expected a token count, got {value!r}")
    return value


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


class ResponseCache:
    """A directory of cached generations, safe to share between concurrent jobs."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, fingerprint: str, prompt: str, decoding: DecodingConfig) -> Path:
        key = cache_key(fingerprint, prompt, decoding)
        return self.root / fingerprint[:16] / key[:2] / f"{key}.json"

    def get(self, fingerprint: str, prompt: str, decoding: DecodingConfig) -> Generation | None:
        """The cached generation (with ``cached=True``), or None."""
        path = self.path(fingerprint, prompt, decoding)
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable cache entry %s (%s)", path, err)
            return None
        if not isinstance(d, dict):
            log.warning("ignoring cache entry %s: a JSON %s, not an object", path, type(d).__name__)
            return None
        if d.get("prompt") != prompt or d.get("fingerprint") != fingerprint:  # hash collision or tampering
            return None
        try:
            if not isinstance(d["text"], str):
                raise TypeError(f"text is a {type(d['text']).__name__}")
            return Generation(text=d["text"], prompt_tokens=_count(d["prompt_tokens"]),
                              generated_tokens=_count(d["generated_tokens"]),
                              sum_logprob=_number(d["sum_logprob"]), cached=True)
        except (KeyError, TypeError, ValueError) as err:
            log.warning("ignoring malformed cache entry %s (%s: %s)", path, type(err).__name__, err)
            return None

    def put(self, fingerprint: str, prompt: str, decoding: DecodingConfig, generation: Generation) -> Path:
        """Write one entry atomically (temp file in the same directory, then ``os.replace``)."""
        path = self.path(fingerprint, prompt, decoding)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"fingerprint": fingerprint, "prompt": prompt, "decoding": json.loads(decoding.cache_key()),
                  "text": generation.text, "prompt_tokens": generation.prompt_tokens,
                  "generated_tokens": generation.generated_tokens, "sum_logprob": generation.sum_logprob}
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*/*.json")) if self.root.exists() else 0
