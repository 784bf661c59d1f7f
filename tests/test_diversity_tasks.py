"""The diversity stage's taggers run as tasks (curate.jobs: the cluster and novelty fits on their
seeded samples, then one task per row partition): the same kept bytes, stats and ledger as the
in-memory stage, on real mirror rows split into several partitions; a stopped stage resumes
without redoing finished tasks; on a two-worker Dask cluster, the same bytes."""
from __future__ import annotations

from pathlib import Path

import pytest

from curate import pipeline
from curate.embed import FIT_STORE
from curate.io import write_parquet
from curate.parse import parse_files
from curate.recipe import Stage, parse_steps

FILES = [("alpaca_chinese", "translated/zh-data-part-00.json"), ("belle", "dev1K.json")]
# small chunks and samples, so 5,000+ rows make several partitions, chunks and reference slots
STEPS = [{"task_type_tagger": {}},
         {"cluster_tagger": {"n_clusters": 12, "seed": 0, "chunk_rows": 700, "fit_sample": 2500}},
         {"novelty_tagger": {"k": 10, "ref_size": 1500, "fit_sample": 2500, "seed": 0}}]
STAGE = Stage("05_diversity", parse_steps(STEPS))
FILES_OUT = ("kept.parquet", "stats.json", "ledger.json")


@pytest.fixture(scope="module")
def in_path(mirror, tmp_path_factory) -> Path:
    res = parse_files([{"source": s, "file": f, "path": str(mirror / s / f), "format": "json"} for s, f in FILES])
    assert len(res.kept) > 4200  # over two of the novelty search's 2,048-row chunks
    path = tmp_path_factory.mktemp("div-in") / "04_dedupe" / "kept.parquet"
    path.parent.mkdir()
    write_parquet(path, res.kept.reset_index(drop=True))
    return path


@pytest.fixture(scope="module")
def in_memory(in_path) -> Path:
    out = in_path.parent.parent / "one" / "05_diversity"
    pipeline.run_stage(STAGE, in_path, out)
    return out


def _same(got: Path, want: Path) -> None:
    for name in FILES_OUT:
        assert (got / name).read_bytes() == (want / name).read_bytes(), name
    assert not (got / "_work").exists()  # the jobs' files go once the stage is written


def test_tagger_jobs_in_process_write_the_in_memory_bytes(in_path, in_memory, tmp_path, monkeypatch):
    """The merge adds the taggers' columns to each shard's rows as it writes them (no frame of the
    stage's rows): the in-memory bytes, stats (examples and diversity figures) included."""
    seen = []
    tail = pipeline._tagged_tail
    monkeypatch.setattr(pipeline, "_tagged_tail", lambda plan: seen.append(tail(plan)) or seen[-1])
    out = tmp_path / "run" / "05_diversity"
    plan = pipeline.plan_stage(STAGE, in_path, out, shard_rows=1000)
    jobs = dict(plan.tag_jobs)
    assert sorted(jobs) == [1, 2] and plan.job is None
    assert len(jobs[1].row_parts()) >= 3 and jobs[1].step_rows == 1400  # 1000 rounded up to 2 chunks of 700
    assert len(jobs[2].row_parts()) >= 2 and jobs[2].step_rows == 2048  # the neighbour search's chunk
    assert [sorted({s for s, _ in r}) for r in plan.rounds] == [["1:fit", "2:fit"], ["1:rows", "2:rows"]]
    # the costliest row tasks first (the neighbour search's, then the largest partitions), so a short
    # task ends the round; every task once
    cost = {f"{k}:{s}": (j, s) for k, j in jobs.items() for s in ("rows", "fit")}
    costs = [cost[s][0].task_cost(cost[s][1], i) for s, i in plan.rounds[1]]
    assert costs == sorted(costs, reverse=True) and plan.rounds[1][0][0] == "2:rows" and plan.rounds[1][-1][0] == "1:rows"
    assert sorted(plan.rounds[1]) == sorted([(f"{k}:rows", p) for k, j in jobs.items() for p in range(len(j.row_parts()))])
    for a, b in plan.shards:
        pipeline.run_shard(plan, a, b)
    # each shard's task counted its instructions' wording for the summary; one left to the merge
    assert all((plan.shard_dir(a, b) / "text_counts.pkl").exists() for a, b in plan.shards)
    (plan.shard_dir(*plan.shards[1]) / "text_counts.pkl").unlink()
    with pytest.raises(RuntimeError, match="not done"):
        pipeline.finish_stage(plan)
    pipeline.run_task(plan, "1:fit", 0)
    pipeline.run_task(plan, "2:fit", 0)
    pipeline.run_task(plan, "1:rows", 1)
    # stopped here, the stage resumes: a new plan finds the finished tasks' markers and skips them
    plan = pipeline.plan_stage(STAGE, in_path, out, shard_rows=1000)
    fit = Path(dict(plan.tag_jobs)[1].work_dir) / "fit.pkl"
    done = Path(dict(plan.tag_jobs)[1].work_dir) / "labels-00001.npy"
    mtimes = fit.stat().st_mtime_ns, done.stat().st_mtime_ns
    for r in plan.rounds:
        for step, index in reversed(r):  # any order inside a round
            pipeline.run_task(plan, step, index)
    assert (fit.stat().st_mtime_ns, done.stat().st_mtime_ns) == mtimes
    pipeline.finish_stage(plan)
    _same(out, in_memory)
    assert len(seen) == 1 and seen[0] is not None and len(seen[0][0].loads) == len(plan.shards) >= 5
    # the novelty fit task kept the embedding where the in-memory stage keeps it (the report reuses it)
    assert sorted(p.name for p in (out.parent / FIT_STORE).iterdir()) == \
        sorted(p.name for p in (in_memory.parent / FIT_STORE).iterdir())


def test_tagger_jobs_on_a_two_worker_local_cluster(in_path, in_memory, tmp_path):
    from distributed import Client, LocalCluster

    out = tmp_path / "run" / "05_diversity"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        plan = pipeline.plan_stage(STAGE, in_path, out, shard_rows=1000)
        shards = [client.submit(pipeline.run_shard, plan, a, b, pure=False) for a, b in plan.shards]
        where = set()
        for tasks in plan.rounds:
            futures = [client.submit(pipeline.run_task, plan, step, index, pure=False) for step, index in tasks]
            client.gather(futures)
            where |= {w for ws in client.who_has(futures).values() for w in ws}
        client.gather(shards)
        client.submit(pipeline.finish_stage, plan, pure=False).result()
    assert len(where) == 2
    _same(out, in_memory)
