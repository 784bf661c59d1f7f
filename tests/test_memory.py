"""Memory a finished task freed goes back to the system (curate/memory.py), so a worker's next task
does not start on top of it."""
from __future__ import annotations

import inspect

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.memory import release_memory


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def test_arrow_memory_a_task_freed_is_handed_back():
    """Arrow's pool keeps what it freed (the batches of a Parquet read, say) until asked: about
    300 MiB of small buffers stay resident after they are freed, and go once released."""
    release_memory()
    before = pa.total_allocated_bytes()  # what earlier tests' objects still hold
    arrays = [pc.add(pa.array(np.arange(20_000)), 1) for _ in range(2_000)]  # 2,000 buffers of 156 KiB
    assert pa.total_allocated_bytes() - before >= 2_000 * 20_000 * 8
    held = _rss_mib()
    del arrays
    assert pa.total_allocated_bytes() - before < 20_000 * 8
    kept = _rss_mib()
    release_memory()
    after = _rss_mib()
    assert kept - after > 200, (held, kept, after)  # handed back, not only freed
    release_memory()  # again: nothing more to hand back, and no error


def test_flow_tasks_release_memory_and_keep_their_parameters():
    """Every heavy task of the flow hands its memory back when it ends, and Prefect still sees the
    task's own parameters (its run names are made from them)."""
    from flows import curate_flow as cf

    for t in (cf.parse_group_task, cf.parse_merge_task, cf.shard_task, cf.partition_task, cf.merge_task,
              cf.mixture_select_task, cf.mixtures_task, cf.report_task):
        assert t.fn.__wrapped__.__module__ == "flows.curate_flow"
        assert list(inspect.signature(t.fn).parameters) == list(inspect.signature(t.fn.__wrapped__).parameters)
    assert list(inspect.signature(cf.shard_task.fn).parameters) == ["plan", "start", "stop"]


def test_long_lived_objects_are_frozen_and_new_cycles_still_collected():
    """What survives a release in bulk (a module a task imported) is frozen, so the next task's release
    does not walk it again; garbage cycles made afterwards are still collected."""
    import gc
    import weakref

    from curate.memory import FREEZE_AT

    release_memory()
    frozen = gc.get_freeze_count()
    kept = [[i] for i in range(FREEZE_AT + 10_000)]  # tracked objects that outlive the task
    release_memory()
    assert gc.get_freeze_count() >= frozen + len(kept)
    assert len(gc.get_objects(generation=2)) < FREEZE_AT

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: reference counts alone never free it
    gone = weakref.ref(a)
    del a, b
    release_memory()
    assert gone() is None
    assert kept[-1] == [FREEZE_AT + 9_999]


def test_the_oldest_generation_counted_in_one_call():
    import gc

    from curate.memory import oldest_generation_size

    gc.collect()
    kept = [[i] for i in range(1_000)]
    gc.collect()  # moves them to the oldest generation
    assert oldest_generation_size() == len(gc.get_objects(generation=2)) >= len(kept)


def test_a_release_beside_a_thread_building_tuples():
    """A release runs after every task, beside other threads (the thread runner's tasks, a Dask
    worker's own threads). It used to count the oldest generation with ``gc.get_objects``, whose
    list holds a reference to a tuple another thread is building from a generator; that thread's
    resize then failed (``SystemError: Objects/tupleobject.c: bad argument to internal function``,
    seen once in CI in ``load_recipe``). With the thread switch forced every microsecond the old
    count failed this within a few calls; ``oldest_generation_size`` counts in one C call."""
    import sys
    import threading
    import time

    errors: list[BaseException] = []
    done = threading.Event()

    def build() -> None:
        while not done.is_set():
            try:
                tuple(x for x in range(200))  # sized by resizes as the generator yields
            except BaseException as e:  # noqa: BLE001 - the failure under test
                errors.append(e)
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    builder = threading.Thread(target=build)
    builder.start()
    try:
        end = time.monotonic() + 60
        for _ in range(40):
            release_memory()
            if errors or time.monotonic() > end:
                break
    finally:
        done.set()
        builder.join()
        sys.setswitchinterval(interval)
    assert not errors, errors[0]


_FAULTS = """
import ctypes, resource, sys
# 4 KiB pages only (no transparent huge pages), so the count of faults is a count of pages
ctypes.CDLL("libc.so.6").prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE
import numpy as np
if sys.argv[1] == "tuned":
    from curate.memory import tune_malloc
    assert tune_malloc()
elif sys.argv[1] == "after a task":
    from flows.progress import releasing
    releasing(lambda: None)()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    a = np.ones(4_000_000)  # 32 MB, then freed: a numpy temporary
    del a
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_large_temporaries_reuse_memory_under_dasks_trim_setting():
    """Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which keeps glibc from serving
    large blocks from the heap: each 32 MB temporary is mapped afresh and its pages fault in again.
    ``tune_malloc``, run before every flow task, has them reused."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from curate.memory import tune_malloc

    if not tune_malloc():
        import pytest

        pytest.skip("no glibc mallopt here")
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    faults = {how: int(subprocess.run([sys.executable, "-c", _FAULTS, how], env=env, capture_output=True, text=True,
                                      check=True).stdout) for how in ("plain", "tuned", "after a task")}
    pages = 32_000_000 // 4096
    assert faults["plain"] > 15 * pages, faults  # every temporary's pages, again and again
    assert faults["tuned"] < 3 * pages, faults  # the first temporary's pages only
    assert faults["after a task"] < 3 * pages, faults
