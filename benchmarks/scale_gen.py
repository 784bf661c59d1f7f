"""Make N instruction rows from the real mirror, with a known share of planted near-duplicates.

    .venv/bin/python benchmarks/scale_gen.py 500000 [--out /tmp/tiger-scale] [--planted 0.1] [--seed 0]

Writes under ``<out>/<N>/`` (never into the repository):

``mirror/<source>/scale_NNNN.json``  JSON arrays of alpaca rows (instruction/input/output), laid
    out like the offline mirror, so ``tiger run --mirror <out>/<N>/mirror`` runs the whole flow on them
``rows.parquet``   the same rows as records (ids as the parse stage makes them) with ``planted_of``
    (id of the row a planted copy was made from, "" for base rows) and ``planted_kind``
``meta.json``      N, seed, the planted share, counts per source and per planted kind

Base rows are real text: each takes a real row's instruction (so the language filter sees real
prompts) and input, and an output assembled from real clauses drawn from the whole mirror, as
many as that real row's output has (so lengths follow the mirror's). Past the mirror's ~94k
rows, instructions repeat (as pooled corpora do) with a drawn input. Drawn clauses make base rows
distinct from each other, apart from a few chance near-duplicates among short rows. A share ``planted`` of the N rows are copies of earlier
rows with one realistic edit each (``benchmarks/edits.py``) or none (``exact``), so the near-
duplicate search must find them; which row each copy came from is recorded.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import edits as E  # noqa: E402
from bench_dedupe import load_alpaca_rows  # noqa: E402

from curate.io import write_json, write_parquet  # noqa: E402
from curate.records import make_record, records_frame  # noqa: E402

# planted edit kinds and their weights (heavy 5-10 % typo noise is left to the labelled benchmark)
PLANTED_KINDS = {"exact": 2, "punct": 2, "whitespace": 2, "width": 1, "trad": 1, "char_1pct": 2,
                 "char_3pct": 1, "sentence_add": 1, "sentence_del": 1}
ROWS_PER_FILE = 100_000
# Sets larger than a block are made a block at a time (one block's rows in memory; planted copies
# come from their own block), each with its own seed.
BLOCK_ROWS = 2_500_000
FILES_PER_BLOCK = 100
_CLAUSE = re.compile(r"[^，。！？；,!?;\n]+[，。！？；,!?;\n]*")
SOURCES = ("trans_chinese_alpaca", "alpaca_chinese", "belle")


def generate(real: list[dict], n: int, planted: float = 0.1, seed: int = 0,
             progress: bool = True, start: int = 0) -> tuple[list[dict], list[str], list[str]]:
    """``n`` alpaca rows (dicts with source, instruction, input, output) and, per row, the index
    (as str, "" for a base row) of the row it was planted from and the planted kind. ``start``: the
    rows' place in a larger set made a block at a time (only its first rows keep the real inputs)."""
    rng = random.Random(seed)
    real = [r for r in real if r["output"].strip()]
    sents = [s for r in real for s in E.sentences(r["output"]) if s.strip()]
    # outputs are assembled from clauses, not whole sentences: with ~1 M clauses two rows share
    # a long stretch only by planting, while sentences would repeat every few hundred rows
    clauses = [c for r in real for c in _CLAUSE.findall(r["output"]) if c.strip()]
    nclause = [max(1, len(_CLAUSE.findall(r["output"]))) for r in real]
    pool = E.CharPool([r["output"] for r in real[::5]], seed=seed)
    kinds_fn = E.edit_kinds(pool, [s for s in sents[::7] if len(s) <= 60])
    kinds_fn["exact"] = lambda r, g: dict(r)
    kind_names = list(PLANTED_KINDS)
    weights = [PLANTED_KINDS[k] for k in kind_names]
    n_planted = int(round(planted * n))
    n_base = n - n_planted
    order = list(range(len(real)))
    rows: list[dict] = []
    t = time.perf_counter()
    for k in range(n_base):
        if k % len(real) == 0:
            rng.shuffle(order)
        i = order[k % len(real)]
        r = real[i]
        out = "".join(clauses[rng.randrange(len(clauses))] for _ in range(nclause[i])).strip()
        inp = r["input"]
        if start + k >= len(real):  # a real instruction seen before: another input, as pooled corpora have
            inp = "".join(clauses[rng.randrange(len(clauses))] for _ in range(rng.randint(1, 3))).strip()
        rows.append({"source": r["source"], "instruction": r["instruction"], "input": inp, "output": out})
        if progress and k and k % 500_000 == 0:
            print(f"  {k:,} base rows ({time.perf_counter() - t:.0f}s)", flush=True)
    of = [""] * n_base
    kinds = [""] * n_base
    # planted copies, inserted at random positions after their originals
    plants = []
    for _ in range(n_planted):
        for _try in range(20):
            src = rng.randrange(n_base)
            kind = rng.choices(kind_names, weights)[0]
            copy = kinds_fn[kind](rows[src], rng)
            if copy is not None:
                break
        else:
            kind, copy = "exact", dict(rows[src])
        plants.append((src, kind, copy))
    # place each copy after a random later base row (so originals come first, as in a pooled corpus)
    pos = sorted((rng.randrange(s, n_base), s, kind, copy) for s, kind, copy in plants)
    merged, of_m, kinds_m = [], [], []
    new_index = {}
    p = 0
    for b in range(n_base):
        new_index[b] = len(merged)
        merged.append(rows[b])
        of_m.append("")
        kinds_m.append("")
        while p < len(pos) and pos[p][0] == b:
            _, s, kind, copy = pos[p]
            merged.append(copy)
            of_m.append(str(new_index[s]))
            kinds_m.append(kind)
            p += 1
    del of, kinds
    return merged, of_m, kinds_m


def write(rows: list[dict], of: list[str], kinds: list[str], out: Path, seed: int, planted: float,
          block: int | None = None) -> dict:
    """The mirror layout, rows.parquet (records with planted_of as an id) and meta.json; with
    ``block``, block number ``block`` of a larger set: its files are numbered after the earlier
    blocks' (``FILES_PER_BLOCK`` a source) and its records go to ``rows-<block>.parquet``."""
    mirror = out / "mirror"
    by_source: dict[str, list[int]] = {s: [] for s in SOURCES}
    for k, r in enumerate(rows):
        by_source[r["source"] if r["source"] in by_source else SOURCES[0]].append(k)
    ids = [""] * len(rows)
    recs = []
    for source, idx in by_source.items():
        for f in range(0, max(1, len(idx)), ROWS_PER_FILE):
            part = idx[f:f + ROWS_PER_FILE]
            if not part:
                continue
            rel = f"scale_{(block or 0) * FILES_PER_BLOCK + f // ROWS_PER_FILE:04d}.json"
            path = mirror / source / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            items = [{"instruction": rows[k]["instruction"], "input": rows[k]["input"], "output": rows[k]["output"]}
                     for k in part]
            path.write_text(json.dumps(items, ensure_ascii=False, indent=0), encoding="utf-8")
            for row_no, k in enumerate(part):
                rec = make_record(source, rel, row_no, rows[k]["instruction"], rows[k]["input"], rows[k]["output"])
                ids[k] = rec["id"]
                recs.append((k, rec))
    recs.sort(key=lambda x: x[0])
    df = records_frame([r for _, r in recs])
    df["planted_of"] = [ids[int(o)] if o else "" for o in of]
    df["planted_kind"] = kinds
    write_parquet(out / ("rows.parquet" if block is None else f"rows-{block:03d}.parquet"), df)
    meta = {"rows": len(rows), "seed": seed, "planted_share": planted,
            "planted": int(sum(1 for o in of if o)),
            "by_source": {s: len(v) for s, v in by_source.items()},
            "planted_kinds": dict(sorted(Counter(k for k in kinds if k).items()))}
    if block is None:
        write_json(out / "meta.json", meta)
    return meta


def _blocks(real: list[dict], n: int, out: Path, seed: int, planted: float) -> None:
    """``n`` rows a block of ``BLOCK_ROWS`` at a time (block b seeded ``seed + b``); meta.json sums
    the blocks' counts. rows.parquet is split into the blocks' ``rows-<b>.parquet``."""
    t = time.perf_counter()
    metas = []
    for b, a in enumerate(range(0, n, BLOCK_ROWS)):
        size = min(BLOCK_ROWS, n - a)
        rows, of, kinds = generate(real, size, planted, seed + b, start=a)
        metas.append(write(rows, of, kinds, out, seed + b, planted, block=b))
        del rows, of, kinds
        print(f"  block {b}: {a + size:,} of {n:,} rows ({time.perf_counter() - t:.0f}s)", flush=True)
    meta = {"rows": n, "seed": seed, "planted_share": planted, "blocks": len(metas), "block_rows": BLOCK_ROWS,
            "planted": sum(m["planted"] for m in metas),
            "by_source": dict(sorted(_sum([m["by_source"] for m in metas]).items())),
            "planted_kinds": dict(sorted(_sum([m["planted_kinds"] for m in metas]).items()))}
    write_json(out / "meta.json", meta)
    print(f"{n:,} rows → {out} in {time.perf_counter() - t:.0f}s; {meta['planted']:,} planted", flush=True)


def _sum(counts: list[dict]) -> Counter:
    total: Counter = Counter()
    for c in counts:
        total.update(c)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, nargs="+", help="row counts, e.g. 100000 500000 2500000")
    ap.add_argument("--mirror", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--out", default="/tmp/tiger-scale")
    ap.add_argument("--planted", type=float, default=0.1, help="share of rows that are planted near-duplicates")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out_root = Path(a.out).resolve()
    if ROOT in out_root.parents or out_root == ROOT:
        sys.exit(f"scale_gen: refusing to write inside the repository ({out_root})")
    t = time.perf_counter()
    real = load_alpaca_rows(Path(a.mirror))
    print(f"{len(real):,} real rows loaded in {time.perf_counter() - t:.1f}s")
    for n in a.n:
        t = time.perf_counter()
        if n > BLOCK_ROWS:
            _blocks(real, n, out_root / str(n), a.seed, a.planted)
            continue
        rows, of, kinds = generate(real, n, a.planted, a.seed)
        t_gen = time.perf_counter() - t
        meta = write(rows, of, kinds, out_root / str(n), a.seed, a.planted)
        print(f"{n:,} rows → {out_root / str(n)}: generated in {t_gen:.0f}s, written in "
              f"{time.perf_counter() - t - t_gen:.0f}s; {meta['planted']:,} planted {meta['planted_kinds']}", flush=True)


if __name__ == "__main__":
    main()
