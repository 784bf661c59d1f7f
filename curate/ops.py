"""Operators and the step runner.

Every operator is a small class named by what it does (Data-Juicer style: ``chinese_convert_mapper``,
``document_minhash_deduplicator``), registered under that name so a recipe file can list it, and
called as ``op(df) -> StageResult``. Mappers change text and drop nothing; filters and
deduplicators drop rows with a reason; taggers add columns.
"""
from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from .records import StageResult, empty_drops

OPS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        if name in OPS and OPS[name] is not cls:
            raise ValueError(f"operator {name!r} registered twice")
        cls.name = name
        OPS[name] = cls
        return cls

    return deco


def _load_all() -> None:
    # Importing the modules registers their operators.
    from . import dedupe, langfilter, length_filter, normalize, tasktype  # noqa: F401


def build_op(name: str, params: dict[str, Any] | None = None):
    _load_all()
    if name not in OPS:
        raise KeyError(f"unknown operator {name!r}; known: {', '.join(sorted(OPS))}")
    return OPS[name](**(params or {}))


def parse_steps(spec: list) -> list[tuple[str, dict]]:
    """Recipe steps are ``- op_name: {params}`` or ``- op_name``."""
    steps = []
    for item in spec or []:
        if isinstance(item, str):
            steps.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1:
            (name, params), = item.items()
            steps.append((name, dict(params or {})))
        else:
            raise ValueError(f"bad recipe step {item!r}: expected 'name' or {{name: {{params}}}}")
    return steps


def run_steps(df: pd.DataFrame, steps: list[tuple[str, dict]], stage: str,
              progress: Callable[[str], None] | None = None) -> StageResult:
    """Run operators in order; each one's ledger is checked, drops are gathered with the op's name."""
    drops = [empty_drops(df, stage)]
    stats: dict[str, Any] = {"steps": []}
    for name, params in steps:
        op = build_op(name, params)
        if progress:
            progress(f"{stage}: {name} on {len(df):,} rows")
        n_in = len(df)
        res = op(df)
        res.check(n_in, f"{stage}/{name}")
        if len(res.dropped):
            d = res.dropped.copy()
            d["stage"] = f"{stage}/{name}"
            drops.append(d)
        stats["steps"].append({"op": name, "params": params, "in": n_in, "kept": len(res.kept),
                               "dropped": len(res.dropped), **res.stats})
        df = res.kept
    dropped = pd.concat(drops, ignore_index=True) if len(drops) > 1 else drops[0]
    return StageResult(df.reset_index(drop=True), dropped.reset_index(drop=True), stats)
