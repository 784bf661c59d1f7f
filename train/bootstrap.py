"""The paired bootstrap over seeds and items that both experiments' intervals come from."""
from __future__ import annotations

from typing import Any

import numpy as np


def bootstrap(a: dict[int, np.ndarray], b: dict[int, np.ndarray] | None = None, paired_items: bool = False,
              reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean over seeds of mean(a) [− mean(b)] and a 95% percentile interval from resampling seeds and,
    within each seed, items (the same item draws for a and b when ``paired_items``)."""
    seeds = sorted(set(a) & set(b)) if b is not None else sorted(a)
    seeds = [s for s in seeds if len(a[s]) and (b is None or len(b[s]))]
    if not seeds:
        return {"mean": None, "low": None, "high": None, "seeds": 0, "items": 0}
    rng = np.random.default_rng(seed)
    per_rep = []
    for s in seeds:
        x = a[s]
        ix = rng.integers(0, len(x), (reps, len(x)))
        v = x[ix].mean(1)
        if b is not None:
            y = b[s]
            iy = ix if paired_items and len(y) == len(x) else rng.integers(0, len(y), (reps, len(y)))
            v = v - y[iy].mean(1)
        per_rep.append(v)
    m = np.stack(per_rep)  # seeds × reps
    pick = rng.integers(0, len(seeds), (reps, len(seeds)))
    stats = m[pick, np.arange(reps)[:, None]].mean(1)
    point = float(np.mean([a[s].mean() - (b[s].mean() if b is not None else 0.0) for s in seeds]))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return {"mean": point, "low": float(lo), "high": float(hi), "seeds": len(seeds),
            "items": int(np.mean([len(a[s]) for s in seeds]))}
