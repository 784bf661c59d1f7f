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

from typing import Sequence

import numpy as np

from .lsh import _bucket_pairs, nonempty_rows, row_hash

_SPLIT = np.uint64(0x9E3779B97F4A7C15)  # a different mix of the key than the bucket key itself


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
                o = np.lexsort((row, whole, keys))
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
