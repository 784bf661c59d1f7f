"""The curation pipeline as a readable list of stages, each with explicit inputs and outputs on disk.

Every stage reads the previous stage's ``kept.parquet`` and writes into its own folder:

    <run_dir>/<stage>/kept.parquet     records that go on
    <run_dir>/<stage>/dropped.parquet  records dropped here, each with stage, reason and detail (only
                                       when the stage dropped any: datasets cannot load a 0-row file)
    <run_dir>/<stage>/stats.json       what each operator did, with examples
    <run_dir>/<stage>/ledger.json      in / kept / dropped, by source and reason
    <run_dir>/<stage>/_SUCCESS.json    completion marker holding the stage's cache key
    <run_dir>/_cache/                  fitted embeddings the report reuses (curate.embed.fit_store)

The cache key hashes the stage's input files, its parameters and the code of ``curate/``; a stage
whose marker matches is skipped, so a killed run resumes where it stopped and a changed recipe or
code re-runs what it affects. No Prefect here: flows/ orchestrates these functions.

Fault injection (for the kill-and-resume tests): with ``TIGER_FAULT=<stage>:<point>`` set, the
process SIGKILLs itself at that point, as a crash or an OOM kill would. ``<stage>`` is one of
``STAGES`` or ``mixtures``; ``<point>`` is ``before`` (the stage is not done and about to start),
``writing`` (half-way through the atomic write of ``kept.parquet``: only a temp file exists),
``mid`` (``kept.parquet`` written — for mixtures the first mixture file — but no ``_SUCCESS`` marker)
or ``after`` (marker written). Unset, it does nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import signal
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .io import (ahead, arrow_ids_frame, atomic_path, part_facts, read_json, read_parquet, read_parts_rows,
                 read_positions, read_selected, sha256_file, sweep_temps, write_json, write_parquet, write_parquet_parts)
from .io import read_rows as io_read_rows
from .jobs import TaskJob
from .mix import MixtureSpec
from .recipe import Recipe, Stage, Step
from .records import LedgerError, StageResult, drop_frame, empty_drops, ledger_row

CURATE_DIR = Path(__file__).resolve().parent
PACKAGES = ["tiger", "datasets", "pandas", "pyarrow", "numpy", "opencc", "jieba", "datasketch", "langdetect",
            "scikit-learn", "prefect", "torch", "transformers", "peft"]

Progress = Callable[[str], None] | None


def code_version() -> str:
    """Hash of the library's source: a code change invalidates cached stages."""
    h = hashlib.sha256()
    for p in sorted(CURATE_DIR.rglob("*")):
        if p.suffix in {".py", ".yaml", ".json"} and "__pycache__" not in p.parts:
            h.update(p.relative_to(CURATE_DIR).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cache_key(inputs: list[str | Path], params: Any) -> str:
    h = hashlib.sha256()
    for p in inputs:
        h.update(sha256_file(p).encode())
    h.update(json.dumps(params, sort_keys=True, ensure_ascii=False, default=str).encode())
    h.update(code_version().encode())
    return h.hexdigest()[:16]


def is_done(out_dir: Path, key: str) -> bool:
    marker = out_dir / "_SUCCESS.json"
    if not marker.exists():
        return False
    try:
        return read_json(marker).get("key") == key
    except (ValueError, OSError):
        return False


FAULT_ENV = "TIGER_FAULT"


def fault_point(stage: str, point: str) -> None:
    """SIGKILL this process if ``TIGER_FAULT`` names this point (see the module docstring)."""
    if os.environ.get(FAULT_ENV) == f"{stage}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class RowParts:
    """A stage's kept or dropped rows left on disk, written to the stage's output a part at a time
    (:func:`curate.io.write_parquet_parts`: the same bytes as the concatenation). Stands in for the
    frame where only its length and a few small columns are read (the check, the ledger)."""

    loads: tuple[Callable[[], pd.DataFrame], ...]
    small: pd.DataFrame  # every row's small columns: what the ledger reads (source; reason for drops)
    #                      and, for the diversity stage, what its summary reads
    facts: tuple[dict[str, Any], ...] | None = None  # each part's io.part_facts, when its task kept them

    def __len__(self) -> int:
        return len(self.small)

    def __getitem__(self, column: str) -> pd.Series:
        if column not in self.small.columns:
            raise KeyError(f"RowParts holds only {list(self.small.columns)}, not {column!r}")
        return self.small[column]


def _write_rows(path: Path, rows: pd.DataFrame | RowParts, note: bool = False) -> None:
    if isinstance(rows, RowParts):
        write_parquet_parts(path, rows.loads, rows.facts, note=note)
    else:
        write_parquet(path, rows, note=note)


def _save_part(folder: Path, name: str, frame: pd.DataFrame, small: list[str]) -> None:
    """A task's part of a stage's rows: ``<name>.pkl`` (exact dtypes), ``<name>.facts.pkl`` (its
    ``io.part_facts``) and ``<name>.small.pkl`` (its ``small`` columns), so the merge loads the
    part once, to write it (and the next stage's tasks read the facts alone)."""
    with atomic_path(folder / f"{name}.pkl") as tmp:
        frame.to_pickle(tmp)
    with atomic_path(folder / f"{name}.small.pkl") as tmp:
        frame[small].to_pickle(tmp)
    with atomic_path(folder / f"{name}.facts.pkl") as tmp:
        pd.to_pickle(part_facts(frame, str(folder / name)), tmp)


def _part_loads(folders: list[Path] | tuple[str, ...], name: str) -> tuple[Callable[[], pd.DataFrame], ...]:
    return tuple((lambda d=Path(d): pd.read_pickle(d / f"{name}.pkl")) for d in folders)


def _saved_parts(folders: list[Path], name: str) -> RowParts:
    """The parts :func:`_save_part` wrote in ``folders``, in order, as one stage's rows."""
    facts = [pd.read_pickle(d / f"{name}.facts.pkl") for d in folders]
    small = pd.concat([pd.read_pickle(d / f"{name}.small.pkl") for d in folders], ignore_index=True)
    return RowParts(_part_loads(folders, name), small, tuple(facts))


def _finish(out_dir: Path, key: str, stage: str, n_in: int, res: StageResult,
            ledger_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    res.check(n_in, stage)
    if os.environ.get(FAULT_ENV) == f"{stage}:writing":  # die with a half-written temp file, as a crash would
        with atomic_path(out_dir / "kept.parquet") as tmp:
            tmp.write_bytes(b"PAR1 half-written")
            fault_point(stage, "writing")
    from concurrent.futures import ThreadPoolExecutor

    # The drops are written on a thread beside the kept rows (pyarrow encodes without the
    # interpreter lock, each file on a core of its own). The kept rows' digest is noted as they
    # are written: the next stage's cache key does not read the file again.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiger-drops") as side:
        drops = side.submit(_write_rows, out_dir / "dropped.parquet", res.dropped) if len(res.dropped) else None
        _write_rows(out_dir / "kept.parquet", res.kept, note=True)
        fault_point(stage, "mid")
        if drops is not None:
            drops.result()
        else:  # datasets cannot load a 0-row Parquet file: a stage that drops nothing writes none (a stale one goes)
            (out_dir / "dropped.parquet").unlink(missing_ok=True)
    write_json(out_dir / "stats.json", res.stats)
    ledger = ledger_row(stage, n_in, res.kept, res.dropped)
    ledger.update(ledger_extra or {})
    write_json(out_dir / "ledger.json", ledger)
    write_json(out_dir / "_SUCCESS.json", {"key": key, "stage": stage})  # last: marks the stage complete
    fault_point(stage, "after")
    return ledger


# The parse stage runs as tasks too: ``plan_parse`` groups the files (in order) by size, each group
# is parsed into its own folder by ``run_parse_group`` (side by side on a task runner), and
# ``finish_parse`` writes the groups' rows a group at a time, the same bytes as one pass over all
# files. No process holds more than a group's rows. A file larger than a group is a group alone,
# read a part at a time and saved a piece of rows at a time (``curate.parse_stream``), so its rows
# are never all in memory either, when it is Parquet (batches of rows), UTF-8 CSV/TSV (lines), a
# well-formed UTF-8 JSON array or UTF-8 JSON lines (windows of ``group_bytes``), or gzip of one of
# these; any other file (an array with a defect, another encoding …) is read whole.

PARSE_GROUP_BYTES = 16 << 20
STREAM_MIN_WINDOW = 64 << 10  # tiny groups (tests) still read a large file in windows this big


@dataclass(frozen=True)
class ParsePlan:
    files: tuple[dict, ...]
    out_dir: str
    key: str
    done: bool
    skipped: tuple[dict, ...] = ()
    groups: tuple[tuple[int, int], ...] = ()  # ranges of ``files``
    group_bytes: int = PARSE_GROUP_BYTES
    sizes: tuple[int, ...] = ()  # each file's bytes when planned (0: missing), so a group need not stat it
    keep_shards: bool = False  # the merge leaves the groups' folders: the next stage's tasks read them (chain)

    def group_dir(self, start: int, stop: int) -> Path:
        return Path(self.out_dir) / "_shards" / f"files-{start:06d}-{stop:06d}"


def plan_parse(files: list[dict], out_dir: str | Path, skipped: list[dict] | None = None,
               group_bytes: int | None = None) -> ParsePlan:
    """The parse stage's cache key, whether it is done, and its groups of files: consecutive files
    of at most ``group_bytes`` (default ``PARSE_GROUP_BYTES``) together as stored; the outputs do not
    depend on the grouping."""
    group_bytes = PARSE_GROUP_BYTES if group_bytes is None else group_bytes
    if group_bytes < 1:
        raise ValueError(f"group_bytes must be ≥ 1, got {group_bytes}")
    out_dir = Path(out_dir)
    params: dict[str, Any] = {"files": [(f["source"], f["file"]) for f in files]}
    if skipped:
        params["skipped"] = skipped
    # the files' checksums as the download step took them this run (a large corpus is read once
    # for them, not twice), else read now
    params["sha256"] = [f.get("sha256") or sha256_file(f["path"]) for f in files]
    key = cache_key([], params)
    plan = ParsePlan(tuple(files), str(out_dir), key, is_done(out_dir, key), tuple(skipped or ()))
    if plan.done:
        return plan
    sweep_temps(out_dir)  # what a killed run left half-written
    fault_point("01_parse", "before")
    groups, start, size, sizes = [], 0, 0, []
    for i, f in enumerate(files):
        try:
            n = os.stat(f["path"]).st_size
        except OSError:  # missing or unreadable: parse_files says why
            n = 0
        sizes.append(n)
        if i > start and size + n > group_bytes:
            groups.append((start, i))
            start, size = i, 0
        size += n
    groups.append((start, len(files)))
    return ParsePlan(plan.files, plan.out_dir, key, False, plan.skipped, tuple(groups), int(group_bytes), tuple(sizes))


def run_parse_group(plan: ParsePlan, start: int, stop: int, progress: Progress = None) -> str:
    """Parse files ``start:stop`` of the plan into the group's folder (kept and quarantined rows as
    pickles, which keep their exact dtypes; stats); a group done before is skipped."""
    from .parse import parse_files

    gdir = plan.group_dir(start, stop)
    key = hashlib.sha256(f"{plan.key}:{start}:{stop}".encode()).hexdigest()[:16]
    if is_done(gdir, key):
        return str(gdir)
    if progress:
        progress(f"parse: files {start + 1}-{stop} of {len(plan.files)}")
    files = list(plan.files[start:stop])
    gdir.mkdir(parents=True, exist_ok=True)
    big = len(files) == 1 and plan.sizes[start] > plan.group_bytes
    if not (big and _parse_in_pieces(plan, gdir, files[0], progress)):
        res = parse_files(files)
        _save_part(gdir, "kept", res.kept, ["source"])
        _save_part(gdir, "dropped", res.dropped, ["source", "reason"])
        write_json(gdir / "stats.json", res.stats)
    write_json(gdir / "_SUCCESS.json", {"key": key, "stage": "01_parse", "files": [start, stop]})
    return str(gdir)


def _parse_in_pieces(plan: ParsePlan, gdir: Path, f: dict, progress: Progress = None) -> bool:
    """A large Parquet, CSV/TSV, JSON-array or JSON-lines file (text in UTF-8, GB18030 or UTF-16/32, as
    ``parse_file`` decodes it; ``parse_stream.text_encoding``) read a part at a time into ``gdir/piece-NNNNN/`` folders (one piece of rows each, listed in
    ``pieces.json``) and ``stats.json`` as ``parse_files([f])`` gives them; False, with nothing left
    behind, when the file is not such a file (read whole then)."""
    import shutil

    from .parse import ParseTally, row_frames
    from .parse_stream import NotStreamable, NotUtf8, NotWellFormed, reader_for, text_encoding

    def clear() -> None:
        for d in gdir.glob("piece-*"):
            shutil.rmtree(d, ignore_errors=True)
        (gdir / "pieces.json").unlink(missing_ok=True)

    clear()  # a killed run's pieces: read again, from the start
    tally, pieces = ParseTally(), []

    def save(records: list[dict], quarantine: list[dict]) -> None:
        kept, dropped = row_frames(records, quarantine)
        pdir = gdir / f"piece-{len(pieces):05d}"
        pdir.mkdir(parents=True, exist_ok=True)
        _save_part(pdir, "kept", kept, ["source"])
        _save_part(pdir, "dropped", dropped, ["source", "reason"])
        pieces.append({"dir": pdir.name, "kept": len(kept), "quarantined": len(dropped)})

    window = max(plan.group_bytes, STREAM_MIN_WINDOW)
    # Read as UTF-8 and, for an array, as well-formed; text in another encoding is read again once
    # its encoding is known, an array with a defect again value by value (the pieces so far discarded).
    encoding, tolerant = None, False
    while True:
        try:
            reader = reader_for(f["path"], f["source"], f["file"], f.get("columns"), f.get("format"),
                                window=window, encoding=encoding, tolerant=tolerant)
            for piece in reader:
                tally.rows(piece.records, piece.quarantine)
                save(piece.records, piece.quarantine)
                if progress:
                    progress(f"parse: {f['source']}/{f['file']}: {tally.kept + tally.quarantined:,} rows")
            break
        except (NotUtf8, NotWellFormed) as e:
            clear()
            tally, pieces[:] = ParseTally(), []
            try:
                if isinstance(e, NotUtf8) and encoding is None:
                    encoding = text_encoding(f["path"], window)
                    continue
                if isinstance(e, NotWellFormed) and not tolerant:
                    tolerant = True
                    continue
            except (NotStreamable, OSError):
                pass
            return False
        except (NotStreamable, OSError):  # not a file read in parts, or unreadable: parse_files reads it, or says why
            clear()
            return False
    if not pieces:  # no rows: one empty piece, so the merge has the file's columns
        save([], [])
    tally.file(f, reader.result, tally.kept, tally.quarantined)
    write_json(gdir / "pieces.json", pieces)
    write_json(gdir / "stats.json", tally.stats())
    return True


def finish_parse(plan: ParsePlan, progress: Progress = None) -> dict[str, Any]:
    """Write the parse stage from its groups' folders, a group at a time; the stored ledger when done."""
    import shutil

    from .parse import merge_parse_stats

    out_dir = Path(plan.out_dir)
    if plan.done or is_done(out_dir, plan.key):
        shutil.rmtree(out_dir / "_shards", ignore_errors=True)
        return read_json(out_dir / "ledger.json")
    dirs = [plan.group_dir(a, b) for a, b in plan.groups]
    missing = [d.name for d in dirs if not (d / "_SUCCESS.json").exists()]
    if missing:
        raise RuntimeError(f"01_parse: parse every group of files before the merge; not done: {', '.join(missing[:5])}")
    parts = [read_json(d / "stats.json") for d in dirs]
    stats = merge_parse_stats(parts)
    units = _parse_units(plan, parts)
    res = StageResult(_saved_parts(_with_rows(units, 1), "kept"), _saved_parts(_with_rows(units, 2), "dropped"), stats)
    per_file = stats["files"]
    extra = {"files": {
        "read": len(plan.files),
        "empty": sorted(k for k, v in per_file.items() if v["format"] == "empty"),
        # files that could not be read at all: their rows are counted as dropped, estimated where unknown
        "lost_whole": {k: {"rows": v["in"], "bytes": v.get("bytes", 0), "estimated": "estimated_rows" in v}
                       for k, v in sorted(per_file.items()) if v["format"] in ("undecodable", "unreadable")},
        "skipped": [f"{s['source']}/{s['file']} ({s['reason']})" for s in plan.skipped],
    }}
    # rows seen in the files, counted by the parser independently of what it kept or quarantined
    ledger = _finish(out_dir, plan.key, "01_parse", int(stats["in"]), res, ledger_extra=extra)
    if not plan.keep_shards:
        shutil.rmtree(out_dir / "_shards", ignore_errors=True)  # intermediate: the stage's outputs hold it all
    return ledger


def _parse_units(plan: ParsePlan, stats: list[dict] | None = None) -> list[tuple[Path, int, int]]:
    """(folder, kept, quarantined) of each part the parse stage's rows are in, in order: a group's,
    or each piece's of a file read in pieces. ``stats``: the groups' stats.json, when read."""
    units = []
    for k, (a, b) in enumerate(plan.groups):
        d = plan.group_dir(a, b)
        if (d / "pieces.json").exists():
            units += [(d / q["dir"], q["kept"], q["quarantined"]) for q in read_json(d / "pieces.json")]
        else:
            p = stats[k] if stats is not None else read_json(d / "stats.json")
            units.append((d, p["kept"], p["quarantined"]))
    return units


def _with_rows(units: list[tuple[Path, int, int]], i: int) -> list[Path]:
    """The folders of the units with kept (``i`` = 1) or quarantined (2) rows: parts with none are
    left out (an empty frame's dtypes could differ from a full one's), unless all are empty."""
    return [u[0] for u in units if u[i]] or [units[0][0]]


def parse_parts(plan: ParsePlan) -> tuple[str, ...]:
    """Once every group is parsed: the folders of the parts the parse stage's kept rows are written
    from, in order (``kept.pkl`` and its facts), for the next stage's tasks (``plan_chained``)."""
    return tuple(str(d) for d in _with_rows(_parse_units(plan), 1))


def parse_stage(files: list[dict], out_dir: str | Path, progress: Progress = None,
                skipped: list[dict] | None = None) -> dict[str, Any]:
    """Raw files → records (+ quarantine as dropped rows), in this process, a group of files at a
    time. ``skipped``: source files not read (with their reason, ``curate.paths``), listed in the
    ledger with the empty files and the files lost whole."""
    plan = plan_parse(files, out_dir, skipped)
    if not plan.done:
        if progress:
            progress(f"parse: {len(files)} files")
        for a, b in plan.groups:
            run_parse_group(plan, a, b, progress)
    return finish_parse(plan, progress)


def run_steps(df: pd.DataFrame, steps: tuple[Step, ...], stage: str, progress: Progress = None,
              jobs: dict[int, Any] | None = None) -> StageResult:
    """Run operators in order; each one's ledger is checked, drops are gathered with the op's name.
    ``jobs``: step index → a finished job whose files give that operator's result (``op.finish_job``)."""
    drops = [empty_drops(df, stage)]
    held = [df]
    del df  # only _run_ops holds the input: it goes once the first operator is done
    return _assemble(*_run_ops(held.pop(), steps, stage, drops, {"steps": []}, progress, jobs))


def _run_ops(df: pd.DataFrame, steps: tuple[Step, ...], stage: str, drops: list[pd.DataFrame],
             stats: dict[str, Any], progress: Progress = None,
             jobs: dict[int, Any] | None = None) -> tuple[pd.DataFrame, list, dict]:
    """:func:`run_steps`' loop, from a state (kept rows, drops so far, stats so far) to the next;
    a step with a job in ``jobs`` (by index in ``steps``) is finished from the job's files."""
    from .ops.base import Mapper, MapperLists

    jobs = jobs or {}
    lists = None  # consecutive mappers share one conversion of the text fields (MapperLists)
    for k, step in enumerate(steps):
        op = step.build()
        if progress:
            progress(f"{stage}: {step.op} on {len(df):,} rows")
        n_in = len(df)
        if isinstance(op, Mapper) and k not in jobs:
            if lists is None:
                lists = MapperLists(df)
            stats["steps"].append({"op": step.op, "params": step.params, "in": n_in, "kept": n_in,
                                   "dropped": 0, **op.map_lists(lists)})
            continue
        if lists is not None:
            df, lists = lists.frame(), None
        res = op.finish_job(df, jobs[k]) if k in jobs else op(df)
        res.check(n_in, f"{stage}/{step.op}")
        if len(res.dropped):
            d = res.dropped.copy()
            d["stage"] = f"{stage}/{step.op}"
            drops.append(d)
        stats["steps"].append({"op": step.op, "params": step.params, "in": n_in, "kept": len(res.kept),
                               "dropped": len(res.dropped), **res.stats})
        df = res.kept
    if lists is not None:
        df = lists.frame()
    return df, drops, stats


def _assemble(df: pd.DataFrame, drops: list[pd.DataFrame], stats: dict[str, Any]) -> StageResult:
    dropped = pd.concat(drops, ignore_index=True) if len(drops) > 1 else drops[0]
    return StageResult(df.reset_index(drop=True), dropped.reset_index(drop=True), stats)


def normalize_frame(df: pd.DataFrame, recipe: str | Path | None = None) -> pd.DataFrame:
    """``df`` through the recipe's normalize stage (in memory), as a run would normalise it."""
    from .recipe import load_recipe

    return run_steps(df, load_recipe(recipe).stage("02_normalize").steps, "02_normalize").kept


def _summary(stage: Stage, res: StageResult) -> None:
    """Figures of the stage's kept rows, for the stages that declare one (``recipe.SUMMARIES``);
    for rows left on disk (``RowParts``), from the columns the figures read, which it holds."""
    if stage.summary == "diversity":
        from .diversity import diversity_by, diversity_metrics

        # rows left on disk: the columns the figures read, with the wording figures counted a shard
        # at a time (_tagged_tail); None is all rows' figures, the others each source's
        kept = res.kept.small if isinstance(res.kept, RowParts) else res.kept
        figs = kept.attrs.get("text_figures") if isinstance(res.kept, RowParts) else None
        res.stats["diversity"] = {"all": diversity_metrics(kept, known=(figs or {}).get(None)),
                                  "by_source": diversity_by(kept, "source", known_by=figs)}


def check_chain(ledgers: list[dict[str, Any]]) -> None:
    """Each stage balances, and each stage's input is exactly the previous stage's output."""
    for prev, cur in zip([None] + ledgers[:-1], ledgers):
        if not cur["balanced"]:
            raise LedgerError(f"stage {cur['stage']}: {cur['in']} in != {cur['kept']} kept + {cur['dropped']} dropped")
        if prev is not None and prev["kept"] != cur["in"]:
            raise LedgerError(f"stage {cur['stage']} read {cur['in']} records but {prev['stage']} kept {prev['kept']}")


# ------------------------------------------------------------------------------- operator stages
#
# An operator stage runs in three steps with explicit inputs and outputs: ``plan_stage`` computes
# the stage's cache key once and, unless the stage is done, splits the input into row ranges when
# the stage starts with row-local operators (``Stage.local_prefix``); ``run_shard`` runs those
# operators on one range, writing the shard's own folder; ``finish_stage`` concatenates the shards
# in order, runs the stage's remaining operators on the whole and writes the stage. kept/dropped/
# ledger are byte-identical whatever the shard size (or with no shards), stats.json too except for
# which examples it shows (``merge_stats``).

DEFAULT_SHARD_ROWS = 250_000


@dataclass(frozen=True)
class StagePlan:
    stage: Stage
    in_path: str
    out_dir: str
    key: str
    done: bool
    shards: tuple[tuple[int, int], ...] = ()
    # an operator's job on partitions (e.g. curate.minhash.partitioned.PartitionJob), at step ``split``
    job: Any = None
    split: int = -1
    # taggers' jobs on row partitions (curate.jobs.RowJob), by step index: steps whose earlier
    # steps keep every row and its text, so their tasks read the stage's input
    tag_jobs: tuple[tuple[int, Any], ...] = ()
    # jobs of the steps before ``split``, when every one of them has one (no prefix task then)
    pre_jobs: tuple[tuple[int, Any], ...] = ()
    # chained on the stage before (``plan_chained``): the folders of its parts, which the shards read
    # their rows from while its merge writes ``in_path``; whether this stage's merge leaves its own
    # shards for the stage after; the stage before's shards, which this stage's merge removes
    sources: tuple[str, ...] = ()
    keep_shards: bool = False
    after: str | None = None
    # planned on the stage before's decision (``plan_selected``): its input file and the rows it
    # keeps (``decide_stage``), which the shards and jobs read while its merge writes ``in_path``
    select: tuple[str, str] | None = None
    # a decided stage (``_decided``): the decisions' light frame is read by a task of the first
    # round, not by the decisions, which wait on the last round
    light: bool = False

    def shard_dir(self, start: int, stop: int) -> Path:
        return Path(self.out_dir) / "_shards" / f"{start:012d}-{stop:012d}"

    @property
    def rounds(self) -> tuple[tuple[tuple[str, int], ...], ...]:
        """The job's tasks, ``(step, index)``, in rounds run one after another, each round's tasks side
        by side; ``("prefix", 0)`` runs the steps before the job's operator (with its first round)."""
        out: list[tuple[tuple[str, int], ...]] = []
        if self.job is not None:
            first, *rest = self.job.rounds()
            if self.pre_jobs:  # their first rounds beside the job's (which reads every row); the
                # rest of theirs before the rest of its (it searches the rows they keep)
                pre = [tuple((f"{k}:{s}", i) for s, i in r) for k, j in self.pre_jobs for r in j.rounds()]
                out = [pre[0] + first, *pre[1:], *rest]
            else:
                out = [(("prefix", 0),) * (self.split > 0) + first, *rest]
            if self.light:  # the decisions' light frame, read beside the first round (first: last, it
                out[0] = (("light", 0),) + out[0]  # would end the round alone while a worker waited)
        # the taggers' jobs side by side with each other: round r of every job together, the costliest
        # tasks first (``RowJob.task_cost``), so that short ones, not a long one, end a round while the
        # other workers wait for it
        tagged: dict[int, list[tuple[float, tuple[str, int]]]] = {}
        for k, job in self.tag_jobs:
            cost = getattr(job, "task_cost", lambda s, i: 0.0)
            for r, tasks in enumerate(job.rounds()):
                tagged.setdefault(r, []).extend((cost(s, i), (f"{k}:{s}", i)) for s, i in tasks)
        for r in sorted(tagged):
            named = tuple(t for _, t in sorted(tagged[r], key=lambda ct: -ct[0]))  # stable: ties keep order
            if r < len(out):
                out[r] = out[r] + named
            else:
                out.append(named)
        return tuple(out)

    def jobs(self) -> dict[int, Any]:
        """Step index → the job that runs that step's operator on partitions."""
        tagged = {k: j for kk, job in self.tag_jobs for k, j in getattr(job, "members", ((kk, job),))}
        return {**dict(self.pre_jobs), **({self.split: self.job} if self.job is not None else {}), **tagged}


# Steps that only drop rows (kept rows unchanged): a job may read the stage's input before they run.
DROP_ONLY = ("filter", "deduplicator")


def _stage_job(stage: Stage, in_path: str | Path, work_dir: Path) -> tuple[Any, int, tuple[tuple[int, Any], ...]]:
    """The stage's operators that run on partitions as tasks (``op.partition_job``): the last one of
    them, its step index, and the jobs before it. Either the steps before the last job have no jobs
    (the prefix task runs them) or every one has a job, each handing the next the rows it keeps
    (``mask_to``); (None, -1, ()) when no step has a job or a step before it changes rows."""
    import pyarrow.parquet as pq

    jobs: list[tuple[int, Any]] = []
    n = None
    for k, step in enumerate(stage.steps):
        op = step.build()
        make = getattr(op, "partition_job", None)
        if make is not None and n is None:
            n = pq.ParquetFile(in_path).metadata.num_rows
        job = make(str(in_path), str(work_dir / f"step{k:02d}"), n, k > 0) if make else None
        if job is not None:
            jobs.append((k, job))
            if len(jobs) <= k or not hasattr(job, "mask_to"):  # the last job: a step before it has none,
                break                                           # or it cannot hand its rows on
            continue
        if jobs or op.kind not in DROP_ONLY:
            break
    if not jobs:
        return None, -1, ()
    (split, job), pre = jobs[-1], jobs[:-1]
    pre = [(k, dataclasses.replace(j, mask_to=str(Path(nxt.work_dir) / "live.npy")))
           for (k, j), (_, nxt) in zip(pre, jobs[1:])]
    return job, split, tuple(pre)


def _tag_jobs(stage: Stage, in_path: str | Path, work_dir: Path, rows: int,
              store: Path, n: int | None = None, select: tuple[str, str] | None = None) -> tuple[tuple[int, Any], ...]:
    """The jobs of the stage's taggers that run on row partitions (``op.tag_job``), for the steps
    whose earlier steps are all taggers (they keep every row and its text). Every ``tag_job`` takes
    the run's fit store (``store``), where fits the report reuses are kept. Jobs that would compute
    the same TF-IDF rows share one task per partition (``curate.jobs.share_tfidf``). ``n`` and
    ``select``: the input's rows and where the jobs read them before ``in_path`` exists
    (``plan_selected``)."""
    import pyarrow.parquet as pq

    from .jobs import share_tfidf

    out = []
    for k, step in enumerate(stage.steps):
        op = step.build()
        if op.kind != "tagger":
            break
        make = getattr(op, "tag_job", None)
        if make is None:
            continue
        n = pq.ParquetFile(in_path).metadata.num_rows if n is None else n
        # the partitions follow ``rows`` (the run's shard size), so a resume with another size works
        # in a folder of its own rather than taking the finished tasks of other partitions for its own
        job = make(str(in_path), str(work_dir / f"step{k:02d}-rows{rows}"), n, rows, store=str(store))
        if job is not None:
            out.append((k, dataclasses.replace(job, select=select) if select else job))
    return tuple(share_tfidf(out))


def _shard_ranges(n: int, shard_rows: int) -> tuple[tuple[int, int], ...]:
    """The row ranges of a stage's shards (one, empty, for no rows): full ones first, then shorter
    ones (``jobs.guided_ranges``), so the stage's last shards are short and its workers end together."""
    from .jobs import guided_ranges

    return tuple(guided_ranges(n, shard_rows)) if n > 0 else ((0, 0),)


def stage_key(stage: Stage, in_path: str | Path) -> str:
    """An operator stage's cache key: its input file, its parameters and the code."""
    return cache_key([in_path], stage.key_params())


def plan_stage(stage: Stage, in_path: str | Path, out_dir: str | Path,
               shard_rows: int | None = DEFAULT_SHARD_ROWS) -> StagePlan:
    """The stage's cache key, whether it is done, and its shards (none when ``shard_rows`` is None,
    the stage is done, or it starts with an operator that needs all rows). A stage without shards
    whose operator can run on partitions (``partition_job``) gets that job, with ``shard_rows`` set
    (a task runner to run it): ``plan.rounds`` lists its tasks, :func:`run_task` runs one."""
    import pyarrow.parquet as pq

    if shard_rows is not None and shard_rows < 1:
        raise ValueError(f"shard_rows must be ≥ 1, got {shard_rows}")
    key = stage_key(stage, in_path)
    if is_done(Path(out_dir), key):
        return StagePlan(stage, str(in_path), str(out_dir), key, True)
    sweep_temps(Path(out_dir))  # what a killed run left half-written
    fault_point(stage.name, "before")
    shards: tuple[tuple[int, int], ...] = ()
    if shard_rows is not None and stage.local_prefix():
        n = pq.ParquetFile(in_path).metadata.num_rows
        shards = _shard_ranges(n, shard_rows)
    job, split, pre_jobs, tag_jobs = None, -1, (), ()
    if shard_rows is not None and not shards:
        job, split, pre_jobs = _stage_job(stage, in_path, Path(out_dir) / "_work" / key)
    if shard_rows is not None:
        from .embed import FIT_STORE

        tag_jobs = _tag_jobs(stage, in_path, Path(out_dir) / "_work" / key, shard_rows,
                             Path(out_dir).parent / FIT_STORE)
    plan = StagePlan(stage, str(in_path), str(out_dir), key, False, shards, job, split, tag_jobs, pre_jobs)
    return dataclasses.replace(plan, light=True) if job is not None and _decided(plan) else plan


def read_rows(path: str | Path, start: int, stop: int) -> pd.DataFrame:
    """Rows ``start:stop`` of a Parquet file, as ``read_parquet(path).iloc[start:stop]`` would give,
    without holding the other rows in memory."""
    return io_read_rows(path, start, stop)


def run_shard(plan: StagePlan, start: int, stop: int, progress: Progress = None) -> str:
    """Run the stage's leading row-local operators on input rows ``start:stop``; returns the shard's folder."""
    local = plan.stage.steps[:plan.stage.local_prefix()]
    sdir = plan.shard_dir(start, stop)
    key = hashlib.sha256(f"{plan.key}:{start}:{stop}".encode()).hexdigest()[:16]
    if is_done(sdir, key):
        return str(sdir)
    if plan.sources:  # the stage before's parts: its merge may still be writing in_path
        facts = [pd.read_pickle(Path(d) / "kept.facts.pkl") for d in plan.sources]
        df = read_parts_rows(_part_loads(plan.sources, "kept"), facts, start, stop, f"{plan.stage.name} input")
    elif plan.select:  # the rows the stage before keeps, read from its input while its merge writes them
        df = read_selected(plan.select, start, stop)
    else:
        df = read_rows(plan.in_path, start, stop)
    res = run_steps(df, local, plan.stage.name, progress=progress)
    res.check(len(df), f"{plan.stage.name} rows {start}:{stop}")
    # which operator dropped each row, so the merge can order drops as one unsharded run does
    step_of = {f"{plan.stage.name}/{s.op}": k for k, s in enumerate(local)}
    dropped = res.dropped.copy()
    dropped["_step"] = dropped["stage"].map(step_of).astype("int64") if len(dropped) else pd.Series(dtype="int64")
    # pickles, not Parquet: intermediate files that must give back the exact dtypes (object vs str)
    # so the merged stage writes the same bytes as one unsharded run; removed after the merge
    sdir.mkdir(parents=True, exist_ok=True)
    if _tail_is_tagged(plan):  # the wording figures of the stage's summary, counted here, side by side
        with atomic_path(sdir / "text_counts.pkl") as tmp:
            pd.to_pickle(_shard_text_counts(res.kept), tmp)
    _save_part(sdir, "kept", res.kept, ["source"])
    with atomic_path(sdir / "dropped.pkl") as tmp:
        dropped.to_pickle(tmp)
    write_json(sdir / "stats.json", {"n_in": len(df), **res.stats})
    write_json(sdir / "_SUCCESS.json", {"key": key, "stage": plan.stage.name, "rows": [start, stop]})
    return str(sdir)


def run_task(plan: StagePlan, step: str, index: int, progress: Progress = None) -> str:
    """One task of ``plan.rounds``: the prefix, or a step of the operator's job. Done tasks are
    skipped (each leaves a marker in the job's work folder), so a killed stage resumes."""
    if progress:
        progress(f"{plan.stage.name}: {step} {index}")
    if step == "prefix":
        return _run_prefix(plan)
    if step == "light":
        return _save_light(plan)
    if ":" in step:  # a tagger's job, or a job before the last: "<step index>:<job step>"
        k, sub = step.split(":", 1)
        return dict(plan.tag_jobs + plan.pre_jobs)[int(k)].run(sub, index)
    return plan.job.run(step, index)


def _run_prefix(plan: StagePlan) -> str:
    """The steps before the job's operator, on the whole input: their state (kept rows with their
    input row numbers as index, drops, stats) for the merge, and ``live.npy`` (which input rows they
    kept) for the job's tasks."""
    import numpy as np

    work = Path(plan.job.work_dir)
    marker = work / "done-prefix.json"
    if marker.exists():
        return str(marker)
    df = read_parquet(plan.in_path)
    n, ids = len(df), df["id"].to_numpy()
    drops = [empty_drops(df, plan.stage.name)]
    held = [df]
    del df
    kept, drops, stats = _run_ops(held.pop(), plan.stage.steps[:plan.split], plan.stage.name, drops, {"steps": []})
    rows = kept.index.to_numpy()
    # the rows' input positions: only valid if the operators kept the index (they drop, never reorder)
    if not (rows.dtype.kind == "i" and np.all(np.diff(rows) > 0) and (not len(rows) or 0 <= rows[0] <= rows[-1] < n)
            and np.array_equal(ids[rows], kept["id"].to_numpy())):
        raise RuntimeError(f"{plan.stage.name}: an operator before {plan.stage.steps[plan.split].op} did not keep "
                           "the rows' index, so the partitioned search cannot tell which input rows it kept")
    live = np.zeros(n, dtype=bool)
    live[rows] = True
    work.mkdir(parents=True, exist_ok=True)
    with atomic_path(work / "prefix.pkl") as tmp:
        pd.to_pickle((kept, drops, stats), tmp)  # exact dtypes, as the shards' pickles
    with atomic_path(work / "live.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, live)
    write_json(marker, {"stage": plan.stage.name, "rows": int(len(rows))})
    return str(marker)


def merge_stats(parts: list[Any], where: str = "stats") -> Any:
    """Stats of shards as one run's: ints add up, lists are joined and cut to the longest part's
    length (examples: the first few), dicts merge key by key, anything else — and everything
    under ``params`` — must be equal. Counts equal one unsharded run's; the examples shown can
    differ with the shard size."""
    first = parts[0]
    if where.endswith(".params"):
        if any(p != first for p in parts[1:]):
            raise ValueError(f"merge_stats: shards disagree on {where}: {parts[:3]!r}")
        return first
    if isinstance(first, dict):
        keys = sorted({k for p in parts for k in p})
        return {k: merge_stats([p[k] for p in parts if k in p], f"{where}.{k}") for k in keys}
    if isinstance(first, list):
        # examples: the first ones over the shards, as many as the longest part (never more than
        # the operator keeps; fewer when every shard had fewer than its limit)
        return [x for p in parts for x in p][:max(len(p) for p in parts)]
    if isinstance(first, int) and not isinstance(first, bool):
        return sum(parts)
    if any(p != first for p in parts[1:]):
        raise ValueError(f"merge_stats: shards disagree on {where}: {parts[:3]!r}")
    return first


def finish_stage(plan: StagePlan, progress: Progress = None) -> dict[str, Any]:
    """Finish a stage: its shards in order (if any), then its other operators, then the outputs.
    Returns the stage's ledger (the stored one when the stage was done)."""
    import shutil

    out_dir, stage = Path(plan.out_dir), plan.stage
    if plan.done or is_done(out_dir, plan.key):
        if not plan.keep_shards:
            shutil.rmtree(out_dir / "_shards", ignore_errors=True)  # left by a run killed after the marker
        shutil.rmtree(out_dir / "_work", ignore_errors=True)
        return read_json(out_dir / "ledger.json")
    from .embed import FIT_STORE, fit_store

    with fit_store(out_dir.parent / FIT_STORE):  # what the report can reuse (the pool's embedding)
        res, n_in = _stage_result(plan, progress)
    _summary(stage, res)
    ledger = _finish(out_dir, plan.key, stage.name, n_in, res)
    if not plan.keep_shards:
        shutil.rmtree(out_dir / "_shards", ignore_errors=True)  # intermediate: the stage's outputs hold it all
    shutil.rmtree(out_dir / "_work", ignore_errors=True)
    return ledger


# ------------------------------------------------------------------------------ chained stages
#
# A stage of row-local operators only (normalize, filter) can start before the stage before it has
# written its file: its shards (the same row ranges ``plan_stage`` gives) read their rows from that
# stage's parts (``io.read_parts_rows``: what reading the file would give), so they run beside its
# merge. Until the file is there the stage's key is not known: the shards are keyed on the stage
# before's key instead, and the merge (``finish_chained``) takes the stage's real key, which is
# ``plan_stage``'s, so a chained stage is the same stage, with the same outputs, as a plain one.


def chainable(stage: Stage) -> bool:
    """Whether ``stage`` can run chained: row-local operators only, and no figures of the whole."""
    return bool(stage.steps) and stage.local_prefix() == len(stage.steps) and stage.summary is None


def plan_chained(stage: Stage, in_path: str | Path, out_dir: str | Path, sources: tuple[str, ...], after_key: str,
                 shard_rows: int = DEFAULT_SHARD_ROWS, after: str | Path | None = None,
                 keep_shards: bool = False) -> StagePlan:
    """A plan for ``stage`` on the rows the stage before writes to ``in_path`` from the parts in
    ``sources`` (folders holding ``kept.pkl`` and its facts, in order), before that file exists.
    ``after_key``: the stage before's key (the shards' provisional key derives from it); ``after``:
    that stage's shards folder, removed by this stage's merge; ``keep_shards``: this stage's merge
    leaves its own shards, for a stage chained after it."""
    if not chainable(stage):
        raise ValueError(f"{stage.name}: only a stage of row-local operators runs chained")
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be ≥ 1, got {shard_rows}")
    n = sum(int(pd.read_pickle(Path(d) / "kept.facts.pkl")["rows"]) for d in sources)
    key = cache_key([], {"after": after_key, "stage": stage.name, "params": stage.key_params()})
    sweep_temps(Path(out_dir))  # what a killed run left half-written
    fault_point(stage.name, "before")
    shards = _shard_ranges(n, shard_rows)
    return StagePlan(stage, str(in_path), str(out_dir), key, False, shards, sources=tuple(str(d) for d in sources),
                     keep_shards=keep_shards, after=str(after) if after else None)


def shard_parts(plan: StagePlan) -> tuple[str, ...]:
    """The folders of a sharded stage's parts of kept rows, in order (what its merge writes from)."""
    return tuple(str(plan.shard_dir(a, b)) for a, b in plan.shards)


def finish_chained(plan: StagePlan, progress: Progress = None) -> dict[str, Any]:
    """The merge of a chained stage, once its shards are done and the stage before has written
    ``plan.in_path``: the stage's real key (``plan_stage``'s), then ``finish_stage``. The stage
    before's shards are removed first: every shard here has read them."""
    import shutil

    if plan.after:
        shutil.rmtree(plan.after, ignore_errors=True)
    if plan.select:  # the boundary between the stage before (done now) and this one (whose work so
        fault_point(plan.stage.name, "before")  # far a rerun does not find: it plans the stage plain)
    key = stage_key(plan.stage, plan.in_path)
    return finish_stage(dataclasses.replace(plan, key=key, done=is_done(Path(plan.out_dir), key)), progress)


# ------------------------------------------------------------------------------ selected stages
#
# The stage after a decided one (dedupe) need not wait for its merge to write its file: once the
# decisions are taken (``decide_stage``), its rows are the input's rows it keeps, so the next
# stage's shards and jobs read them from that input (``io.read_selected``) while the merge writes
# them. Keyed provisionally on the decided stage's key, as a chained stage is, and merged with
# ``finish_chained``, which takes the stage's real key once the file is written.


def selectable(stage: Stage) -> bool:
    """Whether ``stage`` can run on a decided stage's selection: no operator of it runs as a
    partitioned job (those read the stage's input file themselves)."""
    return bool(stage.steps) and not any(hasattr(s.build(), "partition_job") for s in stage.steps)


def plan_selected(stage: Stage, in_path: str | Path, out_dir: str | Path, select: tuple[str, str], n: int,
                  after_key: str, shard_rows: int = DEFAULT_SHARD_ROWS) -> StagePlan:
    """A plan for ``stage`` on the ``n`` rows a decided stage writes to ``in_path``, before that file
    exists: ``select`` is (that stage's input, the .npy of the rows it keeps) from ``decide_stage``;
    ``after_key`` its key. Shards and taggers' jobs as ``plan_stage`` gives them for that file."""
    if not selectable(stage):
        raise ValueError(f"{stage.name}: a stage with a partitioned operator reads its input file; it cannot run selected")
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be ≥ 1, got {shard_rows}")
    from .embed import FIT_STORE

    key = cache_key([], {"after": after_key, "selected": stage.name, "params": stage.key_params()})
    sweep_temps(Path(out_dir))  # what a killed run left half-written
    select = (str(select[0]), str(select[1]))
    shards = _shard_ranges(n, shard_rows) if stage.local_prefix() else ()
    tag_jobs = _tag_jobs(stage, in_path, Path(out_dir) / "_work" / key, shard_rows, Path(out_dir).parent / FIT_STORE,
                         n=n, select=select)
    return StagePlan(stage, str(in_path), str(out_dir), key, False, shards, tag_jobs=tag_jobs, select=select)


def _stage_result(plan: StagePlan, progress: Progress = None) -> tuple[StageResult, int]:
    """The stage's result: its shards' outputs merged in order (if any), then its other operators."""
    stage = plan.stage
    missing = [f"step {k} {m}" for k, j in plan.tag_jobs for m in j.missing()]
    if missing:
        raise RuntimeError(f"{stage.name}: run the plan's tasks before the merge; not done: {', '.join(missing[:5])}")
    if plan.job is not None:
        return _job_result(plan, progress)
    if not plan.shards:
        import pyarrow.parquet as pq

        n_in = pq.ParquetFile(plan.in_path).metadata.num_rows
        # the input frame is not kept here, so run_steps lets it go once the first operator is done
        res = run_steps(read_parquet(plan.in_path), stage.steps, stage.name, progress=progress, jobs=plan.jobs())
    else:
        k = stage.local_prefix()
        dirs = [plan.shard_dir(a, b) for a, b in plan.shards]
        tagged = _tagged_tail(plan)
        if tagged is not None:  # the other steps are taggers with jobs: their columns are added
            # to each shard's rows as it is written
            kept, tail_stats = tagged
        elif k == len(stage.steps) and stage.summary is None:  # nothing more to run on the whole:
            # the kept rows stay in the shards' files until they are written, a shard at a time
            kept = _saved_parts(dirs, "kept")
        else:
            kept = pd.concat([pd.read_pickle(d / "kept.pkl") for d in dirs], ignore_index=True)
        # the drops (a few percent of the rows) are sorted by the step that dropped them, in memory
        dropped = pd.concat([pd.read_pickle(d / "dropped.pkl") for d in dirs], ignore_index=True)
        dropped = dropped.sort_values("_step", kind="stable").drop(columns="_step").reset_index(drop=True)
        sstats = [read_json(d / "stats.json") for d in dirs]
        n_in = sum(s.pop("n_in") for s in sstats)
        stats = {"steps": [merge_stats([s["steps"][i] for s in sstats], f"{stage.name}.steps[{i}]") for i in range(k)]}
        res = StageResult(kept, dropped, stats)
        if tagged is not None:
            stats["steps"] += tail_stats
        elif k < len(stage.steps):
            held = [res.kept]
            del kept, res  # only run_steps holds the merged frame: it goes once the first operator is done
            jobs = {i - k: j for i, j in plan.jobs().items()}
            rest = run_steps(held.pop(), stage.steps[k:], stage.name, progress=progress, jobs=jobs)
            # as run_steps would: only operators that dropped rows add to the drops
            both = pd.concat([dropped, rest.dropped], ignore_index=True) if len(rest.dropped) else dropped
            res = StageResult(rest.kept, both, {"steps": stats["steps"] + rest.stats["steps"]})
    return res, n_in


def _job_result(plan: StagePlan, progress: Progress = None) -> tuple[StageResult, int]:
    """The stage's result once its job's rounds are done: the prefix's state (or the input), the
    job's operator finished from the job's files, then the stage's other operators."""
    import pyarrow.parquet as pq

    stage, k = plan.stage, plan.split
    missing = plan.job.missing() + [f"step {j} {m}" for j, job in plan.pre_jobs for m in job.missing()]
    if k > 0 and not plan.pre_jobs and not (Path(plan.job.work_dir) / "done-prefix.json").exists():
        missing.insert(0, "prefix 0")
    if missing:
        raise RuntimeError(f"{stage.name}: run the plan's tasks before the merge; not done: {', '.join(missing[:5])}")
    n_in = pq.ParquetFile(plan.in_path).metadata.num_rows
    if _decided(plan):
        return _decided_result(plan, n_in, progress), n_in
    if plan.pre_jobs:  # every step before the job has one: from the input, all steps finished from files
        k = 0
    if k > 0:
        held = list(pd.read_pickle(Path(plan.job.work_dir) / "prefix.pkl"))
    else:
        df = read_parquet(plan.in_path)
        held = [df, [empty_drops(df, stage.name)], {"steps": []}]
        del df
    drops, stats = held[1], held[2]
    jobs = {i - k: j for i, j in plan.jobs().items() if i >= k}
    df, drops, stats = _run_ops(held.pop(0), stage.steps[k:], stage.name, drops, stats, progress, jobs)
    return _assemble(df, drops, stats), n_in


def _tail_is_tagged(plan: StagePlan) -> bool:
    """Whether the stage's steps after its shards are all taggers with jobs that give their columns
    without the rows (``tag_values``): then the merge writes each shard's rows plus those columns."""
    stage, k = plan.stage, plan.stage.local_prefix()
    jobs = plan.jobs()
    return bool(plan.shards) and k < len(stage.steps) and all(
        i in jobs and op.kind == "tagger" and hasattr(op, "tag_values")
        for i, op in enumerate((s.build() for s in stage.steps[k:]), k))


def _shard_text_counts(df: pd.DataFrame) -> dict[Any, dict[str, Any]]:
    """The instructions' wording counts (``diversity.text_counts``) of a shard's kept rows, of all of
    them (key None) and per source: what the merge adds up for the stage's summary."""
    from .diversity import merge_text_counts, text_counts

    if "instruction" not in df.columns:
        return {}
    texts = df["instruction"].astype(str)
    keys = df["source"].astype(str)
    per = {g: text_counts(texts[(keys == g).to_numpy()].tolist()) for g in sorted(keys.unique())}
    # all rows' counts are the sources' added up (the distinct n-grams: their union), not counted again
    whole = None
    for c in per.values():
        whole = merge_text_counts(whole, c)
    return {None: whole if whole is not None else text_counts([]), **per}


def _tagged_tail(plan: StagePlan) -> tuple[RowParts, list[dict[str, Any]]] | None:
    """For a sharded stage whose steps after the shards are all taggers with finished jobs that
    give their columns without the rows (``tag_values``): the kept rows as each shard's rows plus
    those columns, written a shard at a time, and those steps' stats; else None. The parts' small
    columns are ``source`` and the labels the stage's summary reads (``diversity.METRIC_INPUTS``);
    the instructions' wording figures, counted a shard at a time, are in ``small.attrs``."""
    import pyarrow.parquet as pq

    from .diversity import METRIC_INPUTS, merge_text_counts, text_figures
    from .io import read_positions

    stage, k = plan.stage, plan.stage.local_prefix()
    jobs = plan.jobs()
    tail = [s.build() for s in stage.steps[k:]]
    if not _tail_is_tagged(plan):
        return None
    n = pq.ParquetFile(plan.in_path).metadata.num_rows
    fetch = lambda pos: read_positions(plan.in_path, pos, ["id", "instruction"])  # noqa: E731
    added: dict[str, tuple[Any, str]] = {}
    stats = []
    for i, (step, op) in enumerate(zip(stage.steps[k:], tail), k):
        cols, st = op.tag_values(jobs[i], n, fetch)
        added.update(cols)
        stats.append({"op": step.op, "params": step.params, "in": n, "kept": n, "dropped": 0, **st})

    def part(a: int, b: int) -> pd.DataFrame:
        df = pd.read_pickle(plan.shard_dir(a, b) / "kept.pkl")
        if len(df) != b - a:
            raise RuntimeError(f"{stage.name}: shard {a}:{b} kept {len(df)} rows; its taggers should keep all")
        for col, (values, dtype) in added.items():
            df[col] = pd.Series(values[a:b], index=df.index, dtype=dtype)
        return df

    loads = tuple((lambda a=a, b=b: part(a, b)) for a, b in plan.shards)
    # the summary's columns, less the instructions: their wording figures are counted a shard at
    # a time (diversity.text_counts, merged), for all rows and per source
    smalls, counts, facts = [], {}, []
    for (a, b), load in zip(plan.shards, loads):
        df = load()
        facts.append(part_facts(df, f"{stage.name} shard"))  # so the writer loads each part once more only
        smalls.append(df[[c for c in ("source", *METRIC_INPUTS) if c in df.columns and c != "instruction"]])
        saved = plan.shard_dir(a, b) / "text_counts.pkl"  # counted by the shard's task, beside the others
        shard_counts = pd.read_pickle(saved) if saved.exists() else _shard_text_counts(df)
        for g, c in shard_counts.items():  # None (all rows) first, then the sources in order
            counts[g] = merge_text_counts(counts.get(g), c)
        del df
    small = pd.concat(smalls, ignore_index=True)
    small.attrs["text_figures"] = {g: text_figures(c) for g, c in counts.items()}
    return RowParts(loads, small, tuple(facts)), stats


# Rows per part when a stage's outputs are written a part at a time from its input.
PART_ROWS = 200_000


def _decided(plan: StagePlan) -> bool:
    """Whether every step of the stage is a job whose operator gives a decision without the rows
    (``decide_job``: the deduplicators), so the stage's outputs can be written a part at a time."""
    jobs = plan.jobs()
    return (plan.stage.summary is None and len(jobs) == len(plan.stage.steps)
            and all(hasattr(s.build(), "decide_job") for s in plan.stage.steps))


def _light_frame(path: str) -> pd.DataFrame:
    """What the deduplicators' decisions read of every input row: ``id`` (Arrow-backed), ``source``
    and the output's length (``duplicates.OUTLEN``), indexed by input row; read a batch at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .duplicates import OUTLEN

    pf = pq.ParquetFile(path, pre_buffer=False)  # see io._batches: else the whole file's texts are read first
    has_output = "output" in pf.schema_arrow.names
    cols = ["id", "source"] + (["output"] * has_output)
    parts = []
    for batch in pf.iter_batches(batch_size=65_536, columns=cols):
        n = batch.num_rows
        outlen = (pc.utf8_length(batch.column("output")).cast(pa.int64()) if has_output
                  else pa.array([0] * n, pa.int64()))
        parts.append(pa.table({"id": batch.column("id"), "source": batch.column("source"), OUTLEN: outlen}))
    schema = pa.schema([pf.schema_arrow.field("id"), pf.schema_arrow.field("source"), pa.field(OUTLEN, pa.int64())])
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    del parts
    # the decisions read the ids as sort keys from the Arrow buffer and make strings only of the few
    # rows they name
    return arrow_ids_frame(table)


def _light_path(plan: StagePlan) -> Path:
    return Path(plan.job.work_dir).parent / "light.pkl"


def _save_light(plan: StagePlan) -> str:
    """The ``light`` task: the decisions' light frame (``_light_frame``), kept for them."""
    path = _light_path(plan)
    if not path.exists():
        frame = _light_frame(plan.in_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            frame.to_pickle(tmp)
    return str(path)


def _light(plan: StagePlan) -> pd.DataFrame:
    return pd.read_pickle(_light_path(plan)) if _light_path(plan).exists() else _light_frame(plan.in_path)


def _decide(plan: StagePlan, progress: Progress = None) -> dict[str, Any]:
    """A decided stage's decisions, taken on a light frame (no texts): which input rows it keeps
    (``alive``), its drops (stage/op, reason, input rows, details) and their sources, the kept rows'
    sources and the stats."""
    import pyarrow.parquet as pq

    from .duplicates import EXAMPLE_COLUMNS

    stage, jobs, path = plan.stage, plan.jobs(), plan.in_path
    n_in = pq.ParquetFile(path).metadata.num_rows
    light = _light(plan)
    names = pq.ParquetFile(path).schema_arrow.names
    shown = [c for c in names if c in EXAMPLE_COLUMNS]  # what the examples show, not every text column
    stats: dict[str, Any] = {"steps": []}
    drops: list[tuple[str, str, np.ndarray, np.ndarray]] = []  # (stage/op, reason, input rows, details)
    drop_sources = []
    for k, step in enumerate(stage.steps):
        op = step.build()
        if progress:
            progress(f"{stage.name}: {step.op} on {len(light):,} rows")
        rows = light.index.to_numpy()
        d = op.decide_job(light, jobs[k], lambda pos, rows=rows: read_positions(path, rows[pos], shown))
        drop = d.drop
        stats["steps"].append({"op": step.op, "params": step.params, "in": len(light),
                               "kept": int((~drop).sum()), "dropped": int(drop.sum()), **d.stats})
        if drop.any():
            drops.append((f"{stage.name}/{step.op}", d.reason, rows[drop], d.details[drop]))
            drop_sources.append(pd.DataFrame({"source": light["source"].to_numpy()[drop], "reason": d.reason}))
        light = light[~drop]
    alive = np.zeros(n_in, dtype=bool)
    alive[light.index.to_numpy()] = True
    return {"alive": alive, "drops": drops, "drop_sources": drop_sources, "stats": stats,
            "small_kept": light[["source"]].reset_index(drop=True)}


def decides(plan: StagePlan) -> bool:
    """Whether the rows the stage keeps are known before its merge (``decide_stage``): its job's
    tasks are done and each operator gives its survivors from them (``survivors_job``)."""
    return (not plan.done and plan.job is not None and not plan.job.missing() and _decided(plan)
            and all(hasattr(s.build(), "survivors_job") for s in plan.stage.steps))


def decide_stage(plan: StagePlan, rows_path: str | Path, progress: Progress = None) -> int:
    """The input rows a decided stage keeps, once its job's rounds are done, written to ``rows_path``
    (.npy, in order): the next stage reads its rows from the input with them (``plan_selected``)
    while the merge writes them. Only the survivors (``op.survivors_job``), not the figures and
    example rows the merge's decisions (``_decide``) also give: the same rows, sooner. Returns
    how many it keeps."""
    if not decides(plan):
        raise ValueError(f"{plan.stage.name}: not a decided stage with its tasks done")
    jobs, light = plan.jobs(), _light(plan)
    for k, step in enumerate(plan.stage.steps):
        if progress:
            progress(f"{plan.stage.name}: {step.op}'s survivors among {len(light):,} rows")
        surv = step.build().survivors_job(light, jobs[k])
        light = light[surv == np.arange(len(light))]
    rows = light.index.to_numpy(dtype=np.int64)  # input rows, in order
    Path(rows_path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(rows_path)) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, rows)
    return len(rows)


def _decided_result(plan: StagePlan, n_in: int, progress: Progress = None) -> StageResult:
    """The stage's result from its jobs' decisions (``_decide``): the kept and dropped rows are
    split off the input a part of ``PART_ROWS`` input rows at a time (``_split_parts``) and written
    a part at a time, the same bytes as the in-memory result. Example rows are read by position."""
    d = _decide(plan, progress)
    stage, drops, drop_sources, stats = plan.stage, d["drops"], d["drop_sources"], d["stats"]
    kept_parts, drop_parts = _split_parts(plan, n_in, d.pop("alive"), drops, progress)
    src = read_rows(plan.in_path, 0, 0)  # the input's columns: the drops' frame starts from an empty one
    empty = empty_drops(src, stage.name)
    kept = RowParts(tuple(load for load, _ in kept_parts), d["small_kept"], tuple(f for _, f in kept_parts))
    dropped = RowParts((lambda: empty,) + tuple(load for load, _ in drop_parts),
                       pd.concat([pd.DataFrame({"source": [], "reason": []}), *drop_sources], ignore_index=True),
                       (part_facts(empty, stage.name),) + tuple(f for _, f in drop_parts))
    return StageResult(kept, dropped, stats)


def _split_parts(plan: StagePlan, n_in: int, alive: Any, drops: list[tuple[str, str, Any, Any]],
                 progress: Progress = None) -> tuple[list[tuple[Callable[[], pd.DataFrame], dict]], ...]:
    """The decided stage's kept rows and each drop's rows, read from the input a part of
    ``PART_ROWS`` rows at a time, each part once: every piece is kept as a pickle (exact dtypes)
    under ``_shards/decided`` with its ``io.part_facts``, so the writer loads it once more only,
    from the pickle. (Reading the input once for the kept rows and once per deduplicator for its
    drops, each twice for the row-group measure, was most of the merge; reading the kept rows
    again as the writer encodes the piece before, instead of their pickles, made it slower still.)
    Returns (load, facts) of the kept pieces in input order, and of the drops' pieces, drop by
    drop, each in input order."""
    folder = Path(plan.out_dir) / "_shards" / "decided"
    folder.mkdir(parents=True, exist_ok=True)
    kept: list[tuple[Callable[[], pd.DataFrame], dict]] = []
    dropped: list[list[tuple[Callable[[], pd.DataFrame], dict]]] = [[] for _ in drops]

    def keep(frame: pd.DataFrame, name: str) -> tuple[Callable[[], pd.DataFrame], dict]:
        path = folder / f"{name}.pkl"
        with atomic_path(path) as tmp:
            frame.to_pickle(tmp)
        return (lambda path=path: pd.read_pickle(path)), part_facts(frame, f"{plan.stage.name} {name}")

    parts = [(a, min(n_in, a + PART_ROWS)) for a in range(0, n_in, PART_ROWS)]
    # the next part is read (pyarrow decodes without the GIL) while this one is split and pickled
    for (a, b), df in ahead(((a, b), read_rows(plan.in_path, a, b)) for a, b in parts):
        if progress:
            progress(f"{plan.stage.name}: rows {a:,}-{b:,} of {n_in:,} split into kept and dropped")
        kept.append(keep(df[alive[a:b]].reset_index(drop=True), f"kept-{a:012d}"))
        for d, (name, reason, rows, details) in enumerate(drops):
            i, j = np.searchsorted(rows, [a, b])
            if i < j:
                sel = df.iloc[rows[i:j] - a].reset_index(drop=True)
                frame = drop_frame(sel, name, reason, pd.Series(details[i:j], index=sel.index, dtype=object))
                dropped[d].append(keep(frame, f"dropped-{d:02d}-{a:012d}"))
        del df
    return kept, [piece for pieces in dropped for piece in pieces]


def run_stage(stage: Stage, in_path: str | Path, out_dir: str | Path, progress: Progress = None) -> dict[str, Any]:
    """A whole operator stage in this process, unsharded."""
    return finish_stage(plan_stage(stage, in_path, out_dir, shard_rows=None), progress=progress)


@dataclass(frozen=True)
class MixtureJob(TaskJob):
    """The mixtures' selections as tasks: ``select g`` chooses the mixtures of group g
    (``mix.selection_groups``: a spec that embeds texts alone, the others together) and keeps, per
    mixture, the chosen rows as rows of the pool file in id order (``select-<spec>.npy``) and what
    was decided (``select-<spec>.json``). The merge reads those rows and writes the mixtures."""

    in_path: str
    work_dir: str
    specs: tuple[MixtureSpec, ...]
    groups: tuple[tuple[int, ...], ...]
    store: str | None = None  # the run's fit store: pool embeddings fitted beforehand (``prefit_mixtures``)

    def rounds(self) -> tuple[tuple[tuple[str, int], ...], ...]:
        return (tuple(("select", g) for g in range(len(self.groups))),)

    def step(self, step: str, index: int) -> None:
        from .mix import clear_embed_cache, select_mixtures
        from .pool import LazyPool

        if step != "select":
            raise ValueError(f"mixtures: unknown step {step!r}")
        from .embed import fit_store

        pool = LazyPool(self.in_path)
        try:
            with fit_store(self.store):
                chosen = select_mixtures(pool, [self.specs[i] for i in self.groups[index]])
            for i, (positions, info) in zip(self.groups[index], chosen):
                with atomic_path(self.path(f"select-{i:05d}.npy")) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, pool.file_rows[positions])  # in pool (id) order
                write_json(self.path(f"select-{i:05d}.json"), info)
        finally:
            clear_embed_cache()  # it holds the pool


@dataclass(frozen=True)
class MixturePlan:
    in_path: str
    out_dir: str
    specs: tuple[MixtureSpec, ...]
    licenses: dict[str, str] | None
    key: str
    done: bool
    job: MixtureJob

    @property
    def tasks(self) -> tuple[tuple[str, int], ...]:
        return () if self.done else self.job.rounds()[0]


def plan_mixtures(in_path: str | Path, out_dir: str | Path, specs: tuple[MixtureSpec, ...],
                  licenses: dict[str, str] | None = None) -> MixturePlan:
    """The mixtures stage as tasks (``run_mixture_task``, side by side) and a merge
    (``finish_mixtures``); ``done`` when its outputs are there for these inputs and settings."""
    from .mix import selection_groups

    out_dir = Path(out_dir)
    specs = tuple(specs)
    key = cache_key([in_path], {"mixtures": [s.to_dict() for s in specs], "licenses": licenses})
    groups = tuple(tuple(g) for g in selection_groups(list(specs)))
    from .embed import FIT_STORE

    job = MixtureJob(str(in_path), str(out_dir / "_work" / key), specs, groups, str(out_dir.parent / FIT_STORE))
    return MixturePlan(str(in_path), str(out_dir), specs, licenses, key, is_done(out_dir, key), job)


def run_mixture_task(plan: MixturePlan, step: str, index: int, progress: Progress = None) -> str:
    """One selection task of the plan (skipped when its marker says it is done)."""
    if progress:
        names = ", ".join(plan.specs[i].name for i in plan.job.groups[index])
        progress(f"mixtures: {names}")
    return plan.job.run(step, index)


def finish_mixtures(plan: MixturePlan, progress: Progress = None) -> list[dict[str, Any]]:
    """Every mixture of the plan written with its exports, from the selections (made here for any
    task not done); returns what ``mixtures.json`` lists."""
    import shutil

    from .mix import write_mixture

    out_dir = Path(plan.out_dir)
    if plan.done or is_done(out_dir, plan.key):
        shutil.rmtree(out_dir / "_work", ignore_errors=True)
        return read_json(out_dir / "mixtures.json")
    sweep_temps(out_dir)  # what a killed run left half-written
    fault_point("mixtures", "before")
    for step, index in plan.tasks:  # those a runner did not run
        run_mixture_task(plan, step, index, progress)
    job = plan.job
    picked = [np.load(job.path(f"select-{i:05d}.npy")) for i in range(len(plan.specs))]
    infos = [read_json(job.path(f"select-{i:05d}.json")) for i in range(len(plan.specs))]
    # the rows of every mixture in one pass over the file (one read, not one per mixture)
    union = np.unique(np.concatenate(picked)) if picked else np.zeros(0, np.int64)
    rows = read_positions(plan.in_path, union)
    rows.index = pd.Index(union)
    results = []
    for spec, file_rows, info in zip(plan.specs, picked, infos):
        mix = rows.loc[file_rows].reset_index(drop=True)
        mix.attrs["mixture"] = info
        # keep the manifest free of absolute paths so equal runs write equal bytes
        written = write_mixture(mix, spec, out_dir, licenses=plan.licenses)
        results.append({k: v for k, v in written.items() if k != "paths"})
        fault_point("mixtures", "mid")
    write_json(out_dir / "mixtures.json", results)
    write_json(out_dir / "_SUCCESS.json", {"key": plan.key, "stage": "mixtures"})
    fault_point("mixtures", "after")
    shutil.rmtree(out_dir / "_work", ignore_errors=True)
    return results


def keeps_rows(stage: Stage) -> bool:
    """Whether ``stage`` keeps every row and its texts (taggers only): its output holds its input's
    rows in order, so work on those rows can start from its input."""
    return all(s.cls.kind == "tagger" for s in stage.steps)


def prefit_mixtures(in_path: str | Path, specs: tuple[MixtureSpec, ...], store: str | Path) -> int:
    """The pool embeddings the mixtures will fit (``mix.prefit_pool_embedders``), fitted now into
    the run's fit store ``store`` from ``in_path``, a file with the pool's rows (the last stage's
    input when that stage keeps its rows): on a task runner, beside that stage's merge, which
    keeps one core busy. The selections find them there, the same fits. Returns how many."""
    from .embed import fit_store
    from .mix import prefit_pool_embedders

    with fit_store(store):
        return prefit_pool_embedders(str(in_path), list(specs))


def mixtures_stage(in_path: str | Path, out_dir: str | Path, specs: tuple[MixtureSpec, ...],
                   progress: Progress = None, licenses: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every mixture of ``specs`` from the pool at ``in_path``, written with its exports, in this
    process; ``licenses``: each source's licence (default: the registry's), carried by every
    exported row."""
    return finish_mixtures(plan_mixtures(in_path, out_dir, specs, licenses), progress)


def run_dir_for(data_dir: str | Path, recipe: Recipe, files: list[dict], run_id: str | None = None) -> Path:
    """The run id hashes the recipe and the input checksums: the same command finds the same folder."""
    if run_id:
        from .paths import check_run_id

        check_run_id(run_id)  # a name under data_dir, never a path out of it
    else:
        h = hashlib.sha256(json.dumps(recipe.data, sort_keys=True, default=str).encode())
        for f in files:
            h.update(f"{f['source']}/{f['file']}:{f['sha256']}".encode())
        run_id = "run-" + h.hexdigest()[:10]
    return Path(data_dir) / run_id
