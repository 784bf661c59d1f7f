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
from typing import Any, Iterator

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

    vals = [history_pairs(v, f"{where}: row {i}") for i, v in enumerate(col.tolist())]
    return pa.array(vals, type=pa.list_(pa.list_(pa.string())))


def history_strings(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with an Arrow-list ``history`` column turned back into the JSON text of ``make_record``
    (``[]`` → ``"[]"``): how every stage reads what ``write_parquet`` wrote."""
    if "history" not in df.columns or (len(df) and isinstance(df["history"].iloc[0], str)):
        return df
    out = ["[]" if h is None or len(h) == 0 else json.dumps([[str(x) for x in p] for p in h], ensure_ascii=False)
           for h in df["history"].tolist()]
    return df.assign(history=pd.Series(out, index=df.index, dtype="str"))


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write ``df`` as Parquet through HF datasets (so ``datasets.load_dataset('parquet', …)`` reads it),
    ``history`` (JSON text in memory) as an Arrow list of string pairs.

    The index is dropped and the row order kept, so equal frames give equal bytes.
    """
    import pyarrow as pa
    from datasets import Dataset

    df = df.reset_index(drop=True)
    if "history" in df.columns:
        table = pa.Table.from_pandas(df.drop(columns=["history"]), preserve_index=False)
        hist = _history_lists(df["history"], str(path))
        table = table.add_column(list(df.columns).index("history"), "history", hist)
        ds = Dataset(table)
    else:
        ds = Dataset.from_pandas(df, preserve_index=False)
    with atomic_path(path) as tmp:
        ds.to_parquet(str(tmp))
    return Path(path)


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    return history_strings(pd.read_parquet(path))


def read_rows(path: str | os.PathLike, start: int, stop: int, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows ``start:stop`` of a Parquet file (only ``columns``, default all), as
    ``read_parquet(path).iloc[start:stop]`` would give them, without holding the other rows in memory."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    schema = pf.schema_arrow if columns is None else pa.schema([pf.schema_arrow.field(c) for c in columns])
    parts, pos = [], 0
    for batch in pf.iter_batches(batch_size=65_536, columns=columns):
        m = batch.num_rows
        if pos + m > start and pos < stop:
            a = max(start, pos) - pos
            parts.append(batch.slice(a, min(stop, pos + m) - pos - a))
        pos += m
        if pos >= stop:
            break
    table = pa.Table.from_batches(parts, schema=schema) if parts else schema.empty_table()
    return history_strings(table.to_pandas().reset_index(drop=True))


def read_positions(path: str | os.PathLike, positions: Any, columns: list[str]) -> pd.DataFrame:
    """Rows at ``positions`` (sorted, increasing) of a Parquet file, only ``columns``: one pass,
    a batch at a time, holding only the rows taken (a seeded sample of millions of rows)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pos_all = np.asarray(positions, dtype=np.int64)
    pf = pq.ParquetFile(path)
    schema = pa.schema([pf.schema_arrow.field(c) for c in columns])
    parts, pos, k = [], 0, 0
    for batch in pf.iter_batches(batch_size=65_536, columns=columns):
        m = batch.num_rows
        j = int(np.searchsorted(pos_all, pos + m))
        if j > k:
            parts.append(batch.take(pa.array(pos_all[k:j] - pos)))
            k = j
        pos += m
        if k >= len(pos_all):
            break
    table = pa.Table.from_batches(parts, schema=schema) if parts else schema.empty_table()
    return history_strings(table.to_pandas().reset_index(drop=True))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
