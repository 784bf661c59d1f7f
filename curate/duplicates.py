"""What both deduplicators share: which row of a duplicate group survives, the group figures, and
the kept/dropped split.

The survivor: the row whose source comes first in ``source_priority`` (sources not listed come
after all listed ones, as equals), then the longest ``output``, then the smallest ``id``. Content
only, so the survivor does not depend on the row order of the input."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .records import StageResult, drop_frame, text_codes

def check_frame(df: pd.DataFrame, fields: Sequence[str], who: str) -> None:
    missing = [f for f in list(fields) + ["id", "source"] if f not in df.columns]
    if missing:
        raise KeyError(f"{who}: missing column(s) {missing}; have {list(df.columns)}")
    for f in fields:
        col = df[f]
        if not col.isna().any() and pd.api.types.infer_dtype(col, skipna=False) == "string":
            continue  # fast path: every value is a str
        bad = ~col.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        if not bad.any():
            continue
        k = int(np.flatnonzero(bad)[0])
        rec = df.iloc[k]
        raise TypeError(f"{who}: field {f!r} is {type(rec[f]).__name__}, not str, in file "
                        f"{rec.get('file', '?')!r} row {rec.get('row', '?')} (id {rec['id']}); "
                        f"{int(bad.sum())} such row(s)")


_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


def _id_sort_key(ids: pd.Series) -> np.ndarray:
    """An array that sorts like the ids as strings: uint64 for the project's 16-hex-digit ids (one
    vectorised pass; read from the Arrow buffer when the column is Arrow-backed, as a light frame's
    is, so no Python string is made), else the strings themselves."""
    raw, vals = hex16_bytes(ids), None
    if raw is None:
        vals = ids.astype(str).tolist()
        raw = "".join(vals).encode("utf-8")
        if len(raw) != 16 * len(vals):
            return np.asarray(vals, dtype=str)
        raw = np.frombuffer(raw, dtype=np.uint8)
    nib = _HEX[raw].reshape(-1, 16)
    if len(nib) == 0 or nib.max() < 16:  # all lowercase hex: numeric order = string order
        byte = (nib[:, 0::2] << 4) | nib[:, 1::2]
        return np.ascontiguousarray(byte).view(">u8").ravel().astype(np.uint64)
    return np.asarray(ids.astype(str).tolist() if vals is None else vals, dtype=str)


def hex16_bytes(ids: pd.Series) -> np.ndarray | None:
    """The ids' characters as one uint8 array when the column is Arrow-backed (an Arrow dtype, or
    pandas' pyarrow strings), has no nulls and every id is 16 bytes long; else None."""
    import pyarrow as pa

    dt = ids.dtype
    if not (isinstance(dt, pd.ArrowDtype) or (isinstance(dt, pd.StringDtype) and dt.storage == "pyarrow")):
        return None
    arr = pa.array(ids.array)  # the column's own buffers (pa.chunked_array would iterate it)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    off = np.frombuffer(arr.buffers()[1], dtype=np.int64 if pa.types.is_large_string(arr.type) else np.int32)
    off = off[arr.offset:arr.offset + len(arr) + 1]
    if len(arr) and not np.all(np.diff(off) == 16):
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if len(arr) else np.empty(0, np.uint8)
    return data[off[0]:off[-1]] if len(arr) else data


def ids_at(df: pd.DataFrame, pos: np.ndarray) -> np.ndarray:
    """The ids of the rows at positions ``pos`` as Python strings (only those: a light frame keeps
    its ids in Arrow, and millions of Python strings would cost more than the rest of it)."""
    return df["id"].iloc[np.asarray(pos, dtype=np.int64)].astype(str).to_numpy(dtype=object)


# A light frame's column: the output's length in characters, standing in for the output itself.
OUTLEN = "_outlen"


def priority_rank(df: pd.DataFrame, source_priority: Sequence[str] = ()) -> np.ndarray:
    """Rank of each row under the survivor rule (0 = best; a strict order when ids are unique):
    source earliest in ``source_priority`` (unlisted sources last, as equals), then longest
    ``output``, then smallest ``id``. Content only, so independent of the row order."""
    n = len(df)
    prio = {s: k for k, s in enumerate(source_priority)}
    codes, uniques = pd.factorize(df["source"].astype(str))
    src = np.array([prio.get(u, len(prio)) for u in uniques], dtype=np.int64)[codes] if n else np.empty(0, np.int64)
    if OUTLEN in df.columns:  # a light frame (no texts) carries the output's length
        outlen = df[OUTLEN].to_numpy(dtype=np.int64)
    else:
        outlen = (df["output"].str.len().to_numpy(dtype=np.int64) if "output" in df.columns
                  else np.zeros(n, np.int64))
    order = np.lexsort((_id_sort_key(df["id"]), -outlen, src))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank


def survivors(df: pd.DataFrame, labels: np.ndarray, source_priority: Sequence[str] = (),
              rank: np.ndarray | None = None) -> np.ndarray:
    """Position (0-based, in ``df``) of the survivor of each row's group (``labels`` equal = same group).

    The survivor is the group's best row by :func:`priority_rank` (pass ``rank`` if you have it);
    it uses content only, so it does not depend on row order.
    """
    n = len(df)
    labels = np.asarray(labels)
    if n == 0:
        return np.empty(0, np.int64)
    rank = priority_rank(df, source_priority) if rank is None else rank
    _, lab = np.unique(labels, return_inverse=True)
    order = np.lexsort((rank, lab))
    first = np.concatenate(([True], lab[order][1:] != lab[order][:-1]))
    surv_of_lab = np.empty(lab.max() + 1, dtype=np.int64)
    surv_of_lab[lab[order][first]] = order[first]
    return surv_of_lab[lab]


def _cut(v: Any, k: int = 120) -> Any:
    return v[:k] if isinstance(v, str) else v


# The columns the examples show (``group_stats``): all a light frame's ``fetch`` needs to give.
EXAMPLE_COLUMNS = ("id", "source", "file", "row", "instruction", "output")


def group_stats(df: pd.DataFrame, labels: np.ndarray, surv: np.ndarray, reason: str,
                 details: np.ndarray, max_clusters: int = 5,
                 fetch: Callable[[np.ndarray], pd.DataFrame] | None = None) -> dict[str, Any]:
    """Figures shared by both deduplicators (all plain JSON types, deterministic order). ``fetch``:
    for a light frame (no texts), the example rows at those positions of ``df``, with (at least)
    those of ``EXAMPLE_COLUMNS`` that the rows have."""
    n = len(df)
    drop = surv != np.arange(n)
    # sources as codes: an object array of every row's source string cost a Python string a row,
    # which the allocator kept after the stats were done
    src, names = text_codes(df["source"])
    # rows per group, counted over positions: labels are rows (a group's first row or leader), so a
    # bincount does what np.unique's sort of every row would, and only rows in groups of two or
    # more are looked at further
    labels = np.asarray(labels)
    if n and labels.dtype.kind in "iu" and labels.min() >= 0 and labels.max() < n:
        count = np.bincount(labels, minlength=n)
    else:  # other labels: numbered 0.. in their sorted order first
        _, labels, count = np.unique(labels, return_inverse=True, return_counts=True)
    sizes = count[count >= 2]
    hist: dict[str, int] = {}
    for sz, cnt in zip(*np.unique(sizes, return_counts=True)):
        hist[str(int(sz))] = int(cnt)
    pairs: dict[str, int] = {}
    if drop.any():  # "a+b" of each dropped row's and its survivor's sources, the smaller first
        m = len(names)
        for k, c in zip(*np.unique(src[drop] * m + src[surv[drop]], return_counts=True)):
            a, b = sorted((names[int(k) // m], names[int(k) % m]))
            pairs[f"{a}+{b}"] = pairs.get(f"{a}+{b}", 0) + int(c)
        pairs = dict(sorted(pairs.items()))
    cross = int((src[drop] != src[surv[drop]]).sum()) if drop.any() else 0
    # Example clusters: most sources first, then largest, then by survivor id (deterministic).
    examples_c: list[list[dict]] = []
    shown = []  # the rows the examples show: up to 8 per picked cluster, then the first drops
    if len(sizes):
        in_groups = np.flatnonzero(count[labels] >= 2)
        members = pd.DataFrame({"lab": labels[in_groups], "src": src[in_groups], "pos": in_groups})
        nsrc = members.groupby("lab")["src"].nunique()
        size_of = pd.Series(count[nsrc.index.to_numpy()], index=nsrc.index)
        sid = pd.Series(ids_at(df, surv[members.groupby("lab")["pos"].first().to_numpy()]), index=nsrc.index)
        pick = pd.DataFrame({"nsrc": nsrc, "size": size_of, "sid": sid}).sort_values(
            ["nsrc", "size", "sid"], ascending=[False, False, True]).head(max_clusters).index
        lab = members["lab"].to_numpy()
        for g in pick:
            rows = in_groups[lab == g]
            shown.append(np.concatenate(([surv[rows[0]]], [r for r in rows if r != surv[rows[0]]]))[:8])
    first_drops = np.flatnonzero(drop)[:3]
    rows_of = _example_rows(df, np.concatenate([*shown, first_drops]).astype(np.int64), fetch)
    have = rows_of.columns if len(rows_of) else df.columns
    cols = [c for c in ("id", "source", "file", "instruction", "output") if c in have]
    for rows in shown:
        examples_c.append([{c: _cut(rows_of.loc[r, c]) for c in cols} | {"survivor": bool(r == surv[r])}
                           for r in rows])
    ex_cols = [c for c in ("id", "source", "file", "row", "instruction") if c in have]
    ex = []
    for r in first_drops:
        rec = rows_of.loc[r]
        item = {c: (int(rec[c]) if c == "row" else _cut(rec[c])) for c in ex_cols}
        item["detail"] = str(details[r])
        ex.append(item)
    return {
        "reasons": {reason: int(drop.sum())} if drop.any() else {},
        "examples": {reason: ex} if ex else {},
        "clusters": int(len(sizes)),
        "cluster_sizes": hist,
        "source_pairs": pairs,
        "cross_source_duplicates": cross,
        "example_clusters": examples_c,
    }


def _example_rows(df: pd.DataFrame, pos: np.ndarray, fetch: Callable[[np.ndarray], pd.DataFrame] | None) -> pd.DataFrame:
    """Rows at positions ``pos`` of ``df`` (repeats allowed), indexed by position; from ``fetch``
    when ``df`` is a light frame."""
    pos = np.unique(pos)
    if fetch is None:
        out = df.iloc[pos]
    else:
        out = fetch(pos)
        if len(out) != len(pos):
            raise RuntimeError(f"fetch gave {len(out)} rows for {len(pos)} positions")
    return out.set_axis(pos, axis=0)


@dataclass(frozen=True)
class Decision:
    """A deduplicator's result without the rows: each row's survivor (a position in the frame it
    was given), each row's drop detail, the drop reason and the figures. ``dedupe_result`` makes
    the kept/dropped frames of it; a stage too large for memory applies it a partition at a time."""

    surv: np.ndarray
    details: np.ndarray
    reason: str
    stats: dict

    @property
    def drop(self) -> np.ndarray:
        return self.surv != np.arange(len(self.surv))


def dedupe_result(df: pd.DataFrame, name: str, d: "Decision") -> StageResult:
    """The rows of ``df`` the decision keeps, and those it drops with their reason and details."""
    drop = d.drop
    kept = df[~drop]
    dropped = drop_frame(df[drop], stage=name, reason=d.reason,
                         detail=pd.Series(d.details[drop], index=df.index[drop], dtype=object))
    return StageResult(kept, dropped, d.stats)


def empty_stats() -> dict[str, Any]:
    return {"reasons": {}, "examples": {}, "clusters": 0, "cluster_sizes": {}, "source_pairs": {},
            "cross_source_duplicates": 0, "example_clusters": []}
