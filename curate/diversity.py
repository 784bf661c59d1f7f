"""Diversity figures of a set of records: how evenly it covers task types and clusters, and how
varied its wording is.

Entropy is in **bits** (log base 2): a set spread evenly over 4 types has H = 2. The normalised
entropy H / log2(K) is in [0, 1] whatever the base (1 = perfectly even over K categories).
Everything returned is plain Python (int, float, str, list, dict, None) so it goes straight to JSON.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Iterable, Mapping

import pandas as pd

from .tasktype import TASK_TYPES


def _counts(counts: Mapping[Any, int] | Iterable[int]) -> list[int]:
    values = counts.values() if isinstance(counts, Mapping) else counts
    out = [int(v) for v in values]
    if any(v < 0 for v in out):
        raise ValueError(f"entropy: negative count in {out}")
    return [v for v in out if v > 0]


def entropy(counts: Mapping[Any, int] | Iterable[int]) -> float:
    """Shannon entropy in bits of a distribution given by counts (a dict or a list of ints).

    Zero counts are ignored; no counts at all gives 0.0.
    """
    values = _counts(counts)
    total = sum(values)
    if total == 0:
        return 0.0
    h = -sum((v / total) * math.log2(v / total) for v in values)
    return max(0.0, h)  # -0.0 and rounding noise below zero read as 0


def normalized_entropy(counts: Mapping[Any, int] | Iterable[int], k: int | None = None) -> float:
    """H / log2(K): 1.0 when the counts are spread evenly over K categories.

    ``k`` is the number of possible categories (e.g. 11 task types); by default the number of
    categories with a non-zero count. With K <= 1 the result is 0.0 (one category is no spread).
    """
    values = _counts(counts)
    k = len(values) if k is None else int(k)
    if k < len(values):
        raise ValueError(f"normalized_entropy: k={k} is less than the {len(values)} categories present")
    if k <= 1:
        return 0.0
    return entropy(values) / math.log2(k)


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n over characters: distinct character n-grams / all character n-grams.

    n-grams are taken inside each text (never across two texts); a text shorter than n adds none.
    Characters are counted as they are (spaces and punctuation included). 0.0 when there are no
    n-grams at all.
    """
    if n < 1:
        raise ValueError(f"distinct_n: n must be >= 1, got {n}")
    seen: set[str] = set()
    total = 0
    for t in texts:
        t = t or ""
        m = len(t) - n + 1
        if m <= 0:
            continue
        total += m
        seen.update(t[i:i + n] for i in range(m))
    return len(seen) / total if total else 0.0


def _label_counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(Counter(series.astype(str)).items())}


def diversity_metrics(df: pd.DataFrame, n_clusters: int | None = None) -> dict[str, Any]:
    """Diversity figures of ``df``.

    Keys: ``rows``; ``task_type_entropy`` (bits), ``task_type_entropy_norm`` (over the 11 types of
    ``TASK_TYPES``), ``task_type_coverage`` (types present / 11); ``cluster_entropy``,
    ``cluster_entropy_norm`` (over ``n_clusters`` when given — pass the clustering's k to compare
    subsets fairly — else over the clusters present), ``clusters_present``; ``distinct_1/2/3`` of
    the instructions (characters); ``mean_instruction_chars``. Figures whose column is missing
    (``task_type``, ``cluster``) are None.
    """
    rows = int(len(df))
    out: dict[str, Any] = {"rows": rows}
    if "task_type" in df.columns:
        tc = _label_counts(df["task_type"])
        unknown = sorted(set(tc) - set(TASK_TYPES))
        if unknown:
            raise ValueError(f"diversity_metrics: task_type values not in TASK_TYPES: {unknown}")
        out["task_type_entropy"] = entropy(tc)
        out["task_type_entropy_norm"] = normalized_entropy(tc, k=len(TASK_TYPES))
        out["task_type_coverage"] = len(tc) / len(TASK_TYPES)
    else:
        out.update(task_type_entropy=None, task_type_entropy_norm=None, task_type_coverage=None)
    if "cluster" in df.columns:
        cc = _label_counts(df["cluster"])
        k = max(int(n_clusters), len(cc)) if n_clusters else None
        out["cluster_entropy"] = entropy(cc)
        out["cluster_entropy_norm"] = normalized_entropy(cc, k=k)
        out["clusters_present"] = len(cc)
    else:
        out.update(cluster_entropy=None, cluster_entropy_norm=None, clusters_present=None)
    instructions = df["instruction"].astype(str).tolist() if "instruction" in df.columns else []
    for n in (1, 2, 3):
        out[f"distinct_{n}"] = distinct_n(instructions, n)
    out["mean_instruction_chars"] = (sum(len(t) for t in instructions) / rows) if rows else 0.0
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def diversity_by(df: pd.DataFrame, column: str = "source", n_clusters: int | None = None) -> dict[str, dict[str, Any]]:
    """``diversity_metrics`` of each group of ``df[column]``, keyed by the group (as str, sorted)."""
    if column not in df.columns:
        raise KeyError(f"diversity_by: no column {column!r} (columns: {', '.join(map(str, df.columns))})")
    keys = df[column].astype(str)
    return {str(g): diversity_metrics(df[keys == g], n_clusters=n_clusters) for g in sorted(keys.unique())}
