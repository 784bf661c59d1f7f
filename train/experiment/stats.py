"""Step 4a: the results tables, and paired effects between arms with intervals over seeds and items.

An effect compares two arms that share a seed and the eval set: per seed, the per-item differences
``metric(a) - metric(b)``; the interval is a paired bootstrap (``train.bootstrap``): seeds resampled,
then items within each seed, the same items for both arms, 95% percentile interval. The minimal
detectable effect (80% power, two-sided 5%) is 2.8 standard errors of that bootstrap.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from curate.io import read_json

from ..bootstrap import bootstrap

IDENT = ("arm", "part", "mixture", "strategy", "size", "constraint", "seed")


def collect(runs: list[dict], base_row: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(results, steps, items)``: one row per finished run (final checkpoint), one per run ×
    checkpoint, and one per run × eval item (loss, answer, exact match, chrF)."""
    from ..finetune import read_metrics

    res_rows, step_rows, item_parts = [], [], []
    for r in runs:
        out = Path(r["output_dir"])
        if not (out / "summary.json").is_file():
            continue
        s = read_json(out / "summary.json")
        ident = {k: r.get(k) for k in IDENT}
        metrics = read_metrics(out)
        if base_row is not None:
            metrics = [base_row] + [m for m in metrics if m["step"] != 0]
        for m in metrics:
            step_rows.append({**ident, **flat_metrics(m)})
        row = {**ident, "rows": r["rows"], **{k: v for k, v in flat_metrics(s["final"]).items() if k != "step"}}
        if (out / "eval_items.parquet").is_file():
            it = pd.read_parquet(out / "eval_items.parquet")
            item_parts.append(it.assign(**ident))
            row["exact"] = float(it["exact"].mean())  # NaN-skipping: checkable task types only
            row["chrf"] = float(it["chrf"].mean())
            for t, g in it.groupby("task_type", sort=True):  # the generation metrics per task type
                row[f"chrf[{t}]"] = float(g["chrf"].mean())
                if g["exact"].notna().any():
                    row[f"exact[{t}]"] = float(g["exact"].mean())
        row.update({"steps": s["steps"], "train_loss_first": s["train_loss_first"], "train_loss_last": s["train_loss_last"],
                    "tokens_seen": s["tokens_seen"], "response_tokens_seen": s.get("response_tokens_seen"),
                    "tokens_per_second": s["tokens_per_second"], "train_seconds": s["train_seconds"],
                    "seconds": s["seconds"], "cpu_seconds": s.get("cpu_seconds"),
                    "adapter_delta_norm": s.get("adapter_delta_norm"), "output_dir": str(out)})
        res_rows.append(row)
    items = pd.concat(item_parts, ignore_index=True) if item_parts else pd.DataFrame()
    return pd.DataFrame(res_rows), pd.DataFrame(step_rows), items


def flat_metrics(m: dict) -> dict:
    out = {k: v for k, v in m.items() if k not in ("by_type", "generations")}
    for t, v in sorted((m.get("by_type") or {}).items()):
        out[f"loss[{t}]"] = v["loss"]
    for t, v in sorted((m.get("by_type") or {}).items()):
        out[f"ppl[{t}]"] = v["ppl"]
    return out


def t_interval(diffs: np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of paired differences and its t confidence interval: ``(mean, low, high, n)``."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    n = len(d)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(d.mean())
    if n == 1:
        return mean, float("nan"), float("nan"), 1
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def paired_effect(results: pd.DataFrame, factor: str, a: str, b: str, fixed: dict | None = None,
                  metric: str = "eval_loss") -> dict[str, Any]:
    """Run-level: mean over seeds of ``metric(a) - metric(b)`` with a t-interval over seeds (for
    figures with no per-item form, e.g. repetition of the fixed prompts' generations)."""
    df = results
    for k, v in (fixed or {}).items():
        df = df[df[k] == v]
    per_seed = df.groupby(["seed", factor])[metric].mean().unstack(factor)
    if a not in per_seed.columns or b not in per_seed.columns:
        return {"a": a, "b": b, "metric": metric, "n": 0, "mean": None, "low": None, "high": None}
    d = (per_seed[a] - per_seed[b]).dropna()
    mean, low, high, n = t_interval(d.to_numpy())
    return {"factor": factor, "a": a, "b": b, "fixed": fixed or {}, "metric": metric, "n": n,
            "mean": mean, "low": low, "high": high, "test": "t-interval over seeds",
            "diffs": [float(x) for x in d.to_numpy()],
            "mean_a": float(per_seed[a].mean()), "mean_b": float(per_seed[b].mean())}


def item_effect(items: pd.DataFrame, factor: str, a: str, b: str, fixed: dict | None = None, metric: str = "loss",
                task_types: Sequence[str] | None = None, reps: int = 2000) -> dict[str, Any]:
    """Per-item paired effect ``metric(a) - metric(b)`` (``factor`` ∈ {mixture, constraint}), on the
    items of ``task_types`` (all when None) that have the metric (exact: checkable types only)."""
    df = items
    for k, v in (fixed or {}).items():
        df = df[df[k] == v]
    if task_types is not None:
        df = df[df["task_type"].isin(list(task_types))]
    df = df[df[metric].notna()]
    pa, pb = {}, {}
    for seed, g in df.groupby("seed"):
        ga = g[g[factor] == a].sort_values("item")
        gb = g[g[factor] == b].sort_values("item")
        if len(ga) and len(gb):
            common = np.intersect1d(ga["item"].to_numpy(), gb["item"].to_numpy())
            pa[int(seed)] = ga.set_index("item").loc[common, metric].astype(float).to_numpy()
            pb[int(seed)] = gb.set_index("item").loc[common, metric].astype(float).to_numpy()
    e = bootstrap(pa, pb, paired_items=True, reps=reps)
    se = (e["high"] - e["low"]) / (2 * 1.96) if e["low"] is not None else None
    return {"factor": factor, "a": a, "b": b, "fixed": fixed or {}, "metric": metric,
            "task_types": list(task_types) if task_types is not None else "all", "n": e["seeds"],
            "items": e["items"], "mean": e["mean"], "low": e["low"], "high": e["high"],
            "mde": 2.8 * se if se is not None else None,
            "mean_a": float(np.mean([v.mean() for v in pa.values()])) if pa else None,
            "mean_b": float(np.mean([v.mean() for v in pb.values()])) if pb else None,
            "test": "paired bootstrap: seeds, then items within seeds (same items for both arms), 95% percentile"}
