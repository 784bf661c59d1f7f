"""Memory of the deduplicators' figures (``duplicates.group_stats``) on a light frame of N rows.

    .venv/bin/python benchmarks/bench_group_stats.py 2000000 [--code DIR]

The frame is what the dedupe merge holds (ids in Arrow, three sources, output lengths); a tenth of
the rows are copies of an earlier row. Prints the peak of the memory numpy and Python allocated
during the call (tracemalloc), which grows with N; ``--code`` measures another checkout.
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("n", type=int)
ap.add_argument("--code", default=str(Path(__file__).resolve().parent.parent))
a = ap.parse_args()
sys.path.insert(0, a.code)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from curate.duplicates import group_stats, ids_at  # noqa: E402
from curate.io import arrow_ids_frame  # noqa: E402

n, rng = a.n, np.random.default_rng(0)
ids = pa.array([f"belle/scale_{i // 100_000:04d}.json:{i % 100_000}" for i in range(n)])
src = pa.array(np.array(["belle", "alpaca_chinese", "trans_chinese_alpaca"], dtype=object)[rng.integers(0, 3, n)])
light = arrow_ids_frame(pa.table({"id": ids, "source": src, "_outlen": pa.array(rng.integers(1, 500, n))}))
labels = np.arange(n)
copy = rng.random(n) < 0.1
labels[copy] = np.minimum(rng.integers(0, n, copy.sum()), np.flatnonzero(copy))
labels = labels[labels]  # each row's group: its first row
surv = labels.copy()
drop = surv != np.arange(n)
details = np.full(n, "", dtype=object)
details[drop] = ids_at(light, surv[drop])
tracemalloc.start()
t = time.perf_counter()
stats = group_stats(light, labels, surv, "exact_duplicate", details,
                    fetch=lambda pos: light.iloc[pos].assign(instruction="", output=""))
_, peak = tracemalloc.get_traced_memory()
print(f"{n:,} rows, {drop.sum():,} dropped, {stats['clusters']:,} clusters: group_stats allocated at most "
      f"{peak / 2**20:,.0f} MiB, {time.perf_counter() - t:.1f} s (code {a.code})")
