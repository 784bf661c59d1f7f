"""Speed and memory of the dedupe stage on every alpaca-format row of the offline mirror.

    .venv/bin/python benchmarks/bench_dedupe.py [MIRROR] [--repeat 3] [--baseline-rows 3000]

Prints rows/s (best of ``--repeat`` runs, one process, numpy single-threaded), peak traced memory
(tracemalloc, in a separate run so tracing does not slow the timed one) and the duplicates found,
for the exact and the near-duplicate operator and for the plain signature / LSH functions; then
the naive datasketch baseline (a ``MinHash`` per document, ``update`` per shingle or
``update_batch``, ``MinHashLSH`` insert + query) on a subsample, and how its duplicates compare.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curate.ops.document_exact_deduplicator import DocumentExactDeduplicator  # noqa: E402
from curate.ops.document_minhash_deduplicator import DocumentMinhashDeduplicator  # noqa: E402
from curate.minhash import (  # noqa: E402
    band_params,
    minhash_signatures,
    near_duplicate_pairs,
    row_texts,
    shingle_hash,
    shingles,
)
from curate.minhash.cluster import _components  # noqa: E402
from curate.records import make_record, records_frame  # noqa: E402


def _lenient_json_list(text: str) -> list:
    """A JSON list, or as many leading items as parse when the file is broken (one mirror file is)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        dec, items, p = json.JSONDecoder(), [], text.index("[") + 1
        while True:
            while p < len(text) and text[p] in " \t\r\n,":
                p += 1
            try:
                obj, p = dec.raw_decode(text, p)
            except json.JSONDecodeError:
                return items
            items.append(obj)


def load_alpaca_rows(mirror: Path) -> list[dict]:
    """Rows with instruction/output keys from every JSON / JSON-lines file of the mirror.

    The English originals of the translated Alpaca rows (``en_*`` keys) go into ``extra``.
    """
    rows = []
    for path in sorted(mirror.rglob("*.json")) + sorted(mirror.rglob("*.jsonl")):
        text = path.read_text(encoding="utf-8")
        stripped = text.lstrip()
        if stripped.startswith("["):
            items = _lenient_json_list(text)
        elif stripped.startswith("{") and "\n{" in stripped:  # JSON lines
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            continue
        source = path.relative_to(mirror).parts[0]
        rel = str(path.relative_to(mirror / source))
        for k, r in enumerate(items):
            if isinstance(r, dict) and "instruction" in r and "output" in r \
                    and all(isinstance(r.get(f, ""), str) for f in ("instruction", "input", "output")):
                extra = {key: v for key, v in r.items() if key.startswith("en_") and isinstance(v, str)}
                rows.append(make_record(source, rel, k, r["instruction"], r.get("input", ""), r["output"],
                                        extra=extra))
    return rows


def timed(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def peak_mb(fn) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mirror", nargs="?", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-rows", type=int, default=3000)
    args = ap.parse_args()
    mirror = Path(args.mirror)

    t = time.perf_counter()
    rows = load_alpaca_rows(mirror)
    df = records_frame(rows)
    n = len(df)
    by_src = df["source"].value_counts().sort_index().to_dict()
    print(f"loaded {n:,} alpaca-format rows in {time.perf_counter() - t:.1f}s: {by_src}")
    texts = row_texts(df, ("instruction", "input", "output"))
    print(f"characters: {sum(map(len, texts)):,}")
    # warm-up: imports, datasketch's band optimisation, the lazily filled character tables
    DocumentMinhashDeduplicator()(df.head(2000))
    DocumentExactDeduplicator()(df.head(2000))

    print("\n== operators (whole frame in, StageResult out)")
    for op in (DocumentExactDeduplicator(), DocumentMinhashDeduplicator()):
        sec, res = timed(lambda: op(df), args.repeat)
        mem = peak_mb(lambda: op(df))
        s = res.stats
        print(f"{op.name}: {n / sec:,.0f} rows/s ({sec:.2f}s), peak traced {mem:,.0f} MiB; "
              f"dropped {len(res.dropped):,} in {s['clusters']:,} clusters, "
              f"cross-source {s['cross_source_duplicates']:,}; pairs {s['source_pairs']}")

    print("\n== near-dedupe functions")
    sec_sig, sig = timed(lambda: minhash_signatures(texts), args.repeat)
    sec_lsh, (i, j, _) = timed(lambda: near_duplicate_pairs(sig), args.repeat)
    sec_cc, labels = timed(lambda: _components(n, i, j), args.repeat)
    total = sec_sig + sec_lsh + sec_cc
    mem_sig = peak_mb(lambda: minhash_signatures(texts))
    mem_lsh = peak_mb(lambda: _components(n, *near_duplicate_pairs(sig)[:2]))
    dups = n - len(np.unique(labels))
    b, r = band_params(0.7, 128)
    print(f"signatures: {n / sec_sig:,.0f} rows/s ({sec_sig:.2f}s), peak traced {mem_sig:,.0f} MiB")
    print(f"LSH (b={b}, r={r}) + verify: {sec_lsh:.2f}s, {len(i):,} verified pairs; clusters: {sec_cc:.2f}s; "
          f"peak traced {mem_lsh:,.0f} MiB")
    print(f"signatures + LSH + clustering: {n / total:,.0f} rows/s ({total:.2f}s); near duplicates: {dups:,}")
    print(f"process max RSS so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")

    print(f"\n== naive datasketch baseline on {args.baseline_rows:,} rows (every {n // args.baseline_rows}th)")
    from datasketch import MinHash, MinHashLSH

    sub = np.arange(0, n, max(1, n // args.baseline_rows))[:args.baseline_rows]
    sub_texts = [texts[k] for k in sub]
    sh = [shingles(x) for x in sub_texts]

    def per_shingle():
        out = []
        for s in sh:
            m = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
            for x in s:
                m.update(x)
            out.append(m)
        return out

    def per_doc_batch():
        out = []
        for s in sh:
            m = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
            m.update_batch(s)
            out.append(m)
        return out

    t = time.perf_counter()
    sh = [shingles(x) for x in sub_texts]
    sec_sh = time.perf_counter() - t
    sec_upd, _ = timed(per_shingle, 1)
    sec_bat, mhs = timed(per_doc_batch, 1)

    def lsh_run():
        lsh = MinHashLSH(threshold=0.7, num_perm=128)
        for k, m in enumerate(mhs):
            if not m.is_empty():
                lsh.insert(k, m)
        pairs = set()
        for k, m in enumerate(mhs):
            if m.is_empty():
                continue
            for o in lsh.query(m):
                if o != k and m.jaccard(mhs[o]) >= 0.7:
                    pairs.add((min(k, o), max(k, o)))
        return pairs

    sec_l, pairs = timed(lsh_run, 1)
    mem_base = peak_mb(lambda: (per_doc_batch(), lsh_run()))
    m = len(sub)
    base_labels = _components(m, np.array([p[0] for p in pairs], dtype=np.int64),
                              np.array([p[1] for p in pairs], dtype=np.int64))
    sec_ours, ours = timed(lambda: _components(m, *near_duplicate_pairs(minhash_signatures(sub_texts))[:2]), args.repeat)
    print(f"shingling (python): {sec_sh:.2f}s; MinHash.update per shingle: {m / (sec_sh + sec_upd):,.0f} rows/s; "
          f"update_batch per document: {m / (sec_sh + sec_bat):,.0f} rows/s")
    print(f"MinHashLSH insert + query + jaccard check: {sec_l:.2f}s; baseline total (update_batch): "
          f"{m / (sec_sh + sec_bat + sec_l):,.0f} rows/s, peak traced {mem_base:,.0f} MiB")
    print(f"this module on the same rows: {m / sec_ours:,.0f} rows/s")
    print(f"near duplicates on the subsample: baseline {m - len(np.unique(base_labels))}, "
          f"this module {m - len(np.unique(ours))}; same partition: {np.array_equal(base_labels, ours)}")


if __name__ == "__main__":
    main()
