"""MinHash signatures of many texts at once with numpy, equal to datasketch's, and the texts they are
computed over."""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .config import DEFAULT_NGRAM, DEFAULT_NUM_PERM, MinHashConfig, check_scheme
from .shingles import DROP, FOLD, H0, POLY, fill_tables, fmix32_np, fmix64_np


def tqdm_disable(progress: bool | None, small: bool) -> bool | None:
    # An explicit choice wins; by default short runs get no bar and long ones let tqdm decide
    # (None: a bar on a terminal only).
    if progress is not None:
        return not progress
    return True if small else None


def default_workers() -> int:
    import os

    return max(1, min(4, os.cpu_count() or 1))



EMPTY = np.uint32(0xFFFFFFFF)  # value of an empty MinHash slot (both schemes store ≤ 2^32 - 1)
_MERSENNE = np.uint64((1 << 61) - 1)


@lru_cache(maxsize=16)
def _permutations(num_perm: int, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own permutation parameters (a, b) for these settings (so they cannot drift)."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=scheme).permutations
    dtype = np.uint32 if scheme == "affine32" else np.uint64
    return np.asarray(a, dtype=dtype).copy(), np.asarray(b, dtype=dtype).copy()


def _permute(hv: np.ndarray, a: np.ndarray, b: np.ndarray, scheme: str) -> np.ndarray:
    """(num_perm, m) permuted hash values of m shingle hashes, exactly as datasketch computes them.

    Laid out permutation-major so every numpy pass runs along contiguous rows (much faster than
    shingle-major for the reduceat below).
    """
    if scheme == "affine32":
        f = fmix32_np(hv.astype(np.uint32, copy=False))
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
    check_scheme(scheme)
    if ngram < 1:
        raise ValueError("ngram must be ≥ 1")
    texts = list(texts)
    n = len(texts)
    sig_dtype = np.uint32 if scheme == "affine32" else np.uint64
    sig = np.full((n, num_perm), EMPTY, dtype=sig_dtype)
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
    bar = tqdm(total=len(spans), desc="minhash", unit="batch", disable=tqdm_disable(progress, len(spans) <= 1))

    def one(span: tuple[int, int]) -> None:
        s, e = span
        _signature_batch(texts[s:e], lengths[s:e], sig[s:e], ngram, a, b, scheme, chunk)
        bar.update()

    workers = min(workers or default_workers(), len(spans))
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
    fill_tables(cps)
    keep = ~DROP[cps]
    c = FOLD[cps][keep].astype(np.uint64)
    # Cleaned length of each document: kept characters between its offsets.
    ends = np.cumsum(lengths)
    ck = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
    clen = ck[ends] - ck[ends - lengths]
    cstart = np.concatenate(([0], np.cumsum(clen)[:-1]))
    T = len(c)
    P = np.uint64(POLY)

    # Short documents (0 < cleaned length < ngram): one shingle each, the whole cleaned text.
    for k in range(1, ngram):
        docs = np.flatnonzero(clen == k)
        if len(docs) == 0:
            continue
        h = np.full(len(docs), H0 ^ k, dtype=np.uint64)
        for j in range(k):
            h = h * P + c[cstart[docs] + j]
        hv = fmix64_np(h) & np.uint64(0xFFFFFFFF)
        sig[docs] = _permute(hv, a, b, scheme).T

    long_docs = clen >= ngram
    if not long_docs.any():
        return
    # Polynomial hash of every n-gram start in the batch (also those crossing documents, which
    # are masked out next): n multiply-adds over contiguous slices.
    m = T - ngram + 1
    h = np.full(m, H0 ^ ngram, dtype=np.uint64)
    for j in range(ngram):
        h *= P
        h += c[j:j + m]
    # An n-gram starting at p belongs to document d when p + ngram <= cleaned end of d.
    doc_of = np.repeat(np.arange(len(clen)), clen)
    cend = cstart + clen
    pos = np.flatnonzero(np.arange(m) + ngram <= cend[doc_of[:m]])
    hv = (fmix64_np(h[pos]) & np.uint64(0xFFFFFFFF)).astype(np.uint32 if scheme == "affine32" else np.uint64)
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



def row_texts(df: pd.DataFrame, fields: Sequence[str]) -> list[str]:
    """The text of each row that the near-duplicate search compares: the fields joined by newlines."""
    if not len(df):
        return []
    s = df[fields[0]].astype(str)
    for f in fields[1:]:
        s = s + "\n" + df[f].astype(str)
    return s.tolist()


def config_signatures(mh: MinHashConfig, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
    """:func:`minhash_signatures` of ``texts`` under the settings of ``mh``."""
    return minhash_signatures(texts, mh.ngram, mh.num_perm, mh.seed, mh.scheme, progress=progress)
