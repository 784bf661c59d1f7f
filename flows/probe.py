"""The rule probe as a Prefect flow: thin tasks over train/probe/ (they pass paths and small values).

Runs are independent, so they are submitted to the task runner together (``--runner process
--workers 2`` trains two at once, one torch thread each). Every task skips itself through the files
it leaves (a finished fine-tune has summary.json, a scored one probe/scores.json), so a killed
grid resumes where it stopped and Prefect's result cache is off.
"""
from __future__ import annotations

from . import settings  # noqa: F401  (Prefect env defaults before prefect is imported)
from prefect import flow, task

from .progress import TASK_OPTS
from .progress import progress as _log


@task(name="probe-prepare", **TASK_OPTS)
def prepare_task(cfg: dict) -> dict:
    from train.probe.experiment import ProbeConfig, prepare

    return prepare(ProbeConfig.from_dict(cfg), log=_log)


@task(name="probe-base", **TASK_OPTS)
def base_task(cfg: dict) -> str:
    from train.probe.experiment import ProbeConfig, resolve_base

    return resolve_base(ProbeConfig.from_dict(cfg), log=_log)


@task(name="probe-score-base", **TASK_OPTS)
def score_base_task(cfg: dict, base: str, suite_dir: str) -> dict:
    from train.probe.experiment import ProbeConfig, score_base

    return score_base(ProbeConfig.from_dict(cfg), base, suite_dir)["accuracy"]


@task(name="probe-run", **TASK_OPTS)
def run_task(cfg: dict, run: dict, base: str, suite_dir: str) -> dict:
    from train.probe.experiment import ProbeConfig, train_and_score

    return train_and_score(ProbeConfig.from_dict(cfg), run, base, suite_dir, log=_log)["accuracy"]


@task(name="probe-report", **TASK_OPTS)
def report_task(cfg: dict, runs: list[dict], seconds: float) -> dict:
    from train.probe.experiment import ProbeConfig, report

    return report(ProbeConfig.from_dict(cfg), runs, seconds)


@flow(name="tiger-probe")
def probe_flow(cfg: dict) -> dict:
    """suite + mixtures → base → (fine-tune + score) per run → results, plot, verdict (train/probe/)."""
    import time
    from pathlib import Path

    from prefect.artifacts import create_markdown_artifact

    from train.probe.experiment import ProbeConfig, grid

    t0 = time.time()
    prepared = prepare_task(cfg)
    base = base_task(cfg)
    score_base_task(cfg, base, prepared["suite_dir"])
    runs = grid(ProbeConfig.from_dict(cfg))
    _log(f"probe: {len(runs)} runs")
    futures = [run_task.with_options(name=f"probe {r['run']}").submit(cfg, r, base, prepared["suite_dir"])
               for r in runs]
    for f in futures:
        f.result()
    res = report_task(cfg, runs, round(time.time() - t0, 1))
    try:
        create_markdown_artifact(key="tiger-probe-verdict", markdown=Path(res["verdict"]).read_text(encoding="utf-8"),
                                 description="tiger probe: rule diversity vs constraints on unseen instructions")
    except Exception as e:  # the artifact is a convenience; the files are the record
        _log(f"probe: no Prefect artifact ({e})")
    return res
