"""MoCo's evaluation sets, downloaded from the public repository at a pinned commit and checked by sha256.

Task source ``moco_pinned`` (config keys; the common keys ``n_train``/``n_dev``/``n_test``/``seed``/``limit``
apply as for every source):

    name       required: a MoCo set listed in ``moco_checksums.tsv`` (e.g. "gsm8k", "arc_challenge")
    mirror     optional base to fetch from instead of GitHub: an ``http(s)://`` or ``file://`` URL, or a
               local folder holding ``<name>.json`` (default: env ``MOCOFLOW_MOCO_MIRROR``, else
               :data:`MOCO_BASE_URL`)
    sha256     optional override of the shipped checksum (only needed for a set not in the table)
    task_type, domain, on_missing_gold    as for the ``moco`` source
    retries (3), backoff (seconds, 1.0), timeout (seconds, 60)

The URL is ``https://raw.githubusercontent.com/BunsenFeng/model_collaboration/<MOCO_COMMIT>/
model_collaboration/data/<name>.json``; every file is verified against the sha256 shipped in
``moco_checksums.tsv`` whatever the base, so a mirror cannot silently serve different data. Downloads go
through :func:`mocoflow.data.sources.fetch_file` (atomic copy into ``cache_dir/moco/``, retries with
exponential backoff, a clear error on mismatch).

``python -m mocoflow.data.moco_remote verify [FOLDER] [--complete]`` checks every shipped checksum against a
local mirror (exit 1 on a mismatch, when no set is there, or with ``--complete`` when any is missing);
``python -m mocoflow.data.moco_remote download DEST`` fetches every set into ``DEST`` (for offline clusters).
"""

from __future__ import annotations

import argparse
import csv
import functools
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mocoflow.data.common import fetch_file, filter_domain, sha256_file
from mocoflow.data.moco import DataError, moco_to_items, read_moco_json
from mocoflow.data.schema import Item

__all__ = ["MOCO_BASE_URL", "MOCO_COMMIT", "MIRROR_ENV", "MocoFile", "checksums", "moco_pinned_source",
           "moco_url", "resolve_base", "verify_mirror"]

log = logging.getLogger("mocoflow.data.moco_remote")

#: The commit of BunsenFeng/model_collaboration whose ``model_collaboration/data/`` the checksums describe.
MOCO_COMMIT = "ecea545acdd3f49e9f9fa46a6dedcb076ed476b1"
MOCO_REPO = "BunsenFeng/model_collaboration"
MOCO_BASE_URL = f"https://raw.githubusercontent.com/{MOCO_REPO}/{MOCO_COMMIT}/model_collaboration/data"
MIRROR_ENV = "MOCOFLOW_MOCO_MIRROR"
CHECKSUMS_FILE = Path(__file__).with_name("moco_checksums.tsv")

_KEYS = frozenset({"source", "limit", "n_train", "n_dev", "n_test", "seed", "name", "mirror", "sha256",
                   "task_type", "domain", "on_missing_gold", "retries", "backoff", "timeout"})


@dataclass(frozen=True)
class MocoFile:
    """One pinned MoCo set: file stem, task type, sha256 and size in bytes of ``<name>.json``."""

    name: str
    task_type: str
    sha256: str
    size: int | None = None


@functools.cache
def checksums() -> dict[str, MocoFile]:
    """The shipped table: name -> :class:`MocoFile` (``moco_checksums.tsv``; ``#`` lines are comments)."""
    with open(CHECKSUMS_FILE, encoding="utf-8") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        return {r["name"]: MocoFile(r["name"], r["task_type"], r["sha256"].lower(),
                                    int(r["bytes"]) if r.get("bytes") else None) for r in rows}


def moco_url(name: str, base: str = MOCO_BASE_URL) -> str:
    return f"{base.rstrip('/')}/{name}.json"


def resolve_base(spec: dict[str, Any] | None = None) -> str:
    """Where to fetch from: the spec's ``mirror``, else ``$MOCOFLOW_MOCO_MIRROR``, else the pinned GitHub URL."""
    spec = spec or {}
    return str(spec.get("mirror") or os.environ.get(MIRROR_ENV) or MOCO_BASE_URL)


def _entry(name: str, spec: dict[str, Any]) -> MocoFile:
    table = checksums()
    if name in table:
        entry = table[name]
        if spec.get("sha256") and spec["sha256"].strip().lower() != entry.sha256:
            raise DataError(f"{name}.json: config sha256 {spec['sha256']} differs from the shipped checksum "
                            f"{entry.sha256} for commit {MOCO_COMMIT}; drop the key or use source 'moco'")
        return entry
    if spec.get("sha256") and spec.get("task_type"):
        return MocoFile(name, str(spec["task_type"]), str(spec["sha256"]).strip().lower())
    raise DataError(f"moco_pinned: unknown set {name!r} (no shipped checksum); known sets: "
                    f"{', '.join(sorted(table))}; or give both sha256 and task_type")


def moco_pinned_source(spec: dict[str, Any], *, cache_dir: Path) -> dict[str, list[Item]]:
    """A MoCo set fetched at :data:`MOCO_COMMIT` (or from a mirror) and verified by the shipped sha256."""
    unknown = set(spec) - _KEYS
    if unknown:
        log.warning("task source 'moco_pinned' ignores unknown key(s): %s", ", ".join(sorted(unknown)))
    if not spec.get("name"):
        raise DataError("task source 'moco_pinned': config key 'name' is required")
    name = str(spec["name"])
    entry = _entry(name, spec)
    base = resolve_base(spec)
    log.info("%s.json: from %s (sha256 %s)", name, base, entry.sha256[:12])
    path = fetch_file(base, name, cache_dir=Path(cache_dir), sha256=entry.sha256,
                      retries=int(spec.get("retries", 3)), backoff=float(spec.get("backoff", 1.0)),
                      timeout=float(spec.get("timeout", 60.0)))
    label = f"{name}.json"
    splits = moco_to_items(read_moco_json(path), task=name, label=label,
                           task_type=spec.get("task_type") or entry.task_type,
                           on_missing_gold=spec.get("on_missing_gold", "drop"))
    domain = spec.get("domain")
    if domain:
        splits = filter_domain(splits, domain, label)
    return splits


def verify_mirror(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Check every shipped checksum against ``folder/<name>.json``: name -> "ok" | "missing" | "mismatch: ...".

    A partial mirror (the 16 sets of ``shared/benchmarks/moco``) reports the others as "missing"."""
    folder = Path(folder)
    out = {}
    for name, entry in sorted(checksums().items()):
        path = folder / f"{name}.json"
        if not path.is_file():
            out[name] = "missing"
            continue
        actual = sha256_file(path)
        out[name] = "ok" if actual == entry.sha256 else f"mismatch: expected {entry.sha256}, got {actual}"
    return out


def download_all(dest: str | os.PathLike[str], *, base: str | None = None, retries: int = 3) -> list[Path]:
    """Fetch every pinned set into ``dest/<name>.json`` (verified); returns the paths."""
    import shutil

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name, entry in sorted(checksums().items()):
        got = fetch_file(base or resolve_base(), name, cache_dir=dest / ".cache", sha256=entry.sha256,
                         retries=retries)
        target = dest / f"{name}.json"
        if got.resolve() != target.resolve():
            shutil.copyfile(got, target)
        out.append(target)
    shutil.rmtree(dest / ".cache", ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="check every shipped checksum against a local folder")
    v.add_argument("folder", nargs="?", default=os.environ.get(MIRROR_ENV))
    v.add_argument("--complete", action="store_true", help="fail when any pinned set is missing")
    d = sub.add_parser("download", help="fetch every pinned set into a folder")
    d.add_argument("dest")
    d.add_argument("--base", default=None, help=f"default ${MIRROR_ENV} or {MOCO_BASE_URL}")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.cmd == "verify":
        if not args.folder:
            p.error(f"give a folder or set {MIRROR_ENV}")
        result = verify_mirror(args.folder)
        for name, status in result.items():
            print(f"{name}\t{status}")
        statuses = set(result.values())
        bad = any(s.startswith("mismatch") for s in statuses) or "ok" not in statuses
        return 1 if bad or (args.complete and "missing" in statuses) else 0
    for path in download_all(args.dest, base=args.base):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
