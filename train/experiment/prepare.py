"""Step 1: the eval set chosen from the pool and taken out of it (with its near-duplicates), and
every mixture built from what is left."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from curate.io import read_json, read_parquet, write_json

from ..evaluate import assert_no_eval_items, remove_eval_items, select_eval_set
from .config import ExperimentConfig


def prepare(cfg: ExperimentConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Eval set, cleaned pool and mixtures on disk; returns their paths and counts."""
    from curate.mix import build_mixture, write_alpaca_json

    out = Path(cfg.out_dir)
    done = out / "prepared.json"
    if done.is_file():
        prev = read_json(done)
        if prev.get("config_key") == prep_key(cfg):
            return prev
    pool = read_parquet(cfg.pool_path)
    eval_df = select_eval_set(pool, cfg.eval_per_type, cfg.eval_seed)
    log(f"experiment: eval set of {len(eval_df)} records over {eval_df['task_type'].nunique()} task types")
    clean, removed = remove_eval_items(pool, eval_df, cfg.near_dup_threshold)
    log(f"experiment: removed {len(removed)} eval items and near-duplicates from the pool of {len(pool):,}")
    eval_path = out / "eval.json"
    write_json(eval_path, eval_records(eval_df))
    mixtures = []
    for strategy in cfg.strategies:
        for seed in cfg.seeds:
            name = f"{strategy}-{cfg.size}-s{seed}"
            mix = build_mixture(clean, {"name": name, "strategy": strategy, "size": cfg.size, "seed": seed})
            assert_no_eval_items(mix, eval_df, name, cfg.near_dup_threshold)
            path = out / "mixtures" / f"{name}.json"
            write_alpaca_json(mix, path)
            mixtures.append({"name": name, "strategy": strategy, "seed": seed, "path": str(path), "rows": len(mix),
                             "task_types": int(mix["task_type"].nunique()),
                             "clusters": int(mix["cluster"].nunique()) if "cluster" in mix.columns else None})
            if len(mix) < cfg.size:
                log(f"experiment: WARNING {name} has only {len(mix)} rows (pool too small for N={cfg.size})")
    prepared = {"config_key": prep_key(cfg), "eval_path": str(eval_path), "eval_ids": sorted(eval_df["id"]),
                "eval_by_type": {str(k): int(v) for k, v in eval_df["task_type"].value_counts().sort_index().items()},
                "pool_rows": len(pool), "removed_from_pool": len(removed), "mixtures": mixtures}
    write_json(done, prepared)
    return prepared


def prep_key(cfg: ExperimentConfig) -> str:
    from curate.io import sha256_file

    keys = ("strategies", "size", "seeds", "eval_per_type", "eval_seed", "near_dup_threshold")
    return json.dumps({"pool": sha256_file(cfg.pool_path), **{k: cfg.to_dict()[k] for k in keys}}, sort_keys=True)


def eval_records(eval_df: pd.DataFrame) -> list[dict]:
    recs = []
    for r in eval_df.to_dict("records"):
        hist = json.loads(r.get("history") or "[]")
        rec = {"id": r["id"], "task_type": r["task_type"], "instruction": r["instruction"], "input": r["input"],
               "output": r["output"]}
        if hist:
            rec["history"] = hist
        recs.append(rec)
    return recs
