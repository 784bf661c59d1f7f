"""Task runners for the curation flow: where its tasks (stage shards first of all) run.

``thread``            Prefect's thread pool, one worker per core (the default). The shards of a
                      stage run side by side in one process; numpy work overlaps, pure-Python
                      operators share the interpreter lock.
``process``           Prefect's process pool, one worker per core: shards run in parallel on one
                      machine (tasks pass file paths and small values, so little is pickled).
``dask``              Dask through ``prefect-dask`` on a local ``distributed.LocalCluster`` (one
                      single-threaded worker process per core; ``workers``/``processes`` override).
``dask://HOST:PORT``  Dask through ``prefect-dask`` against a running scheduler
                      (``dask scheduler`` + ``dask worker tcp://HOST:PORT`` on each machine). The
                      workers need the project installed and the run folder on a shared file
                      system, since tasks pass paths.

``tiger run`` with ``process`` or ``dask`` first starts the run's ephemeral Prefect API and hands
its URL to the local workers (``share_local_api``), so the whole run reports to one API.

The choice changes where tasks run, never what they write: the stages' outputs are byte-identical
whatever the runner (tests/test_runners.py).
"""
from __future__ import annotations

import os
from typing import Any

RUNNERS = ("thread", "process", "dask", "dask://HOST:PORT")


def make_task_runner(spec: str | None = "thread", workers: int | None = None, processes: bool = True) -> Any:
    """A Prefect task runner from a ``--runner`` value (see the module docstring)."""
    spec = (spec or "thread").strip()
    n = workers or os.cpu_count() or 1
    if spec == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=n)
    if spec == "process":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=n)
    if spec == "dask" or spec.startswith("dask://"):
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as e:  # pragma: no cover - prefect-dask is a dependency
            raise RuntimeError("the dask runner needs prefect-dask (pip install prefect-dask)") from e
        if spec == "dask":
            return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                                  cluster_kwargs={"n_workers": n, "threads_per_worker": 1,
                                                  "processes": processes, "dashboard_address": None})
        address = spec[len("dask://"):]
        if not address or ":" not in address:
            raise ValueError(f"--runner {spec!r}: expected dask://HOST:PORT")
        return DaskTaskRunner(address=f"tcp://{address}")
    raise ValueError(f"unknown task runner {spec!r}; one of: {', '.join(RUNNERS)}")


def share_local_api(spec: str | None) -> str | None:
    """Before a run on local worker processes (``process``, ``dask``): start the flow's ephemeral
    Prefect API now and put its URL in the environment the workers inherit, so they report their
    task runs to it. Otherwise each worker process starts an API server of its own (about 225 MiB
    and seconds of CPU each), and the task runs it records vanish with it. Nothing for the thread
    runner, for ``dask://`` (workers started elsewhere) or when ``PREFECT_API_URL`` names a server.
    Returns the URL it shared, or None."""
    spec = (spec or "thread").strip()
    if spec not in ("process", "dask") or os.environ.get("PREFECT_API_URL"):
        return None
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the instance the flow's own client would start: one server
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    return server.api_url

