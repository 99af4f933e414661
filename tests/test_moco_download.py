"""Pinned MoCo downloads: shipped checksums vs the local mirror, URL layout, mirror override, retries, errors."""

from __future__ import annotations

import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from mocoflow.data import moco_remote
from mocoflow.data.moco import DataError
from mocoflow.data.moco_remote import MOCO_COMMIT, checksums, moco_pinned_source, moco_url, verify_mirror


def _mirror() -> Path:
    env = os.environ.get("MOCOFLOW_MOCO_MIRROR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "moco"


MIRROR = _mirror()
needs_mirror = pytest.mark.skipif(not (MIRROR / "SHA256SUMS").is_file(),
                                  reason=f"MoCo mirror not found at {MIRROR} (set MOCOFLOW_MOCO_MIRROR)")


MORE = MIRROR.parent / "moco_more.sha256"


def test_table_is_well_formed():
    from mocoflow.data.schema import TASK_TYPES

    table = checksums()
    assert len(table) == 32
    for name, entry in table.items():
        assert entry.name == name and len(entry.sha256) == 40 + 24 and int(entry.sha256, 16) >= 0
        assert entry.task_type in TASK_TYPES and entry.size and entry.size > 0
    assert len(MOCO_COMMIT) == 40 and int(MOCO_COMMIT, 16) >= 0


def test_every_moco_task_type_is_pinned():
    types = {e.task_type for e in checksums().values()}
    assert {"generation_diversity", "f1_match", "reward_model", "coding", "noncompliance"} <= types
    assert checksums()["infinite_chat_diversity"].task_type == "generation_diversity"
    assert checksums()["popqa"].task_type == "f1_match" and checksums()["theoremqa"].task_type == "exact_match"


@pytest.mark.skipif(not MORE.is_file(), reason=f"{MORE} not found")
def test_table_pins_every_other_moco_set():
    more = {}
    for line in MORE.read_text().splitlines():
        digest, fname, size, _ = line.split()
        more[Path(fname).stem] = (digest, int(size))
    table = checksums()
    assert len(more) == 16
    assert {n: (table[n].sha256, table[n].size) for n in more} == more


def test_url_is_pinned_by_commit():
    assert moco_url("gsm8k") == ("https://raw.githubusercontent.com/BunsenFeng/model_collaboration/"
                                 f"{MOCO_COMMIT}/model_collaboration/data/gsm8k.json")


@needs_mirror
def test_every_shipped_checksum_matches_the_mirror():
    result = verify_mirror(MIRROR)
    present = {n for n in checksums() if (MIRROR / f"{n}.json").is_file()}
    assert len(present) == 16
    assert result == {n: "ok" if n in present else "missing" for n in checksums()}, result
    assert all(checksums()[n].size == (MIRROR / f"{n}.json").stat().st_size for n in present)


@needs_mirror
def test_shipped_checksums_equal_the_mirror_sha256sums():
    sums = {}
    for line in (MIRROR / "SHA256SUMS").read_text().splitlines():
        digest, fname = line.split()
        sums[Path(fname).stem] = digest
    assert {n: e.sha256 for n, e in checksums().items() if n in sums} == sums


@needs_mirror
@pytest.mark.parametrize("via", ["spec", "env", "file_url"])
def test_source_loads_from_local_mirror(via: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = {"source": "moco_pinned", "name": "agieval_tiny"}
    if via == "spec":
        spec["mirror"] = str(MIRROR)
    elif via == "env":
        monkeypatch.setenv("MOCOFLOW_MOCO_MIRROR", str(MIRROR))
    else:
        spec["mirror"] = MIRROR.as_uri()
    splits = moco_pinned_source(spec, cache_dir=tmp_path)
    assert len(splits["dev"]) == 40 and len(splits["test"]) == 40
    assert splits["test"][0].task_type == "multiple_choice"
    if via == "file_url":  # copied into the cache, verified
        assert list((tmp_path / "moco").glob("agieval_tiny-*.json"))


def test_mismatch_is_a_clear_error(tmp_path: Path):
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "gsm8k.json").write_text(json.dumps({"task_type": "exact_match", "test": []}))
    with pytest.raises(DataError, match=r"gsm8k\.json: sha256 mismatch: expected fa803a5c"):
        moco_pinned_source({"name": "gsm8k", "mirror": str(tmp_path / "mirror")}, cache_dir=tmp_path / "c")


def test_unknown_set_lists_known_sets(tmp_path: Path):
    with pytest.raises(DataError, match="unknown set 'nope'.*gsm8k"):
        moco_pinned_source({"name": "nope", "mirror": str(tmp_path)}, cache_dir=tmp_path)


def test_config_sha256_cannot_contradict_the_table(tmp_path: Path):
    with pytest.raises(DataError, match="differs from the shipped checksum"):
        moco_pinned_source({"name": "gsm8k", "sha256": "0" * 64, "mirror": str(tmp_path)}, cache_dir=tmp_path)


class _Flaky(http.server.BaseHTTPRequestHandler):
    body = b""
    fail_first = 0
    calls: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).calls.append(self.path)
        if len(type(self).calls) <= type(self).fail_first:
            self.send_response(503)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):  # quiet
        pass


def test_http_download_retries_then_verifies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = {"task_type": "exact_match", "dev": [{"input": "1+1?", "output": "2"}],
            "test": [{"input": "2+2?", "output": "4"}]}
    body = json.dumps(data).encode()
    import hashlib

    digest = hashlib.sha256(body).hexdigest()
    monkeypatch.setattr(moco_remote, "checksums",
                        lambda: {"toy": moco_remote.MocoFile("toy", "exact_match", digest)})
    _Flaky.body, _Flaky.fail_first, _Flaky.calls = body, 2, []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/BunsenFeng/model_collaboration/{MOCO_COMMIT}/data"
        splits = moco_pinned_source({"name": "toy", "mirror": base, "retries": 3, "backoff": 0.01},
                                    cache_dir=tmp_path)
    finally:
        server.shutdown()
    assert [i.gold for i in splits["test"]] == ["4"]
    assert _Flaky.calls == [f"/BunsenFeng/model_collaboration/{MOCO_COMMIT}/data/toy.json"] * 3
    # cached and verified: a second load makes no request
    moco_pinned_source({"name": "toy", "mirror": base}, cache_dir=tmp_path)
    assert len(_Flaky.calls) == 3


@needs_mirror
def test_cli_verify(capsys: pytest.CaptureFixture[str]):
    assert moco_remote.main(["verify", str(MIRROR)]) == 0  # a partial mirror: present sets all match
    out = capsys.readouterr().out
    assert "gsm8k\tok" in out and "popqa\tmissing" in out
    assert moco_remote.main(["verify", "--complete", str(MIRROR)]) == 1


def test_cli_verify_reports_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "gsm8k.json").write_text("{}")
    assert moco_remote.main(["verify", str(tmp_path)]) == 1
    assert "gsm8k\tmismatch" in capsys.readouterr().out


def test_cli_verify_reports_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert moco_remote.main(["verify", str(tmp_path)]) == 1
    assert "gsm8k\tmissing" in capsys.readouterr().out
