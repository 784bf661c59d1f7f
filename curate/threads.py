"""A fixed BLAS/OpenMP thread count for the numeric kernels whose results are written.

Float sums depend on how many threads split them, so every kernel whose result lands in an output
runs on a fixed count (``BLAS_THREADS``). ``threadpoolctl.threadpool_limits`` as a context manager
puts the old count back on exit, and OpenBLAS's count is global to the process: two tasks of the
thread runner interleaving their exits leave one of them computing on the other's restored count
(seen as novelty scores a millionth off, and a report's Vendi digit). So here the count is set and
left set: every region asks for the same count, and each entry applies it again, which also covers
libraries loaded since (and OpenMP, whose setting belongs to the calling thread).

OpenBLAS (0.3.30) ignores a count set from another thread once the main thread has set one, so
entry points pin from the main thread first (``curate_flow`` does); a count that cannot be set is
warned about, naming the library, rather than computed on silently.

torch's own libraries are left alone: torch sets its threads itself (``curate.novelty`` holds them
at one under a lock; training sets its count).
"""
from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from typing import Iterator

# One thread: the tagger's SVD is many times slower when BLAS threads compete with other work for
# few cores, and parallelism comes from tasks side by side (or the search's own threads).
BLAS_THREADS = 1

_LOCK = threading.Lock()


def pin_blas(n: int = BLAS_THREADS) -> None:
    """Set every loaded BLAS library (and the calling thread's OpenMP) to ``n`` threads, except
    torch's, and leave it there."""
    import numpy  # noqa: F401  (load the libraries first: only loaded ones can be set)
    import scipy.linalg  # noqa: F401
    import sklearn.cluster  # noqa: F401
    from threadpoolctl import ThreadpoolController

    n = int(n)
    if n < 1:
        raise ValueError(f"pin_blas: n must be >= 1, got {n}")
    with _LOCK:
        for lib in ThreadpoolController().lib_controllers:
            if "torch" in str(lib.filepath) or lib.num_threads == n:
                continue
            lib.set_num_threads(n)
            if lib.get_num_threads() != n:
                warnings.warn(f"{lib.filepath}: cannot set {lib.internal_api} to {n} threads from this thread "
                              f"(it has {lib.get_num_threads()}; OpenBLAS takes the main thread's setting): float "
                              "results may differ in the last digit; call curate.threads.pin_blas() from the main "
                              "thread first", RuntimeWarning, stacklevel=3)


@contextmanager
def blas_threads(n: int = BLAS_THREADS) -> Iterator[None]:
    """``pin_blas(n)`` before the block; nothing is put back after it (see the module docstring).
    Regions side by side that ask for different counts would race: every caller in curate asks for
    its operator's ``n_threads``, ``BLAS_THREADS`` by default."""
    pin_blas(n)
    yield
