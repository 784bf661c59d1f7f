"""Run Data-Juicer's document_minhash_deduplicator on texts, for benchmarks/neardup_bench.py.

Runs in Data-Juicer's own virtual environment (never a project dependency):

    python3 -m venv /tmp/djvenv && /tmp/djvenv/bin/pip install py-data-juicer==1.6.1 aiohttp
    /tmp/djvenv/bin/python benchmarks/dj_runner.py IN.jsonl OUT.json --window 3 --threshold 0.55 [--turbo --num-proc 2]

IN.jsonl has one {"text": ...} per line; OUT.json gets the positions of the kept rows, seconds
(wall and CPU, after loading), and the process's resident memory after loading and at its peak.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

from procmem import proc_mib  # this script's folder is on sys.path when it is run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--num-perm", type=int, default=256)
    ap.add_argument("--turbo", action="store_true")
    ap.add_argument("--num-proc", type=int, default=1)
    a = ap.parse_args()
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    from datasets import Dataset
    from loguru import logger

    logger.remove()
    from data_juicer.core.data import NestedDataset
    from data_juicer.ops.deduplicator.document_minhash_deduplicator import DocumentMinhashDeduplicator

    texts = [json.loads(line)["text"] for line in open(a.inp, encoding="utf-8")]
    ds = NestedDataset(Dataset.from_dict({"text": texts, "idx": list(range(len(texts)))}))
    op = DocumentMinhashDeduplicator(tokenization="character", window_size=a.window, lowercase=True,
                                     num_permutations=a.num_perm, jaccard_threshold=a.threshold,
                                     turbo=a.turbo, num_proc=a.num_proc)
    rss0 = proc_mib("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    out = op.run(ds)
    sec, cpu = time.perf_counter() - t, time.process_time() - c
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    kept = sorted(out["idx"])
    json.dump({"kept": kept, "seconds": sec, "cpu": cpu + ch.ru_utime + ch.ru_stime, "rss_loaded_mib": rss0,
               # worker processes (turbo) are counted by their own peak (ru_maxrss, an upper bound)
               "rss_peak_mib": max(proc_mib("VmHWM"), ch.ru_maxrss / 1024),
               "params": {"tokenization": "character", "window_size": a.window, "num_permutations": a.num_perm,
                          "jaccard_threshold": a.threshold, "turbo": a.turbo, "num_proc": a.num_proc,
                          "bands_rows": [op.num_bands, op.num_rows_per_band]}}, open(a.out, "w"))


if __name__ == "__main__":
    main()
