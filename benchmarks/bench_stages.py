"""Rows/s and peak memory of every curation stage on the full mirror (no Prefect, same code).

Each stage runs in its own child process so that its peak resident memory (ru_maxrss) is its own.
Usage: python benchmarks/bench_stages.py [--mirror ../shared/corpora] [--work /tmp/tiger-bench]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import shutil
import time
from pathlib import Path


def _child(stage: str, args: dict, q) -> None:
    from curate import pipeline
    from curate.download import fetch_source, load_registry
    from curate.recipe import STAGES, load_recipe

    t0 = time.perf_counter()
    work = Path(args["work"])
    recipe = load_recipe(args.get("recipe"))
    if stage == "download":
        files = []
        for s in load_registry():
            if s.name in recipe.sources:
                files += fetch_source(s, work / "raw", mirror=Path(args["mirror"]), progress=False)
        (work / "files.json").write_text(json.dumps(files, ensure_ascii=False))
        n = len(files)
    elif stage == "01_parse":
        files = json.loads((work / "files.json").read_text())
        n = pipeline.parse_stage(files, work / stage)["in"]
    elif stage == "mixtures":
        pipeline.mixtures_stage(work / "05_diversity" / "kept.parquet", work / "mixtures", recipe.mixtures)
        import pandas as pd

        n = len(pd.read_parquet(work / "05_diversity" / "kept.parquet", columns=["id"]))
    else:
        prev = STAGES[STAGES.index(stage) - 1]
        n = pipeline.run_stage(recipe.stage(stage), work / prev / "kept.parquet", work / stage)["in"]
    q.put({"stage": stage, "rows_in": n, "seconds": time.perf_counter() - t0,
           "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", default="../shared/corpora")
    ap.add_argument("--work", default="/tmp/tiger-bench")
    ap.add_argument("--recipe")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    Path(a.work).mkdir(parents=True)
    ctx = mp.get_context("spawn")
    print(f"machine: {platform.machine()}, {mp.cpu_count()} cores, python {platform.python_version()}")
    print(f"{'stage':<14}{'rows in':>10}{'seconds':>10}{'rows/s':>12}{'peak MiB':>10}")
    for stage in ["download", "01_parse", "02_normalize", "03_filter", "04_dedupe", "05_diversity", "mixtures"]:
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(stage, {"work": a.work, "mirror": a.mirror, "recipe": a.recipe}, q))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"stage {stage} failed (exit code {p.exitcode})")
        r = q.get()
        rate = r["rows_in"] / r["seconds"] if r["seconds"] else float("nan")
        print(f"{r['stage']:<14}{r['rows_in']:>10,}{r['seconds']:>10.2f}{rate:>12,.0f}{r['peak_mib']:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
