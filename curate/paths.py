"""Where files may be read from and written to: run ids, source folders, outputs.

* A run id is a folder name, never a path: ``--run-id ../../x`` must not put a run outside the data folder.
* Symlinks in a source folder, one policy for files and folders alike: a link is followed only when
  its target lies inside the mirror, or inside a folder listed in ``TIGER_LINK_ROOTS`` (separated
  by ``os.pathsep``; for mirrors assembled from links into another mirror, as the tests do). Any
  other link is skipped with the reason ``symlink_outside_mirror``: data from elsewhere on the
  machine never enters a run unasked.
* Every file of a source folder that is not read is named, with a reason (``hidden``, ``not_data``,
  ``archive``, ``symlink_outside_mirror``, ``broken_symlink``, ``symlink_loop``), logged and counted
  in the parse ledger.
* Outputs of ``tiger label`` / ``tiger diversity`` never go into a mirror or beside an input file,
  where the next run would read them as data.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

LINK_ROOTS_ENV = "TIGER_LINK_ROOTS"
# data files: what the parse stage reads (gzip-compressed JSON too)
DATA_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".tsv")
GZ_SUFFIXES = tuple(s + ".gz" for s in (".json", ".jsonl", ".csv", ".tsv"))
# archives are not read: skipped as "archive" (unpack them into the folder)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".xz", ".bz2", ".7z", ".zst", ".rar")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class PathError(ValueError):
    """A path argument that would read or write where it must not; the message says what to pass."""


def check_run_id(run_id: str) -> str:
    """``run_id`` when it is a plain folder name (letters, digits, ``.``, ``_``, ``-``)."""
    if not _RUN_ID.fullmatch(run_id or "") or set(run_id) == {"."}:
        raise PathError(f"run id {run_id!r} is not a folder name: use letters, digits, '.', '_' and '-' "
                        f"only (no '/', no '..'); the run goes under <data-dir>/processed/")
    return run_id


def link_roots(mirror: str | os.PathLike) -> list[Path]:
    """Folders a symlink in the mirror may point into: the mirror and ``TIGER_LINK_ROOTS``."""
    roots = [Path(mirror).resolve()]
    for part in os.environ.get(LINK_ROOTS_ENV, "").split(os.pathsep):
        if part.strip():
            roots.append(Path(part).expanduser().resolve())
    return roots


def is_data_name(name: str) -> bool:
    low = name.lower()
    return low.endswith(DATA_SUFFIXES) or low.endswith(GZ_SUFFIXES)


def walk_source(folder: Path, roots: list[Path] | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """(data files, skipped) under ``folder``: relative POSIX paths, sorted; skipped as (path, reason).

    ``roots``: where symlinks may point (default: ``folder`` itself)."""
    folder = Path(folder)
    roots = roots if roots is not None else [folder.resolve()]
    found: list[str] = []
    skipped: list[tuple[str, str]] = []

    def inside(target: Path) -> bool:
        return any(target == r or target.is_relative_to(r) for r in roots)

    def walk(d: Path, rel: str, above: frozenset = frozenset()) -> None:
        real = d.resolve()
        if real in above:  # a link back to a folder being walked
            skipped.append((rel or ".", "symlink_loop"))
            return
        above = above | {real}
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            skipped.append((rel or ".", "unreadable_folder"))
            return
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            if e.name.startswith("."):
                skipped.append((r, "hidden"))
                continue
            if e.is_symlink():
                target = Path(e.path).resolve()
                if not target.exists():
                    skipped.append((r, "broken_symlink"))
                    continue
                if not inside(target):
                    skipped.append((r, "symlink_outside_mirror"))
                    continue
            if e.is_dir():
                walk(Path(e.path), r, above)
            elif not is_data_name(e.name):
                skipped.append((r, "archive" if e.name.lower().endswith(ARCHIVE_SUFFIXES) else "not_data"))
            elif e.is_file():
                found.append(r)
            else:
                skipped.append((r, "not_a_file"))

    walk(folder, "")
    return sorted(found), sorted(skipped)


def check_output_path(out: str | os.PathLike, inputs: list[str | os.PathLike], chosen: bool = False) -> Path:
    """``out`` unless it lies inside a mirror (``TIGER_MIRROR``) or, for a default the user did not
    choose (``chosen`` False), in the folder of an input file."""
    target = Path(out).expanduser().resolve()
    for p in [] if chosen else inputs:
        folder = Path(p).expanduser().resolve().parent
        if target == folder or target.is_relative_to(folder):
            raise PathError(f"{out}: would be written into {folder}, the folder of the input {p}, where a "
                            f"later run could read it as data; pass --out somewhere else")
    mirror = os.environ.get("TIGER_MIRROR")
    if mirror and target.is_relative_to(Path(mirror).expanduser().resolve()):
        raise PathError(f"{out}: is inside the mirror {mirror} (TIGER_MIRROR); pass --out somewhere else")
    return target
