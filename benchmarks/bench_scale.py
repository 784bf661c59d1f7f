"""Time and peak memory per size: near-dedupe alone, every stage of the flow, and the whole flow.

    .venv/bin/python benchmarks/scale_gen.py 100000 500000 2500000      # once: rows under /tmp
    .venv/bin/python benchmarks/bench_scale.py 100000 500000 2500000 [--parts dedupe,stages,flow]
    # after a change to the later stages, only those, on the outputs a full stages run left:
    .venv/bin/python benchmarks/bench_scale.py 100000 500000 --parts stages --only 05_diversity,mixtures,report

``dedupe``  the near-duplicate operator (signatures + LSH + clusters) and the exact one on
    ``rows.parquet`` in a fresh process each: rows/s, peak RSS, and how many planted copies it put
    in their original's cluster (recall) and how many other rows it merged (at most the "natural"
    near-duplicates of the base rows; a sample is checked against the exact Jaccard).
``stages``  each stage of the curation flow (curate.pipeline, the same functions the Prefect flow
    calls) in its own process on the scale mirror: seconds, rows/s, peak RSS, and the split
    into reading, each operator, and writing.
``dedupe-dask``  the dedupe stage (exact, then near-duplicates) on ``rows.parquet`` two ways: in
    one process with the in-memory search, and partitioned (``--params``, default 8 hash partitions
    of 125,000-row partitions) with its task rounds and merge on a Dask LocalCluster of two
    single-threaded worker processes, as the flow submits them. Wall and CPU seconds (all processes),
    the peak RSS of each process, per round, and that both wrote the same bytes.
``flow``    ``tiger run`` end to end (Prefect included) with the given ``--runner``: wall time, CPU
    time of all its processes, and the peak RSS of the largest process (per stage: the largest RSS
    sampled every half second).

Wall times on a machine shared with other work are inflated; the CPU seconds (user + system, all
threads) are the figure that does not depend on the load.

Peak memory is the process's high-water resident set size (VmHWM), which includes the Python
interpreter and imported libraries (about 0.3 GiB).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from procmem import proc_mib  # noqa: E402

STAGE_ORDER = ["download", "01_parse", "02_normalize", "03_filter", "04_dedupe", "05_diversity", "mixtures", "report"]


# ------------------------------------------------------------------------------------- dedupe


def _dedupe_child(path: str, params: dict, q) -> None:
    import numpy as np
    import pandas as pd

    from curate.ops.document_exact_deduplicator import DocumentExactDeduplicator
    from curate.ops.document_minhash_deduplicator import DocumentMinhashDeduplicator

    from curate.duplicates import priority_rank
    from curate.minhash import cluster_pairs, near_duplicate_pairs

    df = pd.read_parquet(path)
    base_rss = proc_mib()  # the frame loaded
    n = len(df)
    op = DocumentMinhashDeduplicator(**params)
    op(df.head(2000))  # warm-up: imports, LSH parameters, character tables
    t, c = time.perf_counter(), time.process_time()
    ex = DocumentExactDeduplicator()(df)
    t_exact, c_exact = time.perf_counter() - t, time.process_time() - c
    # the near-duplicate search alone (signatures + LSH + clustering), then the whole operator
    t, c = time.perf_counter(), time.process_time()
    sig = op.signatures(df)
    t_sig, c_sig = time.perf_counter() - t, time.process_time() - c
    i, j, est = near_duplicate_pairs(sig, op.mh.threshold, op.mh.bands, op.mh.rows, op.window)
    t_lsh, c_lsh = time.perf_counter() - t - t_sig, time.process_time() - c - c_sig
    cluster_pairs(n, i, j, est, priority_rank(df))
    t_search, c_search = time.perf_counter() - t, time.process_time() - c
    del sig
    t, c = time.perf_counter(), time.process_time()
    res = op(df)
    t_near, c_near = time.perf_counter() - t, time.process_time() - c
    dropped = set(res.dropped["id"])
    survivor = dict(zip(res.dropped["id"], res.dropped["detail"].str.split().str[0]))
    ids = df["id"].to_numpy()
    planted = df["planted_of"].to_numpy() != ""
    # a planted copy is caught when it and its original end in one cluster: same survivor
    def surv(x: str) -> str:
        return survivor.get(x, x)
    caught = np.array([surv(c) == surv(o) for c, o in zip(ids[planted], df["planted_of"].to_numpy()[planted])])
    by_kind = {}
    for kind in sorted(set(df["planted_kind"][planted])):
        m = df["planted_kind"].to_numpy()[planted] == kind
        by_kind[kind] = round(float(caught[m].mean()), 4)
    # rows dropped that are not planted copies nor originals of one: merges among base rows
    related = set(ids[planted]) | set(df["planted_of"][planted])
    other = [x for x in dropped if x not in related]
    q.put({"rows": n, "exact_s": t_exact, "exact_cpu": c_exact, "exact_dropped": len(ex.dropped),
           "sig_s": t_sig, "sig_cpu": c_sig, "lsh_s": t_lsh, "lsh_cpu": c_lsh, "search_s": t_search,
           "search_cpu": c_search, "near_cpu": c_near, "near_s": t_near,
           "near_dropped": len(res.dropped), "planted": int(planted.sum()),
           "planted_recall": float(caught.mean()) if len(caught) else 1.0, "recall_by_kind": by_kind,
           "other_merged": len(other), "base_rss_mib": base_rss, "peak_rss_mib": proc_mib(),
           "pairs": res.stats["pairs"], "params": res.stats["params"]})


def run_dedupe(root: Path, sizes: list[int], params: dict) -> list[dict]:
    ctx = mp.get_context("spawn")
    out = []
    print(f"\n== near-dedupe (document_minhash_deduplicator {params or 'defaults'}) on rows.parquet")
    print("search = signatures + LSH + clustering (wall s / CPU s, rows/s by wall); operator = the whole")
    print("document_minhash_deduplicator call (search + survivors, stats, frames); CPU s counts every thread")
    print(f"{'rows':>10}{'sig':>12}{'lsh':>12}{'search':>12}{'rows/s':>9}{'operator':>13}{'peak MiB':>9}{'(loaded)':>9}"
          f"{'dropped':>9}{'planted':>9}{'recall':>7}{'others':>8}{'exact':>13}")
    for n in sizes:
        q = ctx.Queue()
        p = ctx.Process(target=_dedupe_child, args=(str(root / str(n) / "rows.parquet"), params, q))
        p.start()
        r = q.get()
        p.join()
        out.append(r)
        ws = lambda a, b: f"{r[a]:.1f}/{r[b]:.1f}"  # noqa: E731
        print(f"{r['rows']:>10,}{ws('sig_s', 'sig_cpu'):>12}{ws('lsh_s', 'lsh_cpu'):>12}"
              f"{ws('search_s', 'search_cpu'):>12}{r['rows'] / r['search_s']:>9,.0f}{ws('near_s', 'near_cpu'):>13}"
              f"{r['peak_rss_mib']:>9,.0f}{r['base_rss_mib']:>9,.0f}{r['near_dropped']:>9,}{r['planted']:>9,}"
              f"{r['planted_recall']:>7.3f}{r['other_merged']:>8,}{ws('exact_s', 'exact_cpu'):>13}", flush=True)
    print("recall by planted kind:", json.dumps(out[-1]["recall_by_kind"]))
    return out


# ------------------------------------------------------------------------------------- stages


def _stage_child(stage: str, args: dict, q) -> None:
    import logging

    logging.getLogger("curate.download").setLevel(logging.ERROR)  # unregistered scale files are expected
    from curate import diversity, pipeline
    from curate.download import fetch_source, load_registry
    from curate.recipe import STAGES, load_recipe

    timers = {"read": 0.0, "write": 0.0, "metrics": 0.0}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers[name] += time.perf_counter() - t
        return wrapper

    pipeline.read_parquet = timed("read", pipeline.read_parquet)
    pipeline.write_parquet = timed("write", pipeline.write_parquet)
    pipeline.write_json = timed("write", pipeline.write_json)
    diversity.diversity_metrics = timed("metrics", diversity.diversity_metrics)
    diversity.diversity_by = timed("metrics", diversity.diversity_by)
    marks: list[tuple[str, float]] = []

    def progress(msg: str) -> None:
        marks.append((msg, time.perf_counter()))

    work = Path(args["work"])
    recipe = load_recipe(args.get("recipe"))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    args["cpu0"] = ru.ru_utime + ru.ru_stime
    t0 = time.perf_counter()
    if stage == "download":
        files = []
        for s in load_registry():
            if s.name in recipe.sources:
                files += fetch_source(s, work / "raw", mirror=Path(args["mirror"]), progress=False)
        work.mkdir(parents=True, exist_ok=True)
        (work / "files.json").write_text(json.dumps(files, ensure_ascii=False))
        n = sum(f["bytes"] for f in files)
    elif stage == "01_parse":
        files = json.loads((work / "files.json").read_text())
        n = pipeline.parse_stage(files, work / stage)["in"]
    elif stage == "mixtures":
        import pandas as pd

        n = len(pd.read_parquet(work / "05_diversity" / "kept.parquet", columns=["id"]))
        pipeline.mixtures_stage(work / "05_diversity" / "kept.parquet", work / "mixtures", recipe.mixtures,
                                progress=progress)
    elif stage == "report":
        from curate.report import build_report

        (work / "manifest.json").write_text(json.dumps({"run_id": "bench", "recipe": recipe.data, "ledger": [
            json.loads((work / s / "ledger.json").read_text()) for s in STAGES], "inputs": [],
            "mixtures": [], "packages": {}, "code_version": ""}))
        build_report(work)
        n = json.loads((work / "05_diversity" / "ledger.json").read_text())["kept"]
    else:
        prev = STAGES[STAGES.index(stage) - 1]
        n = pipeline.run_stage(recipe.stage(stage), work / prev / "kept.parquet", work / stage, progress=progress)["in"]
    total = time.perf_counter() - t0
    ops = []
    end = t0 + total - timers["write"] - timers["metrics"]
    for k, (msg, ts) in enumerate(marks):
        nxt = marks[k + 1][1] if k + 1 < len(marks) else end
        ops.append((msg.split(" on ")[0].split(": ", 1)[-1], nxt - ts))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    q.put({"stage": stage, "rows_in": n, "seconds": total, "cpu": ru.ru_utime + ru.ru_stime - args["cpu0"],
           "peak_mib": proc_mib(), "ops": ops, **timers})


def run_stages(root: Path, sizes: list[int], recipe: str | None, only: list[str] | None = None,
               work_root: str = "/tmp/tiger-bench-scale") -> list[dict]:
    """Every stage in order, or with ``only`` those stages on the outputs an earlier run left in
    ``work_root`` (e.g. ``--only 05_diversity,mixtures,report`` after a change to those)."""
    ctx = mp.get_context("spawn")
    all_rows = []
    for n in sizes:
        work = Path(work_root) / str(n)
        if not only:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for stage in only:  # redone: a stage's marker would make it a no-op
                shutil.rmtree(work / stage, ignore_errors=True)
        print(f"\n== stages on {n:,} rows ({root / str(n) / 'mirror'}), one process each")
        print(f"{'stage':<14}{'rows in':>10}{'seconds':>9}{'CPU s':>8}{'rows/s':>10}{'peak MiB':>10}  split (wall s)")
        total = cpu = 0.0
        for stage in [s for s in STAGE_ORDER if not only or s in only]:
            q = ctx.Queue()
            p = ctx.Process(target=_stage_child, args=(stage, {"work": str(work), "recipe": recipe,
                                                               "mirror": str(root / str(n) / "mirror")}, q))
            p.start()
            r = q.get()
            p.join()
            total += r["seconds"]
            cpu += r["cpu"]
            split = ", ".join([f"read {r['read']:.1f}"] * bool(r["read"]) + [f"{o} {s:.1f}" for o, s in r["ops"]]
                              + [f"metrics {r['metrics']:.1f}"] * bool(r["metrics"]) + [f"write {r['write']:.1f}"])
            rate = r["rows_in"] / r["seconds"] if stage != "download" else float("nan")
            print(f"{stage:<14}{r['rows_in']:>10,}{r['seconds']:>9.1f}{r['cpu']:>8.1f}{rate:>10,.0f}"
                  f"{r['peak_mib']:>10,.0f}  {split}", flush=True)
            all_rows.append({"size": n, **r})
        print(f"{'sum':<14}{'':>10}{total:>9.1f}{cpu:>8.1f}")
    return all_rows


# -------------------------------------------------------------------------------- dedupe-dask


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # Linux: VmHWM restarts from the current RSS
        f.write("5")


def _dedupe_stage_child(mode: str, path: str, out: str, params: dict, q) -> None:
    from curate import pipeline
    from curate.recipe import Stage, parse_steps

    steps = [{"document_exact_deduplicator": {}}, {"document_minhash_deduplicator": params}]
    stage = Stage("04_dedupe", parse_steps(steps))
    shutil.rmtree(out, ignore_errors=True)
    if mode == "memory":
        c, t = _cpu_s(), time.perf_counter()
        pipeline.run_stage(stage, path, out)
        q.put({"mode": mode, "seconds": time.perf_counter() - t, "cpu": _cpu_s() - c, "peak_mib": proc_mib()})
        return
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("curate.pipeline"))  # imports before the clock, as a warm cluster has them
        client.run(_reset_peak)
        cpu0 = sum(client.run(_cpu_s).values()) + _cpu_s()
        t0 = time.perf_counter()
        plan = pipeline.plan_stage(stage, path, out, shard_rows=1)  # shard_rows set: a runner is there
        rounds = []
        for tasks in plan.rounds:
            t = time.perf_counter()
            client.gather([client.submit(pipeline.run_task, plan, s, k, pure=False) for s, k in tasks])
            rounds.append((sorted({s for s, _ in tasks}), time.perf_counter() - t))
        task_peak = client.run(proc_mib)
        client.run(_reset_peak)
        t = time.perf_counter()
        client.submit(pipeline.finish_stage, plan, pure=False).result()
        merge_s = time.perf_counter() - t
        seconds = time.perf_counter() - t0
        merge_peak = client.run(proc_mib)
        cpu = sum(client.run(_cpu_s).values()) + _cpu_s() - cpu0
    q.put({"mode": mode, "seconds": seconds, "cpu": cpu, "rounds": rounds, "merge_s": merge_s,
           "task_peak_mib": sorted(task_peak.values()), "merge_peak_mib": max(merge_peak.values()),
           "driver_peak_mib": proc_mib()})


def run_dedupe_dask(root: Path, sizes: list[int], params: dict) -> list[dict]:
    import hashlib

    params = {"partitions": 8, "partition_rows": 125_000, **params}
    ctx = mp.get_context("spawn")
    out = []
    for n in sizes:
        path = root / str(n) / "rows.parquet"
        print(f"\n== dedupe stage on {n:,} rows: in memory vs partitioned {params} on a 2-worker LocalCluster")
        res = {}
        for mode, p in (("memory", {}), ("dask", params)):
            q = ctx.Queue()
            dest = f"/tmp/tiger-bench-dedupe-dask/{n}/{mode}"
            proc = ctx.Process(target=_dedupe_stage_child, args=(mode, str(path), dest, p, q))
            proc.start()
            res[mode] = q.get()
            proc.join()
            res[mode]["sha"] = {f: hashlib.sha256((Path(dest) / f).read_bytes()).hexdigest()
                                for f in ("kept.parquet", "dropped.parquet")}
            print(json.dumps({k: v for k, v in res[mode].items() if k != "sha"}), flush=True)
        same = res["memory"]["sha"] == res["dask"]["sha"]
        print(f"same kept/dropped bytes: {same}")
        out.append({"rows": n, "params": params, "same_bytes": same, **res})
    return out


# --------------------------------------------------------------------------------------- flow


def _role(p, root_pid: int, workers: dict[int, str]) -> str:
    """A readable name for a process of the run's tree: the flow's own process, Prefect's server,
    or a worker (numbered in the order they appeared)."""
    if p.pid == root_pid:
        return "flow"
    try:
        cmd = " ".join(p.cmdline())
    except Exception:  # noqa: BLE001 - gone or unreadable: still a process of the tree
        cmd = ""
    if "uvicorn" in cmd or ("prefect" in cmd and "server" in cmd):
        return "prefect-server"
    if "resource_tracker" in cmd:
        return "resource-tracker"
    if "build_report" in cmd:  # the report in a process of its own (curate.report.build_report_fresh)
        return "report"
    if p.pid not in workers:
        workers[p.pid] = f"worker-{len(workers) + 1}"
    return workers[p.pid]


def _last_line(log: Path | None) -> str:
    """The last complete line of the run's log (its latest progress message), or ""."""
    if log is None:
        return ""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 400))
            lines = f.read().decode("utf-8", "replace").splitlines()
        return lines[-1][:100] if lines else ""
    except OSError:
        return ""


def _watch(proc, every: float = 0.5, log: Path | None = None) -> tuple[list[tuple], dict[str, float], dict[str, float]]:
    """Follow ``proc`` and its descendants until it exits: a timeline of (seconds, CPU seconds of
    the whole tree, exited processes included at their last reading, the largest process's RSS
    then in MiB, that process's role, and the last line of ``log``), each process's peak RSS
    (VmHWM, MiB) by role, and the CPU seconds by role (at each process's last reading)."""
    import psutil

    root = psutil.Process(proc.pid)
    last_cpu: dict[int, float] = {}
    peak: dict[str, float] = {}
    roles: dict[int, str] = {}
    workers: dict[int, str] = {}
    timeline = []
    t0 = time.perf_counter()
    while True:
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        rss_now, who = 0.0, ""
        for p in procs:
            try:
                c = p.cpu_times()  # not children_*: those are counted as processes of the tree
                last_cpu[p.pid] = c.user + c.system
                if p.pid not in roles:
                    roles[p.pid] = _role(p, root.pid, workers)
                with open(f"/proc/{p.pid}/status") as f:
                    hwm = next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")), 0.0)
                r = roles[p.pid]
                peak[r] = max(peak.get(r, 0.0), hwm)
                rss = p.memory_info().rss / 2**20
                if rss > rss_now:
                    rss_now, who = rss, r
            except (psutil.NoSuchProcess, OSError):
                pass
        timeline.append((time.perf_counter() - t0, sum(last_cpu.values()), rss_now, who, _last_line(log)))
        if proc.poll() is not None:
            cpu_by: dict[str, float] = {}
            for pid, c in last_cpu.items():
                role = roles.get(pid, "?")
                cpu_by[role] = cpu_by.get(role, 0.0) + c
            return timeline, peak, cpu_by
        time.sleep(every)


def _cpu_at(timeline: list[tuple[float, float]], t: float) -> float:
    import bisect

    i = bisect.bisect_left([row[0] for row in timeline], t)
    return timeline[min(i, len(timeline) - 1)][1]


def _rss_between(timeline: list[tuple[float, float, float, str]], a: float, b: float) -> tuple[float, str]:
    """The largest process's RSS seen between seconds ``a`` and ``b`` (sampled every half second)
    and which process it was."""
    return max(((r, who) for t, _, r, who, *_ in timeline if a <= t <= b), default=(0.0, ""))


def _idle_spans(timeline: list[tuple], ends: list[tuple[str, float]], cores: int | None = None,
                every: float = 5.0) -> list[dict]:
    """Where cores sat idle: per ``every``-second window, the cores busy on average (CPU seconds of
    the tree over wall seconds), the stage, and the log's last line at the window's end; only the
    windows with less than ``cores`` - 0.5 busy, so the list shows where the run waited on one task."""
    cores = cores or os.cpu_count() or 1
    out, w0 = [], 0
    for i, row in enumerate(timeline):
        if row[0] - timeline[w0][0] >= every or i == len(timeline) - 1:
            dt = row[0] - timeline[w0][0]
            busy = (row[1] - timeline[w0][1]) / dt if dt > 0 else 0.0
            stage = next((s for s, end in ends if end >= row[0]), "end")
            if busy < cores - 0.5:
                out.append({"t": round(timeline[w0][0], 1), "s": round(dt, 1), "busy": round(busy, 2),
                            "stage": stage, "log": row[4]})
            w0 = i
    return out


def _stage_ends(run_dir: Path, t_start: float) -> list[tuple[str, float]]:
    """Each stage's end, in seconds from the start, from its completion marker's mtime."""
    out = []
    for s in STAGE_ORDER[1:]:
        marker = run_dir / s / "_SUCCESS.json" if s != "report" else run_dir / "report" / "report.html"
        if marker.exists():
            out.append((s, marker.stat().st_mtime - t_start))
    return out


def run_flow(root: Path, sizes: list[int], runner: str, recipe: str | None, code: str | None = None) -> list[dict]:
    """``tiger run`` in a fresh process per size, its process tree followed: wall and CPU seconds per
    stage (stage ends from the completion markers' mtimes; CPU of all processes, so wall < CPU
    means more than one core was busy) and every process's peak RSS."""
    out = []
    print(f"\n== tiger run end to end (--runner {runner})")
    for n in sizes:
        data = Path(f"/tmp/tiger-bench-flow/{n}" + ("-" + Path(code).name if code else ""))
        shutil.rmtree(data, ignore_errors=True)
        cmd = [str(ROOT / ".venv" / "bin" / "tiger"), "run", "--mirror", str(root / str(n) / "mirror"),
               "--data-dir", str(data), "--runner", runner] + (["--recipe", recipe] if recipe else [])
        t_wall = time.time()
        t = time.perf_counter()
        data.parent.mkdir(parents=True, exist_ok=True)
        log = open(data.parent / f"{data.name}.log", "w")
        env = None
        if code:  # another checkout's code (e.g. a git worktree at an older commit) in this environment
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([code, os.environ.get("PYTHONPATH", "")])}
            print(f"  code from {code}")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=code or ROOT, env=env)
        timeline, peak, cpu_by = _watch(proc, log=data.parent / f"{data.name}.log")
        sec = time.perf_counter() - t
        log.close()
        if proc.returncode != 0:
            print((data.parent / f"{data.name}.log").read_text()[-3000:])
            raise SystemExit(f"tiger run failed on {n} rows")
        run_dir = next(p for p in (data / "processed").iterdir() if p.name.startswith("run-"))
        cpu = timeline[-1][1]
        stages, prev = [], 0.0
        for name, end in _stage_ends(run_dir, t_wall):
            c = _cpu_at(timeline, end) - _cpu_at(timeline, prev)
            rss, who = _rss_between(timeline, prev, end)
            stages.append({"stage": name, "seconds": round(end - prev, 1), "cpu": round(c, 1),
                           "rss_mib": round(rss), "rss_process": who})
            prev = end
        peaks = sorted(peak.items(), key=lambda kv: -kv[1])
        out.append({"rows": n, "seconds": sec, "cpu": cpu, "peak_mib": peaks[0][1] if peaks else 0.0,
                    "process_peaks_mib": {r: round(v) for r, v in peaks}, "stages": stages,
                    "process_cpu_s": {r: round(v, 1) for r, v in sorted(cpu_by.items(), key=lambda kv: -kv[1])},
                    "idle": _idle_spans(timeline, _stage_ends(run_dir, t_wall))})
        print(f"{n:,} rows: {sec:.1f} s wall, {cpu:.1f} CPU-s, {n / sec:,.0f} rows/s; process peaks "
              f"{', '.join(f'{r} {v:,.0f}' for r, v in peaks)} MiB")
        print("  CPU-s by process: " + ", ".join(f"{r} {v:,.1f}" for r, v in sorted(cpu_by.items(), key=lambda kv: -kv[1])))
        print(f"  {'stage (from the previous end)':<30}{'wall s':>8}{'CPU s':>8}{'CPU/wall':>9}{'max RSS MiB':>12}  process")
        for st in stages:
            print(f"  {st['stage']:<30}{st['seconds']:>8.1f}{st['cpu']:>8.1f}{st['cpu'] / max(st['seconds'], 1e-9):>9.2f}"
                  f"{st['rss_mib']:>12,}  {st['rss_process']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", type=int, nargs="+")
    ap.add_argument("--root", default="/tmp/tiger-scale", help="where scale_gen.py wrote the rows")
    ap.add_argument("--parts", default="dedupe,stages,flow", help="any of dedupe,stages,flow,dedupe-dask")
    ap.add_argument("--runner", default="thread", help="task runner for the flow part")
    ap.add_argument("--recipe")
    ap.add_argument("--code", help="flow part: run this checkout's code (a worktree at another commit)")
    ap.add_argument("--params", default="{}", help="JSON params for document_minhash_deduplicator")
    ap.add_argument("--only", help="stages part: only these stages (comma-separated), on the outputs of an earlier run")
    ap.add_argument("--work-root", default="/tmp/tiger-bench-scale", help="stages part: where the stages write")
    ap.add_argument("--json", help="write all figures here")
    a = ap.parse_args()
    root = Path(a.root)
    parts = a.parts.split(",")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
          f"python {platform.python_version()}, {platform.processor() or platform.platform()}")
    results = {}
    if "dedupe" in parts:  # the near-dedupe operator alone
        results["dedupe"] = run_dedupe(root, a.sizes, json.loads(a.params))
    if "stages" in parts:
        results["stages"] = run_stages(root, a.sizes, a.recipe, a.only.split(",") if a.only else None, a.work_root)
    if "dedupe-dask" in parts:
        results["dedupe-dask"] = run_dedupe_dask(root, a.sizes, json.loads(a.params))
    if "flow" in parts:
        results["flow"] = run_flow(root, a.sizes, a.runner, a.recipe, a.code)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
