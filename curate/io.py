"""Atomic, deterministic file writes and the Parquet format of every stage.

Every file is written to a temporary name in the same folder and renamed into place, so a run
killed half-way never leaves a half-written file that a later run would read as complete.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once, at import (single-threaded): the process's umask does not change


def set_mode(path: str | os.PathLike, directory: bool = False) -> None:
    """The mode a plain ``open``/``mkdir`` would give under the umask (mkstemp/mkdtemp give 0600/0700)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.
    The file ends with the mode the umask gives new files, so teammates and containers can read it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        set_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sweep_temps(directory: str | os.PathLike) -> list[str]:
    """Remove the temporary files a killed run left under ``directory`` (``atomic_path``'s
    ``.NAME.XXXX.tmp``; a SIGKILL skips its clean-up). Call it where nothing else writes there: at
    the start of a stage that is not done. Returns the paths removed, relative to ``directory``."""
    root = Path(directory)
    if not root.is_dir():
        return []
    gone = []
    for p in sorted(root.rglob(".*.tmp")):
        if p.is_file():
            p.unlink(missing_ok=True)
            gone.append(str(p.relative_to(root)))
    return gone


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Deterministic JSON: sorted keys, UTF-8 (Chinese stays readable), trailing newline."""
    return write_text(path, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o)}")


# In memory a record's ``history`` is the JSON text ``records.make_record`` gives it (what every
# operator reads); on disk it is an Arrow list of [query, response] string pairs, so the Parquet files
# hold lists that pandas, datasets and DuckDB read as lists.


def _history_lists(col: pd.Series, where: str) -> Any:
    import pyarrow as pa

    from .records import history_pairs

    # Built from offsets: most rows have no history ("[]" as make_record stores it), and neither
    # parsing their JSON nor a Python list per row is needed (the same array as ``pa.array``).
    lengths = np.zeros(len(col), dtype=np.int64)
    pairs: list[list[str]] = []
    for i, v in enumerate(col.tolist()):
        if type(v) is str and v == "[]":
            continue
        hist = history_pairs(v, f"{where}: row {i}")
        lengths[i] = len(hist)
        pairs.extend(hist)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(pairs, type=pa.list_(pa.string())))


def history_strings(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with an Arrow-list ``history`` column turned back into the JSON text of ``make_record``
    (``[]`` → ``"[]"``): how every stage reads what ``write_parquet`` wrote."""
    if "history" not in df.columns or (len(df) and isinstance(df["history"].iloc[0], str)):
        return df
    out = ["[]" if h is None or len(h) == 0 else json.dumps([[str(x) for x in p] for p in h], ensure_ascii=False)
           for h in df["history"].tolist()]
    return df.assign(history=pd.Series(out, index=df.index, dtype="str"))


# Row groups. datasets' ``to_parquet`` sizes them from the whole table's in-memory bytes (≤ 100 MB per
# group), and that figure does not add up over parts (each part has its own offset and null-bitmap
# buffers), so a file written part by part would split differently from the same rows written whole.
# Here the size is a measure that does add up and does not depend on the column's Arrow type: every
# value costs 8 bytes plus its strings' UTF-8 bytes (a list value: 8 plus its elements' costs). The
# writer is datasets' own otherwise (schema with its features, content-defined chunking, page index,
# per-column options), so ``datasets.load_dataset('parquet', …)`` reads every file.
ROW_GROUP_BYTES = 100_000_000


def _value_cost(arr: Any) -> int:
    """The row-group measure of one Arrow array (see ROW_GROUP_BYTES)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t, n = arr.type, len(arr)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return 8 * n + _value_cost(arr.flatten())
    if pa.types.is_struct(t):
        return 8 * n + sum(_value_cost(f) for f in arr.flatten())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return 8 * n + int(pc.sum(pc.binary_length(arr)).as_py() or 0)
    return 8 * n


def _table_cost(table: Any) -> int:
    return sum(_value_cost(chunk) for col in table.columns for chunk in col.chunks)


def _arrow_table(df: pd.DataFrame, where: str) -> Any:
    """``df`` as an Arrow table (no index), ``history`` as an Arrow list of string pairs."""
    import pyarrow as pa

    df = df.reset_index(drop=True)
    if "history" not in df.columns:
        return pa.Table.from_pandas(df, preserve_index=False)
    table = pa.Table.from_pandas(df.drop(columns=["history"]), preserve_index=False)
    return table.add_column(list(df.columns).index("history"), "history", _history_lists(df["history"], where))


class _Digesting:
    """A binary file that hashes what is written to it: the bytes go to the file and to SHA-256 on a
    thread of its own (both let go of the interpreter lock), so the writer (Parquet's encoder)
    goes on encoding while its last pages are written and hashed: the SHA-256 of a file for the
    price of copying its bytes once, and the writes off the encoder's path. An error of the file
    (a full disk) is raised by the next write, flush or close."""

    def __init__(self, path: Path):
        import queue
        import threading

        self._f = open(path, "wb")
        self._h = hashlib.sha256()
        self._q: Any = queue.Queue(maxsize=64)
        self._error: BaseException | None = None
        self._pos = 0
        self._t = threading.Thread(target=self._drain, name="tiger-digest", daemon=True)
        self._t.start()
        self.closed = False

    def _drain(self) -> None:
        while (block := self._q.get()) is not None:
            try:
                if self._error is None:
                    self._f.write(block)
                    self._h.update(block)
            except BaseException as e:  # noqa: BLE001  (kept for the writer's next call)
                self._error = e
            finally:
                self._q.task_done()
        self._q.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: Any) -> int:
        self._check()
        block = bytes(data)  # the writer may reuse its buffer
        self._q.put(block)
        self._pos += len(block)
        return len(block)

    def flush(self) -> None:
        self._q.join()
        self._check()
        self._f.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._q.put(None)
            self._t.join()
            self._f.close()
            self._check()

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _digest_note(path: Path) -> Path:
    """Where ``sha256_file`` finds the digest a writer noted for ``path`` (a hidden file, which
    datasets and globs of ``*.parquet`` pass over)."""
    return path.with_name(f".{path.name}.sha256")


def _write_tables(path: Path, schema: Any, tables: Iterator[Any], rows: int, cost: int, note: bool = False) -> None:
    """``tables`` (``rows`` rows in all, measure ``cost``) into one Parquet file as datasets writes one,
    in row groups of equal row counts whatever the tables' sizes; a group is one Arrow chunk per
    column (the bytes written depend on the chunking). With ``note``, the file's SHA-256, hashed as
    it is written, is noted beside it for ``sha256_file`` (the next stage's cache key reads it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Features, config
    from datasets.arrow_writer import get_parquet_column_options

    features = Features.from_arrow_schema(schema)
    schema = features.arrow_schema
    per_group = max(1, rows * ROW_GROUP_BYTES // cost) if cost > 0 else 1
    with atomic_path(path) as tmp:
        sink = _Digesting(tmp) if note else None
        writer = pq.ParquetWriter(sink or str(tmp), schema=schema, use_content_defined_chunking=config.DEFAULT_CDC_OPTIONS,
                                  write_page_index=True, **get_parquet_column_options(features, schema))
        try:
            held, n_held = [], 0
            for table in tables:
                held.append(table.cast(schema))
                n_held += table.num_rows
                while n_held >= per_group:
                    whole = pa.concat_tables(held)
                    writer.write_table(whole.slice(0, per_group).combine_chunks())
                    held, n_held = [whole.slice(per_group)], n_held - per_group
            if n_held:
                writer.write_table(pa.concat_tables(held).combine_chunks())
            writer.add_key_value_metadata({"content_defined_chunking": json.dumps(config.DEFAULT_CDC_OPTIONS)})
        finally:
            try:
                writer.close()
            finally:
                if sink is not None:
                    sink.close()
    if sink is not None:  # after the file: the note is never older than the file it describes
        with atomic_path(_digest_note(path)) as tmp:
            tmp.write_text(f"{sink.hexdigest()} {path.stat().st_size}\n", encoding="ascii")


_END = object()


def ahead(items: Iterable[Any]) -> Iterator[Any]:
    """``items`` in order, the next one made in a thread of its own while the caller works on the
    current one: a stage's writer encodes Parquet and pyarrow decodes it with the GIL released, so
    loading (or reading) the next part overlaps the work on this one. One item is held ahead."""
    from concurrent.futures import ThreadPoolExecutor

    it = iter(items)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tiger-ahead") as pool:
        nxt = pool.submit(next, it, _END)
        while True:
            item = nxt.result()  # raises what making the item raised
            if item is _END:
                return
            nxt = pool.submit(next, it, _END)
            yield item


def write_parquet(path: str | os.PathLike, df: pd.DataFrame, note: bool = False) -> Path:
    """Write ``df`` as Parquet that HF datasets reads (``datasets.load_dataset('parquet', …)``),
    ``history`` (JSON text in memory) as an Arrow list of string pairs.

    The index is dropped and the row order kept, so equal frames give equal bytes; the same rows
    given in parts to :func:`write_parquet_parts` give the same bytes too.
    """
    table = _arrow_table(df, str(path))
    _write_tables(Path(path), table.schema, iter([table]), table.num_rows, _table_cost(table), note)
    return Path(path)


def part_facts(df: pd.DataFrame, where: str = "frame") -> dict[str, Any]:
    """What :func:`write_parquet_parts` learns of a part in its first pass (rows, the row-group
    measure, the Arrow schema, the empty head with its dtypes): a task that writes a part can keep
    them beside it, so the merge loads each part once."""
    from .records import empty_like

    table = _arrow_table(df, where)
    return {"rows": len(df), "cost": _table_cost(table), "schema": table.schema, "head": empty_like(df)}


def parts_layout(parts: Sequence[Callable[[], pd.DataFrame]], facts: Sequence[dict[str, Any]] | None = None,
                 where: str = "parts") -> dict[str, Any]:
    """How :func:`write_parquet_parts` writes ``parts``: the common dtypes (``dtypes``, as
    ``pd.concat`` makes them), the file's Arrow schema before datasets' features (``schema``), each
    part's rows (``rows``) and row-group measure (``costs``). A part is loaded only when its facts
    are not given or its dtypes change."""
    import pyarrow as pa

    heads, costs, schemas, rows = [], [], [], []
    if facts is not None and len(facts) != len(parts):
        raise ValueError(f"{where}: {len(facts)} facts for {len(parts)} parts")
    for k, load in enumerate(parts):
        f = facts[k] if facts is not None else part_facts(load(), where)
        heads.append(f["head"])
        if list(f["head"].columns) != list(heads[0].columns):
            raise ValueError(f"{where}: parts have different columns: {list(heads[0].columns)} and "
                             f"{list(f['head'].columns)}")
        costs.append(f["cost"])
        schemas.append(f["schema"])
        rows.append(f["rows"])
    if not parts:
        raise ValueError(f"{where}: no parts to write")
    dtypes = pd.concat(heads, ignore_index=True).dtypes
    for k, head in enumerate(heads):  # a part whose dtypes change is measured as it will be written
        if not head.dtypes.equals(dtypes):
            table = _arrow_table(parts[k]().astype(dtypes.to_dict()), where)
            costs[k], schemas[k] = _table_cost(table), table.schema
    return {"dtypes": dtypes, "schema": pa.unify_schemas(schemas, promote_options="permissive"), "rows": rows,
            "costs": costs}


def _aligned(df: pd.DataFrame, dtypes: pd.Series) -> pd.DataFrame:
    return df if df.dtypes.equals(dtypes) else df.astype(dtypes.to_dict())


def write_parquet_parts(path: str | os.PathLike, parts: Sequence[Callable[[], pd.DataFrame]],
                        facts: Sequence[dict[str, Any]] | None = None, note: bool = False) -> Path:
    """Write the frames ``parts`` give, one after another, as :func:`write_parquet` writes their
    concatenation (``pd.concat(…, ignore_index=True)``), byte for byte, holding one part at a time.

    Each part is loaded twice: first for the row count, the row-group measure and the common schema
    (columns must be the same in every part; their dtypes are made common as ``pd.concat`` would),
    then to write; once when ``facts`` (each part's :func:`part_facts`) are given."""
    where = str(path)
    lay = parts_layout(parts, facts, where)
    dtypes = lay["dtypes"]
    # the next part is loaded while this one is encoded
    _write_tables(Path(path), lay["schema"], ahead(_arrow_table(_aligned(parts[k](), dtypes), where)
                                                  for k in range(len(parts))),
                  sum(lay["rows"]), sum(lay["costs"]), note)
    return Path(path)


def read_parts_rows(parts: Sequence[Callable[[], pd.DataFrame]], facts: Sequence[dict[str, Any]], start: int,
                    stop: int, where: str = "parts") -> pd.DataFrame:
    """Rows ``start:stop`` of the file :func:`write_parquet_parts` would write from ``parts``, as
    :func:`read_rows` would read them from it, without the file: only the parts holding them are
    loaded: a stage's tasks read the stage before's rows this way while its merge writes them."""
    import pyarrow as pa
    from datasets import Features

    lay = parts_layout(parts, facts, where)
    schema = Features.from_arrow_schema(lay["schema"]).arrow_schema  # what the file holds (_write_tables)
    tables, pos = [], 0
    for k, m in enumerate(lay["rows"]):
        if pos + m > start and pos < stop and m:
            a, b = max(start, pos) - pos, min(stop, pos + m) - pos
            part = _aligned(parts[k](), lay["dtypes"]).iloc[a:b]
            tables.append(_arrow_table(part, where).cast(schema))
        pos += m
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    return history_strings(table.to_pandas().reset_index(drop=True))


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    return history_strings(pd.read_parquet(path))


def _group_starts(pf: Any) -> list[int]:
    """The first row of each row group of an open ``pq.ParquetFile``, and the row count at the end."""
    starts = [0]
    for g in range(pf.metadata.num_row_groups):
        starts.append(starts[-1] + pf.metadata.row_group(g).num_rows)
    return starts


def _batches(path: str | os.PathLike, start: int, stop: int, columns: list[str] | None) -> Iterator[tuple[int, Any]]:
    """(first row, record batch) of the file's batches that overlap rows ``start:stop``, in order,
    reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    # pre_buffer=False: with it, iter_batches first reads every requested row group's column chunks
    # into memory (a whole file's, for a scan of it) and holds them until the reader goes
    pf = pq.ParquetFile(path, pre_buffer=False)
    starts = _group_starts(pf)
    groups = [g for g in range(len(starts) - 1) if starts[g] < stop and starts[g + 1] > start]
    if not groups:
        return
    pos = starts[groups[0]]
    for batch in pf.iter_batches(batch_size=65_536, columns=columns, row_groups=groups):
        yield pos, batch
        pos += batch.num_rows
        if pos >= stop:
            return


def arrow_ids_frame(table: Any) -> pd.DataFrame:
    """``table.to_pandas()`` with its ``id`` column left in Arrow (about 24 bytes a row, not a Python
    string's 80): for frames of every row that read ids only as sort keys or for a few rows."""
    ids = pd.arrays.ArrowExtensionArray(table.column("id"))
    out = table.drop_columns(["id"]).to_pandas()
    out.insert(table.column_names.index("id"), "id", ids)
    return out


def _schema(path: str | os.PathLike, columns: list[str] | None) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return schema if columns is None else pa.schema([schema.field(c) for c in columns])


def read_rows(path: str | os.PathLike, start: int, stop: int, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows ``start:stop`` of a Parquet file (only ``columns``, default all), as
    ``read_parquet(path).iloc[start:stop]`` would give them, reading only the row groups that hold
    them and without holding the other rows in memory."""
    import pyarrow as pa

    schema = _schema(path, columns)
    parts = []
    for pos, batch in _batches(path, start, stop, columns):
        m = batch.num_rows
        if pos + m > start and pos < stop:
            a = max(start, pos) - pos
            parts.append(batch.slice(a, min(stop, pos + m) - pos - a))
    table = pa.Table.from_batches(parts, schema=schema) if parts else schema.empty_table()
    return history_strings(table.to_pandas().reset_index(drop=True))


def read_positions(path: str | os.PathLike, positions: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows at ``positions`` (sorted, increasing) of a Parquet file, only ``columns`` (default all):
    only the row groups that hold one of them, a batch at a time, holding only the rows taken (a
    seeded sample of millions of rows, or a few example rows of a large file)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pos_all = np.asarray(positions, dtype=np.int64)
    schema = _schema(path, columns)
    parts = []
    if len(pos_all):
        pf = pq.ParquetFile(path, pre_buffer=False)
        starts = np.asarray(_group_starts(pf), dtype=np.int64)
        group_of = np.searchsorted(starts, pos_all, side="right") - 1
        for g in np.unique(group_of).tolist():
            want = pos_all[group_of == g] - starts[g]
            pos, k = 0, 0
            for batch in pf.iter_batches(batch_size=65_536, columns=columns, row_groups=[g]):
                j = int(np.searchsorted(want, pos + batch.num_rows))
                if j > k:
                    parts.append(batch.take(pa.array(want[k:j] - pos)))
                    k = j
                pos += batch.num_rows
                if k == len(want):
                    break
    table = pa.Table.from_batches(parts, schema=schema) if parts else schema.empty_table()
    return history_strings(table.to_pandas().reset_index(drop=True))


def read_selected(select: tuple[str, str], start: int, stop: int, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows ``start:stop`` of the file a decided stage writes, as :func:`read_rows` would read them from
    it, before it exists: ``select`` is (the stage's input file, an ``.npy`` of the input rows it
    keeps, in order), so these are the input's rows at ``rows[start:stop]``."""
    return read_selected_positions(select, slice(start, stop), columns)


def read_selected_positions(select: tuple[str, str], positions: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """:func:`read_positions` of the file a decided stage writes, from its input (see :func:`read_selected`)."""
    path, rows = select
    return read_positions(path, np.load(rows, mmap_mode="r")[positions], columns)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The file's SHA-256: the digest its writer noted (``_write_tables(note=True)``) while the file
    has the size noted and was not modified after the note was written, else read from the file.
    (The note holds no time, so equal runs write equal notes.)"""
    note = _digest_note(Path(path))
    try:
        digest, size = note.read_text(encoding="ascii").split()
        st = os.stat(path)
        if int(size) == st.st_size and st.st_mtime_ns <= note.stat().st_mtime_ns and len(digest) == 64:
            return digest
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
