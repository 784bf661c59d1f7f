"""Novelty of a record: how far its instruction lies from its nearest neighbours in the embedding."""
from __future__ import annotations

import os
import threading

import numpy as np


# Chunks of the k-nearest-neighbour search run on this many threads (torch releases the GIL); each
# chunk is computed by the same single-threaded kernels whichever thread runs it, so the result
# does not depend on the number of threads.
KNN_THREADS = min(2, os.cpu_count() or 1)


# Rows per chunk of the neighbour search (a row's result depends on its chunk's shape through the
# matrix product's blocking, so partitioned runs put their edges on multiples of it).
KNN_CHUNK = 2048
_TORCH_LOCK = threading.Lock()


def knn_mean_distance(x: np.ndarray, ref: np.ndarray, k: int = 10, ref_is_x: np.ndarray | None = None,
                      chunk: int = KNN_CHUNK, threads: int | None = None) -> np.ndarray:
    """Mean cosine distance of each row of ``x`` to its ``k`` nearest rows of ``ref`` (unit vectors).

    ``ref_is_x[i]`` is the position in ``ref`` of row ``i`` itself (or -1): that match is skipped, so
    a row is never its own neighbour. Exact (brute force, in chunks); ties do not matter for a mean.
    The products and the top-k run in torch (CPU, one thread per chunk; chunks on ``threads``
    threads, default ``KNN_THREADS``): its matrix product and ``topk`` are cheaper than numpy's
    product and ``partition``, which matters at millions of rows (n x 10,000 similarities for the
    novelty tagger).
    """
    from concurrent.futures import ThreadPoolExecutor

    import torch

    n, m = len(x), len(ref)
    if m == 0 or n == 0:
        return np.zeros(n, dtype=np.float64)
    kk = min(k, m - (1 if ref_is_x is not None else 0))
    if kk <= 0:
        return np.ones(n, dtype=np.float64)
    out = np.empty(n, dtype=np.float64)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    rt = torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32)).T.contiguous()
    own_all = None if ref_is_x is None else torch.from_numpy(np.ascontiguousarray(ref_is_x, dtype=np.int64))

    # Each thread writes its chunks' similarities into one buffer of its own: a fresh chunk x m
    # matrix (80 MB at the defaults) per chunk had its pages faulted in and zeroed by the kernel
    # every time, a quarter of the search's time. Same kernel, same numbers.
    local = threading.local()

    def one(a: int) -> None:
        with torch.no_grad():
            xa = xt[a:a + chunk]
            buf = getattr(local, "buf", None)
            if buf is None:
                buf = local.buf = torch.empty((min(chunk, n), m), dtype=torch.float32)
            sims = torch.matmul(xa, rt, out=buf[:len(xa)])  # cosine similarity
            if own_all is not None:
                own = own_all[a:a + chunk]
                rows = torch.nonzero(own >= 0).flatten()
                sims[rows, own[rows]] = -torch.inf
            top = _top_values(torch, sims, kk)
            out[a:a + chunk] = 1.0 - top.mean(dim=1).numpy()

    # torch's kernels on one thread (reproducible float sums; the chunks give the parallelism). The
    # setting is global to the process, so searches side by side (a thread runner's tasks) take
    # turns: one must not put the old count back while another still computes.
    with _TORCH_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            workers = max(1, int(threads or KNN_THREADS))
            if workers == 1 or n <= chunk:
                for a in range(0, n, chunk):
                    one(a)
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    list(pool.map(one, range(0, n, chunk)))
        finally:
            torch.set_num_threads(before)
    return np.clip(out, 0.0, 2.0)


# Columns per block of ``_top_values``' first pass (fastest of those tried; at least 64, see there).
TOP_BLOCK = 100


def _top_values(torch, sims, k: int):
    """``torch.topk(sims, k, dim=1, sorted=False).values``, the same tensor, about twice as fast on
    wide rows: the k largest values of a row lie in the k blocks of ``TOP_BLOCK`` columns with the
    largest maxima (a value outside them has k blocks, each with a larger or equal value, above it),
    so the top-k runs on those k blocks only. torch returns the values of a top-k sorted (largest
    first) when k * 64 <= the row's width, which holds here for the plain call (width >= k blocks)
    and for the one on the blocks (TOP_BLOCK >= 64): the same values in the same order."""
    n, m = sims.shape
    b = TOP_BLOCK
    if m % b or m // b < k or k * b >= m:
        return torch.topk(sims, k, dim=1, sorted=False).values
    blocks = torch.topk(sims.view(n, m // b, b).amax(dim=2), k, dim=1, sorted=False).indices
    rows = torch.arange(n).unsqueeze(1) * (m // b)
    cand = torch.index_select(sims.reshape(-1, b), 0, (rows + blocks).flatten()).view(n, k * b)
    return torch.topk(cand, k, dim=1, sorted=False).values


# Reference rows for the novelty search: ranks rows about as a larger sample would, at a fraction of
# the cost (figures in benchmarks/README.md).
DEFAULT_REF_SIZE = 10_000


def novelty_scores(x: np.ndarray, k: int = 10, ref_size: int = DEFAULT_REF_SIZE, seed: int = 0) -> np.ndarray:
    """Per-row novelty: mean cosine distance to the ``k`` nearest neighbours among a seeded reference
    sample of at most ``ref_size`` rows of the same set (the row itself excluded). 0 = it has close
    twins, higher = more unusual. A sample keeps the cost linear in the rows (n × ref_size products)."""
    ref_idx = reference_positions(len(x), ref_size, seed)
    return knn_mean_distance(x, x[ref_idx], k=k, ref_is_x=reference_slots(len(x), ref_size, seed))


def reference_positions(n: int, ref_size: int = DEFAULT_REF_SIZE, seed: int = 0) -> np.ndarray:
    """The rows (of ``n``) in the seeded reference sample, in order."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=ref_size, replace=False)) if n > ref_size else np.arange(n)


def reference_slots(n: int, ref_size: int = DEFAULT_REF_SIZE, seed: int = 0) -> np.ndarray:
    """Each row's place in the reference sample, or -1 (so a row is never its own neighbour)."""
    ref_idx = reference_positions(n, ref_size, seed)
    pos = np.full(n, -1, dtype=np.int64)
    pos[ref_idx] = np.arange(len(ref_idx))
    return pos
