"""The diversity stage's taggers run as tasks (curate.jobs: the cluster and novelty fits on their
seeded samples, then one task per row partition): the same kept bytes, stats and ledger as the
in-memory stage, on real mirror rows split into several partitions; a stopped stage resumes
without redoing finished tasks; on a two-worker Dask cluster, the same bytes."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
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
    # the cluster and novelty jobs compute the same TF-IDF rows: one task per partition does both
    (k, shared), = plan.tag_jobs
    jobs = plan.jobs()
    assert k == 1 and sorted(jobs) == [1, 2] and plan.job is None and dict(shared.members) == jobs
    # the partitions of the coarser unit (the neighbour search's 2,048-row chunk), the cluster job's
    # edges rounded up to its 700-row chunks
    assert jobs[2].step_rows == 2048 and len(jobs[2].row_parts()) >= 3 and jobs[1].unit == 700
    assert [(-(-a // 700) * 700, min(jobs[1].n, -(-b // 700) * 700)) for a, b in jobs[2].row_parts()] == jobs[1].row_parts()
    assert [sorted({s for s, _ in r}) for r in plan.rounds] == [["1:fit"], ["1:rows"]]
    assert plan.rounds[0] == (("1:fit", 0), ("1:fit", 1))
    # the costliest row tasks first (the largest partitions), so a short task ends the round; every task once
    costs = [shared.task_cost(s.split(":")[1], i) for s, i in plan.rounds[1]]
    assert costs == sorted(costs, reverse=True) and costs[-1] < costs[0]
    assert sorted(plan.rounds[1]) == [("1:rows", p) for p in range(len(jobs[2].row_parts()))]
    for a, b in plan.shards:
        pipeline.run_shard(plan, a, b)
    # each shard's task counted its instructions' wording for the summary; one left to the merge
    assert all((plan.shard_dir(a, b) / "text_counts.pkl").exists() for a, b in plan.shards)
    (plan.shard_dir(*plan.shards[1]) / "text_counts.pkl").unlink()
    with pytest.raises(RuntimeError, match="not done"):
        pipeline.finish_stage(plan)
    pipeline.run_task(plan, "1:fit", 0)
    pipeline.run_task(plan, "1:fit", 1)
    pipeline.run_task(plan, "1:rows", 1)
    # a task killed between its two jobs' files: the other job's part is done on the rerun
    (Path(jobs[2].work_dir) / "done-rows-00001.json").unlink()
    # stopped here, the stage resumes: a new plan finds the finished tasks' markers and skips them
    plan = pipeline.plan_stage(STAGE, in_path, out, shard_rows=1000)
    fit = Path(plan.jobs()[1].work_dir) / "fit.pkl"
    done = Path(plan.jobs()[1].work_dir) / "labels-00001.npy"
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


def test_row_partitions_shrink_towards_the_end_of_the_round():
    """Full-size partitions first, then smaller ones (guided: about a quarter of what is left, at
    least a quarter of the full size), in whole units, none over the size: a round ends on short
    tasks. A job within one partition's size is one partition."""
    from curate.jobs import RowJob

    for n, rows, unit in [(2_158_952, 250_000, 2048), (2_158_952, 250_000, 100_000), (2_500_000, 200_000, 1),
                          (5_000, 1000, 700), (1_000_003, 100_000, 1)]:
        job = RowJob("in", "work", n, rows, unit)
        parts = job.row_parts()
        sizes = [b - a for a, b in parts]
        assert parts[0][0] == 0 and parts[-1][1] == n and all(p[1] == q[0] for p, q in zip(parts, parts[1:]))
        assert all(a % unit == 0 for a, _ in parts) and sizes[0] == job.step_rows == max(sizes)
        assert sizes == sorted(sizes, reverse=True)  # the longest first, the shortest last
        quarter = -(-job.step_rows // unit // 4) * unit
        assert all(s >= quarter for s in sizes[:-1]) and sizes[-1] <= quarter and sizes[-2] <= job.step_rows // 2
    # 22 cluster chunks of 100,000 rows, at most 3 a partition
    assert [b - a for a, b in RowJob("in", "work", 2_158_952, 250_000, 100_000).row_parts()] == \
        [300_000] * 5 + [200_000] * 2 + [100_000] * 2 + [58_952]
    assert RowJob("in", "work", 10, 200_000).row_parts() == [(0, 10)]
    assert RowJob("in", "work", 250_000, 250_000, 2048).row_parts() == [(0, 250_000)]


def test_stage_shards_shrink_towards_the_end_too():
    """A stage's shards follow the same guided sizes: full ones first, the last ones short; one
    shard for at most a shard's rows, one empty shard for none."""
    from curate.pipeline import _shard_ranges

    shards = _shard_ranges(2_500_000, 250_000)
    sizes = [b - a for a, b in shards]
    assert shards[0] == (0, 250_000) and shards[-1][1] == 2_500_000
    assert all(p[1] == q[0] for p, q in zip(shards, shards[1:])) and sizes == sorted(sizes, reverse=True)
    assert sizes[-1] <= 62_500 and len(shards) == 15
    assert _shard_ranges(250_000, 250_000) == ((0, 250_000),) and _shard_ranges(0, 7) == ((0, 0),)


def test_a_resume_with_another_shard_size_starts_its_partitions_afresh(in_path, in_memory, tmp_path):
    """Finished partitions of a run with one shard size are not taken for another size's partitions
    of the same number (each size works in its own folder): the resumed stage writes the same bytes."""
    out = tmp_path / "run" / "05_diversity"
    plan = pipeline.plan_stage(STAGE, in_path, out, shard_rows=1000)
    for step, index in plan.rounds[0] + plan.rounds[1][:2]:
        pipeline.run_task(plan, step, index)
    plan = pipeline.plan_stage(STAGE, in_path, out, shard_rows=3000)
    assert plan.jobs()[2].row_parts() != pipeline.plan_stage(STAGE, in_path, out, shard_rows=1000).jobs()[2].row_parts()
    for a, b in plan.shards:
        pipeline.run_shard(plan, a, b)
    for r in plan.rounds:
        for step, index in r:
            pipeline.run_task(plan, step, index)
    pipeline.finish_stage(plan)
    _same(out, in_memory)


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


def _finished(ops, jobs, df):
    """Each job's tagger result (kept frame and figures) from its finished files."""
    out = []
    for op, job in zip(ops, jobs):
        res = op.finish_job(df, job)
        out.append((res.kept, res.stats))
    return out


def _run_all(job) -> None:
    for r in job.rounds():
        for step, index in r:
            job.run(step, index)


@pytest.mark.parametrize("cluster, shared_rows", [
    # cluster chunks of 2,100 rows lead: the novelty job's edges round up to 4,096, so a partition
    # of its ends up empty
    ({"chunk_rows": 2100}, True),
    # bigrams for the clusters: the vectorisers differ, each job's own rows step runs
    ({"chunk_rows": 700, "ngram_range": [1, 2]}, False)])
def test_shared_tfidf_rows_give_each_job_its_own_result(in_path, tmp_path, cluster, shared_rows):
    import dataclasses

    from curate.io import read_parquet
    from curate.jobs import SharedTfidfJob, same_tfidf, share_tfidf

    ops = [s.build() for s in parse_steps([
        {"cluster_tagger": {"n_clusters": 12, "seed": 0, "fit_sample": 2500, **cluster}},
        {"novelty_tagger": {"k": 10, "ref_size": 1500, "fit_sample": 2500, "seed": 0}}])]
    df = read_parquet(in_path)
    n = len(df)

    def jobs(root):
        return [op.tag_job(str(in_path), str(tmp_path / root / str(i)), n, 1000) for i, op in enumerate(ops)]

    alone = jobs("alone")
    for job in alone:
        _run_all(job)
    want = _finished(ops, alone, df)
    if shared_rows:
        (_, shared), = share_tfidf(list(enumerate(jobs("shared"))))
        nov = shared.members[1][1]
        assert nov.edges[-2:] == (n, n) and shared.members[0][1] is not None  # an empty last partition
    else:
        assert len(share_tfidf(list(enumerate(jobs("shared"))))) == 2  # not joined: different settings
        c, v = jobs("shared")
        ends = [b for _, b in v.row_parts()]
        shared = SharedTfidfJob(((0, dataclasses.replace(c, edges=(0, *(min(n, -(-b // 700) * 700) for b in ends)))),
                                 (1, v)))
    _run_all(shared)
    assert not shared.missing()
    (_, c), (_, v) = shared.members  # the rows' TF-IDF computed once, or by each job
    assert same_tfidf(c.tfidf_source()[1], v.tfidf_source()[1]) is shared_rows
    got = _finished(ops, [j for _, j in shared.members], df)
    for (gk, gs), (wk, ws) in zip(got, want):
        pd.testing.assert_frame_equal(gk, wk)
        assert gs == ws
