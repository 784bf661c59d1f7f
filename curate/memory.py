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
# A full collection walks every object the collector tracks; a worker holds about 350,000 from its
# imports alone, a walk of 0.1-0.2 s after every task. When a collection leaves at least this many
# objects in the oldest generation (modules a task imported, caches), they are frozen (``gc.freeze``):
# later collections skip them. Cycles among them are then never collected: one moment's survivors.
FREEZE_AT = 50_000


def release_memory() -> None:
    """Collect garbage, then return the free memory of Arrow's pool and of the C heap to the system
    (``malloc_trim``, where the C library has it). Never fails: it only hands memory back."""
    global _LIBC
    gc.collect()
    if len(gc.get_objects(generation=2)) >= FREEZE_AT:
        gc.freeze()
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
