"""The dedupe stage's partitioned near-duplicate search run as tasks (curate.minhash.partitioned's
PartitionJob through pipeline.plan_stage/run_task, the flow's rounds on a task runner): the same
kept/dropped bytes, ledger and figures as the in-memory stage, on real mirror rows with a planted
cluster split across row partitions and exact copies the exact step drops first."""
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
