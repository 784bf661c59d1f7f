"""Download stage: the registry against the real mirror, and fetch_file against a local HTTP
server (127.0.0.1 only) that serves real mirror bytes and misbehaves on purpose."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml

from curate.download import (REGISTRY_PATH, ChecksumError, DownloadError, RegistryError, Source, SourceFile,
                             default_mirror, fetch_file, fetch_source, get_source, load_registry, safe_dest)

pytestmark = pytest.mark.timeout(60)

FAST = dict(retries=3, backoff=0.01, backoff_max=0.05, timeout=(2, 5), max_elapsed=20, progress=False)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def mirror_data_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.suffix in (".json", ".jsonl"))


# ------------------------------------------------------------------------------ registry vs mirror

def test_registry_pins_the_mirror_bytes(mirror):
    reg = load_registry()
    assert [s.name for s in reg] == ["trans_chinese_alpaca", "alpaca_chinese", "belle", "traditional"]
    checked = 0
    for s in reg:
        for f in s.files:
            if f.optional:
                assert not f.in_mirror or (mirror / s.name / f.path).is_file()
                continue
            assert f.in_mirror, f"{s.name}/{f.path}"
            p = mirror / s.name / f.path
            assert p.is_file(), f"registry file missing from mirror: {p}"
            if f.sha256:
                assert sha(p.read_bytes()) == f.sha256, f"{s.name}/{f.path}"
                checked += 1
    assert checked == 53 + 1 + 26 + 2 + 2
    tca = get_source("trans_chinese_alpaca", reg)
    assert sum(f.path.startswith("alpaca_chinese_part_") for f in tca.files) == 53
    assert all(f.substitute_for and f.substitute_for.endswith("/trans_chinese_alpaca_data.json")
               for f in tca.files if f.path.startswith("alpaca_chinese_part_"))
    real = tca.file("trans_chinese_alpaca_data.json")
    assert real.optional and not real.in_mirror and "LC1332" in real.url
    assert get_source("traditional", reg).optional
    belle_hf = [f for f in get_source("belle", reg).files if f.optional]
    assert belle_hf and all(f.url.startswith("https://huggingface.co/datasets/BelleGroup/") for f in belle_hf)
    # Non-ASCII upstream paths are percent-encoded and decode back to the mirror's file name.
    from urllib.parse import unquote
    ac = get_source("alpaca_chinese", reg)
    for f in ac.files:
        assert f.url.isascii()
        assert unquote(f.url).endswith("/" + f.path.split("/", 1)[1])


@pytest.mark.parametrize("name", ["trans_chinese_alpaca", "alpaca_chinese", "belle", "traditional"])
def test_fetch_source_reads_every_mirror_file_in_place(mirror, tmp_path, name):
    src = get_source(name)
    out = fetch_source(src, tmp_path / "raw", mirror=mirror, progress=False)
    folder = mirror / name
    assert [d["file"] for d in out] == mirror_data_files(folder)
    for d in out:
        p = Path(d["path"])
        assert p == folder / d["file"] and p.is_absolute()
        assert d["sha256"] == sha(p.read_bytes()) and d["bytes"] == p.stat().st_size
        assert d["origin"] == "mirror" and d["source"] == name
        assert d["url"] == src.file(d["file"]).url
    assert not (tmp_path / "raw").exists()  # nothing copied


def _small_mirror(tmp_path: Path, mirror: Path) -> Path:
    """A mirror with belle/dev1K.json (symlink to the real one), zh_seed_tasks.json absent, and an
    unregistered file made of real rows."""
    m = tmp_path / "mirror"
    (m / "belle").mkdir(parents=True)
    (m / "belle" / "dev1K.json").symlink_to(mirror / "belle" / "dev1K.json")
    lines = (mirror / "belle" / "dev1K.json").read_text(encoding="utf-8").splitlines(keepends=True)[:3]
    (m / "belle" / "extra.jsonl").write_text("".join(lines), encoding="utf-8")
    (m / "belle" / "README.md").write_text("not data", encoding="utf-8")
    return m


def test_mirror_extra_and_missing_files_are_reported_not_fatal(mirror, tmp_path, caplog):
    m = _small_mirror(tmp_path, mirror)
    with caplog.at_level(logging.WARNING, logger="curate.download"):
        out = fetch_source(get_source("belle"), tmp_path / "raw", mirror=m, progress=False)
    assert [d["file"] for d in out] == ["dev1K.json", "extra.jsonl"]
    extra = out[1]
    assert extra["url"] is None and extra["format"] == "jsonl" and extra["origin"] == "mirror"
    text = caplog.text
    assert "extra.jsonl" in text and "not in the registry" in text
    assert "zh_seed_tasks.json" in text and "missing from the mirror" in text
    assert "Belle_open_source" not in text  # optional, not-mirrored files are not "missing"


def test_mirror_without_files_or_folder(mirror, tmp_path):
    m = tmp_path / "mirror"
    (m / "belle").mkdir(parents=True)
    (m / "belle" / "README.md").write_text("x", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match="no data files"):
        fetch_source(get_source("belle"), tmp_path / "raw", mirror=m, progress=False)
    with pytest.raises(FileNotFoundError, match="alpaca_chinese"):
        fetch_source(get_source("alpaca_chinese"), tmp_path / "raw", mirror=m, progress=False)
    assert fetch_source(get_source("traditional"), tmp_path / "raw", mirror=m, progress=False) == []


def test_mirror_file_with_other_bytes_fails_checksum(mirror, tmp_path):
    m = tmp_path / "mirror"
    (m / "belle").mkdir(parents=True)
    data = (mirror / "belle" / "dev1K.json").read_bytes()
    (m / "belle" / "dev1K.json").write_bytes(data[:-10])
    with pytest.raises(ChecksumError, match="dev1K.json") as e:
        fetch_source(get_source("belle"), tmp_path / "raw", mirror=m, progress=False)
    assert e.value.expected == get_source("belle").file("dev1K.json").sha256
    assert e.value.actual == sha(data[:-10])


def test_default_mirror_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv("TIGER_MIRROR", raising=False)
    assert default_mirror() is None
    monkeypatch.setenv("TIGER_MIRROR", str(tmp_path))
    assert default_mirror() == tmp_path


# ------------------------------------------------------------------------------ registry validation

def _write_registry(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(REGISTRY_PATH.read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    mutate(doc)
    p = tmp_path / "sources.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return p


def _belle_file0(doc):
    return next(s for s in doc["sources"] if s["name"] == "belle")["files"][0]


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: _belle_file0(d).update(path="../evil.json"), "'..'"),
    (lambda d: _belle_file0(d).update(path="a/../../evil.json"), "'..'"),
    (lambda d: _belle_file0(d).update(path="/etc/passwd"), "relative"),
    (lambda d: _belle_file0(d).update(path="C:/x.json"), "relative"),
    (lambda d: _belle_file0(d).update(path="a\\b.json"), "bad path"),
    (lambda d: _belle_file0(d).update(url="file:///etc/passwd"), "http"),
    (lambda d: _belle_file0(d).update(url="https://example.org/中文.json"), "percent-encoded"),
    (lambda d: _belle_file0(d).update(format="xml"), "format"),
    (lambda d: _belle_file0(d).update(sha256="abc"), "sha256"),
    (lambda d: _belle_file0(d).update(shasum="x"), "unknown key"),
    (lambda d: _belle_file0(d).pop("url"), "missing url"),
    (lambda d: _belle_file0(d).update(in_mirror=False), "optional"),
    (lambda d: next(s for s in d["sources"] if s["name"] == "belle").update(name="../belle"), "name must match"),
    (lambda d: d["sources"].append(copy.deepcopy(d["sources"][2])), "duplicate source"),
])
def test_bad_registry_entries_are_rejected_by_name(tmp_path, mutate, needle):
    p = _write_registry(tmp_path, mutate)
    with pytest.raises(RegistryError) as e:
        load_registry(p)
    msg = str(e.value)
    assert needle in msg and str(p) in msg
    assert "belle" in msg or "name must match" in msg


def test_safe_dest_stays_under_raw_dir(tmp_path):
    raw = tmp_path / "raw"
    assert safe_dest(raw, "belle", "a/b.json") == (raw / "belle" / "a" / "b.json").resolve()
    for bad in ["../x.json", "/tmp/x.json", "a/../../x.json", ""]:
        with pytest.raises(ValueError):
            safe_dest(raw, "belle", bad)
    with pytest.raises(ValueError):
        safe_dest(raw, "..", "x.json")
    # A symlinked source folder that points outside the raw dir is an escape too.
    outside = tmp_path / "outside"
    outside.mkdir()
    raw.mkdir()
    (raw / "belle").symlink_to(outside)
    with pytest.raises(ValueError, match="escapes"):
        safe_dest(raw, "belle", "x.json")


# ------------------------------------------------------------------------------ faulty HTTP server

class FaultServer:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1. ``plan[path]`` is a list of behaviours
    consumed one per request (then "ok"); ``requests`` records (path, Range header) of each."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.plan: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Range")))
                plan = outer.plan.get(self.path) or []
                how = plan.pop(0) if plan else "ok"
                data = outer.files.get(self.path)
                self.close_connection = True
                if data is None:
                    return self._status(404)
                if how == "500":
                    return self._status(500)
                if how.startswith("429:"):
                    return self._status(429, {"Retry-After": how.split(":", 1)[1]})
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng and how != "ignore_range":
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        return self._status(416, {"Content-Range": f"bytes */{len(data)}"})
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Connection", "close")
                if how == "evil_cd":
                    self.send_header("Content-Disposition", 'attachment; filename="../../evil.json"')
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                if how == "unframed_cut":
                    # No length at all (close-delimited body), cut short: HTTP cannot tell.
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if how in ("drop", "truncate"):
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    if how == "drop":  # the connection goes away mid-body
                        import socket
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            def _status(self, code, headers=None):
                body = f"status {code}".encode()
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Connection", "close")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def real_bytes(mirror) -> dict[str, bytes]:
    return {"/belle/dev1K.json": (mirror / "belle" / "dev1K.json").read_bytes(),
            "/belle/zh_seed_tasks.json": (mirror / "belle" / "zh_seed_tasks.json").read_bytes()}


@pytest.fixture
def server(real_bytes):
    s = FaultServer(real_bytes)
    yield s
    s.close()


DEV = "/belle/dev1K.json"


def range_start(header: str | None) -> int:
    assert header and header.startswith("bytes=") and header.endswith("-"), header
    return int(header[len("bytes="):-1])


class Sleeps(list):
    """Records each wait fetch_file asks for, and really waits."""

    def __call__(self, s):
        self.append(s)
        time.sleep(s)


def test_plain_download(server, real_bytes, tmp_path):
    dest = tmp_path / "raw" / "belle" / "dev1K.json"
    res = fetch_file(server.url(DEV), dest, sha256=sha(real_bytes[DEV]), **FAST)
    assert dest.read_bytes() == real_bytes[DEV]
    assert res.sha256 == sha(real_bytes[DEV]) and res.attempts == 1 and not res.resumed
    assert not dest.with_name("dev1K.json.part").exists()


def test_dropped_connection_resumes_with_range(server, real_bytes, tmp_path):
    data = real_bytes[DEV]
    server.plan[DEV] = ["drop"]
    dest = tmp_path / "dev1K.json"
    res = fetch_file(server.url(DEV), dest, sha256=sha(data), **FAST)
    assert dest.read_bytes() == data
    assert len(server.requests) == 2 and server.requests[0][1] is None
    # Resumed from what was saved: some bytes, at most what the server sent before dropping
    # (the client's last partial read buffer is lost with the connection).
    assert 0 < range_start(server.requests[1][1]) <= len(data) // 3
    assert res.resumed and res.attempts == 2


def test_server_ignoring_range_restarts_from_zero(server, real_bytes, tmp_path):
    data = real_bytes[DEV]
    server.plan[DEV] = ["drop", "ignore_range"]
    dest = tmp_path / "dev1K.json"
    res = fetch_file(server.url(DEV), dest, sha256=sha(data), **FAST)
    assert 0 < range_start(server.requests[1][1]) <= len(data) // 3  # asked to resume …
    assert dest.read_bytes() == data  # … got 200 and rewrote the whole file, not appended
    assert not res.resumed and res.attempts == 2 and len(server.requests) == 2


def test_http_500_then_success(server, real_bytes, tmp_path):
    server.plan[DEV] = ["500"]
    sleeps = Sleeps()
    dest = tmp_path / "dev1K.json"
    res = fetch_file(server.url(DEV), dest, sha256=sha(real_bytes[DEV]), sleep=sleeps, **FAST)
    assert dest.read_bytes() == real_bytes[DEV] and res.attempts == 2
    assert len(sleeps) == 1 and 0.01 <= sleeps[0] <= 0.0125  # backoff * 2**0 plus ≤25% jitter


def test_429_retry_after_is_honoured_and_bounded(server, real_bytes, tmp_path):
    server.plan[DEV] = ["429:1"]
    sleeps = Sleeps()
    fetch_file(server.url(DEV), tmp_path / "a.json", sha256=sha(real_bytes[DEV]), sleep=sleeps, **FAST)
    assert sleeps == [1.0]
    server.plan[DEV] = ["429:3600"]
    sleeps = Sleeps()
    fetch_file(server.url(DEV), tmp_path / "b.json", sha256=sha(real_bytes[DEV]), sleep=sleeps,
               max_retry_after=0.05, **FAST)
    assert sleeps == [0.05]
    assert (tmp_path / "b.json").read_bytes() == real_bytes[DEV]


def test_retries_are_bounded_and_leave_nothing_at_dest(server, tmp_path):
    server.plan[DEV] = ["500"] * 10
    dest = tmp_path / "dev1K.json"
    with pytest.raises(DownloadError, match="4 attempt"):
        fetch_file(server.url(DEV), dest, **FAST)
    assert len(server.requests) == 4 and not dest.exists()


def test_truncated_body_is_never_accepted(server, real_bytes, tmp_path):
    data = real_bytes[DEV]
    dest = tmp_path / "dev1K.json"
    # No sha256 to check: the short body must be caught by its length, then resumed.
    server.plan[DEV] = ["truncate"]
    fetch_file(server.url(DEV), dest, **FAST)
    assert dest.read_bytes() == data
    # Always truncated: give up after retries+1 requests, nothing at dest.
    dest2 = tmp_path / "again.json"
    server.plan[DEV] = ["truncate"] * 4  # each resumed request is cut short too
    server.requests.clear()
    with pytest.raises(DownloadError):
        fetch_file(server.url(DEV), dest2, **FAST)
    assert len(server.requests) == 4 and not dest2.exists()


def test_unframed_cut_body_is_caught_by_checksum_and_refetched(server, real_bytes, tmp_path):
    data = real_bytes[DEV]
    server.plan[DEV] = ["unframed_cut"]
    dest = tmp_path / "dev1K.json"
    res = fetch_file(server.url(DEV), dest, sha256=sha(data), **FAST)
    assert dest.read_bytes() == data and res.attempts == 2
    assert server.requests[1][1] is None  # refetched from scratch, not resumed onto bad bytes


def test_wrong_checksum_raises_and_leaves_nothing(server, real_bytes, tmp_path):
    dest = tmp_path / "raw" / "dev1K.json"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as e:
        fetch_file(server.url(DEV), dest, sha256=wrong, **FAST)
    msg = str(e.value)
    assert "dev1K.json" in msg and wrong in msg and sha(real_bytes[DEV]) in msg
    assert not dest.exists() and not dest.with_name("dev1K.json.part").exists()
    assert len(server.requests) == 2  # one fresh refetch, then the error


def test_stale_partial_file_from_another_version_is_replaced(server, real_bytes, tmp_path):
    dest = tmp_path / "dev1K.json"
    dest.with_name("dev1K.json.part").write_bytes(real_bytes["/belle/zh_seed_tasks.json"][:1000])
    fetch_file(server.url(DEV), dest, sha256=sha(real_bytes[DEV]), **FAST)
    assert dest.read_bytes() == real_bytes[DEV]
    assert [r[1] for r in server.requests] == ["bytes=1000-", None]


def test_complete_partial_file_is_finished_on_416(server, real_bytes, tmp_path):
    data = real_bytes[DEV]
    dest = tmp_path / "dev1K.json"
    dest.with_name("dev1K.json.part").write_bytes(data)
    res = fetch_file(server.url(DEV), dest, sha256=sha(data), **FAST)
    assert dest.read_bytes() == data and res.attempts == 1
    assert server.requests == [(DEV, f"bytes={len(data)}-")]


def test_content_disposition_is_ignored(server, real_bytes, tmp_path):
    server.plan[DEV] = ["evil_cd"]
    dest = tmp_path / "raw" / "belle" / "dev1K.json"
    fetch_file(server.url(DEV), dest, sha256=sha(real_bytes[DEV]), **FAST)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == \
        ["raw/belle/dev1K.json"]


def test_not_found_is_not_retried_and_bad_schemes_refused(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        fetch_file(server.url("/nope.json"), tmp_path / "x.json", **FAST)
    assert len(server.requests) == 1
    for url in ["file:///etc/passwd", "ftp://127.0.0.1/x.json", "127.0.0.1/x.json"]:
        with pytest.raises(ValueError, match="http"):
            fetch_file(url, tmp_path / "x.json", **FAST)
    assert len(server.requests) == 1


def _local_belle(server) -> Source:
    """The registry's belle source with its URLs pointed at the local server."""
    src = get_source("belle")
    files = tuple(dataclasses.replace(f, url=server.url("/belle/" + f.path)) for f in src.files)
    return dataclasses.replace(src, files=files)


def test_fetch_source_downloads_then_uses_cache(server, real_bytes, tmp_path):
    src = _local_belle(server)
    raw = tmp_path / "raw"
    with requests.Session() as session:
        out = fetch_source(src, raw, session=session, progress=False, **{k: v for k, v in FAST.items() if k != "progress"})
    assert [d["file"] for d in out] == ["dev1K.json", "zh_seed_tasks.json"]
    assert [d["origin"] for d in out] == ["download", "download"]
    for d in out:
        assert Path(d["path"]) == (raw / "belle" / d["file"]).resolve()
        assert Path(d["path"]).read_bytes() == real_bytes["/belle/" + d["file"]]
        assert d["sha256"] == src.file(d["file"]).sha256
    assert sorted(r[0] for r in server.requests) == ["/belle/dev1K.json", "/belle/zh_seed_tasks.json"]  # no optional files

    server.requests.clear()
    again = fetch_source(src, raw, progress=False, **{k: v for k, v in FAST.items() if k != "progress"})
    assert [d["origin"] for d in again] == ["cache", "cache"] and server.requests == []
    assert [{k: d[k] for k in d if k != "origin"} for d in again] == [{k: d[k] for k in d if k != "origin"} for d in out]

    (raw / "belle" / "dev1K.json").write_bytes(b"corrupted")
    third = fetch_source(src, raw, progress=False, **{k: v for k, v in FAST.items() if k != "progress"})
    assert [d["origin"] for d in third] == ["download", "cache"]
    assert (raw / "belle" / "dev1K.json").read_bytes() == real_bytes[DEV]


def test_fetch_source_rejects_traversal_before_any_request(server, tmp_path):
    evil = Source(name="belle", description="d", license="l", homepage="https://example.org",
                  files=(SourceFile(path="../../evil.json", url=server.url(DEV), format="jsonl"),))
    with pytest.raises(ValueError, match=r"\.\."):
        fetch_source(evil, tmp_path / "raw", progress=False, **{k: v for k, v in FAST.items() if k != "progress"})
    assert server.requests == [] and not (tmp_path / "evil.json").exists()
