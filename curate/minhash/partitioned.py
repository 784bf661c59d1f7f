"""The near-duplicate search on partitions: the same verified pairs as ``lsh.near_duplicate_pairs``,
computed from signatures held a row partition at a time, every global step done hash partition by
hash partition.

1. Identical signatures: each row's whole-signature hash is routed to a partition by that hash;
   inside one, the first row of each hash is the representative and the others pair with it.
2. LSH: for each band, each representative's (band key, whole hash, row) is routed to a partition
   by the key, so a bucket never spans partitions; inside one, rows are ordered by key, then whole
   hash, then row (the in-memory order) and paired as ``lsh._bucket_pairs`` pairs them.
3. Verification reads the two signatures of each pair from the row partitions that hold them.

Each step only ever holds one partition's share of the keys, which is what lets it run on workers;
the result is equal, pair for pair, to the in-memory search (tested on real rows, with duplicate
clusters split across partition boundaries)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..jobs import TaskJob
from .config import MinHashConfig
from .lsh import _bucket_pairs, nonempty_rows, row_hash
from .signatures import config_signatures, row_texts

_SPLIT = np.uint64(0x9E3779B97F4A7C15)  # a different mix of the key than the bucket key itself


def bucket_order(key: np.ndarray, whole: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``np.lexsort((row, whole, key))``: by band key, then whole-signature hash, then row. Faster:
    one (unstable, vectorised) argsort of the keys, then a lexsort of only the rows whose key is
    shared (the buckets; most keys are one row's). The triples are distinct (a row has one key
    per band), so the order is the same."""
    o = np.argsort(key)
    k = key[o]
    tie = k[1:] == k[:-1]
    if not tie.any():
        return o
    shared = np.zeros(len(k), dtype=bool)
    shared[1:] = tie
    shared[:-1] |= tie
    at = np.flatnonzero(shared)  # positions, in key order, of the rows in a bucket of two or more
    starts = np.ones(len(at), dtype=bool)
    starts[1:] = ~tie[at[1:] - 1]  # a bucket starts where the key differs from the one before
    sub = o[at]
    o[at] = sub[np.lexsort((row[sub], whole[sub], np.cumsum(starts)))]
    return o


def _route(h: np.ndarray, parts: int) -> np.ndarray:
    return ((h * _SPLIT) >> np.uint64(40)) % np.uint64(parts)


class PartitionedSignatures:
    """Signatures held as consecutive row partitions (e.g. one per worker or per file)."""

    def __init__(self, parts: Sequence[np.ndarray]):
        self.parts = [np.asarray(p) for p in parts]
        sizes = [len(p) for p in self.parts]
        self.offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        self.n = int(self.offsets[-1])
        self.num_perm = self.parts[0].shape[1] if self.parts else 0

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """The signatures of global rows ``idx``, gathered partition by partition."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), self.num_perm), dtype=self.parts[0].dtype if self.parts else np.uint32)
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for p in np.unique(which):
            m = which == p
            out[m] = self.parts[p][idx[m] - self.offsets[p]]
        return out


def partitioned_near_duplicate_pairs(sigs: PartitionedSignatures, threshold: float, bands: int, rows: int,
                                     window: int = 16, partitions: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verified pairs ``(i, j, estimated_jaccard)``, ``i < j``, sorted: equal to
    ``near_duplicate_pairs`` over the concatenated signatures."""
    n = sigs.n
    empty = np.empty(0, np.int64)
    # 1. whole-signature hashes of the non-empty rows, routed by hash
    routed: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(partitions)]
    for p, part in enumerate(sigs.parts):
        local = nonempty_rows(part)
        if not len(local):
            continue
        whole = row_hash(part, rows=local)
        dest = _route(whole, partitions)
        for q in range(partitions):
            m = dest == q
            if m.any():
                routed[q].append((whole[m], local[m] + sigs.offsets[p]))
    reps_l, dup_i, dup_j, rep_whole = [], [], [], []
    for q in range(partitions):
        if not routed[q]:
            continue
        whole = np.concatenate([w for w, _ in routed[q]])
        row = np.concatenate([r for _, r in routed[q]])
        o = np.lexsort((row, whole))
        whole, row = whole[o], row[o]
        first = np.concatenate(([True], whole[1:] != whole[:-1]))
        lead = row[np.maximum.accumulate(np.where(first, np.arange(len(row)), 0))]
        reps_l.append(row[first])
        rep_whole.append(whole[first])
        dup_i.append(lead[~first])
        dup_j.append(row[~first])
    routed = []
    if not reps_l:
        return empty, empty, np.empty(0)
    reps = np.concatenate(reps_l)
    rwhole = np.concatenate(rep_whole)
    o = np.argsort(reps)
    reps, rwhole = reps[o], rwhole[o]
    pi, pj = [np.concatenate(dup_i)], [np.concatenate(dup_j)]
    # 2. band by band: (key, whole, row) of the representatives, routed by key
    if len(reps) >= 2:
        which = np.searchsorted(sigs.offsets, reps, side="right") - 1
        for k in range(bands):
            cols = slice(k * rows, (k + 1) * rows)
            by_part: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(partitions)]
            for p in np.unique(which):
                m = which == p
                keys = row_hash(sigs.parts[p], rows=reps[m] - sigs.offsets[p], cols=cols)
                dest = _route(keys, partitions)
                for q in range(partitions):
                    d = dest == q
                    if d.any():
                        by_part[q].append((keys[d], rwhole[m][d], reps[m][d]))
            for q in range(partitions):
                if not by_part[q]:
                    continue
                keys = np.concatenate([a for a, _, _ in by_part[q]])
                whole = np.concatenate([b for _, b, _ in by_part[q]])
                row = np.concatenate([c for _, _, c in by_part[q]])
                o = bucket_order(keys, whole, row)
                left, right = _bucket_pairs(keys[o], row[o], window)
                pi.append(left)
                pj.append(right)
    i, j = np.concatenate(pi), np.concatenate(pj)
    if not len(i):
        return empty, empty, np.empty(0)
    code = np.unique(np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j))
    i, j = code // n, code % n
    # 3. verification from the partitions that hold the two rows
    est = np.empty(len(i))
    for s in range(0, len(i), 32768):
        a, b = sigs.rows(i[s:s + 32768]), sigs.rows(j[s:s + 32768])
        est[s:s + 32768] = np.count_nonzero(a == b, axis=1) / sigs.num_perm
    ok = est >= threshold
    return i[ok], j[ok], est[ok]


# --------------------------------------------------------------------------- the search as tasks
#
# The same search as steps over files, so a task runner can run each step on a worker: the steps
# of one job share one ``PartitionJob``, read the stage's input Parquet by row range and pass
# files under ``work_dir`` (never big arrays) to each other. Rounds (each waits for the one before):
#
#   signatures p  rows of row partition p → signatures (sig-p.npy), which rows have text outside
#                 the verify fields and which have none at all (rows-p.npz), and each non-empty row's
#                 (band, band key, whole hash, row) routed by band key to hash partition q (route-p-q.npy)
#   buckets q     every route-*-q file: per band, one representative per distinct signature, rows
#                 paired bucket by bucket as above (a bucket never spans partitions), identical
#                 signatures paired with their first row; pairs verified against the signature
#                 files → pairs-q.npz (i, j, estimate), in input rows
#   verify p      only when the operator checks pairs on its verify fields: signatures over those
#                 fields of partition p's rows that a checked pair needs (vsig-p.npy, vrows-p.npy)
#
# The driver then reads the pair list (about 0.15 n) and clusters it as the in-memory path does.
# ``live.npy`` (bool per input row; absent = all rows) restricts the search to the rows that
# steps before this one kept, so the signatures can be computed before those steps finish.

ROUTE_DTYPE = np.dtype([("band", "u1"), ("key", "<u8"), ("whole", "<u8"), ("row", "<i8")])


@dataclass(frozen=True)
class PartitionJob(TaskJob):
    """One near-duplicate search over the rows of a Parquet file, run as tasks (see above)."""

    in_path: str
    work_dir: str
    n: int  # rows in in_path
    mh: MinHashConfig
    fields: tuple[str, ...]
    window: int
    partitions: int  # hash partitions
    partition_rows: int  # rows per row partition
    verify_fields: tuple[str, ...] = ()
    verify_threshold: float = 0.0
    live: bool = False  # True: work_dir/live.npy says which input rows are searched

    def row_parts(self) -> list[tuple[int, int]]:
        return [(a, min(self.n, a + self.partition_rows)) for a in range(0, self.n, self.partition_rows)]

    def other_fields(self) -> list[str]:
        return [f for f in self.fields if f not in self.verify_fields]

    def verifies(self) -> bool:
        """Whether pairs are checked again on the verify fields alone (the operator's ``_verify``)."""
        return bool(self.verify_threshold > 0 and self.other_fields() and self.verify_fields)

    def rounds(self) -> tuple[tuple[tuple[str, int], ...], ...]:
        """The job's tasks as (step, index), in rounds that run one after another."""
        p = range(len(self.row_parts()))
        out = [tuple(("signatures", k) for k in p), tuple(("buckets", q) for q in range(self.partitions))]
        if self.verifies():
            out.append(tuple(("verify", k) for k in p))
        return tuple(out)

    def step(self, step: str, index: int) -> None:
        {"signatures": _signature_step, "buckets": _bucket_step, "verify": _verify_step}[step](self, index)


def _save(path: Path, arr: np.ndarray) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def _extra(df, job: PartitionJob) -> np.ndarray:
    """Rows with text in a field outside the verify fields (as the operator's ``_verify`` sees them)."""
    extra = np.zeros(len(df), dtype=bool)
    for f in job.other_fields():
        extra |= (df[f].astype(str).str.len() > 0).to_numpy()
    return extra


def _signature_step(job: PartitionJob, p: int) -> None:
    from ..io import atomic_path, read_rows

    a, b = job.row_parts()[p]
    df = read_rows(job.in_path, a, b, columns=list(dict.fromkeys(job.fields + job.verify_fields)))
    sig = config_signatures(job.mh, row_texts(df, job.fields), progress=False)
    local = nonempty_rows(sig)
    empty = np.ones(len(sig), dtype=bool)
    empty[local] = False
    with atomic_path(job.path(f"rows-{p:05d}.npz")) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, extra=_extra(df, job), empty=empty)
    del df
    whole = row_hash(sig, rows=local)
    rec = np.empty(len(local) * job.mh.bands, dtype=ROUTE_DTYPE)  # band-major: band k is one slice
    for k in range(job.mh.bands):
        s = slice(k * len(local), (k + 1) * len(local))
        rec["band"][s] = k
        rec["key"][s] = row_hash(sig, rows=local, cols=slice(k * job.mh.rows, (k + 1) * job.mh.rows))
        rec["whole"][s] = whole
        rec["row"][s] = local + a
    dest = _route(rec["key"], job.partitions)
    for q in range(job.partitions):
        _save(job.path(f"route-{p:05d}-{q:05d}.npy"), rec[dest == q])  # stays band-major
    del rec, dest
    _save(job.path(f"sig-{p:05d}.npy"), sig)


class SignatureFiles:
    """Signature rows gathered from per-partition .npy files, one memory-mapped file at a time (so
    a reader never holds more than one partition's pages). ``rows``: each file's input rows when
    it holds only some rows of its partition (sorted), else the partition's rows in order."""

    def __init__(self, job: PartitionJob, stem: str = "sig", sparse: bool = False):
        self.parts = job.row_parts()
        self.starts = np.array([a for a, _ in self.parts], dtype=np.int64)
        self.files = [job.path(f"{stem}-{p:05d}.npy") for p in range(len(self.parts))]
        self.rowfiles = [job.path(f"vrows-{p:05d}.npy") for p in range(len(self.parts))] if sparse else None
        self.num_perm = job.mh.num_perm
        self.dtype = np.uint32 if job.mh.scheme == "affine32" else np.uint64

    def rows(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), self.num_perm), dtype=self.dtype)
        which = np.searchsorted(self.starts, idx, side="right") - 1
        for p in np.unique(which).tolist():
            m = which == p
            local = idx[m] - self.starts[p]
            if self.rowfiles is not None:
                have = np.load(self.rowfiles[p])
                local = np.searchsorted(have, idx[m])
                if not np.array_equal(have[np.minimum(local, len(have) - 1)], idx[m]):
                    raise RuntimeError(f"{self.files[p]}: rows missing (the verify step ran on other pairs)")
            arr = _open(self.files[p])
            out[m] = arr[local]
            del arr
        return out

    def agreement(self, i: np.ndarray, j: np.ndarray, chunk: int = 32768) -> np.ndarray:
        """Estimated Jaccard (share of equal slots) of the pairs of input rows ``(i, j)``."""
        est = np.empty(len(i))
        for s in range(0, len(i), chunk):
            est[s:s + chunk] = np.count_nonzero(self.rows(i[s:s + chunk]) == self.rows(j[s:s + chunk]),
                                                axis=1) / self.num_perm
        return est


def _open(path: Path) -> np.ndarray:
    """A .npy file memory-mapped (read on demand), or read whole when small (numpy cannot map an
    empty array)."""
    return np.load(path, mmap_mode="r" if path.stat().st_size > (1 << 20) else None)


def _live(job: PartitionJob) -> np.ndarray | None:
    return np.load(job.path("live.npy")) if job.live else None


def _bucket_step(job: PartitionJob, q: int) -> None:
    live = _live(job)
    files = [_open(job.path(f"route-{p:05d}-{q:05d}.npy")) for p in range(len(job.row_parts()))]
    pi, pj = [], []
    for k in range(job.mh.bands):  # one band's share of the keys in memory at a time
        part = []
        for f in files:
            lo, hi = np.searchsorted(f["band"], [k, k + 1])
            part.append(np.array(f[lo:hi]))
        rec = np.concatenate(part) if part else np.empty(0, ROUTE_DTYPE)
        if live is not None:
            rec = rec[live[rec["row"]]]
        key, whole, row = rec["key"], rec["whole"], rec["row"]
        o = bucket_order(key, whole, row)
        key, whole, row = key[o], whole[o], row[o]
        # one representative per distinct signature (its first row): equal signatures share every key
        first = np.concatenate(([True], (key[1:] != key[:-1]) | (whole[1:] != whole[:-1]))) if len(row) else \
            np.empty(0, bool)
        if k == 0:  # identical signatures pair with their first row (once: in band 0)
            lead = row[np.maximum.accumulate(np.where(first, np.arange(len(row)), 0))] if len(row) else row
            pi.append(lead[~first])
            pj.append(row[~first])
        left, right = _bucket_pairs(key[first], row[first], job.window)
        pi.append(left)
        pj.append(right)
    del files
    i = np.concatenate(pi) if pi else np.empty(0, np.int64)
    j = np.concatenate(pj) if pj else np.empty(0, np.int64)
    code = np.unique(np.minimum(i, j).astype(np.int64) * job.n + np.maximum(i, j))
    i, j = code // job.n, code % job.n
    est = SignatureFiles(job).agreement(i, j)
    ok = est >= job.mh.threshold
    from ..io import atomic_path

    with atomic_path(job.path(f"pairs-{q:05d}.npz")) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, i=i[ok], j=j[ok], est=est[ok])


def job_pairs(job: PartitionJob) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The verified pairs of every hash partition, as one sorted list without repeats (a pair found
    in several bands may come from several partitions), in input rows."""
    parts = [np.load(job.path(f"pairs-{q:05d}.npz")) for q in range(job.partitions)]
    i = np.concatenate([p["i"] for p in parts])
    j = np.concatenate([p["j"] for p in parts])
    est = np.concatenate([p["est"] for p in parts])
    code, first = np.unique(i * job.n + j, return_index=True)
    return code // job.n, code % job.n, est[first]


def _row_flags(job: PartitionJob, name: str) -> np.ndarray:
    return np.concatenate([np.load(job.path(f"rows-{p:05d}.npz"))[name] for p in range(len(job.row_parts()))])


def _checked(job: PartitionJob, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    extra = _row_flags(job, "extra")
    return extra[i] | extra[j]


def _verify_step(job: PartitionJob, p: int) -> None:
    from ..io import read_rows

    a, b = job.row_parts()[p]
    i, j, _ = job_pairs(job)
    check = _checked(job, i, j)
    need = np.unique(np.concatenate((i[check], j[check])))
    need = need[(need >= a) & (need < b)]
    vsig = np.empty((0, job.mh.num_perm), dtype=np.uint32 if job.mh.scheme == "affine32" else np.uint64)
    if len(need):
        df = read_rows(job.in_path, a, b, columns=list(job.verify_fields)).iloc[need - a]
        vsig = config_signatures(job.mh, row_texts(df, job.verify_fields), progress=False)
    _save(job.path(f"vrows-{p:05d}.npy"), need)
    _save(job.path(f"vsig-{p:05d}.npy"), vsig)


def job_verified_pairs(job: PartitionJob) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """:func:`job_pairs` less those the verify fields reject (as the operator's ``_verify``), and
    how many were rejected."""
    i, j, est = job_pairs(job)
    if not len(i) or not job.verifies():
        return i, j, est, 0
    check = _checked(job, i, j)
    if not check.any():
        return i, j, est, 0
    ok = np.ones(len(i), dtype=bool)
    # two empty verify texts (no shingles) agree trivially: the joined text decided
    ok[check] = SignatureFiles(job, "vsig", sparse=True).agreement(i[check], j[check]) >= job.verify_threshold
    return i[ok], j[ok], est[ok], int((~ok).sum())


def job_no_shingles(job: PartitionJob, rows: np.ndarray) -> int:
    """How many of the input ``rows`` have no shingles (an empty signature)."""
    return int(_row_flags(job, "empty")[rows].sum())
