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

``tiger run`` with ``process`` or ``dask`` first launches the run's ephemeral Prefect API (before
its own imports, which overlap the server's start) and hands its URL to the local workers
(``launch_local_api``, ``share_local_api``), so the whole run reports to one API. With
``process`` the report is built in the flow's own process (``curate_flow``), its modules imported
while the server starts (``preload_report``).

The choice changes where tasks run, never what they write: the stages' outputs are byte-identical
whatever the runner (tests/test_runners.py).
"""
from __future__ import annotations

import os
from pathlib import Path
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
    api = launch_local_api(spec)
    return api.wait() if api is not None else None


class LocalApi:
    """The run's ephemeral API server as a process of its own, launched with the command and
    settings Prefect's ephemeral server (``SubprocessASGIServer``) uses, but without importing the
    server's modules here (seconds) and without waiting: the caller goes on with its imports while
    it boots, ``share()`` puts its URL in the environment (for the workers spawned later) and in this
    process's Prefect settings, and ``wait()`` returns the URL once it answers. Stopped when this
    process exits."""

    def __init__(self) -> None:
        import atexit

        self.proc: Any = None
        self.url = ""
        self.shared = False
        self._launch()
        atexit.register(self.stop)

    def _launch(self) -> None:
        import importlib.util
        import socket
        import subprocess
        import sys

        with socket.socket() as sock:  # a free port (one that is taken meanwhile: see wait)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/api"
        # the server's own settings, as Prefect starts it (no API URL: it is the API)
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update({"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"})
        package = Path(importlib.util.find_spec("prefect").origin).parent  # not imported: seconds saved here
        self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--app-dir", str(package.parent),
                                      "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                                      "--port", str(port), "--log-level", "error", "--lifespan", "on"], env=env)
        if self.shared:
            self.share()

    def share(self) -> None:
        """The server's URL in the environment and in this process's Prefect settings (Prefect read
        them when it was imported)."""
        from prefect.context import refresh_global_settings_context

        self.shared = True
        os.environ["PREFECT_API_URL"] = self.url
        refresh_global_settings_context()

    def wait(self, timeout: float | None = None) -> str:
        """The server's URL once its health check answers (relaunched on another port, and shared
        again, if the one chosen was taken: uvicorn exits with 3)."""
        import time

        import httpx
        from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

        end = time.monotonic() + (timeout or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value())
        with httpx.Client() as client:
            while time.monotonic() < end:
                code = self.proc.poll()
                if code == 3:
                    self._launch()
                elif code is not None:
                    raise RuntimeError(f"the ephemeral Prefect API server exited with code {code}")
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return self.url
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the ephemeral Prefect API server did not answer at {self.url} in time")

    def stop(self) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def launch_local_api(spec: str | None) -> LocalApi | None:
    """``share_local_api``'s server, launched and shared but not awaited (``LocalApi.wait``); None
    where no API is shared. Called first thing, before the flow's imports, which then overlap its
    start-up."""
    spec = (spec or "thread").strip()
    if spec not in ("process", "dask") or os.environ.get("PREFECT_API_URL"):
        return None
    api = LocalApi()  # launched before Prefect's settings are read (importing Prefect takes a second)
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():  # a profile's server, or none
        api.stop()
        return None
    api.share()
    return api


# What the run's report imports besides the flow's own modules (seconds: torch and scikit-learn
# above all): ``preload_report`` imports them while the flow process waits on its API server.
REPORT_MODULES = ("curate.report.run_report", "curate.diversity", "curate.embed", "curate.ops.novelty_tagger",
                  "curate.ops.cluster_tagger", "sklearn.decomposition", "sklearn.feature_extraction.text",
                  "sklearn.cluster", "torch", "jieba.posseg")


def preload_report() -> Any:
    """Import ``REPORT_MODULES`` on a daemon thread (returned): with ``--runner process`` the report is
    built in the flow process (``curate_flow``), whose imports are then done long before it."""
    import importlib
    import threading

    def run() -> None:
        for name in REPORT_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001  (the report imports it again and says what is wrong)
                return

    t = threading.Thread(target=run, name="tiger-preload", daemon=True)
    t.start()
    return t
