"""Draw the task-type development set: a seeded, stratified sample of the curated pool.

Run once (the committed ``tasktype_devset.csv`` is its output plus the hand labels):

    .venv/bin/python tests/data/make_devset.py data/processed/run-<hash>

It reads ``05_diversity/kept.parquet`` of a run on the offline mirror (the rows the labeller sees
in production: parsed, normalised, filtered, deduplicated) and writes only where each row is
(id, source, file, row) and its split — never the text, which stays in the mirror. The hand label
column is filled in afterwards (see README.md). BELLE's seed tasks are left out on purpose: their
task names are the held-out silver labels.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240605
TUNE_SHARE = 0.27  # share of each stratum in the tuning split (rules may be changed while looking at it)
# A second, tuning-only draw (another seed, the rows of the first draw excluded), made after the first
# round of rule changes had read every row of the first tuning split: more rows to tune on, while the
# test split stays untouched.
EXTRA_SEEDS = [SEED + 1, SEED + 2]  # one per tuning round
EXTRA_SCALE = 0.27

# (source, file-group test, rows): one stratum per line; "equal:" spreads rows evenly over files.
STRATA = [
    ("trans_chinese_alpaca", lambda f: f.startswith("alpaca_chinese_part_"), 220),
    ("trans_chinese_alpaca", lambda f: f == "developer_instruction.json", 5),
    ("alpaca_chinese", lambda f: f.startswith("translated/"), 120),
    ("alpaca_chinese", lambda f: f == "supplementary/代码问题.json", 35),
    ("alpaca_chinese", lambda f: f == "supplementary/整数加减法.json", 8),
    ("alpaca_chinese", lambda f: f.startswith("supplementary/") and f not in (
        "supplementary/代码问题.json", "supplementary/整数加减法.json"), -57),  # negative: equal per file
    ("belle", lambda f: f == "dev1K.json", 80),
    ("traditional", lambda f: f == "DRCD_dev.json", 30),
    ("traditional", lambda f: f == "chinese_vicuna_chat_sample.jsonl", 3),
]


def _equal(sizes: dict[str, int], total: int) -> dict[str, int]:
    alloc = {k: 0 for k in sizes}
    left = total
    active = sorted(k for k in sizes if sizes[k] > 0)
    while left > 0 and active:
        share = max(1, left // len(active))
        for k in list(active):
            if left == 0:
                break
            give = min(share, sizes[k] - alloc[k], left)
            alloc[k] += give
            left -= give
        active = [k for k in active if alloc[k] < sizes[k]]
    return alloc


def draw(pool: pd.DataFrame) -> pd.DataFrame:
    parts = [_draw(pool, SEED, 1.0, TUNE_SHARE)]
    for seed in EXTRA_SEEDS:
        taken = set(pd.concat(parts)["id"])
        parts.append(_draw(pool[~pool["id"].isin(taken)], seed, EXTRA_SCALE, 1.0))
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["source", "file", "row"], kind="mergesort").reset_index(drop=True)


def _draw(pool: pd.DataFrame, seed: int, scale: float, tune_share: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pool = pool.sort_values("id", kind="mergesort").reset_index(drop=True)
    picked = []
    for source, test, n in STRATA:
        n = int(np.sign(n) * max(1, round(abs(n) * scale)))
        part = pool[(pool["source"] == source) & pool["file"].map(test)]
        if n < 0:
            alloc = _equal(part["file"].value_counts().to_dict(), -n)
            chosen = [g.iloc[np.sort(rng.choice(len(g), size=alloc[f], replace=False))]
                      for f, g in sorted(part.groupby("file"), key=lambda kv: kv[0]) if alloc[f]]
            sel = pd.concat(chosen)
        else:
            sel = part.iloc[np.sort(rng.choice(len(part), size=min(n, len(part)), replace=False))]
        sel = sel.copy()
        tune = np.zeros(len(sel), dtype=bool)
        tune[rng.choice(len(sel), size=int(round(tune_share * len(sel))), replace=False)] = True
        sel["split"] = np.where(tune, "tune", "test")
        picked.append(sel)
    return pd.concat(picked, ignore_index=True)


def main(run_dir: str) -> None:
    pool = pd.read_parquet(Path(run_dir) / "05_diversity" / "kept.parquet",
                           columns=["id", "source", "file", "row"])
    dev = draw(pool)
    out = Path(__file__).with_name("tasktype_devset.csv")
    # keep the labels already given (the file is re-drawn, never re-labelled)
    old = {}
    if out.exists():
        with out.open(encoding="utf-8", newline="") as f:
            old = {r["id"]: r["label"] for r in csv.DictReader(f)}
    with out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "source", "file", "row", "split", "label"])
        for r in dev.itertuples(index=False):
            w.writerow([r.id, r.source, r.file, int(r.row), r.split, old.get(r.id, "")])
    print(f"{len(dev)} rows → {out}: {dev['split'].value_counts().to_dict()}")


if __name__ == "__main__":
    main(sys.argv[1])
