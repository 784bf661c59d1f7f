"""Sharded stages and task runners: same bytes whatever runs them (real mirror rows)."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import yaml

from curate import pipeline
from curate.io import read_json, write_parquet
from curate.recipe import Stage, load_recipe, parse_steps
from curate.records import make_record, records_frame

ROOT = Path(__file__).resolve().parent.parent

# a small real slice: arithmetic and identity rows, BELLE (35 % school math), a translated chunk's
# untranslated English rows (the language filter drops them), traditional chats (t2s converts them)
SLICE = {
    "trans_chinese_alpaca": ["developer_instruction.json", "alpaca_chinese_part_52.json"],
    "alpaca_chinese": ["supplementary/整数加减法.json", "supplementary/翻译问题.json",
                       "translated/alpaca_data-18280-21320-中文-wys未完成.json"],
    "belle": ["dev1K.json"],
    "traditional": ["chinese_vicuna_chat_sample.jsonl"],
}


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in {".parquet", ".json"}}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory, mirror) -> Path:
    """The parse stage's output for the slice (the input of the sharded stages)."""
    from curate.parse import parse_files

    files = []
    for source, rels in SLICE.items():
        for rel in rels:
            fmt = "jsonl" if rel.endswith(".jsonl") else "json"
            files.append({"source": source, "file": rel, "path": str(mirror / source / rel), "format": fmt})
    res = parse_files(files)
    assert len(res.kept) > 3000
    out = tmp_path_factory.mktemp("parsed") / "kept.parquet"
    write_parquet(out, res.kept)
    return out


def _no_examples(stats):
    if isinstance(stats, dict):
        return {k: _no_examples(v) for k, v in stats.items() if k != "examples"}
    if isinstance(stats, list):
        return [_no_examples(v) for v in stats]
    return stats


SMALL_DIVERSITY = [{"task_type_tagger": {}}, {"cluster_tagger": {"n_clusters": 8, "seed": 0}}]


def _stages() -> dict[str, Stage]:
    stages = {s.name: s for s in load_recipe().stages}
    stages["05_diversity"] = Stage("05_diversity", parse_steps(SMALL_DIVERSITY))
    return stages


def _sharded(stage: Stage, in_path: Path, out: Path, shard_rows: int) -> dict:
    plan = pipeline.plan_stage(stage, in_path, out, shard_rows)
    for a, b in reversed(plan.shards):  # any completion order
        pipeline.run_shard(plan, a, b)
    for tasks in plan.rounds:  # the taggers' jobs (the diversity stage's clusters)
        for step, index in reversed(tasks):
            pipeline.run_task(plan, step, index)
    return pipeline.finish_stage(plan)


def test_sharded_stages_write_the_same_bytes_as_one_run(parsed, tmp_path):
    stages = _stages()
    prev = parsed
    for stage in ("02_normalize", "03_filter", "04_dedupe", "05_diversity"):
        one = pipeline.run_stage(stages[stage], prev, tmp_path / "one" / stage)
        for shard_rows in (700, 100_000):
            out = tmp_path / f"sharded-{shard_rows}" / stage
            ledger = _sharded(stages[stage], prev, out, shard_rows)
            assert ledger == one
            got, want = _digest(out), _digest(tmp_path / "one" / stage)
            if shard_rows > 10_000:  # one shard: everything identical
                assert got == want, (stage, shard_rows)
            else:  # the data identical; the stats too except which examples they show
                assert {k: v for k, v in got.items() if k != "stats.json"} == \
                    {k: v for k, v in want.items() if k != "stats.json"}, (stage, shard_rows)
                assert _no_examples(read_json(out / "stats.json")) == \
                    _no_examples(read_json(tmp_path / "one" / stage / "stats.json"))
            assert not (out / "_shards").exists()  # intermediate shards are removed after the merge
        if stage == "03_filter":
            assert one["reasons"].get("not_chinese", 0) > 50  # the untranslated English rows
        prev = tmp_path / "one" / stage / "kept.parquet"
    plan = pipeline.plan_stage(stages["02_normalize"], parsed, tmp_path / "sharded-700" / "02_normalize", 700)
    assert plan.done and plan.shards == ()  # a finished stage is skipped
    plan = pipeline.plan_stage(stages["04_dedupe"], parsed, tmp_path / "new", 700)
    assert not plan.done and plan.shards == ()  # dedupe needs all rows at once: no shards


def test_shards_resume_and_read_rows(parsed, tmp_path):
    out = tmp_path / "03_filter"
    plan = pipeline.plan_stage(_stages()["03_filter"], parsed, out, 1000)
    first = pipeline.run_shard(plan, *plan.shards[0])
    mtime = (Path(first) / "kept.pkl").stat().st_mtime_ns
    assert pipeline.run_shard(plan, *plan.shards[0]) == first
    assert (Path(first) / "kept.pkl").stat().st_mtime_ns == mtime  # a finished shard is not redone
    whole = pipeline.read_parquet(parsed)
    part = pipeline.read_rows(parsed, 1234, 2345)
    assert part.equals(whole.iloc[1234:2345].reset_index(drop=True))
    assert list(part.dtypes) == list(whole.dtypes)
    assert len(pipeline.read_rows(parsed, 10**9, 10**9 + 5)) == 0


def test_parts_read_as_the_file_they_make(parsed, tmp_path):
    """A stage's tasks can read the stage before's rows from its parts while its merge writes the
    file: ``read_parts_rows`` gives what ``read_rows`` gives from the file, dtypes included, with
    parts of uneven sizes, an empty one, and dtypes that the merge makes common."""
    from curate.io import part_facts, read_parts_rows, read_rows, write_parquet_parts

    whole = pipeline.read_parquet(parsed)
    n = len(whole)
    cuts = [0, 1, 1, 700, 1900, n]
    parts = [whole.iloc[a:b].reset_index(drop=True) for a, b in zip(cuts, cuts[1:])]
    parts[2] = parts[2].assign(extra=None, row=parts[2]["row"].astype("float64"))  # object Nones; floats
    loads = [(lambda f=f: f.copy()) for f in parts]
    facts = [part_facts(f) for f in parts]
    path = tmp_path / "kept.parquet"
    write_parquet_parts(path, loads, facts)
    for a, b in [(0, 1), (0, n), (650, 1950), (699, 701), (1900, n), (n, n + 5), (5, 5)]:
        got, want = read_parts_rows(loads, facts, a, b), read_rows(path, a, b)
        assert got.equals(want), (a, b)
        assert list(got.dtypes) == list(want.dtypes), (a, b)
    assert read_rows(path, 650, 1950)["row"].dtype == "float64"  # the merge's common dtype, not the part's


def test_chained_stages_write_what_plain_stages_write(parsed, tmp_path, mirror):
    """normalize and filter chained on the parse stage (their shards read its parts before its
    merge writes the file) write every byte a plain sharded run writes, stats included; each merge
    removes the shards of the stage before, the last its own too."""
    stages = _stages()
    files = []
    for source, rels in SLICE.items():
        for rel in rels:
            files.append({"source": source, "file": rel, "path": str(mirror / source / rel),
                          "format": "jsonl" if rel.endswith(".jsonl") else "json"})
    plan = pipeline.plan_parse(files, tmp_path / "run" / "01_parse", group_bytes=300_000)
    assert len(plan.groups) > 2
    for a, b in reversed(plan.groups):
        pipeline.run_parse_group(plan, a, b)
    sources = pipeline.parse_parts(plan)
    prev, key = tmp_path / "run" / "01_parse", plan.key
    plans = []
    for i, name in enumerate(("02_normalize", "03_filter")):
        cplan = pipeline.plan_chained(stages[name], prev / "kept.parquet", tmp_path / "run" / name, sources, key, 700,
                                      after=prev / "_shards", keep_shards=i == 0)
        assert not (prev / "kept.parquet").exists() or i == 1
        for a, b in reversed(cplan.shards):
            pipeline.run_shard(cplan, a, b)
        if i == 0:  # the stage before is written now, beside this stage's shards
            pipeline.finish_parse(dataclasses.replace(plan, keep_shards=True))
        plans.append(cplan)
        prev, sources, key = tmp_path / "run" / name, pipeline.shard_parts(cplan), cplan.key
    for cplan in plans:
        pipeline.finish_chained(cplan)
    assert not (tmp_path / "run" / "01_parse" / "_shards").exists()
    assert not (tmp_path / "run" / "02_normalize" / "_shards").exists()
    assert not (tmp_path / "run" / "03_filter" / "_shards").exists()
    prev = tmp_path / "run" / "01_parse" / "kept.parquet"
    for name in ("02_normalize", "03_filter"):
        plain = tmp_path / "plain" / name
        _sharded(stages[name], prev, plain, 700)
        assert _digest(tmp_path / "run" / name) == _digest(plain), name
        assert pipeline.plan_stage(stages[name], prev, tmp_path / "run" / name, 700).done  # the same stage
        prev = plain / "kept.parquet"
    with pytest.raises(ValueError, match="row-local"):
        pipeline.plan_chained(stages["04_dedupe"], prev, tmp_path / "x", sources, key)


@pytest.mark.parametrize("diversity", ["small", "recipe"])
def test_a_stage_on_the_decisions_writes_what_it_writes_on_the_file(parsed, tmp_path, diversity):
    """The diversity stage planned on the dedupe stage's decisions (its shards and jobs read the
    rows dedupe keeps from dedupe's input, before dedupe's merge writes them) writes every byte the
    plain stage writes on dedupe's file, and is that stage (a plain rerun finds it done); "recipe":
    the default stage, whose cluster and novelty jobs share their TF-IDF rows."""
    import numpy as np

    stages = _stages()
    if diversity == "recipe":
        stages["05_diversity"] = load_recipe().stage("05_diversity")
    prev = parsed
    for name in ("02_normalize", "03_filter"):
        _sharded(stages[name], prev, tmp_path / "plain" / name, 700)
        prev = tmp_path / "plain" / name / "kept.parquet"
    dedupe, div = tmp_path / "run" / "04_dedupe", tmp_path / "run" / "05_diversity"
    plan = pipeline.plan_stage(stages["04_dedupe"], prev, dedupe, 700)
    assert not pipeline.decides(plan)  # its rounds are not done yet
    for tasks in plan.rounds:
        for step, index in tasks:
            pipeline.run_task(plan, step, index)
    assert pipeline.decides(plan)
    rows = div / "_shards" / "selected-rows.npy"
    n = pipeline.decide_stage(plan, rows)
    assert np.array_equal(np.load(rows), np.flatnonzero(pipeline._decide(plan)["alive"]))  # the merge's rows
    dplan = pipeline.plan_selected(stages["05_diversity"], dedupe / "kept.parquet", div, (prev, rows), n, plan.key, 700)
    assert dplan.shards and dplan.tag_jobs and not (dedupe / "kept.parquet").exists()
    assert all(j.select == dplan.select for j in dplan.jobs().values())  # every job reads the selection
    for a, b in reversed(dplan.shards):
        pipeline.run_shard(dplan, a, b)
    for tasks in dplan.rounds:
        for step, index in reversed(tasks):
            pipeline.run_task(dplan, step, index)
    ledger = pipeline.finish_stage(plan)  # dedupe's merge, from the decisions it took before
    assert ledger["kept"] == n < ledger["in"]
    assert np.array_equal(np.load(rows), np.flatnonzero(~pipeline.read_parquet(prev)["id"].isin(
        pipeline.read_parquet(dedupe / "dropped.parquet")["id"]).to_numpy()))
    pipeline.finish_chained(dplan)
    assert not (div / "_shards").exists() and not (div / "_work").exists()
    _sharded(stages["04_dedupe"], prev, tmp_path / "plain" / "04_dedupe", 700)
    assert _digest(dedupe) == _digest(tmp_path / "plain" / "04_dedupe")
    _sharded(stages["05_diversity"], dedupe / "kept.parquet", tmp_path / "plain" / "05_diversity", 700)
    assert _digest(div) == _digest(tmp_path / "plain" / "05_diversity")
    assert pipeline.plan_stage(stages["05_diversity"], dedupe / "kept.parquet", div, 700).done
    assert not pipeline.selectable(stages["04_dedupe"]) and pipeline.selectable(stages["05_diversity"])
    with pytest.raises(ValueError, match="partitioned"):
        pipeline.plan_selected(stages["04_dedupe"], prev, tmp_path / "x", (prev, rows), n, plan.key)


def test_merge_stats():
    a = {"changed": 2, "examples": [1, 2, 3], "by_field": {"output": 2}, "params": {"seed": 3}, "config": "t2s"}
    b = {"changed": 5, "examples": [4], "by_field": {"input": 1}, "params": {"seed": 3}, "config": "t2s"}
    assert pipeline.merge_stats([a, b]) == {"changed": 7, "examples": [1, 2, 3], "by_field": {"input": 1, "output": 2},
                                            "params": {"seed": 3}, "config": "t2s"}
    with pytest.raises(ValueError, match="config"):
        pipeline.merge_stats([a, dict(b, config="s2t")])
    with pytest.raises(ValueError, match="params"):
        pipeline.merge_stats([a, dict(b, params={"seed": 4})])


def test_task_runner_specs():
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runners import make_task_runner

    assert isinstance(make_task_runner("thread"), ThreadPoolTaskRunner)
    assert isinstance(make_task_runner("process", 2), ProcessPoolTaskRunner)
    r = make_task_runner("dask://10.0.0.5:8786")
    assert isinstance(r, DaskTaskRunner) and r.address == "tcp://10.0.0.5:8786"
    for bad in ("dask://", "ray", "threads"):
        with pytest.raises(ValueError):
            make_task_runner(bad)


_SHARED_API_PROBE = """
import glob, os, sys
sys.path.insert(0, sys.argv[1])
import flows.settings  # noqa: F401  (the project's Prefect defaults)
from prefect import flow, task
from flows.runners import make_task_runner, share_local_api


def children():
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            if int(open(stat).read().split()[3]) == os.getpid():
                out.append(open(stat[:-4] + "cmdline").read().replace("\\0", " "))
        except (OSError, ValueError, IndexError):
            pass
    return out


@task
def probe():
    from prefect.runtime import task_run
    return os.getpid(), os.environ.get("PREFECT_API_URL"), children(), task_run.id is not None


@flow
def two_tasks():
    return [f.result() for f in (probe.submit(), probe.submit())]


if __name__ == "__main__":  # worker processes are spawned: they import this file
    kind = sys.argv[2]
    url = share_local_api(kind)
    from prefect.settings import PREFECT_API_URL
    assert PREFECT_API_URL.value() == url  # this process's Prefect (imported before) uses it too
    got = two_tasks.with_options(task_runner=make_task_runner(kind, 2))()
    servers = [c for c in children() if "uvicorn" in c]
    print(repr((url, got, len(servers))))
"""


@pytest.mark.parametrize("kind", ["process", "dask"])
def test_local_workers_report_to_the_flows_own_api(tmp_path, kind):
    """`tiger run --runner process|dask`: the worker processes use the flow's ephemeral Prefect API
    (one server for the run) instead of each starting a server of its own."""
    import ast
    import os
    import subprocess
    import sys

    script = tmp_path / "probe.py"
    script.write_text(_SHARED_API_PROBE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    out = subprocess.run([sys.executable, str(script), str(ROOT), kind], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    url, got, servers = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert url and url.startswith("http://127.0.0.1:")
    assert servers == 1  # the flow process's one API server
    for pid, worker_url, worker_children, has_run in got:
        assert pid != os.getpid() and worker_url == url and has_run
        assert not [c for c in worker_children if "uvicorn" in c], worker_children


def test_no_api_is_shared_where_workers_are_not_local(monkeypatch):
    from flows.runners import share_local_api

    assert share_local_api("thread") is None and share_local_api("dask://10.0.0.5:8786") is None
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    assert share_local_api("process") is None


_RELAUNCH_PROBE = """
import os, sys
sys.path.insert(0, sys.argv[1])
import flows.settings  # noqa: F401
from prefect.settings import PREFECT_API_URL
from flows.runners import launch_local_api

api = launch_local_api("process")
first = api.wait()
assert os.environ["PREFECT_API_URL"] == PREFECT_API_URL.value() == first
api.stop()
api._launch()  # what wait() does when the port was taken: another server, shared again
second = api.wait()
print(repr((first, second, os.environ["PREFECT_API_URL"], PREFECT_API_URL.value())))
api.stop()
"""


def test_a_relaunched_api_server_is_shared_again(tmp_path):
    """The server ``tiger run`` launches early: its URL is in the environment and this process's
    Prefect settings, and a server launched again on another port replaces it in both."""
    import ast
    import os
    import subprocess
    import sys

    script = tmp_path / "relaunch.py"
    script.write_text(_RELAUNCH_PROBE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    out = subprocess.run([sys.executable, str(script), str(ROOT)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second, env_url, setting = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert first != second and env_url == setting == second


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two single-threaded worker processes on loopback, started as separate
    processes (as `make cluster` does) and stopped by PID afterwards; yields the address."""
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", f"tcp://{address}", "--nworkers", "2",
                                   "--nthreads", "1", "--no-dashboard", "--local-directory", str(tmp_path / "dask")],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        from distributed import Client

        with Client(f"tcp://{address}", timeout=60) as c:
            c.wait_for_workers(2, timeout=120)
            time.sleep(0.1)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


@pytest.mark.slow
def test_flow_on_dask_clusters_matches_the_default_runner(tmp_path, link_slice, dask_cluster):
    """The thread pool, a process pool (whose flow builds the report in its own process), a
    LocalCluster and a separately started scheduler + workers: same bytes (the near-duplicate search
    partitioned, so its rounds run as tasks on each runner)."""
    from flows.curate_flow import curate_flow
    from flows.runners import make_task_runner

    m = link_slice(tmp_path / "mirror", SLICE)
    recipe = dict(load_recipe().data)
    recipe["diversity"] = SMALL_DIVERSITY
    recipe["dedupe"] = [{"document_exact_deduplicator": {}},
                        {"document_minhash_deduplicator": {"partitions": 3, "partition_rows": 1500}}]
    recipe["mixtures"] = ["random-300", "diverse-300"]
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    runs = {}
    for name, runner in (("thread", make_task_runner("thread")),
                         ("process", make_task_runner("process", workers=2)),
                         ("dask", make_task_runner("dask", workers=2, processes=False)),
                         ("cluster", make_task_runner(f"dask://{dask_cluster}"))):
        flow = curate_flow.with_options(task_runner=runner)
        runs[name] = Path(flow(recipe_path=str(tmp_path / "recipe.yaml"), mirror=str(m),
                               data_dir=str(tmp_path / name), shard_rows=900))
    assert runs["thread"].name == runs["process"].name == runs["dask"].name == runs["cluster"].name
    assert _digest(runs["thread"]) == _digest(runs["process"]) == _digest(runs["dask"]) == _digest(runs["cluster"])
    assert (runs["process"] / "report" / "report.html").read_bytes() == (runs["thread"] / "report" / "report.html").read_bytes()
    ledger = read_json(runs["dask"] / "manifest.json")["ledger"]
    pipeline.check_chain(ledger)
    assert ledger[0]["kept"] > 3000 and ledger[2]["reasons"].get("not_chinese", 0) > 50


def test_bad_shard_rows(parsed, tmp_path):
    with pytest.raises(ValueError, match="shard_rows"):
        pipeline.plan_stage(Stage("02_normalize"), parsed, tmp_path / "x", 0)
    # a stage with no operators still writes its (unchanged) outputs through the merge
    empty = records_frame([make_record("s", "f.json", 0, "你好", "", "好")])
    p = tmp_path / "in.parquet"
    write_parquet(p, empty)
    ledger = _sharded(Stage("02_normalize"), p, tmp_path / "02_normalize", 10)
    assert ledger["in"] == ledger["kept"] == 1
