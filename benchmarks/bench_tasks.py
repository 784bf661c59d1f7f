"""Which task holds the memory: one stage of an earlier run replayed task by task, each shard, task (and
the merge) in a fresh process, with its wall and CPU seconds and peak RSS.

    .venv/bin/python benchmarks/bench_tasks.py RUN_DIR 04_dedupe [--jobs 2] [--json F]
    .venv/bin/python benchmarks/bench_tasks.py RUN_DIR mixtures        # its selections, then the merge; or report
    .venv/bin/python benchmarks/bench_tasks.py RUN_DIR 01_parse --mirror /tmp/tiger-scale/N/mirror
    .venv/bin/python benchmarks/bench_tasks.py RUN_DIR 04_dedupe --work SAVED   # the merge only
    BENCH_PROFILE=/tmp/merge.prof .venv/bin/python benchmarks/bench_tasks.py ...  # the merge under cProfile

``RUN_DIR`` is a run folder a ``tiger run`` left (e.g. ``bench_scale.py --parts flow`` under
/tmp/tiger-bench-flow/N/processed/run-*). The stage reads the previous stage's ``kept.parquet``
there and writes under ``--out`` (default /tmp/tiger-bench-tasks/<stage>), so the run is not
touched (01_parse reads the mirror's files of the default recipe's sources, in place, as the
flow does; RUN_DIR is then only named in the figures). Tasks run as the flow runs them (``curate.pipeline.plan_stage`` / ``run_task`` /
``finish_stage``), ``--jobs`` at a time within a round, each in its own process: the peak of a task
is its own (VmHWM), not a worker's high-water mark over many tasks. The merge also prints its
progress messages with the RSS at each, so its peak can be placed.

``--work SAVED`` replays only a partitioned stage's merge: SAVED is a copy of an earlier run's
``<stage>/_work/<key>`` folder with every round done (saved with ``cp -al`` while that run's merge
ran: the stage deletes it when done), hard-linked in under this replay's key.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from procmem import proc_mib  # noqa: E402


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _child(kind: str, args: dict, q) -> None:
    """One task (``kind`` = "task"), the merge ("merge"), or the mixtures/report stage, in this process."""
    from curate import pipeline
    from curate.threads import pin_blas

    pin_blas()
    t, c = time.perf_counter(), _cpu()
    marks: list[tuple[float, float, str]] = []

    def progress(msg: str) -> None:
        marks.append((round(time.perf_counter() - t, 1), round(proc_mib("VmRSS")), msg[:90]))

    plan = args.get("plan")
    if kind == "task":
        pipeline.run_task(plan, args["step"], args["index"])
    elif kind == "shard":
        pipeline.run_shard(plan, args["start"], args["stop"])
    elif kind == "merge" and os.environ.get("BENCH_PROFILE"):  # where the merge's time goes
        import cProfile

        cProfile.runctx("pipeline.finish_stage(plan, progress=progress)", globals(), locals(),
                        os.environ["BENCH_PROFILE"])
    elif kind == "merge":
        pipeline.finish_stage(plan, progress=progress)
    elif kind == "parse-group":
        pipeline.run_parse_group(plan, args["start"], args["stop"], progress=progress)
    elif kind == "parse-merge":
        pipeline.finish_parse(plan, progress=progress)
    elif kind == "mixture-select":
        pipeline.run_mixture_task(plan, args["step"], args["index"], progress=progress)
    elif kind == "mixtures":
        pipeline.finish_mixtures(plan, progress=progress)
    elif kind == "report":
        from curate.report import build_report

        build_report(Path(args["run_dir"]))
    q.put({"seconds": time.perf_counter() - t, "cpu": _cpu() - c, "peak_mib": proc_mib(), "marks": marks})


def _run(kind: str, args: dict) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(kind, args, q))
    p.start()
    res = q.get()
    p.join()
    if p.exitcode:
        raise SystemExit(f"{kind} {args.get('step', '')} {args.get('index', '')} failed ({p.exitcode})")
    return res


def _round(tasks: list[tuple[str, int]], plan, jobs: int) -> list[dict]:
    """The round's tasks, ``jobs`` processes at a time; a task ``("shard", a, b)`` is the shard of
    rows a:b (the flow runs the shards beside the first round)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(task: tuple) -> dict:
        if task[0] in ("shard", "parse-group"):
            res = _run(task[0], {"plan": plan, "start": task[1], "stop": task[2]})
        elif task[0] == "select":
            res = _run("mixture-select", {"plan": plan, "step": task[0], "index": task[1]})
        else:
            res = _run("task", {"plan": plan, "step": task[0], "index": task[1]})
        return {"task": " ".join(map(str, task)), **res}

    with ThreadPoolExecutor(max_workers=jobs) as ex:
        return list(ex.map(one, tasks))


def _mirror_files(mirror: Path) -> tuple[list[dict], list[dict]]:
    """The files the flow parses from ``mirror`` for the default recipe's sources, and those it skips."""
    from curate.download import fetch_source, load_registry
    from curate.recipe import load_recipe

    registry = {s.name: s for s in load_registry()}
    files: list[dict] = []
    skipped: list[dict] = []
    for source in load_recipe(None).sources:
        if source in registry and (mirror / source).is_dir():
            files += fetch_source(registry[source], "/tmp/tiger-bench-tasks/raw", mirror=mirror,
                                  progress=False, skipped=skipped)
    return files, skipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("stage", help="01_parse, an operator stage of the default recipe (04_dedupe, 05_diversity), mixtures or report")
    ap.add_argument("--jobs", type=int, default=2, help="tasks side by side within a round")
    ap.add_argument("--shard-rows", type=int, default=None, help="default: the flow's")
    ap.add_argument("--out", help="default /tmp/tiger-bench-tasks/<stage>")
    ap.add_argument("--work", help="a partitioned stage: its rounds' files from an earlier run; only the merge runs")
    ap.add_argument("--mirror", help="01_parse: the mirror the run read (e.g. /tmp/tiger-scale/N/mirror)")
    ap.add_argument("--json")
    a = ap.parse_args()
    from curate import pipeline
    from curate.recipe import STAGES, load_recipe

    run_dir = Path(a.run_dir)
    out = Path(a.out or f"/tmp/tiger-bench-tasks/{a.stage}")
    shutil.rmtree(out, ignore_errors=True)
    rows: list[dict] = []
    t0, c0 = time.perf_counter(), _cpu()
    if a.stage == "mixtures":
        plan = pipeline.plan_mixtures(run_dir / STAGES[-1] / "kept.parquet", out, load_recipe(None).mixtures)
        print(f"selections: {len(plan.tasks)} tasks", flush=True)
        rows += _round(list(plan.tasks), plan, a.jobs)
        print("merge", flush=True)
        rows.append({"task": "merge", **_run("mixtures", {"plan": plan})})
    elif a.stage == "report":
        rows.append({"task": a.stage, **_run("report", {"run_dir": str(run_dir)})})  # writes run_dir/report (same bytes)
    elif a.stage == "01_parse":
        if not a.mirror:
            raise SystemExit("01_parse: give the run's --mirror")
        files, skipped = _mirror_files(Path(a.mirror))
        plan = pipeline.plan_parse(files, out, skipped)
        print(f"{len(files)} files in {len(plan.groups)} groups", flush=True)
        rows += _round([("parse-group", x, y) for x, y in plan.groups], plan, a.jobs)
        print("merge", flush=True)
        rows.append({"task": "merge", **_run("parse-merge", {"plan": plan})})
    else:
        stage = load_recipe(None).stage(a.stage)
        prev = STAGES[STAGES.index(a.stage) - 1]
        plan = pipeline.plan_stage(stage, run_dir / prev / "kept.parquet", out,
                                   a.shard_rows or pipeline.DEFAULT_SHARD_ROWS)
        rounds = [list(t) for t in plan.rounds] or [[]]
        rounds[0] = [("shard", x, y) for x, y in plan.shards] + rounds[0]
        if a.work:
            if plan.job is None or plan.shards:
                raise SystemExit(f"--work: {a.stage} is not a partitioned stage without shards")
            shutil.copytree(a.work, Path(plan.job.work_dir).parent, copy_function=os.link, dirs_exist_ok=True)
            if plan.job.missing():
                raise SystemExit(f"--work: {a.work} lacks tasks: {plan.job.missing()[:5]}")
            rounds = []
        for r, tasks in enumerate(rounds):
            print(f"round {r}: {len(tasks)} tasks", flush=True)
            rows += _round(tasks, plan, a.jobs)
        print("merge", flush=True)
        rows.append({"task": "merge", **_run("merge", {"plan": plan})})
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    print(f"\n{a.stage} on {run_dir}: {wall:.0f} s wall (tasks {a.jobs} at a time)")
    print(f"{'task':<24}{'wall s':>8}{'CPU s':>8}{'peak MiB':>10}")
    for row in rows:
        print(f"{row['task']:<24}{row['seconds']:>8.1f}{row['cpu']:>8.1f}{row['peak_mib']:>10,.0f}")
    for row in rows:
        for ts, rss, msg in row.get("marks", []):
            print(f"  {row['task']}: {ts:>7.1f} s {rss:>7,} MiB  {msg}")
    if a.json:
        Path(a.json).write_text(json.dumps({"stage": a.stage, "run_dir": str(run_dir), "wall": wall, "cpu": cpu,
                                            "tasks": rows}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
