"""Progress lines that go to the Prefect run log when there is one, and always to stdout."""
from __future__ import annotations

import functools
from typing import Any, Callable

from . import settings  # noqa: F401  (Prefect env defaults before prefect is imported)
from prefect import get_run_logger
from prefect.cache_policies import NONE as NO_CACHE

# Stages and fine-tunes skip themselves through the files they leave, so Prefect's own result cache
# is off: it would pickle results we already keep on disk.
TASK_OPTS = dict(cache_policy=NO_CACHE, persist_result=False)


def progress(msg: str) -> None:
    try:
        get_run_logger().info(msg)
    except Exception:  # outside a run context
        pass
    print(msg, flush=True)


def releasing(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The task, then the memory it freed handed back to the system (``curate.memory``): a worker
    runs task after task, and what one left with the allocators added to the next one's peak."""
    from curate.memory import release_memory, tune_malloc

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        tune_malloc()  # in whichever process runs the task (a worker's first task sets it there)
        try:
            return fn(*args, **kwargs)
        finally:
            release_memory()

    return run
