"""Exact and near-duplicate removal.

Two operators and the plain functions under them:

``document_exact_deduplicator``
    Rows whose selected fields are equal after a light key normalisation are duplicates. The key
    normalisation, applied to the dedupe key only (the text itself is not changed):

    * Unicode NFKC, which folds full-width ASCII letters, digits and punctuation to half-width
      (``，？！：；（）Ａ１`` → ``,?!:;()A1``), compatibility forms (``①`` → ``1``) and the ideographic
      space to a plain space; ``。、“”`` have no half-width form and stay;
    * every run of whitespace (including newlines) collapsed to one space, ends stripped.

    The key hash is :func:`curate.records.content_hash` of the normalised fields (with the default
    fields ``instruction, input, output``), so it equals the record's content hash whenever the text
    needs no normalisation.

``document_minhash_deduplicator``
    Near-duplicates by MinHash over character n-grams and LSH banding (Chinese has no word
    spaces, so words are not the unit). See :func:`clean_text` for what is removed before
    shingling, :func:`shingles` for the shingles and :func:`shingle_hash` for their hash. The
    signatures are exactly ``datasketch.MinHash(num_perm, seed=seed, hashfunc=shingle_hash,
    scheme=scheme)`` updated with ``shingles(text, ngram)``; they are computed for many documents at
    once with numpy (hash every n-gram of a batch in one array, permute, ``np.minimum.reduceat`` per
    document). Candidate pairs come from LSH bands with datasketch's optimal ``(b, r)`` for the
    threshold, are kept only when their estimated Jaccard (signature agreement) is ≥ threshold,
    and the kept pairs are grouped by leader clustering (rows visited in survivor order; a row
    not yet taken leads and takes its verified near-duplicates), so every dropped row is itself
    a near-duplicate of its survivor — connected components (``clustering="components"``) would
    chain A~B~C and, on templated rows, merge many distinct rows.

    Defaults — character 3-grams, 128 permutations, threshold 0.55 (LSH ``b=21, r=6``), leader
    clustering, traditional characters folded to simplified — were chosen on the labelled
    near-duplicate benchmark (``benchmarks/neardup_bench.py``, figures in benchmarks/README.md:
    3,600 positive and 3,600 negative pairs of real mirror rows, 12 kinds of edit, negatives
    including rows that share an instruction template). There the defaults reach F1 0.964
    (P 0.978, R 0.950); the previous 5-grams at 0.7 reach 0.826 (5-10 % typos, Taiwan phrasing
    and re-ordered lists fall below 0.7). Lower thresholds trade precision on templated rows for
    recall: 3-grams at 0.5 reach F1 0.976 but merge 12 % of the template pairs whose fill is 4-12
    characters ("请判断下面这句话的情感是积极还是消极：x 的值为 2"), against 6.5 % at 0.55 and 2 % at
    0.6 (raise the threshold for template-heavy corpora). Character 2-grams score as well on
    Chinese pairs but their sets overlap heavily on unrelated English rows; jieba words separate
    the labels worse than character 3-grams (best exact-Jaccard F1 0.955 against 0.987); folding
    traditional characters lifts character 3-grams from 0.903 to 0.987.

The survivor of a duplicate group (both operators): the row whose source comes first in
``source_priority`` (sources not listed come after all listed ones, as equals), then the one with
the longest ``output`` (in characters), then the smallest ``id``. The rule uses content only, so
the survivor does not depend on the row order of the input.

Memory bound of the near-duplicate search (n rows, k = num_perm, b bands, w = window): the
signatures, ``n × k × 4`` bytes (uint32; 1.3 GB for 2.5 M rows at k = 128), are the one large
array; their texts are built 200,000 rows at a time and shingled in batches of about
``batch_chars`` characters, so text and shingle arrays never hold the whole corpus. LSH works
band by band: a band's keys and sort order, ``n × 16`` bytes per band in flight (one per worker
thread); the candidate pairs are at most ``n × b × w`` (a member of an LSH bucket is paired with
the next ``w - 1`` members and with the bucket's first one, not with every member, so a huge
bucket costs linear, not quadratic, memory and time; buckets of up to ``w`` members are paired
completely) and in practice about 0.15 n; verification and clustering take memory linear in
the pairs. The operator also holds the input frame and writes kept/dropped copies of it, which
on real text is larger than all of the above (about 0.9 KB a row).

Beyond one machine's memory: the signatures are row-local (the operator's ``signatures`` can
run on shards of the rows, as the flow's sharded stages do, and be kept as ``.npy`` files,
memory-mapped for verification); each band's ``(key, row)`` pairs can be partitioned by key hash
into files and each partition sorted on its own (a bucket never spans partitions), giving
candidate pairs partition by partition; the pairs, about 0.15 n, then cluster in memory (or
with an on-disk union-find). datasketch's ``MinHashLSH(storage_config={"type": "redis", ...})``
is the off-the-shelf alternative: unbounded, but one network round trip per insert and query.
"""
from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from functools import lru_cache
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .ops import register
from .records import TEXT_COLUMNS, StageResult, content_hash, drop_frame

DEFAULT_FIELDS = ("instruction", "input", "output")
# Chosen on the labelled near-duplicate benchmark (module docstring, benchmarks/neardup_bench.py).
DEFAULT_NGRAM = 3
DEFAULT_NUM_PERM = 128
DEFAULT_THRESHOLD = 0.55
SCHEMES = ("affine32", "legacy")

# ---------------------------------------------------------------------------------------------
# Text cleaning and shingles (the pure-Python reference; the numpy path below must agree with it)
# ---------------------------------------------------------------------------------------------

_DROP_CATEGORIES = ("P", "Z", "C")  # punctuation, separators (spaces), control/format/unassigned


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def fold_char(ch: str) -> str:
    """The cleaned form of one character: ``""`` when it is dropped, else one character.

    A character is NFKC-normalised when that gives one character (full-width → half-width),
    lower-cased when that gives one character, folded from traditional to simplified Chinese
    (OpenCC ``t2s`` of the character alone: 們 → 们, 後 → 后; phrase-level wording such as
    軟體/软件 is not folded), and dropped when the result is punctuation, whitespace/separator or
    a control/format character (Unicode categories P*, Z*, C*). Symbols (``+ = < > $ ¥`` …),
    digits and letters of every script are kept.
    """
    c = unicodedata.normalize("NFKC", ch)
    if len(c) != 1:
        c = ch
    low = c.lower()
    if len(low) == 1:
        c = low
    if unicodedata.category(c)[0] in _DROP_CATEGORIES:
        return ""
    if c >= "\u3400" and not ("\ud800" <= c <= "\udfff"):  # Han and later planes only: cheap for the rest
        s = _t2s().convert(c)
        if len(s) == 1:
            c = s
    return c


def clean_text(text: str) -> str:
    """Text as it is shingled: every character through :func:`fold_char` (per character, no context)."""
    return "".join(fold_char(ch) for ch in text)


def shingles(text: str, ngram: int = DEFAULT_NGRAM) -> list[str]:
    """Character n-grams of the cleaned text, in order (with repeats).

    A cleaned text shorter than ``ngram`` is one shingle, the whole cleaned text (so two different
    short texts get different signatures; identical ones are exact duplicates anyway). An empty
    cleaned text has no shingles: its signature is the empty MinHash and it is never a duplicate.
    """
    c = clean_text(text)
    if not c:
        return []
    if len(c) < ngram:
        return [c]
    return [c[i:i + ngram] for i in range(len(c) - ngram + 1)]


# 64-bit polynomial hash of the code points, finalised with MurmurHash3's fmix64, low 32 bits.
# A polynomial hash can be computed for all n-grams of a big array with n multiply-adds, which is
# what makes the vectorised path fast; the odd 64-bit multiplier and the final avalanche keep
# collisions at the level of a random 32-bit hash. The shingle length is mixed into the start
# value so a short text's single shingle cannot equal an n-gram by construction.
_M64 = (1 << 64) - 1
_POLY = 0x9E3779B97F4A7C15
_H0 = 0x243F6A8885A308D3
_F1, _F2 = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * _F1) & _M64
    h ^= h >> 33
    h = (h * _F2) & _M64
    return h ^ (h >> 33)


def shingle_hash(shingle: str) -> int:
    """32-bit hash of one shingle; give it to ``datasketch.MinHash(hashfunc=shingle_hash)``."""
    h = _H0 ^ len(shingle)
    for ch in shingle:
        h = (h * _POLY + ord(ch)) & _M64
    return _fmix64_int(h) & 0xFFFFFFFF


def _fmix64_np(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(_F1)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(_F2)
    return h ^ (h >> np.uint64(33))


def _fmix32_np(h: np.ndarray) -> np.ndarray:
    # datasketch's affine schemes pre-mix the hashfunc output with MurmurHash3's fmix32.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


# Lookup tables over all code points, filled lazily for the characters actually seen (calling
# unicodedata on 1.1 M code points up front would cost about a second at import).
_NCP = 0x110000
_FOLD = np.arange(_NCP, dtype=np.uint32)
_DROP = np.zeros(_NCP, dtype=bool)
_KNOWN = np.zeros(_NCP, dtype=bool)


_TABLE_LOCK = threading.Lock()


def _fill_tables(cps: np.ndarray) -> None:
    present = np.zeros(_NCP, dtype=bool)
    present[cps] = True
    if not (present & ~_KNOWN).any():
        return
    with _TABLE_LOCK:  # batches run in threads
        todo = np.flatnonzero(present & ~_KNOWN)
        for cp in todo.tolist():
            f = fold_char(chr(cp))
            if f:
                _FOLD[cp] = ord(f)
            else:
                _DROP[cp] = True
        _KNOWN[todo] = True


def _tqdm_disable(progress: bool | None, small: bool) -> bool | None:
    # An explicit choice wins; by default short runs get no bar and long ones let tqdm decide
    # (None: a bar on a terminal only).
    if progress is not None:
        return not progress
    return True if small else None


# ---------------------------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------------------------

_EMPTY = np.uint32(0xFFFFFFFF)  # value of an empty MinHash slot (both schemes store ≤ 2^32 - 1)
_MERSENNE = np.uint64((1 << 61) - 1)


@lru_cache(maxsize=16)
def _permutations(num_perm: int, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own permutation parameters (a, b) for these settings (so they cannot drift)."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=scheme).permutations
    dtype = np.uint32 if scheme == "affine32" else np.uint64
    return np.asarray(a, dtype=dtype).copy(), np.asarray(b, dtype=dtype).copy()


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


def _permute(hv: np.ndarray, a: np.ndarray, b: np.ndarray, scheme: str) -> np.ndarray:
    """(num_perm, m) permuted hash values of m shingle hashes, exactly as datasketch computes them.

    Laid out permutation-major so every numpy pass runs along contiguous rows (about 3× faster
    than shingle-major for the reduceat below).
    """
    if scheme == "affine32":
        f = _fmix32_np(hv.astype(np.uint32, copy=False))
        out = np.multiply.outer(a, f)
        out += b[:, None]
        return out
    # legacy: (a * hv + b) wrapping in uint64, % (2^61 - 1), low 32 bits — datasketch < 2.0.
    out = np.multiply.outer(a, hv.astype(np.uint64, copy=False))
    out += b[:, None]
    out %= _MERSENNE
    out &= np.uint64(0xFFFFFFFF)
    return out


def minhash_signatures(texts: Sequence[str], ngram: int = DEFAULT_NGRAM, num_perm: int = DEFAULT_NUM_PERM,
                       seed: int = 1,
                       scheme: str = "affine32", batch_chars: int = 1_000_000, chunk: int = 8192,
                       progress: bool | None = None, workers: int | None = None) -> np.ndarray:
    """MinHash signatures of ``texts``, shape ``(len(texts), num_perm)``.

    Row ``i`` equals ``datasketch.MinHash(num_perm, seed=seed, hashfunc=shingle_hash,
    scheme=scheme)`` after ``update_batch(shingles(texts[i], ngram))`` (its ``hashvalues``):
    uint32 for ``affine32`` (datasketch ≥ 2.0 default), uint64 for ``legacy`` (datasketch < 2.0).
    A text with no shingles gets the empty signature (all ``2^32 - 1``).

    ``progress``: tqdm bar over batches (None: only on a terminal). ``workers``: threads over the
    batches (default: the cores, at most 4); the result does not depend on it.
    """
    _check_scheme(scheme)
    if ngram < 1:
        raise ValueError("ngram must be ≥ 1")
    texts = list(texts)
    n = len(texts)
    sig_dtype = np.uint32 if scheme == "affine32" else np.uint64
    sig = np.full((n, num_perm), _EMPTY, dtype=sig_dtype)
    if n == 0:
        return sig
    a, b = _permutations(num_perm, seed, scheme)
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
    # Batches of whole documents of about batch_chars characters (at least one document).
    bounds = [0]
    acc = 0
    for i, L in enumerate(lengths.tolist()):
        acc += L
        if acc >= batch_chars:
            bounds.append(i + 1)
            acc = 0
    if bounds[-1] != n:
        bounds.append(n)
    spans = list(zip(bounds[:-1], bounds[1:]))
    bar = tqdm(total=len(spans), desc="minhash", unit="batch", disable=_tqdm_disable(progress, len(spans) <= 1))

    def one(span: tuple[int, int]) -> None:
        s, e = span
        _signature_batch(texts[s:e], lengths[s:e], sig[s:e], ngram, a, b, scheme, chunk)
        bar.update()

    workers = min(workers or _default_workers(), len(spans))
    if workers > 1:  # batches write disjoint rows; numpy releases the interpreter lock
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(one, spans))
    else:
        for span in spans:
            one(span)
    bar.close()
    return sig


def _signature_batch(texts: Sequence[str], lengths: np.ndarray, sig: np.ndarray, ngram: int,
                     a: np.ndarray, b: np.ndarray, scheme: str, chunk: int) -> None:
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"minhash_signatures: expected str, got {type(t).__name__}: {t!r:.80}")
    joined = "".join(texts)
    cps = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(cps) == 0:
        return
    _fill_tables(cps)
    keep = ~_DROP[cps]
    c = _FOLD[cps][keep].astype(np.uint64)
    # Cleaned length of each document: kept characters between its offsets.
    ends = np.cumsum(lengths)
    ck = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
    clen = ck[ends] - ck[ends - lengths]
    cstart = np.concatenate(([0], np.cumsum(clen)[:-1]))
    T = len(c)
    P = np.uint64(_POLY)

    # Short documents (0 < cleaned length < ngram): one shingle each, the whole cleaned text.
    for k in range(1, ngram):
        docs = np.flatnonzero(clen == k)
        if len(docs) == 0:
            continue
        h = np.full(len(docs), _H0 ^ k, dtype=np.uint64)
        for j in range(k):
            h = h * P + c[cstart[docs] + j]
        hv = _fmix64_np(h) & np.uint64(0xFFFFFFFF)
        sig[docs] = _permute(hv, a, b, scheme).T

    long_docs = clen >= ngram
    if not long_docs.any():
        return
    # Polynomial hash of every n-gram start in the batch (also those crossing documents, which
    # are masked out next): n multiply-adds over contiguous slices.
    m = T - ngram + 1
    h = np.full(m, _H0 ^ ngram, dtype=np.uint64)
    for j in range(ngram):
        h *= P
        h += c[j:j + m]
    # An n-gram starting at p belongs to document d when p + ngram <= cleaned end of d.
    doc_of = np.repeat(np.arange(len(clen)), clen)
    cend = cstart + clen
    pos = np.flatnonzero(np.arange(m) + ngram <= cend[doc_of[:m]])
    hv = (_fmix64_np(h[pos]) & np.uint64(0xFFFFFFFF)).astype(np.uint32 if scheme == "affine32" else np.uint64)
    doc = doc_of[pos]
    del h, doc_of
    # Permute in chunks of shingles that fit in cache and take the per-document minimum; a
    # document cut by a chunk boundary gets the minimum of its parts.
    S = len(hv)
    for s in range(0, S, chunk):
        e = min(S, s + chunk)
        d = doc[s:e]
        seg = np.flatnonzero(np.concatenate(([True], d[1:] != d[:-1])))
        mins = np.minimum.reduceat(_permute(hv[s:e], a, b, scheme), seg, axis=1)
        ids = d[seg]
        sig[ids] = np.minimum(sig[ids], mins.T)


# ---------------------------------------------------------------------------------------------
# LSH banding, verification, clusters
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def band_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) that datasketch's ``MinHashLSH(threshold, num_perm)`` uses (equal FP/FN weights)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return int(lsh.b), int(lsh.r)


_ROW_WEIGHTS = np.random.RandomState(20240601).randint(0, 1 << 62, size=4096, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def _row_hash(m: np.ndarray, chunk: int = 8192, rows: np.ndarray | None = None,
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
    return _fmix64_np(h)


def _nonempty_rows(sig: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Positions of the signatures that are not empty (texts with shingles), without an n × k temp."""
    keep = np.empty(len(sig), dtype=bool)
    for s in range(0, len(sig), chunk):
        keep[s:s + chunk] = ~(sig[s:s + chunk] == _EMPTY).all(axis=1)
    return np.flatnonzero(keep)


def _default_workers() -> int:
    import os

    return max(1, min(4, os.cpu_count() or 1))


def _pair_jaccard(sig: np.ndarray, i: np.ndarray, j: np.ndarray, chunk: int = 32768) -> np.ndarray:
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
    rowid = _nonempty_rows(sig) if rowid is None else np.asarray(rowid, dtype=np.int64)
    if len(rowid) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    # rows in whole-signature-hash order; a stable sort by band key then keeps that order in a bucket
    # (hashes are computed over all rows in memory order, then gathered: much faster than gathering rows)
    whole = _row_hash(sig) if len(rowid) > n // 4 else _row_hash(sig, rows=rowid)
    ordered = rowid[np.argsort(whole[rowid] if len(whole) == n else whole, kind="stable")]
    del whole

    def band(k: int) -> tuple[np.ndarray, np.ndarray]:
        cols = slice(k * rows, (k + 1) * rows)
        keys = _row_hash(sig, cols=cols)[ordered] if len(ordered) > n // 4 else _row_hash(sig, rows=ordered, cols=cols)
        o = np.argsort(keys, kind="stable")
        return _bucket_pairs(keys[o], ordered[o], window)

    workers = workers or _default_workers()
    bar = tqdm(total=bands, desc="lsh bands", unit="band", disable=_tqdm_disable(progress, n < 50_000))
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
    nonempty = _nonempty_rows(sig)
    if len(nonempty) < 2:
        return empty_i, empty_i, np.empty(0)
    _, first, inv = np.unique(_row_hash(sig)[nonempty], return_index=True, return_inverse=True)
    reps = nonempty[first]  # first row of each distinct signature
    same = reps[inv] != nonempty
    ri, rj = lsh_candidate_pairs(sig, bands, rows, window, progress, rowid=np.sort(reps), workers=workers)
    i = np.concatenate((reps[inv][same], ri))
    j = np.concatenate((nonempty[same], rj))
    code = np.unique(np.minimum(i, j).astype(np.int64) * n + np.maximum(i, j))
    i, j = code // n, code % n
    est = _pair_jaccard(sig, i, j)
    ok = est >= threshold
    return i[ok], j[ok], est[ok]


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cluster label of each row: the smallest row index of its connected component."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, comp = connected_components(g, directed=False)
    first = np.full(comp.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(n))
    return first[comp]


def _leaders_by_class(n: int, i: np.ndarray, j: np.ndarray, est: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """:func:`_leaders` over classes of identical signatures (pairs with estimate 1.0).

    Identical signatures are paired only with the first of them (see :func:`near_duplicate_pairs`),
    so they are merged first and clustered as one node (with the best rank of its members):
    otherwise a leader that takes the first copy would leave the other copies behind.
    """
    same = est >= 1.0
    cls = _components(n, i[same], j[same])  # label = smallest member
    _, node, inv = np.unique(cls, return_index=True, return_inverse=True)
    best = np.full(len(node), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, inv, rank)
    ci, cj = inv[i[~same]], inv[j[~same]]
    keep = ci != cj
    lead = _leaders(len(node), ci[keep], cj[keep], best)  # class → leader class
    # a class's representative: its best-ranked member
    rep = np.empty(len(node), dtype=np.int64)
    order = np.lexsort((rank, inv))
    firsts = np.concatenate(([True], inv[order][1:] != inv[order][:-1]))
    rep[inv[order][firsts]] = order[firsts]
    return rep[lead[inv]]


def _leaders(n: int, i: np.ndarray, j: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Leader clustering: label of each row = its leader's position.

    Rows are visited best ``rank`` first (lower is better); a row not yet in a cluster becomes a
    leader and takes every row it is paired with that is not yet in a cluster. So every member is
    itself a verified near-duplicate of its leader: no chains A~B~C putting A and C together
    when they are not alike (connected components do that, and on templated rows such chains
    swallow many distinct rows). Deterministic: ``rank`` is a strict order.
    """
    label = np.arange(n, dtype=np.int64)
    if len(i) == 0:
        return label
    a = np.concatenate((i, j))
    b = np.concatenate((j, i))
    # neighbours of each row, best rank first (so a leader's claims do not depend on pair order)
    o = np.lexsort((rank[b], a))
    a, b = a[o], b[o]
    nodes, starts = np.unique(a, return_index=True)
    ends = np.append(starts[1:], len(a))
    visit = np.argsort(rank[nodes], kind="stable")
    assigned = np.zeros(n, dtype=bool)
    bl = b.tolist()
    nl, sl, el = nodes.tolist(), starts.tolist(), ends.tolist()
    for k in visit.tolist():
        u = nl[k]
        if assigned[u]:
            continue
        assigned[u] = True
        for v in bl[sl[k]:el[k]]:
            if not assigned[v]:
                assigned[v] = True
                label[v] = u
    return label


def near_duplicate_clusters(signatures: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                            bands: int | None = None,
                            rows: int | None = None, window: int = 16,
                            progress: bool | None = None, rank: np.ndarray | None = None,
                            clustering: str = "leader") -> np.ndarray:
    """Cluster label of each row (int64) from the verified pairs (estimated Jaccard ≥ threshold).

    ``clustering="leader"`` (default): :func:`_leaders` with ``rank`` (default: row position);
    the label is the leader's position, and every member is a verified near-duplicate of it.
    ``clustering="components"``: connected components, labelled by their smallest row index, so
    two members of a chain A~B~C may themselves be less similar than the threshold (what
    datasketch/Data-Juicer-style union-find does). A row with no near-duplicate is its own
    cluster. With a content-based ``rank`` (see :func:`priority_rank`) the partition does not
    depend on the row order.
    """
    n = len(signatures)
    i, j, est = near_duplicate_pairs(signatures, threshold, bands, rows, window, progress)
    return cluster_pairs(n, i, j, est, rank, clustering)


CLUSTERINGS = ("leader", "components")


def cluster_pairs(n: int, i: np.ndarray, j: np.ndarray, est: np.ndarray, rank: np.ndarray | None = None,
                  clustering: str = "leader") -> np.ndarray:
    """Labels of ``n`` rows from verified pairs ``(i, j, est)`` (see :func:`near_duplicate_clusters`).

    With ``"leader"`` the label is the position of the cluster's leader (its best-ranked row)."""
    if clustering == "components":
        return _components(n, i, j)
    if clustering != "leader":
        raise ValueError(f"clustering must be one of {CLUSTERINGS}, got {clustering!r}")
    return _leaders_by_class(n, i, j, est, np.arange(n) if rank is None else np.asarray(rank))


class NearDupIndex:
    """Near-duplicate lookup against a fixed set of texts (e.g. keep eval items out of training).

    ``NearDupIndex(eval_texts).query(train_texts)`` is a bool mask of the training texts whose
    estimated Jaccard with some indexed text is ≥ threshold (candidates from the same LSH bands as
    the deduplicator, then verified by signature agreement). Texts with no shingles never match.
    """

    def __init__(self, texts: Sequence[str], ngram: int = DEFAULT_NGRAM, num_perm: int = DEFAULT_NUM_PERM,
                 threshold: float = DEFAULT_THRESHOLD,
                 seed: int = 1, scheme: str = "affine32", progress: bool | None = None):
        self.ngram, self.num_perm, self.threshold, self.seed, self.scheme = ngram, num_perm, threshold, seed, scheme
        self.bands, self.rows = band_params(threshold, num_perm)
        self.progress = progress
        sig = minhash_signatures(list(texts), ngram, num_perm, seed, scheme, progress=progress)
        self.size = len(sig)
        nonempty = np.flatnonzero(~(sig == _EMPTY).all(axis=1))
        # One entry per distinct signature: identical indexed texts would only repeat candidates.
        _, first = np.unique(_row_hash(sig[nonempty]), return_index=True)
        self._ids = nonempty[np.sort(first)]  # position in ``texts`` of each entry
        self._sig = sig[self._ids]
        self._keys, self._order = [], []
        for k in range(self.bands):
            keys = _row_hash(self._sig[:, k * self.rows:(k + 1) * self.rows])
            order = np.argsort(keys, kind="stable")
            self._keys.append(keys[order])
            self._order.append(order)

    def __len__(self) -> int:
        return self.size

    def best_match(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For each text: position of its most similar indexed text among the LSH candidates
        (-1 when none reaches the threshold; ties → smallest position) and that estimated Jaccard
        (0.0 when none)."""
        q = minhash_signatures(list(texts), self.ngram, self.num_perm, self.seed, self.scheme,
                               progress=self.progress)
        nq = len(q)
        best = np.full(nq, -1, dtype=np.int64)
        score = np.zeros(nq, dtype=np.float64)
        if nq == 0 or len(self._sig) == 0:
            return best, score
        qok = ~(q == _EMPTY).all(axis=1)
        qi_all, ei_all = [], []
        for k in range(self.bands):
            keys = _row_hash(q[:, k * self.rows:(k + 1) * self.rows])
            lo = np.searchsorted(self._keys[k], keys, "left")
            hi = np.searchsorted(self._keys[k], keys, "right")
            cnt = np.where(qok, hi - lo, 0)
            if cnt.sum() == 0:
                continue
            qi = np.repeat(np.arange(nq), cnt)
            # position within each query's run of candidates → index into the sorted keys
            offs = np.arange(len(qi)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            qi_all.append(qi)
            ei_all.append(self._order[k][np.repeat(lo, cnt) + offs])
        if not qi_all:
            return best, score
        code = np.unique(np.concatenate(qi_all) * len(self._sig) + np.concatenate(ei_all))
        qi, ei = code // len(self._sig), code % len(self._sig)
        est = np.empty(len(qi))
        for s in range(0, len(qi), 32768):
            est[s:s + 32768] = np.count_nonzero(q[qi[s:s + 32768]] == self._sig[ei[s:s + 32768]], axis=1) / self.num_perm
        ok = est >= self.threshold
        qi, ei, est = qi[ok], self._ids[ei[ok]], est[ok]
        # best per query: highest estimate, then smallest position
        order = np.lexsort((ei, -est, qi))
        qi, ei, est = qi[order], ei[order], est[order]
        firsts = np.concatenate(([True], qi[1:] != qi[:-1])) if len(qi) else np.empty(0, bool)
        best[qi[firsts]] = ei[firsts]
        score[qi[firsts]] = est[firsts]
        return best, score

    def query(self, texts: Sequence[str]) -> np.ndarray:
        """Bool mask: True where the text is a near-duplicate of some indexed text."""
        return self.best_match(texts)[0] >= 0


# ---------------------------------------------------------------------------------------------
# Survivors, stats, operators
# ---------------------------------------------------------------------------------------------


def _check_frame(df: pd.DataFrame, fields: Sequence[str], who: str) -> None:
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
    vectorised pass), else the strings themselves."""
    vals = ids.astype(str).tolist()
    raw = "".join(vals).encode("utf-8")
    if len(raw) == 16 * len(vals):
        nib = _HEX[np.frombuffer(raw, dtype=np.uint8)].reshape(-1, 16)
        if len(nib) == 0 or nib.max() < 16:  # all lowercase hex: numeric order = string order
            byte = (nib[:, 0::2] << 4) | nib[:, 1::2]
            return np.ascontiguousarray(byte).view(">u8").ravel().astype(np.uint64)
    return np.asarray(vals, dtype=str)


def priority_rank(df: pd.DataFrame, source_priority: Sequence[str] = ()) -> np.ndarray:
    """Rank of each row under the survivor rule (0 = best; a strict order when ids are unique):
    source earliest in ``source_priority`` (unlisted sources last, as equals), then longest
    ``output``, then smallest ``id``. Content only, so independent of the row order."""
    n = len(df)
    prio = {s: k for k, s in enumerate(source_priority)}
    codes, uniques = pd.factorize(df["source"].astype(str))
    src = np.array([prio.get(u, len(prio)) for u in uniques], dtype=np.int64)[codes] if n else np.empty(0, np.int64)
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


def _group_stats(df: pd.DataFrame, labels: np.ndarray, surv: np.ndarray, reason: str,
                 details: np.ndarray, max_clusters: int = 5) -> dict[str, Any]:
    """Figures shared by both deduplicators (all plain JSON types, deterministic order)."""
    n = len(df)
    pos = np.arange(n)
    drop = surv != pos
    src = df["source"].astype(str).to_numpy()
    _, lab, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    dup_groups = np.flatnonzero(sizes >= 2)
    hist: dict[str, int] = {}
    for sz, cnt in zip(*np.unique(sizes[dup_groups], return_counts=True)):
        hist[str(int(sz))] = int(cnt)
    pairs: dict[str, int] = {}
    if drop.any():
        a, b = src[drop], src[surv[drop]]
        keys = np.where(a <= b, np.char.add(np.char.add(a.astype(str), "+"), b.astype(str)),
                        np.char.add(np.char.add(b.astype(str), "+"), a.astype(str)))
        for k, c in zip(*np.unique(keys, return_counts=True)):
            pairs[str(k)] = int(c)
    cross = int((src[drop] != src[surv[drop]]).sum()) if drop.any() else 0
    # Example clusters: most sources first, then largest, then by survivor id (deterministic).
    examples_c: list[list[dict]] = []
    if len(dup_groups):
        ids = df["id"].astype(str).to_numpy()
        members = pd.DataFrame({"lab": lab, "src": src, "pos": pos})
        members = members[np.isin(lab, dup_groups)]
        nsrc = members.groupby("lab")["src"].nunique()
        size_of = pd.Series(sizes[nsrc.index.to_numpy()], index=nsrc.index)
        sid = pd.Series(ids[surv[members.groupby("lab")["pos"].first().to_numpy()]], index=nsrc.index)
        pick = pd.DataFrame({"nsrc": nsrc, "size": size_of, "sid": sid}).sort_values(
            ["nsrc", "size", "sid"], ascending=[False, False, True]).head(max_clusters).index
        cols = [c for c in ("id", "source", "file", "instruction", "output") if c in df.columns]
        for g in pick:
            rows = np.flatnonzero(lab == g)
            rows = np.concatenate(([surv[rows[0]]], [r for r in rows if r != surv[rows[0]]]))[:8]
            examples_c.append([{c: _cut(df.iloc[r][c]) for c in cols} | {"survivor": bool(r == surv[r])}
                               for r in rows])
    ex_cols = [c for c in ("id", "source", "file", "row", "instruction") if c in df.columns]
    ex = []
    for r in np.flatnonzero(drop)[:3]:
        rec = df.iloc[r]
        item = {c: (int(rec[c]) if c == "row" else _cut(rec[c])) for c in ex_cols}
        item["detail"] = str(details[r])
        ex.append(item)
    return {
        "reasons": {reason: int(drop.sum())} if drop.any() else {},
        "examples": {reason: ex} if ex else {},
        "clusters": int(len(dup_groups)),
        "cluster_sizes": hist,
        "source_pairs": pairs,
        "cross_source_duplicates": cross,
        "example_clusters": examples_c,
    }


def _result(df: pd.DataFrame, name: str, surv: np.ndarray, reason: str, details: np.ndarray,
            stats: dict) -> StageResult:
    drop = surv != np.arange(len(df))
    kept = df[~drop]
    dropped = drop_frame(df[drop], stage=name, reason=reason,
                         detail=pd.Series(details[drop], index=df.index[drop], dtype=object))
    return StageResult(kept, dropped, stats)


def exact_key(values: Iterable[str]) -> str:
    """Dedupe key of one row's field values (normalised as the module docstring says)."""
    return _key_hash([" ".join(unicodedata.normalize("NFKC", v).split()) for v in values])


def _key_hash(vals: list[str]) -> str:
    if len(vals) == 3:
        return content_hash(*vals)
    return hashlib.blake2b("\x1f".join(vals).encode("utf-8"), digest_size=8).hexdigest()


# NFKC of many strings, fast: CPython's normalize costs ~150 ns a character on text that needs
# it (most Chinese text: full-width commas), so characters are mapped one by one through a table
# of the few that change (a regex finds them), and a string still not NFKC-normal afterwards
# (combining sequences) gets the full normalisation. The result equals unicodedata's NFKC.
_NFKC_SEEN = np.zeros(_NCP, dtype=bool)
_NFKC_MAP: dict[str, str] = {}
_NFKC_RE: list = [None]


def _nfkc_many(values: list[str]) -> list[str]:
    if not values:
        return []
    cps = np.frombuffer("".join(values).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    present = np.zeros(_NCP, dtype=bool)
    present[cps] = True
    new = np.flatnonzero(present & ~_NFKC_SEEN)
    for cp in new.tolist():
        ch = chr(cp)
        nf = unicodedata.normalize("NFKC", ch)
        if nf != ch:
            _NFKC_MAP[ch] = nf
    _NFKC_SEEN[new] = True
    if len(new) or _NFKC_RE[0] is None:
        chars = "".join(re.escape(c) for c in sorted(_NFKC_MAP))
        _NFKC_RE[0] = re.compile(f"[{chars}]") if chars else None
    pat, mp = _NFKC_RE[0], _NFKC_MAP
    isnorm, norm = unicodedata.is_normalized, unicodedata.normalize

    def one(v: str) -> str:
        if isnorm("NFKC", v):  # fast C check; true for most values
            return v
        if pat is not None:
            v = pat.sub(lambda m: mp[m.group()], v)
        return v if isnorm("NFKC", v) else norm("NFKC", v)

    return [one(v) for v in values]


def exact_keys(df: pd.DataFrame, fields: Sequence[str], rows_per_part: int = 200_000) -> np.ndarray:
    """:func:`exact_key` of every row of ``df`` (vectorised over rows, a part at a time so the
    normalised copies of the texts never hold the whole column)."""
    out = []
    for s in range(0, len(df), rows_per_part):
        part = df.iloc[s:s + rows_per_part]
        cols = [[" ".join(v.split()) for v in _nfkc_many(part[f].tolist())] for f in fields]
        out.append(np.array([_key_hash(list(v)) for v in zip(*cols)], dtype="U16"))
    return np.concatenate(out) if out else np.empty(0, dtype="U16")


@register("document_exact_deduplicator")
class DocumentExactDeduplicator:
    """Drop exact duplicates (after key normalisation) of the selected fields; keep one per group.

    Params: ``fields`` (columns compared, default instruction/input/output), ``source_priority``
    (sources preferred as survivors, in order; default none). Dropped: ``exact_duplicate``,
    detail = survivor id.
    """

    name = "document_exact_deduplicator"

    def __init__(self, fields: Sequence[str] = DEFAULT_FIELDS, source_priority: Sequence[str] = ()):
        self.fields = tuple(fields)
        self.source_priority = tuple(source_priority)
        if not self.fields:
            raise ValueError("fields must name at least one column")

    def __call__(self, df: pd.DataFrame) -> StageResult:
        _check_frame(df, self.fields, self.name)
        n = len(df)
        if n == 0:
            return StageResult(df, drop_frame(df, self.name, "exact_duplicate", ""), _empty_stats())
        keys = exact_keys(df, self.fields)
        _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        labels = first[inv]
        surv = survivors(df, labels, self.source_priority)
        details = df["id"].astype(str).to_numpy()[surv]
        stats = _group_stats(df, labels, surv, "exact_duplicate", details)
        stats["params"] = {"fields": list(self.fields), "source_priority": list(self.source_priority)}
        return _result(df, self.name, surv, "exact_duplicate", details, stats)


def _empty_stats() -> dict[str, Any]:
    return {"reasons": {}, "examples": {}, "clusters": 0, "cluster_sizes": {}, "source_pairs": {},
            "cross_source_duplicates": 0, "example_clusters": []}


def row_texts(df: pd.DataFrame, fields: Sequence[str]) -> list[str]:
    """The text of each row that the near-duplicate search compares: the fields joined by newlines."""
    if not len(df):
        return []
    s = df[fields[0]].astype(str)
    for f in fields[1:]:
        s = s + "\n" + df[f].astype(str)
    return s.tolist()


@register("document_minhash_deduplicator")
class DocumentMinhashDeduplicator:
    """Drop near-duplicates found with MinHash LSH over character n-grams; keep one per cluster.

    Params (defaults): ``ngram=3`` (characters per shingle), ``num_perm=128``, ``threshold=0.55``
    (estimated Jaccard for a pair to count), ``fields=("instruction","input","output")`` (joined
    by newlines), ``seed=1``, ``scheme="affine32"`` (datasketch's; ``"legacy"`` for pre-2.0
    sketches), ``bands``/``rows`` (default: datasketch's optimum for threshold and num_perm),
    ``window=16`` (bucket pairing, see module docstring), ``source_priority=()`` (survivor rule),
    ``clustering="leader"`` (or ``"components"``, see module docstring),
    ``verify_fields=("instruction","output")`` and ``verify_threshold=0.3``: a pair whose rows have
    text outside ``verify_fields`` (an input) must also reach this estimated Jaccard on
    ``verify_fields`` alone (``verify_threshold=0`` turns the check off). Why: a long shared input
    dominates the joined text, so different questions about one paragraph (DRCD: 4,665 such pairs on
    the mirror) or different tasks on one passage looked like near-duplicates; different translations
    of one Alpaca row still agree well above 0.3 on instruction+output, while on the mirror 33
    non-DRCD pairs fall below it, all different tasks on a shared input. Defaults: module docstring.
    Dropped: ``near_duplicate``, detail = ``"<survivor id> jaccard=<estimate>"`` (the estimate
    against the survivor, which with leader clustering is always ≥ threshold).
    """

    name = "document_minhash_deduplicator"

    def __init__(self, ngram: int = DEFAULT_NGRAM, num_perm: int = DEFAULT_NUM_PERM,
                 threshold: float = DEFAULT_THRESHOLD,
                 fields: Sequence[str] = DEFAULT_FIELDS, seed: int = 1, scheme: str = "affine32",
                 bands: int | None = None, rows: int | None = None, window: int = 16,
                 source_priority: Sequence[str] = (), clustering: str = "leader",
                 verify_fields: Sequence[str] = ("instruction", "output"), verify_threshold: float = 0.3):
        _check_scheme(scheme)
        if not 0.0 <= verify_threshold <= 1.0:
            raise ValueError(f"verify_threshold must be in [0, 1], got {verify_threshold}")
        self.verify_fields, self.verify_threshold = tuple(verify_fields), float(verify_threshold)
        if clustering not in CLUSTERINGS:
            raise ValueError(f"clustering must be one of {CLUSTERINGS}, got {clustering!r}")
        self.clustering = clustering
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if ngram < 1 or num_perm < 2 or window < 2:
            raise ValueError("need ngram ≥ 1, num_perm ≥ 2, window ≥ 2")
        self.ngram, self.num_perm, self.threshold = int(ngram), int(num_perm), float(threshold)
        self.fields = tuple(fields)
        self.seed, self.scheme, self.window = int(seed), scheme, int(window)
        if (bands is None) != (rows is None):
            raise ValueError("give both bands and rows, or neither")
        self.bands, self.rows = (int(bands), int(rows)) if bands is not None else band_params(self.threshold, self.num_perm)
        self.source_priority = tuple(source_priority)

    def signatures(self, df: pd.DataFrame, rows_per_part: int = 200_000,
                   fields: Sequence[str] | None = None) -> np.ndarray:
        """The rows' signatures over ``fields`` (default: the operator's), their texts built part
        by part (the whole list of joined texts would cost about as much memory as the frame)."""
        fields = self.fields if fields is None else tuple(fields)
        sig_dtype = np.uint32 if self.scheme == "affine32" else np.uint64
        sig = np.empty((len(df), self.num_perm), dtype=sig_dtype)
        for s in range(0, len(df), rows_per_part):
            part = df.iloc[s:s + rows_per_part]
            sig[s:s + len(part)] = minhash_signatures(row_texts(part, fields), self.ngram, self.num_perm,
                                                      self.seed, self.scheme, progress=False)
        return sig

    def _verify(self, df: pd.DataFrame, i: np.ndarray, j: np.ndarray,
                est: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Keep a pair unless its rows carry text outside ``verify_fields`` and their
        ``verify_fields`` alone fall below ``verify_threshold`` (see the class docstring)."""
        others = [f for f in self.fields if f not in self.verify_fields]
        if not len(i) or self.verify_threshold <= 0 or not others or not self.verify_fields:
            return i, j, est, 0
        extra = np.zeros(len(df), dtype=bool)
        for f in others:
            extra |= (df[f].astype(str).str.len() > 0).to_numpy()
        check = extra[i] | extra[j]
        if not check.any():
            return i, j, est, 0
        rows = np.unique(np.concatenate((i[check], j[check])))
        sub = self.signatures(df.iloc[rows], fields=self.verify_fields)
        pos = np.searchsorted(rows, np.concatenate((i[check], j[check])))
        k = int(check.sum())
        ok = np.ones(len(i), dtype=bool)
        # two empty verify texts (no shingles) agree trivially: the joined text decided
        ok[check] = _pair_jaccard(sub, pos[:k], pos[k:]) >= self.verify_threshold
        return i[ok], j[ok], est[ok], int((~ok).sum())

    def __call__(self, df: pd.DataFrame) -> StageResult:
        _check_frame(df, self.fields, self.name)
        n = len(df)
        params = {"ngram": self.ngram, "num_perm": self.num_perm, "threshold": self.threshold,
                  "fields": list(self.fields), "seed": self.seed, "scheme": self.scheme,
                  "bands": self.bands, "rows": self.rows, "window": self.window,
                  "source_priority": list(self.source_priority), "clustering": self.clustering,
                  "verify_fields": list(self.verify_fields), "verify_threshold": self.verify_threshold}
        if n == 0:
            return StageResult(df, drop_frame(df, self.name, "near_duplicate", ""),
                               _empty_stats() | {"params": params, "no_shingles": 0, "pairs": 0})
        sig = self.signatures(df)
        i, j, est_ij = near_duplicate_pairs(sig, self.threshold, self.bands, self.rows, self.window)
        i, j, est_ij, rejected = self._verify(df, i, j, est_ij)
        rank = priority_rank(df, self.source_priority)
        labels = cluster_pairs(n, i, j, est_ij, rank, self.clustering)
        surv = survivors(df, labels, self.source_priority, rank)
        drop = surv != np.arange(n)
        est = np.ones(n)
        if drop.any():
            est[drop] = _pair_jaccard(sig, np.flatnonzero(drop), surv[drop])
        no_shingles = n - len(_nonempty_rows(sig))
        del sig  # n × num_perm: let it go before the kept/dropped copies are made
        ids = df["id"].astype(str).to_numpy()
        details = np.array([f"{ids[s]} jaccard={e:.3f}" if d else ""
                            for s, e, d in zip(surv, est, drop)], dtype=object)
        stats = _group_stats(df, labels, surv, "near_duplicate", details)
        stats["params"] = params
        stats["pairs"] = int(len(i))
        stats["pairs_rejected_by_verify"] = rejected
        stats["no_shingles"] = int(no_shingles)
        return _result(df, self.name, surv, "near_duplicate", details, stats)
