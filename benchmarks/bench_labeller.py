"""Quality and speed of the task-type labeller (``task_type_tagger``), speed on one core.

    python benchmarks/bench_labeller.py [POOL.parquet] [--repeat 3] [--no-quality]

Quality: accuracy / macro-F1 against the hand labels of ``tests/data/tasktype_devset.csv``, per split
(``tune``, ``test``: mirror rows; ``authored_tune``, ``authored_test``: rows written for issue #14,
also per kind of prompt), BELLE's seed tasks (silver) and the share of DRCD questions called closed qa.
Speed: default input the curated pool of the newest run (``data/processed/run-*/05_diversity/kept.parquet``);
without one, the translated-Alpaca parts of the mirror (parsed, not normalised); and the development
set's authored rows repeated to the pool's size (prompts with inline passages, the slow path). Prints
rows/s of the operator (rules, counts, examples) best of ``--repeat``, and of ``match_rule`` alone.
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
sys.path.insert(0, str(ROOT / "benchmarks"))  # labeleval


def _load(path: str | None):
    import pandas as pd

    cols = ["id", "instruction", "input", "output", "history"]
    if path is None:
        pools = sorted(glob.glob(str(ROOT / "data/processed/run-*/05_diversity/kept.parquet")), key=os.path.getmtime)
        path = pools[-1] if pools else None
    if path:
        return pd.read_parquet(path, columns=cols), path
    from curate.parse import parse_file
    from curate.records import records_frame

    mirror = _mirror()
    recs = []
    for f in sorted((mirror / "trans_chinese_alpaca").glob("alpaca_chinese_part_*.json")):
        recs += parse_file(f, "trans_chinese_alpaca", f.name).records
    return records_frame(recs)[cols], f"{mirror}/trans_chinese_alpaca"


def _mirror() -> Path:
    return Path(os.environ.get("TIGER_MIRROR", ROOT.parent / "shared" / "corpora"))


def quality() -> "pd.DataFrame":
    """Prints the figures per split; returns the development set (text, labels)."""
    import csv
    import json

    from labeleval import DEVSET_CSV, evaluate, load_devset, load_drcd_silver, load_seed_silver, predict
    from curate.tasktype_model import MIN_CONFIDENCE, label_rows

    dev = load_devset(_mirror())
    pred = predict(dev)
    with_model, _, _ = label_rows(dev["instruction"], dev["input"], dev["output"], dev["history"], model=True)
    _, _, conf = label_rows(dev["instruction"], dev["input"], dev["output"], dev["history"])
    print(f"split            rows  accuracy  macro-F1  lowest F1            | with the model (acc / F1) | low-confidence rows (acc)")
    for name in ("tune", "test", "authored_tune", "authored_test"):
        mask = (dev["split"] == name).tolist()
        gold = [g for g, m in zip(dev["label"], mask) if m]
        r = evaluate(gold, [p for p, m in zip(pred, mask) if m])
        rm = evaluate(gold, [p for p, m in zip(with_model, mask) if m])
        low = min(r["per_type"].items(), key=lambda kv: kv[1]["f1"])
        unsure = [g == p for g, p, c, m in zip(dev["label"], pred, conf, mask) if m and c < MIN_CONFIDENCE]
        print(f"{name:<15} {r['rows']:>5}  {r['accuracy']:.3f}     {r['macro_f1']:.3f}     {low[1]['f1']:.3f} ({low[0]:<14}) "
              f"| {rm['accuracy']:.3f} / {rm['macro_f1']:.3f}             | {len(unsure)} ({sum(unsure) / max(1, len(unsure)):.3f})")
    kinds = [json.loads(e).get("kind", "") for e in dev["extra"]]
    for name in ("authored_tune", "authored_test"):
        per = {}
        for g, p, s, k in zip(dev["label"], pred, dev["split"], kinds):
            if s == name:
                per.setdefault(k, []).append(g == p)
        print(f"  {name} by kind: " + ", ".join(f"{k} {sum(v) / len(v):.3f} ({len(v)})" for k, v in sorted(per.items())))
    seed = load_seed_silver(_mirror())
    r = evaluate(seed["label"].tolist(), predict(seed))
    print(f"{'seed tasks':<15} {r['rows']:>5}  {r['accuracy']:.3f}     {r['macro_f1']:.3f}")
    with DEVSET_CSV.open(encoding="utf-8", newline="") as f:
        dev_ids = {r["id"] for r in csv.DictReader(f)}
    drcd = load_drcd_silver(_mirror(), exclude_ids=dev_ids, n=600, seed=1)
    p = predict(drcd)
    print(f"{'DRCD':<15} {len(p):>5}  closed qa {sum(x == 'closed qa' for x in p) / len(p):.3f}")
    return dev


def speed(df, where: str, repeat: int) -> None:
    from curate.ops.task_type_tagger import TaskTypeTagger
    from curate.tasktype import match_rule
    from curate.tasktype_model import default_model

    default_model()  # fitted once per process (about a second), not part of the per-row figure
    """Best of ``repeat``, as wall time and as this process's CPU time (one thread: on a shared machine
    the CPU figure is the one-core speed, the wall figure includes waiting for a core)."""
    n = len(df)
    best = {"op": [float("inf")] * 2, "model": [float("inf")] * 2, "rules": [float("inf")] * 2}
    hist = df["history"] if "history" in df.columns else [None] * n

    def clock(key, fn):
        w, c = time.perf_counter(), time.process_time()
        fn()
        best[key] = [min(best[key][0], time.perf_counter() - w), min(best[key][1], time.process_time() - c)]

    for _ in range(repeat):
        clock("op", lambda: TaskTypeTagger()(df))
        clock("model", lambda: TaskTypeTagger(model=True)(df))
        clock("rules", lambda: [match_rule(i, x, o, h) for i, x, o, h in zip(df["instruction"], df["input"], df["output"], hist)])
    print(f"{where}: {n:,} rows (best of {repeat})")
    for key, name in (("op", "task_type_tagger"), ("model", "  with model=True"), ("rules", "match_rule alone")):
        w, c = best[key]
        print(f"  {name}: {n / c:,.0f} rows/s CPU ({c:.2f} s), {n / w:,.0f} rows/s wall ({w:.2f} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pool", nargs="?")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-quality", action="store_true")
    a = ap.parse_args()
    import pandas as pd

    dev = None if a.no_quality else quality()
    df, where = _load(a.pool)
    speed(df, where, a.repeat)
    if dev is not None:
        authored = dev[dev["source"] == "authored"].reset_index(drop=True)
        reps = max(1, len(df) // len(authored))
        speed(pd.concat([authored] * reps, ignore_index=True), f"authored rows x {reps}", a.repeat)


if __name__ == "__main__":
    main()
