"""Step 4a: the results table, and paired differences between arms with t-intervals over seeds."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from curate.io import read_json


def collect(runs: list[dict], base_row: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(results, steps)``: one row per finished run (final checkpoint) and one per run × checkpoint."""
    from ..finetune import read_metrics

    res_rows, step_rows = [], []
    for r in runs:
        summary_path = Path(r["output_dir"]) / "summary.json"
        if not summary_path.is_file():
            continue
        s = read_json(summary_path)
        ident = {k: r[k] for k in ("arm", "mixture", "strategy", "constraint", "seed")}
        metrics = read_metrics(r["output_dir"])
        if base_row is not None:
            metrics = [base_row] + [m for m in metrics if m["step"] != 0]
        for m in metrics:
            step_rows.append({**ident, **flat_metrics(m)})
        final = flat_metrics(s["final"])
        res_rows.append({**ident, "rows": r["rows"], **{k: v for k, v in final.items() if k != "step"},
                         "steps": s["steps"], "train_loss_first": s["train_loss_first"],
                         "train_loss_last": s["train_loss_last"], "tokens_seen": s["tokens_seen"],
                         "tokens_per_second": s["tokens_per_second"], "train_seconds": s["train_seconds"],
                         "seconds": s["seconds"], "cpu_seconds": s.get("cpu_seconds"),
                         "adapter_delta_norm": s.get("adapter_delta_norm"),
                         "output_dir": r["output_dir"]})
    return pd.DataFrame(res_rows), pd.DataFrame(step_rows)


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
    """Mean over seeds of ``metric(a) - metric(b)`` for ``factor`` ∈ {mixture, constraint}.

    With ``fixed`` (e.g. ``{"constraint": "none"}``) only those runs count; without, the other
    factor is averaged within each seed first, so there is still one difference per seed.
    """
    df = results
    for k, v in (fixed or {}).items():
        df = df[df[k] == v]
    per_seed = df.groupby(["seed", factor])[metric].mean().unstack(factor)
    if a not in per_seed.columns or b not in per_seed.columns:
        return {"a": a, "b": b, "metric": metric, "n": 0, "mean": None, "low": None, "high": None}
    d = (per_seed[a] - per_seed[b]).dropna()
    mean, low, high, n = t_interval(d.to_numpy())
    return {"factor": factor, "a": a, "b": b, "fixed": fixed or {}, "metric": metric, "n": n,
            "mean": mean, "low": low, "high": high, "diffs": [float(x) for x in d.to_numpy()],
            "mean_a": float(per_seed[a].mean()), "mean_b": float(per_seed[b].mean())}
