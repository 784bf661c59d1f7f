"""Sources a user brings in the recipe, beside the registry's: local files, folders or globs, and
Hugging Face datasets.

    sources:
      - belle                                  # a registry source, as before
      - name: mydata                           # a local file, folder or glob (relative to the recipe)
        path: ../my/*.jsonl                    # or a list of such
        format: alpaca                         # auto (default), alpaca, sharegpt, messages, or a
        license: CC BY 4.0                     #   column mapping {instruction: prompt, output: response}
      - name: hf_set
        hf: BelleGroup/train_0.5M_CN           # datasets.load_dataset (offline: from the HF cache)
        split: train

Local files are read in place and checksummed into the run manifest (a changed file makes a new
run). A Hugging Face dataset is written once to ``<data>/raw/<name>/<split>.parquet`` and read from
there. Files are told by content (JSON, JSON lines, CSV/TSV, Parquet, gzip) and rows by their keys
(chats by ``conversations``/``messages``); a declared ``format`` quarantines rows of another shape
(``wrong_format``), and a column mapping renames the user's columns before reading.
"""
from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

from .io import atomic_path, sha256_file
from .schemas import FORMATS, check_columns

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEYS = {"name", "path", "hf", "split", "config", "format", "license", "description"}


class SourceError(ValueError):
    """A user source that cannot be read; the message names it and says what to fix."""


@dataclass(frozen=True)
class UserSource:
    name: str
    paths: tuple[str, ...] = ()  # absolute paths or globs
    hf: str | None = None
    split: str = "train"
    config: str | None = None
    format: str = "auto"
    columns: dict[str, str] = field(default_factory=dict)
    license: str = "unknown"


def parse_user_source(item: dict, base: Path, where: str) -> UserSource:
    """A recipe's source mapping → :class:`UserSource` (paths resolved against the recipe's folder)."""
    bad = sorted(set(item) - _KEYS)
    if bad:
        raise SourceError(f"{where}: unknown key(s) {', '.join(map(str, bad))} in a source; a source has "
                          f"{', '.join(sorted(_KEYS))}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SourceError(f"{where}: a source needs a name of letters, digits, '.', '_' or '-', got {name!r}")
    if ("path" in item) == ("hf" in item):
        raise SourceError(f"{where}: source {name!r} needs exactly one of path (local files) or hf (a dataset)")
    fmt = item.get("format", "auto")
    columns: dict[str, str] = {}
    if isinstance(fmt, dict):
        columns, fmt = check_columns(fmt, f"{where}: source {name!r}: format"), "columns"
    elif fmt not in FORMATS:
        raise SourceError(f"{where}: source {name!r}: format must be one of {', '.join(FORMATS)} or a column "
                          f"mapping, got {fmt!r}")
    paths: tuple[str, ...] = ()
    if "path" in item:
        raw = item["path"] if isinstance(item["path"], list) else [item["path"]]
        if not raw or not all(isinstance(p, str) and p for p in raw):
            raise SourceError(f"{where}: source {name!r}: path must be a file, folder or glob (or a list of them)")
        paths = tuple(str((base / Path(p).expanduser()).resolve()) if not glob.has_magic(p)
                      else str(base / Path(p).expanduser()) for p in raw)
    hf = item.get("hf")
    if hf is not None and not isinstance(hf, str):
        raise SourceError(f"{where}: source {name!r}: hf must be a dataset name such as 'BelleGroup/train_0.5M_CN'")
    return UserSource(name=name, paths=paths, hf=hf, split=str(item.get("split", "train")),
                      config=item.get("config"), format=fmt, columns=columns,
                      license=str(item.get("license", "unknown")))


def _local_files(src: UserSource) -> list[tuple[Path, str]]:
    """(path, name in the source) of every data file: a file as given, a folder's data files, a glob's matches."""
    from .paths import is_data_name, walk_source

    out: list[tuple[Path, str]] = []
    for p in src.paths:
        if glob.has_magic(p):
            hits = sorted(Path(h) for h in glob.glob(p, recursive=True) if Path(h).is_file())
            if not hits:
                raise SourceError(f"source {src.name!r}: {p} matches no file")
            out += [(h, h.name) for h in hits]
        elif Path(p).is_dir():
            files, _ = walk_source(Path(p))
            if not files:
                raise SourceError(f"source {src.name!r}: folder {p} holds no data file (.json, .jsonl, .csv, .tsv, "
                                  f".parquet, or gzip of them)")
            out += [(Path(p) / f, f) for f in files]
        elif Path(p).is_file():
            if not is_data_name(Path(p).name):
                raise SourceError(f"source {src.name!r}: {p} is not a data file (.json, .jsonl, .csv, .tsv, "
                                  f".parquet, or gzip of them)")
            out.append((Path(p), Path(p).name))
        else:
            raise SourceError(f"source {src.name!r}: {p} does not exist")
    names = [n for _, n in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:  # the record ids hash source/file/row: two files of one name would collide
        out = [(path, str(path)) for path, _ in out]
    return out


def _hf_file(src: UserSource, raw_dir: Path) -> Path:
    """The dataset's split as Parquet under ``raw_dir/<name>/`` (written once; offline from the HF cache)."""
    dest = raw_dir / src.name / f"{src.split}.parquet"
    if dest.is_file():
        return dest
    try:
        from datasets import load_dataset

        ds = load_dataset(src.hf, src.config, split=src.split)
    except Exception as e:  # noqa: BLE001  (datasets raises many kinds; the user needs one line)
        raise SourceError(f"source {src.name!r}: cannot load the Hugging Face dataset {src.hf!r} split "
                          f"{src.split!r} ({type(e).__name__}: {str(e)[:200]}); offline, it must be in the HF "
                          f"cache (run once with network, or set HF_HOME to a cache that has it)") from None
    with atomic_path(dest) as tmp:
        ds.to_parquet(str(tmp))
    return dest


def user_source_files(src: UserSource, raw_dir: str | Path) -> list[dict]:
    """The files of a user source as the parse stage takes them (with sha256 and bytes for the manifest)."""
    files = [(_hf_file(src, Path(raw_dir)), f"{src.split}.parquet")] if src.hf else _local_files(src)
    out = []
    for path, rel in files:
        out.append({"source": src.name, "file": rel, "path": str(path), "sha256": sha256_file(path),
                    "bytes": path.stat().st_size, "url": src.hf and f"hf://{src.hf}/{src.split}" or path.resolve().as_uri(),
                    "format": src.format, "origin": "user", **({"columns": src.columns} if src.columns else {})})
    return out
