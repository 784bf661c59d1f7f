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


def oldest_generation_size() -> int:
    """How many objects the collector's oldest generation holds, counted so that no other thread
    runs while ``gc.get_objects``'s list holds its references. A thread building a tuple from a
    generator resizes it in place, which fails on a tuple with a second reference (``SystemError:
    Objects/tupleobject.c: bad argument to internal function``, on the thread runner and in Dask's
    threaded workers); ``len(gc.get_objects(...))`` let the interpreter switch threads between the
    two calls. Here the list is made, measured and freed inside one C call (``list`` over ``map``):
    no bytecode runs meanwhile, and nothing in it allocates an object the collector tracks (so no
    collection, no finalizer), so the interpreter lock is not handed over."""
    return list(map(len, map(gc.get_objects, (2,))))[0]


# glibc serves a block of at least M_MMAP_THRESHOLD bytes with a mapping of its own and unmaps it
# when freed, so the next such block faults its pages in again, each one zeroed by the kernel. By
# default the threshold adapts to the blocks a process frees (up to 32 MiB, with a trim threshold of
# twice that), but setting the trim threshold turns the adaptation off, and Dask starts its workers
# with MALLOC_TRIM_THRESHOLD_=65536: there every numpy temporary above 128 KiB was a fresh mapping,
# and MinHash signatures spent 2.5 times their user time in the kernel. ``tune_malloc`` sets what
# the adaptation ends at. (Higher thresholds fault less still, but a worker keeps more: figures in
# benchmarks/README.md.) What is free when a task ends goes back then (``release_memory``).
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_TUNED = False


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            _LIBC = False
    return _LIBC


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds (above) in this process, once; True when they are set
    (False where the C library has no ``mallopt``, e.g. musl, macOS: nothing changes there)."""
    global _TUNED
    if not _TUNED:
        mallopt = getattr(_libc(), "mallopt", None) if _libc() else None
        _TUNED = bool(mallopt is not None and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                      and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    return _TUNED


def release_memory() -> None:
    """Collect garbage, then return the free memory of Arrow's pool and of the C heap to the system
    (``malloc_trim``, where the C library has it). Never fails: it only hands memory back."""
    gc.collect()
    if oldest_generation_size() >= FREEZE_AT:
        gc.freeze()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001 - an allocator that cannot release: nothing to hand back
        pass
    trim = getattr(_libc(), "malloc_trim", None) if _libc() else None
    if trim is not None:
        trim(0)
