"""Speed of the task-type labeller (``task_type_tagger``) on one core.

    python benchmarks/bench_labeller.py [POOL.parquet] [--repeat 3]

Default input: the curated pool of the newest run (``data/processed/run-*/05_diversity/kept.parquet``);
without one, the translated-Alpaca parts of the mirror (parsed, not normalised). Prints rows/s of the
operator (rules, counts, examples) best of ``--repeat``, and of ``match_rule`` alone.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load(path: str | None):
    import pandas as pd

    cols = ["id", "instruction", "input", "output"]
    if path is None:
        pools = sorted(glob.glob(str(ROOT / "data/processed/run-*/05_diversity/kept.parquet")), key=os.path.getmtime)
        path = pools[-1] if pools else None
    if path:
        return pd.read_parquet(path, columns=cols), path
    from curate.parse import parse_file
    from curate.records import records_frame

    mirror = Path(os.environ.get("TIGER_MIRROR", ROOT.parent / "shared" / "corpora"))
    recs = []
    for f in sorted((mirror / "trans_chinese_alpaca").glob("alpaca_chinese_part_*.json")):
        recs += parse_file(f, "trans_chinese_alpaca", f.name).records
    return records_frame(recs)[cols], f"{mirror}/trans_chinese_alpaca"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pool", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    from curate.ops.task_type_tagger import TaskTypeTagger
    from curate.tasktype import match_rule

    df, where = _load(a.pool)
    n = len(df)
    best_op = best_rules = float("inf")
    for _ in range(a.repeat):
        t = time.perf_counter()
        TaskTypeTagger()(df)
        best_op = min(best_op, time.perf_counter() - t)
        t = time.perf_counter()
        for ins, inp, out in zip(df["instruction"], df["input"], df["output"]):
            match_rule(ins, inp, out)
        best_rules = min(best_rules, time.perf_counter() - t)
    print(f"{where}: {n:,} rows")
    print(f"task_type_tagger: {best_op:.2f} s, {n / best_op:,.0f} rows/s (best of {a.repeat})")
    print(f"match_rule alone: {best_rules:.2f} s, {n / best_rules:,.0f} rows/s")


if __name__ == "__main__":
    main()
