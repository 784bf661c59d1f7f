"""Training throughput of the tiny base on CPU: tokens/s and peak memory per constraint arm.

    .venv/bin/python benchmarks/bench_train.py [--run-dir data/processed/<run>] [--steps 40] [--threads 2]

Uses the run's curated pool (newest run by default) and the default tiny base built from it (built
once and cached, the same model `tiger experiment` uses), fine-tunes a random 1,000-row sample with
each constraint arm in a fresh process (so each peak RSS is that arm's own), and prints a table.
Tokens are non-padding tokens fed to the model per second of training (the constraint's extra
forward for `kl` counts as cost, not as tokens).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _arm(args: dict, q) -> None:
    import flows  # noqa: F401
    import torch

    from train.finetune import finetune

    torch.set_num_threads(args["threads"])
    s = finetune(args["mixture"], args["out"], base_model=args["base"], constraint=args["constraint"],
                 max_steps=args["steps"], save_steps=10**9, micro_batch_size=args["batch"], cutoff_len=args["cutoff"],
                 threads=args["threads"], log_every=10**9, resume=False)
    q.put({"constraint": args["constraint"], "tokens_per_second": s["tokens_per_second"],
           "steps_per_second": round(s["steps"] / s["train_seconds"], 2), "tokens": s["tokens_seen"],
           "train_seconds": s["train_seconds"],
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", help="curated run folder (default: newest under data/processed)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--cutoff", type=int, default=256)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--constraints", nargs="+", default=["none", "gravity", "kl"])
    a = p.parse_args()

    os.chdir(ROOT)
    import flows  # noqa: F401
    import pandas as pd

    from curate.io import read_parquet
    from flows.train_cli import POOL, find_run_dir
    from train.evaluate import pretrain_exclusions
    from train.tiny import build_tiny

    run_dir = find_run_dir(a.run_dir, None, "data")
    pool = read_parquet(run_dir / POOL)
    t0 = time.time()
    exclude = pretrain_exclusions(pool, 20, 0)  # the experiment's default eval set and its twins
    base = build_tiny(run_dir / POOL, "data/processed/models", exclude_ids=exclude)
    build_s = time.time() - t0
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    sample = pool.sample(n=min(1000, len(pool)), random_state=0)
    mixture = tmp / "mix.json"
    mixture.write_text(json.dumps(sample[["instruction", "input", "output"]].to_dict("records"), ensure_ascii=False),
                       encoding="utf-8")
    build = json.loads((base / "build.json").read_text())
    print(f"tiny base: {base} ({build['parameters'] / 1e6:.1f}M parameters; built in {build['seconds']} s, "
          f"found in {build_s:.1f} s this time)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch threads {a.threads}; "
          f"{a.steps} steps x micro-batch {a.batch}, cutoff {a.cutoff}")
    ctx = mp.get_context("spawn")
    rows = []
    for c in a.constraints:
        q = ctx.Queue()
        proc = ctx.Process(target=_arm, args=({"mixture": str(mixture), "out": str(tmp / c), "base": str(base),
                                               "constraint": c, "steps": a.steps, "batch": a.batch,
                                               "cutoff": a.cutoff, "threads": a.threads}, q))
        proc.start()
        rows.append(q.get())
        proc.join()
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
