"""The curation flow: thin Prefect orchestration over curate/ (tasks pass paths and small values)."""
from __future__ import annotations

import dataclasses
import functools
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from . import settings  # noqa: F401  (Prefect env defaults before prefect is imported)
from prefect import flow, task

from curate import pipeline
from curate.embed import FIT_STORE
from curate.io import write_json
from curate.mix import MixtureSpec
from curate.recipe import Stage, load_recipe
from curate.threads import pin_blas
from curate.usersources import UserSource

# Stages skip themselves through completion markers keyed on inputs + params + code (curate.pipeline).
from .progress import TASK_OPTS, releasing
from .progress import progress as _progress


def _retriable(task, task_run, state) -> bool:
    """Prefect's retry condition: retry only what can pass on a retry (network, timeouts), never a
    missing mirror folder, an unknown source, a bad registry or a checksum mismatch."""
    from curate.download import is_retriable

    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001  (cannot tell: keep Prefect's default, retry)
        return True
    return not isinstance(exc, BaseException) or is_retriable(exc)


@task(name="download", task_run_name="download {source}", retries=2, retry_delay_seconds=5, retry_condition_fn=_retriable, **TASK_OPTS)
def download_task(source: str, raw_dir: str, mirror: str | None) -> dict:
    """``{"files": [...], "skipped": [...]}`` of one source (skipped: mirror files not read, with why)."""
    from curate.download import fetch_source, load_registry

    registry = {s.name: s for s in load_registry()}
    if source not in registry:
        raise ValueError(f"unknown source {source!r} in the recipe; known: {', '.join(sorted(registry))}")
    skipped: list[dict] = []
    files = fetch_source(registry[source], Path(raw_dir), mirror=Path(mirror) if mirror else None, skipped=skipped)
    return {"files": files, "skipped": skipped}


@task(name="warm-up", **TASK_OPTS)
@releasing
def warm_up_task() -> int:
    """Nothing but its start: submitted first, it has the task runner start its worker processes
    (which import the curation library, seconds) before the downloads and the parse reach them."""
    import curate.parse  # noqa: F401  (what the first tasks run)

    return os.getpid()


def _in_threads() -> bool:
    """Whether this flow's tasks run on threads of this process (the thread runner)."""
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    ctx = FlowRunContext.get()
    return ctx is not None and isinstance(ctx.task_runner, ThreadPoolTaskRunner)


@task(name="user-source", task_run_name="read {source.name}", **TASK_OPTS)
def user_source_task(source: UserSource, raw_dir: str) -> dict:
    """``{"files": [...], "skipped": []}`` of a source the recipe brings (local files or an HF dataset)."""
    from curate.usersources import user_source_files

    return {"files": user_source_files(source, raw_dir), "skipped": []}


@task(name="parse-files", task_run_name="parse files {start}-{stop}", **TASK_OPTS)
@releasing
def parse_group_task(plan: pipeline.ParsePlan, start: int, stop: int) -> str:
    return pipeline.run_parse_group(plan, start, stop, progress=_progress)


@task(name="parse", **TASK_OPTS)
@releasing
def parse_merge_task(plan: pipeline.ParsePlan) -> dict:
    return pipeline.finish_parse(plan, progress=_progress)


def parse_task(files: list[dict], out_dir: str, skipped: list[dict] | None = None) -> dict:
    """The parse stage through the task runner: groups of files side by side, then the merge, which
    writes the rows a group at a time; a finished stage is skipped."""
    return parse_and_chain(files, out_dir, skipped)[0][0]


@task(name="merge", task_run_name="{plan.stage.name}", **TASK_OPTS)
@releasing
def chained_merge_task(plan: pipeline.StagePlan) -> dict:
    return pipeline.finish_chained(plan, progress=_progress)


def parse_and_chain(files: list[dict], out_dir: str, skipped: list[dict] | None = None, stages: tuple[Stage, ...] = (),
                    shard_rows: int | None = None) -> tuple[list[dict], list[float]]:
    """The parse stage, then as many of ``stages`` as run chained (``pipeline.chainable``; their
    folders beside ``out_dir``): each one's shards read the rows of the stage before from its parts,
    so they run beside that stage's merge instead of after it. Returns the ledgers of the parse
    stage and of the stages it ran, and when each was seen done (``time.perf_counter``); a
    finished parse stage is skipped (nothing is chained then)."""
    plan = pipeline.plan_parse(files, out_dir, skipped)
    if plan.done:
        return [parse_merge_task(plan)], [time.perf_counter()]  # the stored ledger
    _progress(f"parse: {len(files)} files in {len(plan.groups)} groups")
    for f in [parse_group_task.submit(plan, a, b) for a, b in plan.groups]:
        f.result()
    chain = []
    for stage in stages if shard_rows is not None else ():
        if not pipeline.chainable(stage):
            break
        chain.append(stage)
    merges = [parse_merge_task.submit(dataclasses.replace(plan, keep_shards=bool(chain)))]
    prev_dir, sources, key = Path(out_dir), pipeline.parse_parts(plan), plan.key
    ledgers, ends = [], []
    for i, stage in enumerate(chain):
        out = prev_dir.parent / stage.name
        cplan = pipeline.plan_chained(stage, str(prev_dir / "kept.parquet"), str(out), sources, key, shard_rows,
                                      after=str(prev_dir / "_shards"), keep_shards=i < len(chain) - 1)
        for f in [shard_task.submit(cplan, a, b) for a, b in cplan.shards]:
            f.result()
        ledgers.append(merges[-1].result())  # the stage before has written its file: this stage's key reads it
        ends.append(time.perf_counter())
        merges.append(chained_merge_task.submit(cplan))  # ahead of the next stage's shards
        prev_dir, sources, key = out, pipeline.shard_parts(cplan), cplan.key
    ledgers.append(merges[-1].result())
    ends.append(time.perf_counter())
    return ledgers, ends


@task(name="shard", task_run_name="{plan.stage.name} rows {start}-{stop}", **TASK_OPTS)
@releasing
def shard_task(plan: pipeline.StagePlan, start: int, stop: int) -> str:
    return pipeline.run_shard(plan, start, stop, progress=_progress)


@task(name="partition", task_run_name="{plan.stage.name} {step} {index}", **TASK_OPTS)
@releasing
def partition_task(plan: pipeline.StagePlan, step: str, index: int) -> str:
    return pipeline.run_task(plan, step, index, progress=_progress)


@task(name="merge", task_run_name="{plan.stage.name}", **TASK_OPTS)
@releasing
def merge_task(plan: pipeline.StagePlan) -> dict:
    return pipeline.finish_stage(plan, progress=_progress)


@task(name="mixtures-prefit", **TASK_OPTS)
@releasing
def mixture_prefit_task(in_path: str, specs: tuple[MixtureSpec, ...], store: str) -> int:
    return pipeline.prefit_mixtures(in_path, specs, store)


@task(name="decide", task_run_name="{plan.stage.name} decide", **TASK_OPTS)
@releasing
def decide_task(plan: pipeline.StagePlan, rows_path: str) -> int:
    return pipeline.decide_stage(plan, rows_path, progress=_progress)


def _run_tasks(plan: pipeline.StagePlan) -> None:
    """A planned stage's tasks through the task runner: its shards and its rounds (each round's
    tasks side by side, a round after the one before), all done when this returns."""
    # The rounds read the stage's input, not the shards: they run beside them. The first round goes
    # in before the shards, so the later rounds (which wait on it only) queue up behind the shards
    # instead of starting after them, when a worker would sit idle until the last shard ends.
    rounds = list(plan.rounds)
    first = [partition_task.submit(plan, step, index) for step, index in (rounds[0] if rounds else ())]
    shards = [shard_task.submit(plan, a, b) for a, b in plan.shards]
    for i, tasks in enumerate(rounds):
        futures = first if i == 0 else [partition_task.submit(plan, step, index) for step, index in tasks]
        for f in futures:
            f.result()
    for f in shards:
        f.result()  # raises the first shard's error


def run_stage(stage: Stage, in_path: str, out_dir: str, shard_rows: int, beside: Callable[[], Any] | None = None,
              then: tuple[Stage, str, Callable[[], Any] | None] | None = None) -> list[tuple[dict, float]]:
    """One operator stage through the task runner: its row-local operators on shards in parallel,
    or the rounds of its partitioned operator (each round's tasks in parallel), then the merge
    (which runs the rest); a finished stage is skipped. ``beside()`` submits a task to run beside
    the merge (which keeps one core busy), awaited with it.

    ``then``: the next stage, its folder and its ``beside``. When this stage's decisions come before
    its outputs (dedupe: ``pipeline.decides``), they are taken first and the next stage runs on them
    (``pipeline.plan_selected``) beside this stage's merge; the next stage's merge follows. Returns
    the ledger of each stage run, with when it was seen done (``time.perf_counter``)."""
    plan = pipeline.plan_stage(stage, in_path, out_dir, shard_rows)
    if plan.done:
        return [(merge_task(plan), time.perf_counter())]  # the stored ledger
    _run_tasks(plan)
    if then is not None and pipeline.selectable(then[0]) and pipeline.decides(plan):
        nxt, nxt_dir, nxt_beside = then
        rows = str(Path(nxt_dir) / "_shards" / "selected-rows.npy")
        n = decide_task.submit(plan, rows).result()
        merge = merge_task.submit(plan)
        nplan = pipeline.plan_selected(nxt, str(Path(out_dir) / "kept.parquet"), nxt_dir, (in_path, rows), n,
                                       plan.key, shard_rows)
        _run_tasks(nplan)
        done = [(merge.result(), time.perf_counter())]  # the file is written: the next stage's key reads it
        return done + _merged(chained_merge_task.submit(nplan), nxt_beside)
    return _merged(merge_task.submit(plan), beside)


def _merged(merge: Any, beside: Callable[[], Any] | None) -> list[tuple[dict, float]]:
    extra = beside() if beside is not None else None
    ledger = merge.result()
    if extra is not None:
        extra.result()
    return [(ledger, time.perf_counter())]


@task(name="mixture-select", task_run_name="select mixtures {index}", **TASK_OPTS)
@releasing
def mixture_select_task(plan: pipeline.MixturePlan, step: str, index: int) -> str:
    return pipeline.run_mixture_task(plan, step, index, progress=_progress)


@task(name="mixtures", **TASK_OPTS)
@releasing
def mixtures_task(plan: pipeline.MixturePlan) -> list[dict]:
    return pipeline.finish_mixtures(plan, progress=_progress)


@task(name="pool-analysis", **TASK_OPTS)
@releasing
def pool_analysis_task(run_dir: str, recipe: dict) -> str | None:
    from curate.report.run_report import precompute_pool_analysis

    return precompute_pool_analysis(run_dir, recipe)


def mixtures_stage(in_path: str, out_dir: str, specs: tuple[MixtureSpec, ...], licenses: dict[str, str],
                   beside: Callable[[], Any] | None = None) -> tuple[list[dict], Any]:
    """The mixtures through the task runner: the selections side by side (a strategy that embeds
    texts has a task of its own), then the merge, which writes them; a finished stage is skipped.
    ``beside()`` submits a task to run after the selections' (the report's analysis of the pool).
    Returns what ``mixtures.json`` lists and that task's future (None without one)."""
    plan = pipeline.plan_mixtures(in_path, out_dir, specs, licenses)
    selections = [mixture_select_task.submit(plan, step, index) for step, index in plan.tasks]
    extra = beside() if beside is not None else None
    for f in selections:
        f.result()
    return mixtures_task.submit(plan).result(), extra


@task(name="report", **TASK_OPTS)
@releasing
def report_task(run_dir: str, flow_process: tuple[str, int]) -> str:
    """The run's report. ``flow_process``: (host, pid) of the flow. On a worker elsewhere (process
    runner, Dask), which ran stages before, the report is built in a process of its own."""
    from prefect.artifacts import create_markdown_artifact

    from curate.report import build_report, build_report_fresh

    if (socket.gethostname(), os.getpid()) == tuple(flow_process):
        html_path, md = build_report(Path(run_dir))
    else:
        _progress("report: in a process of its own (this worker ran other tasks before)")
        html_path, md = build_report_fresh(Path(run_dir))
    create_markdown_artifact(key="tiger-curation-report", markdown=md,
                             description=f"tiger curation report ({Path(run_dir).name})")
    return str(html_path)


@flow(name="tiger-curate")
def curate_flow(recipe_path: str | None = None, mirror: str | None = None, data_dir: str | None = None,
                run_id: str | None = None, shard_rows: int = pipeline.DEFAULT_SHARD_ROWS) -> str:
    """download → parse → normalize → filter → dedupe → diversity → mixtures → report. Returns the run folder.

    The task runner (flows/runners.py) is chosen with ``curate_flow.with_options(task_runner=...)``;
    ``shard_rows`` sizes the shards of the stages that run sharded (outputs do not depend on it)."""
    pin_blas()  # from the main thread, before any task: the tasks' float sums on a fixed thread count
    # Warm-up tasks only where they start worker processes: on the thread runner they would only
    # import modules in threads while this one imports the recipe's operators. (A SystemError once
    # raised in load_recipe beside them came from their memory release: see curate/memory.py.)
    warm = [] if _in_threads() else [warm_up_task.submit() for _ in range(os.cpu_count() or 1)]
    recipe = load_recipe(recipe_path)  # parsed once; its stage and mixture objects go to the tasks
    data = Path(data_dir or settings.PROJECT_ROOT / "data")
    files: list[dict] = []
    skipped: list[dict] = []
    # every source fetched (or its mirror copy checksummed) side by side on the runner, taken in
    # the recipe's order
    fetching = []
    for source in recipe.sources:
        user = recipe.user_source(source)
        fetching.append((source, user_source_task.submit(user, str(data / "raw")) if user
                         else download_task.submit(source, str(data / "raw"), mirror)))
    for source, fetched in fetching:
        got = fetched.result()
        skipped.extend(got["skipped"])
        if not got["files"] and source == "traditional":  # the optional extra source may be absent
            continue
        files.extend(got["files"])
    run_dir = pipeline.run_dir_for(data / "processed", recipe, files, run_id)
    _progress(f"run folder: {run_dir}")

    t0 = time.perf_counter()
    # the row-local stages right after the parse stage run chained on it (their time counted with it)
    ledgers, ends = parse_and_chain(files, str(run_dir / "01_parse"), skipped, recipe.stages, shard_rows)
    for f in warm:
        f.result()
    seconds = [b - a for a, b in zip([t0] + ends[:-1], ends)]
    prev = run_dir / ledgers[-1]["stage"] / "kept.parquet"

    def beside(stage: Stage, in_path: Path) -> Callable[[], Any] | None:
        if stage is recipe.stages[-1] and pipeline.keeps_rows(stage):  # its input holds the pool's rows
            return functools.partial(mixture_prefit_task.submit, str(in_path), recipe.mixtures, str(run_dir / FIT_STORE))
        return None

    todo = list(recipe.stages[len(ledgers) - 1:])
    while todo:
        stage, t0 = todo.pop(0), time.perf_counter()
        out = run_dir / stage.name
        then = (todo[0], str(run_dir / todo[0].name), beside(todo[0], out / "kept.parquet")) if todo else None
        got = run_stage(stage, str(prev), str(out), shard_rows, beside(stage, prev), then)
        for ledger, end in got:
            ledgers.append(ledger)
            seconds.append(end - t0)
            t0, prev = end, run_dir / ledger["stage"] / "kept.parquet"
        del todo[:len(got) - 1]  # the next stage too, when it ran on this one's decisions
    pipeline.check_chain(ledgers)  # fails loudly if any record went missing between stages
    # mixtures and the report go to the runner like every stage: on a cluster they run on a worker,
    # not in this process, which holds the flow and the cluster's client
    # the report's analysis of the pool goes beside the selections; the report finds it done
    mixtures, analysis = mixtures_stage(str(prev), str(run_dir / "mixtures"), recipe.mixtures, recipe.licenses(),
                                        functools.partial(pool_analysis_task.submit, str(run_dir), recipe.data))

    write_json(run_dir / "manifest.json", {
        "run_id": run_dir.name,
        "recipe": recipe.data,
        "code_version": pipeline.code_version(),
        "packages": pipeline.package_versions(),
        # no "origin" (download / cache / mirror): a resumed download must write the same manifest
        "inputs": [{k: f[k] for k in ("source", "file", "sha256", "bytes", "url")} for f in files],
        "ledger": ledgers,
        "mixtures": [{k: m[k] for k in ("name", "rows", "file")} for m in mixtures],
    })
    if analysis is not None:
        analysis.result()
    here = (socket.gethostname(), os.getpid())
    if _local_processes():  # in this process, which holds no stage's leftovers (workers do)
        report = report_task(str(run_dir), here)
    else:
        report = report_task.submit(str(run_dir), here).result()
    _progress(summary(ledgers, seconds, mixtures, report))
    return str(run_dir)


def _local_processes() -> bool:
    """Whether this flow's tasks run on a local process pool (``--runner process``)."""
    from prefect.context import FlowRunContext
    from prefect.task_runners import ProcessPoolTaskRunner

    ctx = FlowRunContext.get()
    return ctx is not None and isinstance(getattr(ctx, "task_runner", None), ProcessPoolTaskRunner)


def summary(ledgers: list[dict], seconds: list[float], mixtures: list[dict], report: str) -> str:
    """The lines that end a run: rows in / kept / dropped and seconds per stage (0 s: resumed from
    its outputs), the mixtures, where the report is."""
    lines = [f"{'stage':<14}{'in':>10}{'kept':>10}{'dropped':>10}{'seconds':>9}"]
    for row, s in zip(ledgers, seconds):
        lines.append(f"{row['stage']:<14}{row['in']:>10,}{row['kept']:>10,}{row['dropped']:>10,}{s:>9.1f}")
    lines.append("mixtures: " + ", ".join(f"{m['name']} ({m['rows']:,})" for m in mixtures))
    lines.append(f"report: {report}")
    return "\n".join(lines)
