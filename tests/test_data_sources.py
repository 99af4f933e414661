"""Task sources: fetching (path, file://, http:// with retry), sha256 checks, caps, JSONL, registry errors."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mocoflow.data.schema import Item
from mocoflow.data.sources import SOURCES, DataError, fetch_file, load_task
from mocoflow.io import write_jsonl
from mocoflow.registry import UnknownNameError

TOY = {"name": "toy", "task_type": "exact_match",
       "dev": [{"id": f"d{i}", "input": f"dev question {i}", "output": str(i)} for i in range(10)],
       "test": [{"id": f"t{i}", "input": f"test question {i}", "output": str(i),
                 "domain": "even" if i % 2 == 0 else "odd"} for i in range(30)]}


@pytest.fixture()
def toy_dir(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "mirror"
    folder.mkdir()
    body = json.dumps(TOY).encode()
    (folder / "toy.json").write_bytes(body)
    return folder, hashlib.sha256(body).hexdigest()


def _spec(url: str, sha: str | None, **extra: Any) -> dict[str, Any]:
    return {"source": "moco", "name": "toy", "url": url, **({"sha256": sha} if sha else {}), **extra}


def test_registry_names_and_unknown_source(tmp_path: Path) -> None:
    assert {"builtin", "moco", "jsonl"} <= set(SOURCES.names())
    with pytest.raises(UnknownNameError, match="valid names: .*builtin.*jsonl.*moco"):
        load_task("t", {"source": "nope"}, cache_dir=tmp_path)
    with pytest.raises(DataError, match="'source' is required"):
        load_task("t", {}, cache_dir=tmp_path)
    with pytest.raises(DataError, match="config key 'url' is required"):
        load_task("t", {"source": "moco", "name": "toy"}, cache_dir=tmp_path)


def test_plain_folder_and_file_path(toy_dir: tuple[Path, str], tmp_path: Path) -> None:
    folder, sha = toy_dir
    by_folder = load_task("toy", _spec(str(folder), sha), cache_dir=tmp_path / "cache")
    by_file = load_task("toy", _spec(str(folder / "toy.json"), sha), cache_dir=tmp_path / "cache")
    assert by_folder == by_file
    assert [len(by_folder[s]) for s in ("train", "dev", "test")] == [0, 10, 30]
    assert not (tmp_path / "cache").exists()  # plain paths are read in place


def test_sha256_mismatch_names_file_and_digests(toy_dir: tuple[Path, str], tmp_path: Path) -> None:
    folder, sha = toy_dir
    wrong = "0" * 64
    with pytest.raises(DataError, match=f"toy.json: sha256 mismatch: expected {wrong}, got {sha}"):
        load_task("toy", _spec(str(folder), wrong), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="sha256 mismatch"):
        load_task("toy", _spec(folder.as_uri(), wrong), cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.json"))  # nothing half-verified left in the cache


def test_file_url_is_copied_to_cache_and_reused(toy_dir: tuple[Path, str], tmp_path: Path) -> None:
    folder, sha = toy_dir
    cache = tmp_path / "cache"
    path = fetch_file(folder.as_uri(), "toy", cache_dir=cache, sha256=sha)
    assert path.parent == cache / "moco" and path.read_bytes() == (folder / "toy.json").read_bytes()
    mtime = path.stat().st_mtime_ns
    (folder / "toy.json").unlink()  # the cached copy is used while its digest matches
    assert fetch_file(folder.as_uri(), "toy", cache_dir=cache, sha256=sha) == path
    assert path.stat().st_mtime_ns == mtime
    splits = load_task("toy", _spec(folder.as_uri(), sha), cache_dir=cache)
    assert len(splits["test"]) == 30
    with pytest.raises(DataError, match="no such file"):
        fetch_file(folder.as_uri(), "other", cache_dir=cache, sha256=sha)


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    fail_first = 0
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        type(self).requests.append(self.path)
        if self.path != "/data/toy.json":
            self.send_error(404)
        elif type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_error(503)
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def server(toy_dir: tuple[Path, str]) -> Iterator[str]:
    folder, _ = toy_dir
    _Handler.body = (folder / "toy.json").read_bytes()
    _Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/data"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_download_retries_then_caches(server: str, toy_dir: tuple[Path, str], tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    _, sha = toy_dir
    _Handler.fail_first = 1
    cache = tmp_path / "cache"
    splits = load_task("toy", _spec(server, sha, backoff=0.01), cache_dir=cache)
    assert len(splits["dev"]) == 10
    assert _Handler.requests == ["/data/toy.json", "/data/toy.json"]
    assert "attempt 1/3 failed (HTTP 503)" in caplog.text
    assert len(list((cache / "moco").glob("toy-*.json"))) == 1
    load_task("toy", _spec(server + "/", sha), cache_dir=cache)  # cached: no new request
    assert len(_Handler.requests) == 2


def test_http_errors(server: str, toy_dir: tuple[Path, str], tmp_path: Path) -> None:
    _, sha = toy_dir
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="HTTP 404"):
        fetch_file(server, "missing", cache_dir=cache, sha256=sha, backoff=0.01)
    assert _Handler.requests == ["/data/missing.json"]  # a 404 is not retried
    _Handler.fail_first = 5
    with pytest.raises(DataError, match="HTTP 503"):
        fetch_file(server, "toy", cache_dir=cache, sha256=sha, retries=2, backoff=0.01)
    with pytest.raises(DataError, match="sha256 mismatch"):
        _Handler.fail_first = 0
        fetch_file(server, "toy", cache_dir=cache, sha256="f" * 64, backoff=0.01)
    assert _Handler.requests[-1] == "/data/toy.json" and len(_Handler.requests) == 4
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing unverified left behind


def test_caps_are_deterministic_and_seeded(toy_dir: tuple[Path, str], tmp_path: Path) -> None:
    folder, sha = toy_dir
    a = load_task("toy", _spec(str(folder), sha, n_test=5, limit=8, seed=3), cache_dir=tmp_path)
    b = load_task("toy", _spec(str(folder), sha, n_test=5, limit=8, seed=3), cache_dir=tmp_path)
    c = load_task("toy", _spec(str(folder), sha, n_test=5, seed=4), cache_dir=tmp_path)
    assert a == b and (len(a["dev"]), len(a["test"])) == (8, 5)
    assert [i.id for i in a["test"]] != [i.id for i in c["test"]]
    idx = [int(i.id[1:]) for i in a["test"]]
    assert idx == sorted(idx)  # kept in source order
    none = load_task("toy", _spec(str(folder), sha, n_dev=0), cache_dir=tmp_path)
    assert none["dev"] == [] and len(none["test"]) == 30


def test_domain_filter(toy_dir: tuple[Path, str], tmp_path: Path) -> None:
    folder, sha = toy_dir
    even = load_task("toy", _spec(str(folder), sha, domain="even"), cache_dir=tmp_path)
    assert len(even["test"]) == 15 and {i.metadata["domain"] for i in even["test"]} == {"even"}
    with pytest.raises(DataError, match="no rows with domain 'prime'; domains: even, odd"):
        load_task("toy", _spec(str(folder), sha, domain="prime"), cache_dir=tmp_path)


def test_jsonl_moco_like_rows(tmp_path: Path) -> None:
    rows = [{"id": 1, "question": "2+2?", "choices": {"A": "3", "B": "4"}, "answer": "B"},
            {"id": 2, "question": "1+1?", "choices": ["2", "3"], "answer": "A", "split": "dev"}]
    write_jsonl(tmp_path / "mine.jsonl", rows)
    splits = load_task("mine", {"source": "jsonl", "path": str(tmp_path / "mine.jsonl"),
                                "task_type": "multiple_choice"}, cache_dir=tmp_path)
    assert [i.gold for i in splits["test"]] == ["B"] and splits["dev"][0].choices == {"A": "2", "B": "3"}
    assert {i.task for i in splits["test"] + splits["dev"]} == {"mine"}
    with pytest.raises(DataError, match="'task_type' is required"):
        load_task("mine", {"source": "jsonl", "path": str(tmp_path / "mine.jsonl")}, cache_dir=tmp_path)
    (tmp_path / "broken.jsonl").write_text('{"id": 1}\nnot json\n')
    with pytest.raises(DataError, match="broken.jsonl: .*line 2"):
        load_task("b", {"source": "jsonl", "path": str(tmp_path / "broken.jsonl"),
                        "task_type": "exact_match"}, cache_dir=tmp_path)


def test_jsonl_canonical_folder_and_duplicate_check(tmp_path: Path) -> None:
    items = [Item(id=f"x{i}", task="old", split="train", task_type="exact_match", question=f"q{i}", gold="1")
             for i in range(3)]
    write_jsonl(tmp_path / "data" / "train.jsonl", [i.to_dict() for i in items])
    write_jsonl(tmp_path / "data" / "test.jsonl", [{**items[0].to_dict(), "split": "test"}])
    splits = load_task("new", {"source": "jsonl", "path": str(tmp_path / "data")}, cache_dir=tmp_path)
    assert [i.id for i in splits["train"]] == ["x0", "x1", "x2"] and splits["train"][0].task == "new"
    assert len(splits["test"]) == 1 and splits["dev"] == []
    write_jsonl(tmp_path / "dup" / "dev.jsonl", [{**items[0].to_dict(), "split": "dev"}] * 2)
    with pytest.raises(DataError, match="dev: duplicate item id 'x0'"):
        load_task("new", {"source": "jsonl", "path": str(tmp_path / "dup")}, cache_dir=tmp_path)
