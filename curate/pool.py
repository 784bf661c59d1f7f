"""A curated pool read for mixtures without its texts in memory.

The mixture strategies choose rows by their labels (source, task type, cluster, confidence) and
read texts only for some rows (an embedding's fit sample, k-center's candidates, the chosen rows).
:class:`LazyPool` holds the pool's small columns in id order (the order strategies work in,
``curate.mix.sorted_by_id``) and reads the rest of a row from the Parquet file by position, so a
pool of millions of rows costs its label columns, not its texts. What it gives equals the same
calls on the whole frame sorted by id: mixtures built from it are the same bytes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .io import arrow_ids_frame, history_strings, read_positions, read_rows

# columns left on disk: the texts, and what only the chosen rows' exports need
HEAVY = ("file", "instruction", "input", "output", "history", "extra")
# rows read at a time by :meth:`LazyPool.map_rows`
MAP_ROWS = 200_000


class _ILoc:
    def __init__(self, pool: "LazyPool"):
        self.pool = pool

    def __getitem__(self, positions: Any) -> pd.DataFrame:
        return self.pool.take(positions)


class LazyPool:
    """The rows of the Parquet file ``path`` in id order: ``len``, ``columns``, ``pool[col]`` (held
    for the small columns; a text column is read whole only when asked for) and ``pool.iloc[pos]``
    (whole rows at pool positions, index = the positions), as on the sorted frame."""

    def __init__(self, path: str | Path, heavy: tuple[str, ...] = HEAVY):
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        self.path = str(path)
        schema = pq.ParquetFile(self.path).schema_arrow
        names = schema.names
        if "id" not in names:
            raise KeyError(f"{self.path}: the pool has no 'id' column")
        small = [c for c in names if c not in heavy]
        # Label columns (source, task type) repeat a few values: read as dictionaries (4 bytes a row)
        # and decoded one column at a time once in id order, so the whole table is never held twice
        # (without pre-buffering: whole column chunks held while they decode).
        labels = [c for c in small if c != "id" and (pa.types.is_string(schema.field(c).type)
                                                     or pa.types.is_large_string(schema.field(c).type))]
        table = pq.read_table(self.path, columns=small, read_dictionary=labels, pre_buffer=False)
        # the order sorted_by_id gives: a stable sort by id (Arrow orders UTF-8 bytes, which is the
        # code-point order Python compares strings in)
        order = pc.sort_indices(table, sort_keys=[("id", "ascending")])
        ordered = {}
        pool = pa.default_memory_pool()
        for name in small:
            col = table.column(name).take(order)
            table = table.drop_columns([name])  # its buffers go now, and back to the system
            pool.release_unused()
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            ordered[name] = col
            if name != "id":  # as arrow_ids_frame converts it, one column at a time
                ordered[name] = pa.table({name: col}).to_pandas()[name]
        ids = pd.arrays.ArrowExtensionArray(ordered["id"])
        frame = pd.DataFrame({k: (ids if k == "id" else v) for k, v in ordered.items()})
        self.frame = history_strings(frame)
        self.file_rows = order.to_numpy().astype(np.int64)  # pool position -> row of the file
        self.columns = pd.Index(names)
        self.iloc = _ILoc(self)

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, column: str) -> pd.Series:
        if column in self.frame.columns:
            return self.frame[column]
        if column not in self.columns:
            raise KeyError(column)
        import pyarrow.parquet as pq

        whole = history_strings(pq.read_table(self.path, columns=[column]).to_pandas())[column]
        return whole.iloc[self.file_rows].reset_index(drop=True)

    def take(self, positions: Any, columns: list[str] | None = None) -> pd.DataFrame:
        """Rows at pool ``positions`` (in the order given), indexed by those positions: all columns,
        or only ``columns`` (an embedding reads two text columns, not the answers)."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        rows = self.file_rows[pos]
        order = np.argsort(rows, kind="stable")
        df = read_positions(self.path, rows[order], columns)
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        df = df.iloc[back]
        df.index = pd.Index(pos)
        return df

    def map_rows(self, fn: Callable[[pd.DataFrame], np.ndarray], columns: list[str]) -> np.ndarray:
        """``fn`` (a row-local function of a frame giving one value per row) over every row, read
        ``MAP_ROWS`` rows of the file at a time; returned in pool order."""
        n_file = len(self.file_rows)
        parts = [np.asarray(fn(read_rows(self.path, a, min(n_file, a + MAP_ROWS), columns)))
                 for a in range(0, n_file, MAP_ROWS)]
        if not parts:
            return np.asarray(fn(read_rows(self.path, 0, 0, columns)))
        return np.concatenate(parts)[self.file_rows]
