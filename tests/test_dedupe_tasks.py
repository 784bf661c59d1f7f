"""The dedupe stage's partitioned near-duplicate search run as tasks (curate.minhash.partitioned's
PartitionJob through pipeline.plan_stage/run_task, the flow's rounds on a task runner): the same
kept/dropped bytes, ledger and figures as the in-memory stage, on real mirror rows with a planted
cluster split across row partitions and exact copies the exact step drops first; and the same bytes
after a Dask worker, or the whole run, is SIGKILLed mid-round."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from curate import pipeline
from curate.io import read_json, write_parquet
from curate.parse import parse_files
from curate.recipe import Stage, parse_steps
from curate.records import make_record, records_frame

FILES = [("trans_chinese_alpaca", "alpaca_chinese_part_0.json"), ("alpaca_chinese", "translated/zh-data-part-00.json"),
         ("belle", "dev1K.json")]
IN_MEMORY = [{"document_exact_deduplicator": {}}, {"document_minhash_deduplicator": {}}]
TASKS = [{"document_exact_deduplicator": {}},
         {"document_minhash_deduplicator": {"partitions": 3, "partition_rows": 1000}}]


@pytest.fixture(scope="module")
def in_path(mirror, tmp_path_factory) -> Path:
    """Real rows of sources that translate the same Alpaca tasks, a planted cluster (a row and
    edited copies at the start, middle and end: three row partitions) and exact copies of real rows."""
    res = parse_files([{"source": s, "file": f, "path": str(mirror / s / f), "format": "json"} for s, f in FILES])
    df = res.kept.reset_index(drop=True)
    base = "请用三句话介绍长城的历史，并说明它为什么被列为世界文化遗产。"
    out = "长城始建于春秋战国时期，秦朝连接各段城墙，明朝大规模重修。它体现了古代中国的军事防御智慧和建筑成就。"
    planted = records_frame([make_record("plant", "p.json", k, base + tail, "", out)
                             for k, tail in enumerate(["", "。", "！", "呀"])])
    copies = records_frame([make_record("copy", "c.json", k, r.instruction, r.input, r.output)
                            for k, r in enumerate(df.iloc[::400].itertuples())])
    h = len(df) // 2
    rows = pd.concat([planted.iloc[:1], df.iloc[:h], planted.iloc[1:2], copies, df.iloc[h:], planted.iloc[2:]],
                     ignore_index=True)
    assert len(rows) > 2500
    path = tmp_path_factory.mktemp("dedupe-in") / "kept.parquet"
    write_parquet(path, rows)
    return path


@pytest.fixture(scope="module")
def in_memory(in_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("in-memory") / "04_dedupe"
    pipeline.run_stage(Stage("04_dedupe", parse_steps(IN_MEMORY)), in_path, out)
    return out


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.parquet"))}


def _same_as_in_memory(got: Path, want: Path) -> None:
    assert _digest(got) == _digest(want) and len(_digest(want)) == 2
    assert read_json(got / "ledger.json") == read_json(want / "ledger.json")
    # stats equal but for the parameters (partitions, partition_rows)
    steps = [[{k: v for k, v in s.items() if k != "params"} for s in read_json(d / "stats.json")["steps"]]
             for d in (got, want)]
    assert steps[0] == steps[1]
    assert not (got / "_work").exists()  # the job's files go once the stage is written


def test_tasks_in_process_write_the_in_memory_bytes(in_path, in_memory, tmp_path):
    stage = Stage("04_dedupe", parse_steps(TASKS))
    out = tmp_path / "04_dedupe"
    plan = pipeline.plan_stage(stage, in_path, out, shard_rows=1000)
    assert plan.split == 1 and len(plan.job.row_parts()) >= 3
    assert [sorted({s for s, _ in r}) for r in plan.rounds] == [["prefix", "signatures"], ["buckets"], ["verify"]]
    with pytest.raises(RuntimeError, match="not done"):
        pipeline.finish_stage(plan)
    for r in plan.rounds[:1]:
        for step, index in reversed(r):  # any order inside a round
            pipeline.run_task(plan, step, index)
    # a stage killed here resumes: a new plan finds the finished tasks' markers and skips them
    plan = pipeline.plan_stage(stage, in_path, out, shard_rows=1000)
    sig0 = Path(plan.job.work_dir) / "sig-00000.npy"
    mtime = sig0.stat().st_mtime_ns
    for r in plan.rounds:
        for step, index in r:
            pipeline.run_task(plan, step, index)
    assert sig0.stat().st_mtime_ns == mtime
    pipeline.finish_stage(plan)
    _same_as_in_memory(out, in_memory)
    dropped = pd.read_parquet(out / "dropped.parquet")
    assert (dropped["source"] == "plant").sum() == 3  # one survivor, though the copies lie in three partitions
    assert (dropped["reason"] == "exact_duplicate").sum() >= len(dropped[dropped["source"] == "copy"]) > 0


def test_auto_hash_partitions_follow_the_row_count(in_path, in_memory, tmp_path, monkeypatch):
    """``partitions: auto`` (the default recipe's) sizes the hash partitions by the rows searched, so a
    bucket task's keys stay bounded as the input grows; the bytes are the in-memory ones."""
    from curate.ops import document_minhash_deduplicator as mod

    op = mod.DocumentMinhashDeduplicator(partitions="auto")
    assert [op.hash_partitions(n) for n in (10, 3_999_999, 4_000_001, 10_000_000)] == [4, 4, 5, 10]
    for bad in (-1, "four", 2.5, True):
        with pytest.raises(ValueError, match="partitions must be"):
            mod.DocumentMinhashDeduplicator(partitions=bad)
    monkeypatch.setattr(mod, "AUTO_PARTITION_ROWS", 500)
    stage = Stage("04_dedupe", parse_steps([{"document_exact_deduplicator": {}},
                                            {"document_minhash_deduplicator": {"partitions": "auto",
                                                                               "partition_rows": 1000}}]))
    out = tmp_path / "04_dedupe"
    plan = pipeline.plan_stage(stage, in_path, out, shard_rows=1000)
    n = pipeline.read_parquet(in_path).shape[0]
    assert plan.job.partitions == -(-n // 500) > 4
    for r in plan.rounds:
        for step, index in r:
            pipeline.run_task(plan, step, index)
    pipeline.finish_stage(plan)
    _same_as_in_memory(out, in_memory)
    assert read_json(out / "stats.json")["steps"][1]["params"]["partitions"] == "auto"


BOTH = [{"document_exact_deduplicator": {"partitions": 3, "partition_rows": 1000}},
        {"document_minhash_deduplicator": {"partitions": 3, "partition_rows": 1000}}]


def test_exact_dedupe_by_key_hash_partitions_then_the_near_search(in_path, in_memory, tmp_path, monkeypatch):
    """The exact step as tasks too (keys per row partition, groups per key-hash partition, then the
    rows it keeps handed to the near search): no task holds the stage's rows, same bytes. Every step
    is a job, so the merge decides on a light frame and writes the outputs a part at a time."""
    monkeypatch.setattr(pipeline, "PART_ROWS", 777)  # several parts of kept and dropped rows
    stage = Stage("04_dedupe", parse_steps(BOTH))
    out = tmp_path / "04_dedupe"
    plan = pipeline.plan_stage(stage, in_path, out, shard_rows=1000)
    assert plan.split == 1 and [k for k, _ in plan.pre_jobs] == [0]
    assert pipeline._decided(plan) and pipeline.read_parquet(in_path).shape[0] > 3 * 777
    assert [sorted({s for s, _ in r}) for r in plan.rounds] == \
        [["0:keys", "light", "signatures"], ["0:groups"], ["0:mask"], ["buckets"], ["verify"]]
    for r in plan.rounds:
        for step, index in reversed(r):
            pipeline.run_task(plan, step, index)
    # the light frame the decisions read, kept by the first round's "light" task, is the file's
    light = pd.read_pickle(pipeline.run_task(plan, "light", 0))
    want = pipeline._light_frame(str(in_path))
    pd.testing.assert_frame_equal(light, want)
    assert list(light.dtypes) == list(want.dtypes) and light.index.equals(want.index)
    pipeline.finish_stage(plan)
    _same_as_in_memory(out, in_memory)
    # the exact step's own stats (no partition parameters in them) are the in-memory bytes
    assert read_json(out / "stats.json")["steps"][0] == read_json(in_memory / "stats.json")["steps"][0]
    dropped = pd.read_parquet(out / "dropped.parquet")
    assert (dropped["reason"] == "exact_duplicate").sum() >= len(dropped[dropped["source"] == "copy"]) > 0
    # alone in a stage, the exact job is the stage's job (the merge finishes it from its files)
    alone = pipeline.plan_stage(Stage("04_dedupe", parse_steps(BOTH[:1])), in_path, tmp_path / "alone", 1000)
    assert alone.split == 0 and not alone.pre_jobs and len(alone.rounds) == 2
    for r in alone.rounds:
        for step, index in r:
            pipeline.run_task(alone, step, index)
    pipeline.finish_stage(alone)
    one = tmp_path / "one"
    pipeline.run_stage(Stage("04_dedupe", parse_steps(BOTH[:1])), in_path, one)
    for name in ("kept.parquet", "dropped.parquet", "stats.json", "ledger.json"):
        assert (tmp_path / "alone" / name).read_bytes() == (one / name).read_bytes(), name


def test_on_a_two_worker_local_cluster(in_path, in_memory, tmp_path):
    """The rounds as the flow runs them (flows.curate_flow.run_stage: each round's tasks side by side,
    then the merge), here submitted straight to a Dask LocalCluster with two worker processes (the
    Prefect flow on Dask runners: tests/test_runners.py): the same bytes."""
    from distributed import Client, LocalCluster

    stage = Stage("04_dedupe", parse_steps(TASKS))
    out = tmp_path / "04_dedupe"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        plan = pipeline.plan_stage(stage, in_path, out, shard_rows=1000)
        where = set()
        for tasks in plan.rounds:
            futures = [client.submit(pipeline.run_task, plan, step, index, pure=False) for step, index in tasks]
            client.gather(futures)
            where |= {w for ws in client.who_has(futures).values() for w in ws}
        client.submit(pipeline.finish_stage, plan, pure=False).result()
    assert len(where) == 2  # both workers ran tasks
    _same_as_in_memory(out, in_memory)


# ------------------------------------------------------------------ killed workers and killed runs
#
# Tasks are submitted through a gate (a plain wrapper around pipeline.run_task, the dedupe itself
# untouched): a gated task records that a worker started it, then waits for the gate file before it
# runs. The kill thus always lands while a round is under way, with some of its tasks finished
# (markers on disk) and a worker busy with another: the outcome does not depend on timing.

def _gated_task(gate: str, gated: list[tuple[str, int]]):
    """``task(plan, step, index)`` for a Dask worker: ``(step, index)`` in ``gated`` first writes
    ``started-<step>-<index>-<pid>`` beside ``gate``, then waits for ``gate`` to exist."""
    def task(plan, step, index):
        import os
        import time
        from pathlib import Path

        from curate import pipeline

        g = Path(gate)
        if (step, index) in gated:
            (g.parent / f"started-{step}-{index}-{os.getpid()}").touch()
            deadline = time.monotonic() + 120
            while not g.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gate {g} never opened")
                time.sleep(0.02)
        return pipeline.run_task(plan, step, index)
    return task


def _wait_for(cond, what: str, timeout: float = 90.0):
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.02)


def _work_files(work: Path) -> dict[str, int]:
    """Every finished file of the job's work folder (no temporaries) with its mtime."""
    return {p.name: p.stat().st_mtime_ns for p in sorted(work.iterdir()) if not p.name.startswith(".")}


def _unchanged_since(before: dict[str, int], work: Path) -> None:
    """The tasks finished before the kill were not redone: their markers and outputs keep their mtimes."""
    done = [n for n in before if n.startswith("done-")]
    assert done
    assert _work_files(work).items() >= before.items()


@pytest.fixture(scope="module")
def in_tasks(in_path, tmp_path_factory) -> Path:
    """The stage run as tasks in this process, with TASKS' parameters (its stats.json bytes are the
    reference: the in-memory stage's differ in the parameters)."""
    out = tmp_path_factory.mktemp("in-tasks") / "04_dedupe"
    plan = pipeline.plan_stage(Stage("04_dedupe", parse_steps(TASKS)), in_path, out, shard_rows=1000)
    for r in plan.rounds:
        for step, index in r:
            pipeline.run_task(plan, step, index)
    pipeline.finish_stage(plan)
    return out


def _same_bytes(out: Path, in_memory: Path, in_tasks: Path) -> None:
    _same_as_in_memory(out, in_memory)
    for name in ("kept.parquet", "dropped.parquet", "stats.json", "ledger.json"):
        assert (out / name).read_bytes() == (in_tasks / name).read_bytes(), name


def test_worker_killed_mid_round_on_a_dask_cluster(in_path, in_memory, in_tasks, tmp_path):
    """A Dask LocalCluster of two worker processes runs the rounds; once signatures 0 is done (its
    marker on disk), the worker busy with another signatures task is SIGKILLed. Dask runs that task
    again on a worker (the nanny restarts the killed one); a finished task whose result the dead
    worker held and that Dask runs again finds its marker, so no finished task is redone (markers and
    outputs keep their mtimes). The first run completes, and the stage is the same bytes."""
    import os
    import signal

    from distributed import Client, LocalCluster

    stage = Stage("04_dedupe", parse_steps(TASKS))
    out = tmp_path / "04_dedupe"
    gate = tmp_path / "gate" / "open"
    gate.parent.mkdir()
    plan = pipeline.plan_stage(stage, in_path, out, shard_rows=1000)
    first = plan.rounds[0]
    gated = [t for t in first if t[0] == "signatures" and t[1] > 0]
    assert len(gated) >= 2
    work = Path(plan.job.work_dir)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
        task = _gated_task(str(gate), gated)
        # ungated tasks first: each worker runs them before it blocks on a gated one
        futures = [client.submit(task, plan, s, i, pure=False) for s, i in [t for t in first if t not in gated] + gated]
        _wait_for(lambda: (work / "done-signatures-00000.json").exists(), "signatures 0")
        started = _wait_for(lambda: [p for p in gate.parent.glob("started-*") if int(p.name.rsplit("-", 1)[1]) in pids],
                            "a worker in a gated task")
        victim = int(started[0].name.rsplit("-", 1)[1])
        before = _work_files(work)
        assert not all((work / f"done-{s}-{i:05d}.json").exists() for s, i in gated)  # the round is under way
        os.kill(victim, signal.SIGKILL)
        gate.touch()
        client.gather(futures)
        for tasks in plan.rounds[1:]:
            client.gather([client.submit(task, plan, s, i, pure=False) for s, i in tasks])
        _unchanged_since(before, work)
        client.submit(pipeline.finish_stage, plan, pure=False).result()
        assert victim not in set(client.run(os.getpid).values())
    _same_bytes(out, in_memory, in_tasks)


_DRIVER = '''
"""A stage's rounds on a LocalCluster of two worker processes, the tasks gated as in the test."""
import pickle
import sys
from pathlib import Path

from distributed import Client, LocalCluster

from curate import pipeline


def task(plan, step, index, gate, gated):
    import os
    import time

    g = Path(gate)
    if (step, index) in gated:
        (g.parent / f"started-{step}-{index}-{os.getpid()}").touch()
        while not g.exists():
            time.sleep(0.02)
    return pipeline.run_task(plan, step, index)


if __name__ == "__main__":
    plan, gate, gated = pickle.loads(Path(sys.argv[1]).read_bytes())
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \\
            Client(cluster) as client:
        for tasks in plan.rounds:
            tasks = [t for t in tasks if t not in gated] + [t for t in tasks if t in gated]
            client.gather([client.submit(task, plan, s, i, gate, gated, pure=False) for s, i in tasks])
        client.submit(pipeline.finish_stage, plan, pure=False).result()
'''


def test_run_killed_mid_round_resumes_on_a_fresh_cluster(in_path, in_memory, in_tasks, tmp_path):
    """The whole run killed mid-round: a driver process with its own two-worker LocalCluster runs the
    rounds; once buckets 0 is done and a worker is inside another buckets task, the driver's process
    group (driver, nannies, workers) is SIGKILLed. A fresh cluster reruns the stage from a new plan:
    the tasks finished before the kill are not redone, and the stage is the same bytes."""
    import os
    import pickle
    import signal
    import subprocess
    import sys

    from distributed import Client, LocalCluster

    stage = Stage("04_dedupe", parse_steps(TASKS))
    out = tmp_path / "04_dedupe"
    gate = tmp_path / "gate" / "open"  # never opened: the killed run's gated tasks never start
    gate.parent.mkdir()
    plan = pipeline.plan_stage(stage, in_path, out, shard_rows=1000)
    assert plan.rounds[1][0] == ("buckets", 0) and len(plan.rounds[1]) >= 3
    gated = [t for t in plan.rounds[1] if t != ("buckets", 0)]
    work = Path(plan.job.work_dir)
    (tmp_path / "plan.pkl").write_bytes(pickle.dumps((plan, str(gate), gated)))
    (tmp_path / "driver.py").write_text(_DRIVER, encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "driver.log"
    with open(log, "wb") as f:  # a file, not a pipe: the workers inherit it and a full pipe would block them
        proc = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "plan.pkl")], env=env,
                                cwd=tmp_path, start_new_session=True, stdout=f, stderr=f)
    try:
        _wait_for(lambda: (work / "done-buckets-00000.json").exists() or proc.poll() is not None, "buckets 0")
        started = _wait_for(lambda: list(gate.parent.glob("started-buckets-*")) or proc.poll() is not None,
                            "a worker in a gated buckets task")
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        before = _work_files(work)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    workers = {int(p.name.rsplit("-", 1)[1]) for p in started}
    for pid in workers:  # the workers went with the driver: nothing writes into the work folder any more
        _wait_for(lambda: not Path(f"/proc/{pid}").exists() or
                  Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z", f"worker {pid} gone", 30)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "_SUCCESS.json").exists() and (work / "done-buckets-00000.json").exists()
    assert not any((work / f"done-{s}-{i:05d}.json").exists() for s, i in gated)

    plan = pipeline.plan_stage(stage, in_path, out, shard_rows=1000)  # the rerun: a new plan, a new cluster
    assert not plan.done and Path(plan.job.work_dir) == work
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        for tasks in plan.rounds:
            client.gather([client.submit(pipeline.run_task, plan, s, i, pure=False) for s, i in tasks])
        _unchanged_since(before, work)
        client.submit(pipeline.finish_stage, plan, pure=False).result()
    _same_bytes(out, in_memory, in_tasks)
