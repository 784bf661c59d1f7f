"""Downloads under faults that tests/test_download.py does not cover: slow and stalled responses, a
whole source fetched through a server that misbehaves at random (seeded) and then recovers, and a
real `tiger run` without a mirror that downloads through such a server and completes.

The server serves the real mirror files on 127.0.0.1; the fetcher must end with exactly the bytes
the registry pins. (Drops, HTTP 500/429, truncated bodies, wrong checksums, Range ignored and path
traversal are in tests/test_download.py.)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import requests
import yaml

from curate.download import REGISTRY_PATH, fetch_file, fetch_source, get_source

# the real-run helpers and the shared Prefect server (cli_env is a fixture)
from test_resume import BIN, cli_env, digest, run_dir_of, run_tiger  # noqa: F401

STALL_S = 1.5  # how long a stalled response hangs; the client's read timeout is shorter
READ_TIMEOUT = 0.4


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


class FlakyServer:
    """Serves ``files`` (URL path → bytes) with Range support. Each path has a plan: behaviours
    consumed one per request, then "ok". ``log`` records (path, Range header, status)."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.plan, self.log = files, {}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                path = unquote(self.path)
                plan = outer.plan.get(path) or []
                how = plan.pop(0) if plan else "ok"
                self.close_connection = True
                data = outer.files.get(path)
                rng = self.headers.get("Range")
                if data is None:
                    return self._status(path, rng, 404)
                code, _, arg = how.partition(":")
                if code in ("500", "503", "429"):
                    return self._status(path, rng, int(code), {"Retry-After": arg} if arg else {})
                if how == "stall_headers":  # accept, then say nothing
                    outer.log.append((path, rng, "stalled"))
                    time.sleep(STALL_S)
                    return
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
                body = data[start:]
                status = 206 if rng else 200
                outer.log.append((path, rng, status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Connection", "close")
                self.end_headers()
                if how == "ok":
                    self.wfile.write(body)
                elif how == "slow":  # complete, in small pieces with pauses far below the read timeout
                    for i in range(0, len(body), 32_768):
                        self.wfile.write(body[i:i + 32_768])
                        self.wfile.flush()
                        time.sleep(0.01)
                elif how in ("drop", "truncate", "stall"):
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    if how == "stall":  # part of the body, then silence
                        time.sleep(STALL_S)
                    elif how == "drop":
                        self.connection.shutdown(socket.SHUT_RDWR)
                else:
                    raise ValueError(how)

            def _status(self, path, rng, code, headers=None):
                outer.log.append((path, rng, code))
                body = f"status {code}".encode()
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + quote(path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def source_files(mirror: Path, name: str) -> dict[str, bytes]:
    """URL path → bytes of every registry file of source ``name`` that the mirror has."""
    src = get_source(name)
    return {f"/{name}/{f.path}": (mirror / name / f.path).read_bytes() for f in src.files
            if (mirror / name / f.path).is_file()}


def local(src, server: FlakyServer):
    """The registry's source with its URLs pointed at the local server."""
    return dataclasses.replace(src, files=tuple(dataclasses.replace(f, url=server.url(f"/{src.name}/{f.path}"))
                                                for f in src.files))


@pytest.fixture
def belle_server(mirror):
    s = FlakyServer(source_files(mirror, "belle"))
    yield s
    s.close()


DEV = "/belle/dev1K.json"
QUICK = dict(retries=4, backoff=0.01, backoff_max=0.05, timeout=(2, READ_TIMEOUT), progress=False)


def test_slow_but_steady_response_is_not_cut_off(belle_server, tmp_path):
    belle_server.plan[DEV] = ["slow"]
    res = fetch_file(belle_server.url(DEV), tmp_path / "dev1K.json", sha256=sha(belle_server.files[DEV]), **QUICK)
    assert res.attempts == 1 and (tmp_path / "dev1K.json").read_bytes() == belle_server.files[DEV]


def test_stalled_body_times_out_and_resumes_with_range(belle_server, tmp_path):
    data = belle_server.files[DEV]
    belle_server.plan[DEV] = ["stall"]
    res = fetch_file(belle_server.url(DEV), tmp_path / "dev1K.json", sha256=sha(data), **QUICK)
    assert (tmp_path / "dev1K.json").read_bytes() == data and res.attempts == 2 and res.resumed
    (_, first, _), (_, second, status) = belle_server.log
    assert first is None and status == 206
    assert 0 < int(second.removeprefix("bytes=").rstrip("-")) <= len(data) // 3  # what arrived before the stall


def test_stalled_headers_time_out_and_are_retried(belle_server, tmp_path):
    belle_server.plan[DEV] = ["stall_headers", "stall_headers"]
    res = fetch_file(belle_server.url(DEV), tmp_path / "dev1K.json", sha256=sha(belle_server.files[DEV]), **QUICK)
    assert res.attempts == 3 and not res.resumed
    assert (tmp_path / "dev1K.json").read_bytes() == belle_server.files[DEV]


def test_whole_source_through_a_flaky_server(mirror, tmp_path):
    """Every file of a source, each request at random (seeded) dropped, cut, stalled, slowed or
    refused with 500/503/429 — at most 3 faults per file, then the server recovers (some files
    then come slowly)."""
    files = source_files(mirror, "alpaca_chinese")
    assert len(files) >= 20
    server = FlakyServer(files)
    rng = random.Random(7)
    menu = ["drop", "truncate", "stall", "stall_headers", "500", "503:0", "429:0"]
    for path in sorted(files):
        server.plan[path] = [rng.choice(menu) for _ in range(rng.randint(0, 3))] + ["slow"] * (rng.random() < 0.3)
    faults = sum(x != "slow" for p in server.plan.values() for x in p)
    src = local(get_source("alpaca_chinese"), server)
    raw = tmp_path / "raw"
    try:
        with requests.Session() as session:
            out = fetch_source(src, raw, session=session, **{**QUICK, "retries": 5})
        # every fault was met, and each cost exactly one more request
        assert all(not p for p in server.plan.values()) and len(server.log) == len(files) + faults
        assert [d["origin"] for d in out] == ["download"] * len(files)
        for d in out:
            assert Path(d["path"]).read_bytes() == files[f"/alpaca_chinese/{d['file']}"]
            assert d["sha256"] == src.file(d["file"]).sha256
        assert not list(raw.rglob("*.part")) and any(status == 206 for _, _, status in server.log)
        n = len(server.log)
        again = fetch_source(src, raw, **QUICK)  # a rerun finds every file complete: no request
        assert [d["origin"] for d in again] == ["cache"] * len(files) and len(server.log) == n
    finally:
        server.close()


@pytest.mark.slow
def test_tiger_run_without_mirror_downloads_through_faults_and_completes(tmp_path, mirror, cli_env):
    """`tiger run` with no mirror: the registry's URLs point at a local server that drops, cuts,
    slows and refuses requests, then recovers; the run completes, a rerun downloads nothing."""
    server = FlakyServer(source_files(mirror, "belle"))
    server.plan = {DEV: ["drop", "slow"], "/belle/zh_seed_tasks.json": ["503:1", "truncate"]}
    doc = yaml.safe_load(REGISTRY_PATH.read_text(encoding="utf-8"))
    for s in doc["sources"]:
        for f in s["files"]:
            f["url"] = server.url(f"/{s['name']}/{f['path']}")
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    # The CLI has no registry option: a sitecustomize points curate.download at this registry.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\nfrom pathlib import Path\nimport curate.download\n"
        "curate.download.REGISTRY_PATH = Path(os.environ['TIGER_TEST_REGISTRY'])\n", encoding="utf-8")
    env = {**cli_env, "PYTHONPATH": f"{site}:{cli_env['PYTHONPATH']}", "TIGER_TEST_REGISTRY": str(tmp_path / "sources.yaml")}
    from test_resume import small_recipe

    recipe = small_recipe(tmp_path / "recipe.yaml", mixture_rows=100, clusters=4)
    doc = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    doc["sources"] = ["belle"]
    recipe.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    cmd = [str(BIN / "tiger"), "run", "--data-dir", str(tmp_path / "data"), "--recipe", str(recipe)]
    try:
        r = run_tiger(cmd, env, tmp_path)
        assert r.returncode == 0, r.stdout[-3000:]
        assert all(not p for p in server.plan.values())  # every fault was met
        assert (DEV, None, 200) in server.log and any(p == DEV and s == 206 for p, _, s in server.log)
        run_dir = run_dir_of(r)
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        belle = get_source("belle")
        assert [(i["file"], i["sha256"]) for i in manifest["inputs"]] == [
            (f.path, f.sha256) for f in sorted(belle.files, key=lambda f: f.path) if not f.optional]
        raw = tmp_path / "data" / "raw" / "belle"
        assert (raw / "dev1K.json").read_bytes() == (mirror / "belle" / "dev1K.json").read_bytes()
        assert not list(raw.glob("*.part"))
        before, n = digest(run_dir), len(server.log)
        r = run_tiger(cmd, env, tmp_path)  # rerun: files verified in data/raw, nothing fetched
        assert r.returncode == 0 and len(server.log) == n
        after = digest(run_dir)
        assert after == before  # manifest included: it records inputs by checksum, not by how they arrived
    finally:
        server.close()
