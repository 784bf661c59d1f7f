"""Step 1: the eval set chosen from the pool and taken out of it (with its twins), and every mixture
built from what is left, each checked by the independent after-check."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from curate.io import read_json, read_parquet, write_json

from ..evaluate import check_decontaminated, remove_eval_items, select_eval_set
from .config import ExperimentConfig


def mixture_specs(cfg: ExperimentConfig) -> list[tuple[str, int, int]]:
    """``(strategy, size, seed)`` of every mixture the grid trains on."""
    specs = [(s, cfg.size, seed) for s in cfg.strategies for seed in cfg.seeds]
    specs += [(cfg.sweep_strategy, cfg.size, seed) for seed in cfg.sweep_seeds if cfg.sweep]
    specs += [(cfg.degeneration_strategy, n, cfg.seeds[0]) for n in cfg.degeneration_sizes]
    return list(dict.fromkeys(specs))


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
    by_reason = {str(k): int(v) for k, v in removed["removed_because"].value_counts().sort_index().items()}
    log(f"experiment: removed {len(removed)} eval items and twins from the pool of {len(pool):,} ({by_reason})")
    eval_path = out / "eval.json"
    write_json(eval_path, eval_records(eval_df))
    mixtures = []
    for strategy, size, seed in mixture_specs(cfg):
        name = f"{strategy}-{size}-s{seed}"
        mix = build_mixture(clean, {"name": name, "strategy": strategy, "size": size, "seed": seed})
        check_decontaminated(mix, eval_df, name)  # independent of the removal above; raises
        path = out / "mixtures" / f"{name}.json"
        write_alpaca_json(mix, path)
        mixtures.append({"name": name, "strategy": strategy, "size": size, "seed": seed, "path": str(path),
                         "rows": len(mix), "task_types": sorted(str(t) for t in mix["task_type"].unique()),
                         "clusters": int(mix["cluster"].nunique()) if "cluster" in mix.columns else None})
        if len(mix) < size:
            log(f"experiment: WARNING {name} has only {len(mix)} rows (pool too small for N={size})")
    prepared = {"config_key": prep_key(cfg), "eval_path": str(eval_path), "eval_ids": sorted(eval_df["id"]),
                "eval_by_type": {str(k): int(v) for k, v in eval_df["task_type"].value_counts().sort_index().items()},
                # the tiny base never sees an eval item or a twin of one
                "pretrain_exclude_ids": sorted(set(eval_df["id"]) | set(removed["id"])),
                "pool_rows": len(pool), "removed_from_pool": len(removed), "removed_by_reason": by_reason,
                "after_check": "exact character 3-gram Jaccard of prompts < 0.6 against every eval item, no eval id "
                               "(train.evaluate.check_decontaminated): passed on every mixture",
                "mixtures": mixtures}
    write_json(done, prepared)
    return prepared


def prep_key(cfg: ExperimentConfig) -> str:
    from curate.io import sha256_file

    keys = ("strategies", "size", "seeds", "sweep", "sweep_strategy", "sweep_seeds", "degeneration_sizes",
            "degeneration_strategy", "eval_per_type", "eval_seed", "near_dup_threshold")
    return json.dumps({"pool": sha256_file(cfg.pool_path), "decontamination": 2,
                       **{k: cfg.to_dict()[k] for k in keys}}, sort_keys=True)


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
