"""BLAS thread limits that hold while tasks run side by side in one process.

``threadpoolctl.threadpool_limits`` sets a process-wide limit and puts the old one back on exit. Two
tasks on a thread runner that each limit BLAS to one thread would race: the first to finish puts
the old limit back while the other still computes, whose products then run on more threads, with
other float sums (a novelty score a millionth off). Here the limit is set by the first region to
enter and put back by the last to leave.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

_LOCK = threading.Lock()
_users = 0
_limiter: Any = None
_limit: int | None = None


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """BLAS (and OpenMP) on ``n`` threads inside the block. Regions side by side share the limit the
    first one set: one that asks for another count meanwhile runs at that one's (every caller in
    curate asks for its operator's ``n_threads``, 1 by default)."""
    from threadpoolctl import threadpool_limits

    global _users, _limiter, _limit
    with _LOCK:
        if _users == 0:
            _limiter, _limit = threadpool_limits(limits=int(n)), int(n)
        _users += 1
    try:
        yield
    finally:
        with _LOCK:
            _users -= 1
            if _users == 0:
                _limiter.restore_original_limits()
                _limiter, _limit = None, None
