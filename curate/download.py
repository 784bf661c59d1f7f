"""Download stage: the source registry (curate/sources.yaml) and a careful HTTP fetcher.

With an offline mirror (``TIGER_MIRROR`` or ``--mirror``) the raw files are read in place from
``<mirror>/<source>/``; nothing is copied. Without one, each registry file is downloaded into
``<raw_dir>/<source>/<path>``: streamed into ``<dest>.part``, resumed with HTTP Range after a
dropped connection, retried with exponential backoff (honouring ``Retry-After``), verified against
its pinned sha256, and only then renamed into place, so a file at ``dest`` is always complete.
"""
from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
import yaml
from tqdm import tqdm

from curate.io import sha256_file

log = logging.getLogger(__name__)

REGISTRY_PATH = Path(__file__).with_name("sources.yaml")
FORMATS = ("json", "jsonl", "json_seed_tasks", "squad")
# Files in a mirror folder that count as data (README, licences, hidden files do not).
DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".tsv")
SUFFIX_FORMAT = {".json": "json", ".jsonl": "jsonl", ".parquet": "parquet", ".csv": "csv", ".tsv": "tsv"}
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
RETRY_AFTER_STATUS = frozenset({429, 503})
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class RegistryError(ValueError):
    """The source registry is malformed; the message names the file and the entry."""


class DownloadError(RuntimeError):
    """A file could not be fetched after the allowed attempts (or the server refused it)."""


class ChecksumError(DownloadError):
    """The fetched bytes do not have the sha256 the registry pins."""

    def __init__(self, name: str, expected: str, actual: str):
        super().__init__(f"{name}: sha256 mismatch: expected {expected}, got {actual}")
        self.name, self.expected, self.actual = name, expected, actual


@dataclass(frozen=True)
class SourceFile:
    path: str  # POSIX path inside the source's folder (mirror layout)
    url: str
    format: str
    sha256: str | None = None
    optional: bool = False
    in_mirror: bool = True
    substitute_for: str | None = None
    license: str | None = None
    homepage: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    license: str
    homepage: str
    files: tuple[SourceFile, ...]
    optional: bool = False  # the whole source may be absent (a missing mirror folder is no error)

    def file(self, path: str) -> SourceFile | None:
        return next((f for f in self.files if f.path == path), None)


@dataclass
class FetchResult:
    path: Path
    sha256: str
    bytes: int
    attempts: int  # HTTP requests made
    resumed: bool  # at least one Range request was answered with 206


# ---------------------------------------------------------------------------------------- registry

_SOURCE_KEYS = {"name", "description", "license", "homepage", "optional", "files"}
_FILE_KEYS = {f.name for f in SourceFile.__dataclass_fields__.values()}


def load_registry(path: str | os.PathLike | None = None) -> list[Source]:
    """Load and validate the source registry (default: curate/sources.yaml)."""
    path = Path(path) if path is not None else REGISTRY_PATH
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RegistryError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), list) or not doc["sources"]:
        raise RegistryError(f"{path}: expected a mapping with a non-empty 'sources' list")
    sources: list[Source] = []
    seen: set[str] = set()
    for i, raw in enumerate(doc["sources"]):
        where = f"{path}: sources[{i}]"
        if not isinstance(raw, dict):
            raise RegistryError(f"{where}: expected a mapping, got {type(raw).__name__}")
        where = f"{path}: source {raw.get('name', f'#{i}')!r}"
        _check_keys(where, raw, _SOURCE_KEYS, required={"name", "description", "license", "homepage", "files"})
        name = raw["name"]
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistryError(f"{where}: name must match {_NAME_RE.pattern} (it names a folder)")
        if name in seen:
            raise RegistryError(f"{where}: duplicate source name")
        seen.add(name)
        for k in ("description", "license", "homepage"):
            _check_str(where, k, raw[k])
        _check_url(where, "homepage", raw["homepage"])
        optional = raw.get("optional", False)
        if not isinstance(optional, bool):
            raise RegistryError(f"{where}: optional must be true or false")
        if not isinstance(raw["files"], list) or not raw["files"]:
            raise RegistryError(f"{where}: files must be a non-empty list")
        files = []
        paths: set[str] = set()
        for j, fr in enumerate(raw["files"]):
            sf = _parse_file(f"{where} files[{j}]", fr)
            if sf.path in paths:
                raise RegistryError(f"{where} files[{j}] ({sf.path!r}): duplicate path")
            paths.add(sf.path)
            files.append(sf)
        sources.append(Source(name=name, description=raw["description"].strip(), license=raw["license"],
                              homepage=raw["homepage"], files=tuple(files), optional=optional))
    return sources


def get_source(name: str, registry: list[Source] | None = None) -> Source:
    for s in registry if registry is not None else load_registry():
        if s.name == name:
            return s
    raise KeyError(f"no source named {name!r} in the registry")


def _parse_file(where: str, raw: Any) -> SourceFile:
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: expected a mapping, got {type(raw).__name__}")
    where = f"{where} ({raw.get('path')!r})"
    _check_keys(where, raw, _FILE_KEYS, required={"path", "url", "format"})
    _check_str(where, "path", raw["path"])
    try:
        check_relative_path(raw["path"])
    except ValueError as e:
        raise RegistryError(f"{where}: {e}") from None
    _check_url(where, "url", raw["url"])
    if raw["format"] not in FORMATS:
        raise RegistryError(f"{where}: format {raw['format']!r} is not one of {', '.join(FORMATS)}")
    sha = raw.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA_RE.match(sha)):
        raise RegistryError(f"{where}: sha256 must be 64 lowercase hex digits, got {sha!r}")
    for k in ("optional", "in_mirror"):
        if k in raw and not isinstance(raw[k], bool):
            raise RegistryError(f"{where}: {k} must be true or false")
    for k in ("substitute_for", "homepage"):
        if raw.get(k) is not None:
            _check_url(where, k, raw[k])
    for k in ("license", "note"):
        if raw.get(k) is not None:
            _check_str(where, k, raw[k])
    if raw.get("in_mirror") is False and not raw.get("optional", False):
        raise RegistryError(f"{where}: a file that is not in the mirror must be optional: true")
    return SourceFile(**{k: raw[k] for k in raw})


def _check_keys(where: str, raw: dict, allowed: set[str], required: set[str]) -> None:
    missing = sorted(required - raw.keys())
    if missing:
        raise RegistryError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise RegistryError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} (allowed: {', '.join(sorted(allowed))})")


def _check_str(where: str, key: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise RegistryError(f"{where}: {key} must be a non-empty string")


def _check_url(where: str, key: str, value: Any) -> None:
    _check_str(where, key, value)
    try:
        check_url(value)
    except ValueError as e:
        raise RegistryError(f"{where}: {key}: {e}") from None


def check_url(url: str) -> None:
    """Only plain http(s) URLs with a host: no file://, ftp://, data: …"""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"only http(s) URLs are allowed, got {url!r}")
    if any(c.isspace() for c in url) or any(ord(c) > 127 for c in url):
        raise ValueError(f"URL must be percent-encoded ASCII without spaces: {url!r}")


def check_relative_path(path: str) -> PurePosixPath:
    """A registry path must be a plain relative POSIX path: no '..', no absolute, no backslash."""
    if not path or "\\" in path or "\x00" in path:
        raise ValueError(f"bad path {path!r}")
    p = PurePosixPath(path)
    if p.is_absolute() or re.match(r"^[A-Za-z]:", path):
        raise ValueError(f"path must be relative, got {path!r}")
    if any(part in ("..", ".", "") for part in path.split("/")):
        raise ValueError(f"path must not contain '..', '.' or empty parts, got {path!r}")
    return p


def safe_dest(raw_dir: str | os.PathLike, source: str, path: str) -> Path:
    """``raw_dir/source/path``, checked to stay inside ``raw_dir`` (symlinks included)."""
    check_relative_path(source)
    if "/" in source:
        raise ValueError(f"source name must be a single folder name, got {source!r}")
    rel = check_relative_path(path)
    root = Path(raw_dir).resolve()
    dest = (root / source / rel).resolve()
    if not dest.is_relative_to(root):
        raise ValueError(f"{source}/{path}: destination {dest} escapes the raw dir {root}")
    return dest


def is_retriable(exc: BaseException) -> bool:
    """Whether trying again can help: a network failure or a timeout can pass; a missing file or
    folder, an unknown source, a malformed registry or a checksum mismatch cannot."""
    if isinstance(exc, ChecksumError):
        return False
    if isinstance(exc, (DownloadError, requests.ConnectionError, requests.Timeout, TimeoutError, ConnectionError)):
        return True
    return False


def default_mirror() -> Path | None:
    """The offline mirror named by ``TIGER_MIRROR``, if set."""
    value = os.environ.get("TIGER_MIRROR")
    return Path(value) if value else None


# ---------------------------------------------------------------------------------------- fetching

def fetch_file(url: str, dest: str | os.PathLike, sha256: str | None = None, retries: int = 5,
               backoff: float = 1.0, timeout: float | tuple[float, float] = (10.0, 60.0),
               session: requests.Session | None = None, *, backoff_max: float = 60.0,
               max_retry_after: float = 120.0, max_elapsed: float | None = None, chunk_size: int = 1 << 16,
               progress: bool = False, sleep: Callable[[float], None] = time.sleep) -> FetchResult:
    """Download ``url`` to ``dest`` (atomically, resumably, verified).

    At most ``retries + 1`` requests are made. Between them the wait is
    ``min(backoff_max, backoff * 2**n)`` plus up to 25% deterministic jitter, or the server's
    ``Retry-After`` (429/503), capped at ``max_retry_after``. ``max_elapsed`` bounds the total time
    (no retry starts after it). Bytes go to ``dest.part``; a leftover ``.part`` (an earlier attempt or
    run) is resumed with ``Range`` and restarted from zero if the server answers 200. The
    destination is ``dest`` whatever the server says (Content-Disposition is never read). On a
    sha256 mismatch the bytes are discarded and the file fetched once more from scratch (a stale
    ``.part`` or a body cut short with no length to check it by looks just like that); a second
    mismatch raises ChecksumError, and nothing is ever left at ``dest`` or in ``.part``.
    """
    check_url(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own_session = session is None
    session = session or requests.Session()
    # Jitter is seeded from the URL: the same failure sequence waits the same times (reproducible logs).
    rng = random.Random(int.from_bytes(hashlib.sha256(url.encode()).digest()[:8], "big"))
    start = time.monotonic()
    attempts = 0
    resumed = False
    refetched_after_mismatch = False
    validator: str | None = None  # ETag / Last-Modified of the first answer, for If-Range
    last_error = "no attempt made"
    try:
        while attempts <= retries:
            if attempts and max_elapsed is not None and time.monotonic() - start > max_elapsed:
                last_error += f" (gave up: over max_elapsed={max_elapsed}s)"
                break
            attempts += 1
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Accept-Encoding": "identity"}  # byte offsets must refer to the stored bytes
            if offset:
                headers["Range"] = f"bytes={offset}-"
                if validator:
                    headers["If-Range"] = validator
            wait: float | None = None
            try:
                with session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True) as r:
                    if r.status_code in RETRY_STATUS:
                        last_error = f"HTTP {r.status_code}"
                        if r.status_code in RETRY_AFTER_STATUS:
                            wait = _retry_after(r.headers.get("Retry-After"))
                    elif r.status_code == 416 and offset:
                        # Range past the end: the part may already be whole; verification decides.
                        total = _content_range_total(r.headers.get("Content-Range"))
                        if total == offset and (sha256 is None or sha256_file(part) == sha256):
                            done = _finish(part, dest, sha256, url)
                            return FetchResult(dest, done, dest.stat().st_size, attempts, resumed)
                        part.unlink(missing_ok=True)
                        last_error = "HTTP 416 for a stale partial file; restarting"
                        continue
                    elif r.status_code >= 400:
                        raise DownloadError(f"{url}: HTTP {r.status_code} {r.reason} (not retried)")
                    else:
                        validator = validator or r.headers.get("ETag") or r.headers.get("Last-Modified")
                        complete, last_error = _write_body(r, part, offset, chunk_size, progress, dest.name)
                        resumed = resumed or (r.status_code == 206)
                        if complete:
                            try:
                                done = _finish(part, dest, sha256, url)
                            except ChecksumError:
                                # Bad bytes may be transient (a stale .part, a body cut short with no
                                # length to check it by): refetch once from scratch before giving up.
                                if not refetched_after_mismatch and attempts <= retries:
                                    log.warning("%s: checksum mismatch; refetching from scratch once", dest.name)
                                    refetched_after_mismatch = True
                                    continue
                                raise
                            return FetchResult(dest, done, dest.stat().st_size, attempts, resumed)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as e:
                last_error = f"{type(e).__name__}: {e}"
            if attempts > retries:
                break
            if wait is None:
                wait = min(backoff_max, backoff * 2 ** (attempts - 1))
                wait += wait * 0.25 * rng.random()
            wait = max(0.0, min(wait, max_retry_after))
            if max_elapsed is not None and time.monotonic() - start + wait > max_elapsed:
                last_error += f" (gave up: waiting {wait:.1f}s would pass max_elapsed={max_elapsed}s)"
                break
            log.info("%s: attempt %d failed (%s); retrying in %.2fs", dest.name, attempts, last_error, wait)
            sleep(wait)
    finally:
        if own_session:
            session.close()
    kept = f"; partial data kept in {part} for the next try" if part.exists() else ""
    raise DownloadError(f"{url}: failed after {attempts} attempt(s): {last_error}{kept}")


def _write_body(r: requests.Response, part: Path, offset: int, chunk_size: int, progress: bool,
                name: str) -> tuple[bool, str]:
    """Stream the body into ``part``; return (complete, reason if not)."""
    if r.status_code == 206:
        start = _content_range_start(r.headers.get("Content-Range"))
        if start != offset:
            part.unlink(missing_ok=True)
            return False, f"206 for offset {start}, asked {offset}; restarting"
        mode, have = "ab", offset
        total = _content_range_total(r.headers.get("Content-Range"))
    else:
        # 200: the server ignored Range (or there was none): the body is the whole file.
        mode, have = "wb", 0
        total = int(r.headers["Content-Length"]) if r.headers.get("Content-Length", "").isdigit() else None
    with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True, leave=False,
                                     desc=name, disable=None if progress else True) as bar:
        for block in r.iter_content(chunk_size):
            f.write(block)
            have += len(block)
            bar.update(len(block))
        f.flush()
        os.fsync(f.fileno())
    if total is not None and have != total:
        return False, f"body ended at {have} of {total} bytes"
    return True, ""


def _finish(part: Path, dest: Path, sha256: str | None, url: str) -> str:
    """Verify ``part`` and rename it onto ``dest``; on mismatch delete it and raise ChecksumError."""
    actual = sha256_file(part)
    if sha256 is not None and actual != sha256:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{dest} (from {url})", sha256, actual)
    os.replace(part, dest)
    return actual


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


_CR_RE = re.compile(r"^bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)$")


def _content_range_start(value: str | None) -> int | None:
    m = _CR_RE.match((value or "").strip())
    return int(m.group(1)) if m and m.group(1) is not None else None


def _content_range_total(value: str | None) -> int | None:
    m = _CR_RE.match((value or "").strip())
    return int(m.group(3)) if m and m.group(3) != "*" else None


# ---------------------------------------------------------------------------------------- sources

def fetch_source(source: Source, raw_dir: str | os.PathLike, mirror: str | os.PathLike | None = None,
                 include_optional: bool = False, progress: bool = True, skipped: list | None = None,
                 **fetch_kw: Any) -> list[dict]:
    """The raw files of ``source``: one dict per file, sorted by file.

    Each dict: ``source, file`` (path inside the source folder), ``path`` (absolute), ``sha256``,
    ``bytes``, ``url`` (None for a mirror file the registry does not list), ``format``, ``origin``
    ("mirror", "download" or "cache").

    With ``mirror``, every data file in ``<mirror>/<source.name>/`` is used in place (not copied);
    files the registry does not list and registry files the folder lacks are logged, and only an
    empty folder is an error (or a missing one, unless the source is optional). A mirror file whose
    sha256 differs from the registry raises ChecksumError. With ``include_optional``, optional
    registry files the mirror lacks are downloaded into ``raw_dir``.

    Without a mirror, each non-optional registry file (and optional ones with ``include_optional``)
    is downloaded into ``raw_dir/<source>/<path>``; a file already there with the pinned sha256 is
    reused (origin "cache"). ``fetch_kw`` goes to :func:`fetch_file` (retries, backoff, session …).
    ``skipped`` (a list) receives ``{"source", "file", "reason"}`` for each mirror file not read
    (``curate.paths``: hidden, not data, a symlink leading outside the mirror …), also logged.
    """
    wanted = [f for f in source.files if include_optional or not f.optional]
    out: list[dict] = []
    if mirror is not None:
        folder = Path(mirror) / source.name
        if not folder.is_dir():
            if source.optional:
                log.info("%s: optional source not in the mirror (%s); skipped", source.name, folder)
                return []
            raise FileNotFoundError(f"{source.name}: mirror folder {folder} not found")
        from .paths import link_roots

        skip: list[tuple[str, str]] = []
        found = mirror_files(folder, roots=link_roots(mirror), skipped=skip)
        if skip:
            log.warning("%s: %d file(s) in %s not read: %s", source.name, len(skip), folder,
                        ", ".join(f"{rel} ({why})" for rel, why in skip[:20]) + (" …" if len(skip) > 20 else ""))
            if skipped is not None:
                skipped.extend({"source": source.name, "file": rel, "reason": why} for rel, why in skip)
        if not found:
            raise FileNotFoundError(f"{source.name}: no data files ({', '.join(DATA_SUFFIXES)}) in {folder}")
        registered = {f.path for f in source.files}
        extra = [p for p in found if p not in registered]
        if extra:
            log.warning("%s: %d mirror file(s) not in the registry, used anyway: %s", source.name, len(extra), extra)
        missing = [f.path for f in source.files if f.path not in found and f.in_mirror and not f.optional]
        if missing:
            log.warning("%s: %d registry file(s) missing from the mirror: %s", source.name, len(missing), missing)
        for rel in found:
            path = folder / rel
            sf = source.file(rel)
            sha = sha256_file(path)
            if sf is not None and sf.sha256 is not None and sha != sf.sha256:
                raise ChecksumError(f"{path} (mirror copy of {source.name}/{rel})", sf.sha256, sha)
            out.append(_entry(source, rel, path, sha, sf, "mirror"))
        to_download = [f for f in wanted if f.path not in found and f.optional]
    else:
        to_download = wanted
    for sf in tqdm(to_download, desc=f"download {source.name}", unit="file", disable=None if progress else True):
        dest = safe_dest(raw_dir, source.name, sf.path)
        if dest.is_file():
            sha = sha256_file(dest)
            if sf.sha256 is None or sha == sf.sha256:
                out.append(_entry(source, sf.path, dest, sha, sf, "cache"))
                continue
            log.warning("%s: cached %s has sha256 %s, expected %s; downloading again", source.name, sf.path, sha, sf.sha256)
        res = fetch_file(sf.url, dest, sha256=sf.sha256, progress=progress, **fetch_kw)
        out.append(_entry(source, sf.path, dest, res.sha256, sf, "download"))
    return sorted(out, key=lambda d: d["file"])


def mirror_files(folder: Path, roots: list[Path] | None = None, skipped: list | None = None) -> list[str]:
    """Relative POSIX paths of the data files under ``folder``, sorted (``curate.paths.walk_source``:
    hidden files, non-data files and symlinks pointing outside ``roots`` are skipped). Each skipped
    file is appended to ``skipped`` as ``(path, reason)`` when given."""
    from .paths import walk_source

    found, skip = walk_source(folder, roots)
    if skipped is not None:
        skipped.extend(skip)
    return found


def _entry(source: Source, rel: str, path: Path, sha: str, sf: SourceFile | None, origin: str) -> dict:
    fmt = sf.format if sf is not None else SUFFIX_FORMAT.get(Path(rel).suffix.lower(), "json")
    return {"source": source.name, "file": rel, "path": os.path.abspath(path), "sha256": sha,
            "bytes": Path(path).stat().st_size, "url": sf.url if sf is not None else None, "format": fmt,
            "origin": origin}
