"""LSH banding over signatures: candidate pairs bucket by bucket, verified by signature agreement."""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from .config import DEFAULT_THRESHOLD, band_params
from .shingles import fmix64_np
from .signatures import EMPTY, default_workers, tqdm_disable

_ROW_WEIGHTS = np.random.RandomState(20240601).randint(0, 1 << 62, size=4096, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def row_hash(m: np.ndarray, chunk: int = 8192, rows: np.ndarray | None = None,
              cols: slice = slice(None)) -> np.ndarray:
    """64-bit hash of each row of a 2-D integer array (band keys, whole-signature keys).

    ``rows``/``cols``: hash ``m[rows, cols]`` without copying it whole (read chunk by chunk).
    A sum of the values times fixed random odd 64-bit weights (wrapping), then fmix64: one
    vectorised pass; two different rows collide with probability about 2^-64. A collision would
    only add a candidate pair, which is then verified against the signatures.
    """
    n = len(m) if rows is None else len(rows)
    w = len(range(*cols.indices(m.shape[1])))
    if w > len(_ROW_WEIGHTS):
        raise ValueError(f"at most {len(_ROW_WEIGHTS)} columns")
    wts = _ROW_WEIGHTS[:w]
    h = np.zeros(n, dtype=np.uint64)
    for s in range(0, n, chunk):
        part = m[s:s + chunk, cols] if rows is None else m[rows[s:s + chunk], cols]
        acc = h[s:s + chunk]
        for c in range(w):  # column by column: a row-wise sum over a few columns is slow in numpy
            acc += part[:, c].astype(np.uint64) * wts[c]
    return fmix64_np(h)


def nonempty_rows(sig: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Positions of the signatures that are not empty (texts with shingles), without an n × k temp."""
    keep = np.empty(len(sig), dtype=bool)
    for s in range(0, len(sig), chunk):
        keep[s:s + chunk] = ~(sig[s:s + chunk] == EMPTY).all(axis=1)
    return np.flatnonzero(keep)


def pair_jaccard(sig: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 32768) -> np.ndarray:
    out = np.empty(len(i), dtype=np.float64)
    k = sig.shape[1]
    for s in range(0, len(i), chunk):
        out[s:s + chunk] = np.count_nonzero(sig[i[s:s + chunk]] == sig[j[s:s + chunk]], axis=1) / k
    return out


def _bucket_pairs(sk: np.ndarray, order: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (values of ``order``) of rows with equal keys; ``sk`` is sorted, ``order`` the
    rows in that order (ties in an order that does not depend on the input order).

    Each row is paired with the next ``window - 1`` rows of its bucket and with the bucket's first row.
    """
    n = len(sk)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    starts = np.concatenate(([True], sk[1:] != sk[:-1]))
    size = np.diff(np.concatenate((np.flatnonzero(starts), [n])))
    multi = np.repeat(size >= 2, size)  # only rows in buckets with company
    if not multi.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order, sk = order[multi], sk[multi]
    starts = starts[multi]
    n = len(sk)
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    left, right = [], []
    for w in range(1, window):
        if w >= n:
            break
        same = sk[:-w] == sk[w:]
        if not same.any():
            break
        left.append(order[:-w][same])
        right.append(order[w:][same])
    far = np.arange(n) - first >= window
    left.append(order[first[far]])
    right.append(order[far])
    return np.concatenate(left), np.concatenate(right)


def lsh_candidate_pairs(signatures: np.ndarray, bands: int, rows: int, window: int = 16,
                        progress: bool | None = None, rowid: np.ndarray | None = None,
                        workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unverified candidate pairs ``(i, j)``, ``i < j``, sorted: rows sharing an LSH band bucket.

    Band ``k`` is columns ``k*rows … (k+1)*rows - 1``, as in datasketch's ``MinHashLSH``; with
    buckets of at most ``window`` rows this is exactly the pairs ``MinHashLSH.query`` reports.
    Within a bucket rows are ordered by a hash of their whole signature, so the pairs do not
    depend on the input order. ``rowid``: search only these rows (default: every non-empty
    signature; empty ones — texts with no shingles — are never paired); the pairs are positions in
    ``signatures`` either way. Bands are hashed and sorted in ``workers`` threads (numpy releases
    the interpreter lock); the result does not depend on it.
    """
    sig = np.asarray(signatures)
    n = len(sig)
    if bands * rows > sig.shape[1]:
        raise ValueError(f"bands × rows = {bands * rows} > num_perm {sig.shape[1]}")
    rowid = nonempty_rows(sig) if rowid is None else np.asarray(rowid, dtype=np.int64)
    if len(rowid) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # rows in whole-signature-hash order; a stable sort by band key then keeps that order in a bucket
    # (hashes are computed over all rows in memory order, then gathered: much faster than gathering rows)
    whole = row_hash(sig) if len(rowid) > n // 4 else row_hash(sig, rows=rowid)
    ordered = rowid[np.argsort(whole[rowid] if len(whole) == n else whole, kind="stable")]
    del whole

    def band(k: int) -> tuple[np.ndarray, np.ndarray]:
        cols = slice(k * rows, (k + 1) * rows)
        keys = row_hash(sig, cols=cols)[ordered] if len(ordered) > n // 4 else row_hash(sig, rows=ordered, cols=cols)
        o = np.argsort(keys, kind="stable")
        return _bucket_pairs(keys[o], ordered[o], window)

    workers = workers or default_workers()
    bar = tqdm(total=bands, desc="lsh bands", unit="band", disable=tqdm_disable(progress, n < 50_000))
    if workers > 1 and bands > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as ex:
            parts = []
            for part in ex.map(band, range(bands)):
                parts.append(part)
                bar.update()
    else:
        parts = []
        for k in range(bands):
            parts.append(band(k))
            bar.update()
    bar.close()
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    code = np.unique(np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j))
    return code // n, code % n


def near_duplicate_pairs(signatures: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                         bands: int | None = None,
                         rows: int | None = None, window: int = 16,
                         progress: bool | None = None,
                         workers: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Verified near-duplicate pairs ``(i, j, estimated_jaccard)`` with ``i < j``, sorted.

    Rows with identical signatures are paired with the first of them directly (estimate 1.0);
    the LSH search (:func:`lsh_candidate_pairs`) runs over one row per distinct signature, and
    its pairs are kept when their estimated Jaccard is ≥ threshold. Empty signatures (texts
    with no shingles) are never paired.
    """
    sig = np.asarray(signatures)
    if sig.ndim != 2:
        raise ValueError(f"signatures must be 2-D (n, num_perm), got shape {sig.shape}")
    n, num_perm = sig.shape
    if bands is None or rows is None:
        bands, rows = band_params(threshold, num_perm)
    empty_i = np.empty(0, np.int64)
    nonempty = nonempty_rows(sig)
    if len(nonempty) < 2:
        return empty_i, empty_i, np.empty(0)
    _, first, inv = np.unique(row_hash(sig)[nonempty], return_index=True, return_inverse=True)
    reps = nonempty[first]  # first row of each distinct signature
    same = reps[inv] != nonempty
    ri, rj = lsh_candidate_pairs(sig, bands, rows, window, progress, rowid=np.sort(reps), workers=workers)
    i = np.concatenate((reps[inv][same], ri))
    j = np.concatenate((nonempty[same], rj))
    code = np.unique(np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j))
    i, j = code // n, code % n
    est = pair_jaccard(sig, i, j)
    ok = est >= threshold
    return i[ok], j[ok], est[ok]
