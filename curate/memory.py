"""Memory a finished task freed, handed back to the system.

A worker process runs many tasks one after another. What a task frees stays with the allocators
(glibc's heap, Arrow's mimalloc pool) and is reused only in part by the next task, so a worker's
peak was the sum of a task's peak and what earlier tasks left behind (in the flow's own process at
10M rows: the mixtures, then the report). Releasing it between tasks keeps each task's peak its own.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc

_LIBC = None


def release_memory() -> None:
    """Collect garbage, then return the free memory of Arrow's pool and of the C heap to the system
    (``malloc_trim``, where the C library has it). Never fails: it only hands memory back."""
    global _LIBC
    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001 - an allocator that cannot release: nothing to hand back
        pass
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _LIBC = False
    trim = getattr(_LIBC, "malloc_trim", None) if _LIBC else None
    if trim is not None:
        trim(0)
