"""Helpers task sources share: local, sha256-verified copies of files by URL or path, digests, and keeping
the rows of one domain. Every source module imports these from here; :mod:`mocoflow.data.sources` holds the
source registry and imports the source modules (the one place where ``SOURCES`` is filled).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from mocoflow.data.errors import DataError
from mocoflow.data.schema import Item
from mocoflow.io import atomic_path

__all__ = ["check_digest", "fetch_file", "filter_domain", "sha256_file"]

log = logging.getLogger("mocoflow.data.sources")

_CHUNK = 1 << 16


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_digest(label: str, actual: str, expected: str | None) -> None:
    if expected and actual.lower() != expected.strip().lower():
        raise DataError(f"{label}: sha256 mismatch: expected {expected.strip().lower()}, got {actual}")


def _download(url: str, dest: Path, *, retries: int, backoff: float, timeout: float) -> str:
    """Stream ``url`` into ``dest`` atomically; return its sha256. Retries transient failures with
    exponential backoff (``backoff * 2**attempt`` seconds); a 4xx other than 408/429 fails at once."""
    attempts = max(1, int(retries))
    for attempt in range(attempts):
        try:
            digest = hashlib.sha256()
            with atomic_path(dest) as tmp, urllib.request.urlopen(url, timeout=timeout) as resp, \
                    open(tmp, "wb") as fh:
                for block in iter(lambda: resp.read(_CHUNK), b""):  # noqa: B023 - resp is bound per attempt
                    digest.update(block)
                    fh.write(block)
            return digest.hexdigest()
        except urllib.error.HTTPError as err:
            transient = err.code >= 500 or err.code in (408, 429)
            if not transient or attempt == attempts - 1:
                raise DataError(f"{url}: download failed: HTTP {err.code} {err.reason}") from None
            reason = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            if attempt == attempts - 1:
                raise DataError(f"{url}: download failed after {attempts} attempt(s): {err}") from None
            reason = str(err)
        wait = backoff * 2**attempt
        log.warning("%s: attempt %d/%d failed (%s); retrying in %.1fs", url, attempt + 1, attempts, reason,
                    wait)
        time.sleep(wait)
    raise AssertionError("unreachable")


def _resolve(location: str, name: str) -> tuple[str, str]:
    """Return (kind, where): kind is 'http', 'file' or 'path'; a folder base gets ``/<name>.json``."""
    parsed = urlparse(location)
    if parsed.scheme in ("http", "https"):
        url = location if location.endswith(".json") else location.rstrip("/") + f"/{name}.json"
        return "http", url
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        return "file", str(path / f"{name}.json" if path.is_dir() or not location.endswith(".json") else path)
    path = Path(location).expanduser()
    return "path", str(path / f"{name}.json" if path.is_dir() else path)


def fetch_file(location: str, name: str, *, cache_dir: Path, sha256: str | None = None, retries: int = 3,
               backoff: float = 1.0, timeout: float = 60.0) -> Path:
    """Return a local, sha256-verified copy of ``<location>`` (a file URL/path, or a folder + ``name.json``).

    http(s):// and file:// sources are copied into ``cache_dir/moco/`` (reused while the digest matches);
    a plain path is verified and read in place.
    """
    kind, where = _resolve(str(location), name)
    label = Path(urlparse(where).path).name or f"{name}.json"
    if kind == "path":
        path = Path(where)
        if not path.is_file():
            raise DataError(f"{label}: no such file: {path}")
        check_digest(label, sha256_file(path), sha256)
        return path
    if not sha256:
        log.warning("%s: no sha256 pinned; the content is not verified", label)
    tag = (sha256 or hashlib.sha256(where.encode()).hexdigest())[:16]
    dest = Path(cache_dir) / "moco" / f"{name}-{tag}.json"
    if dest.is_file() and sha256 and sha256_file(dest) == sha256.strip().lower():
        log.info("%s: using cached %s", label, dest)
        return dest
    if kind == "file":
        src = Path(where)
        if not src.is_file():
            raise DataError(f"{label}: no such file: {src}")
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
            check_digest(label, sha256_file(tmp), sha256)
        return dest
    log.info("%s: downloading %s", label, where)
    tmp_dest = dest.with_name(dest.name + ".part")
    actual = _download(where, tmp_dest, retries=retries, backoff=backoff, timeout=timeout)
    try:
        check_digest(label, actual, sha256)
    except DataError:
        tmp_dest.unlink(missing_ok=True)
        raise
    tmp_dest.replace(dest)
    return dest


def filter_domain(splits: dict[str, list[Item]], domain: str | None, label: str) -> dict[str, list[Item]]:
    if not domain:
        return splits
    out = {s: [i for i in items if i.metadata.get("domain") == domain] for s, items in splits.items()}
    if not any(out.values()):
        found = sorted({str(i.metadata["domain"]) for items in splits.values() for i in items
                        if i.metadata.get("domain") is not None})
        raise DataError(f"{label}: no rows with domain {domain!r}; domains: {', '.join(found)}")
    return out
