"""Step 3: the runs (main grid, constraint sweep, degeneration runs) and the base model's own evaluation."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from curate.io import read_json, write_json

from ..constraints import arm_kwargs
from .config import ExperimentConfig, arm_name


def runs_key(cfg: ExperimentConfig, prepared: dict) -> str:
    """Hash of everything the fine-tunes depend on: changed settings get fresh run folders."""
    import hashlib

    ft = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.finetune_kwargs().items() if k != "threads"}
    blob = json.dumps({"finetune": ft, "base": cfg.base_model, "tiny": asdict(cfg.tiny),
                       "prep": prepared.get("config_key"), "version": 2}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def base_eval_path(cfg: ExperimentConfig, prepared: dict) -> Path:
    return Path(cfg.out_dir) / f"runs-{runs_key(cfg, prepared)}" / "base_eval.json"


def grid(cfg: ExperimentConfig, prepared: dict) -> list[dict[str, Any]]:
    """One dict per fine-tune: part (main, sweep, degeneration), mixture file, arm, seed, output
    folder and the finetune arguments that are its own (constraint, its weight, steps)."""
    by_key = {(m["strategy"], m.get("size", cfg.size), m["seed"]): m for m in prepared["mixtures"]}
    runs_dir = Path(cfg.out_dir) / f"runs-{runs_key(cfg, prepared)}"
    runs: list[dict[str, Any]] = []

    def add(part: str, strategy: str, size: int, arm: str, seed: int, **extra) -> None:
        m = by_key[(strategy, size, seed)]
        name = arm_name(strategy, size, arm, seed) + ("__long" if part == "degeneration" else "")
        if any(r["arm"] == name for r in runs):
            return
        runs.append({"arm": name, "part": part, "strategy": strategy, "mixture": f"{strategy}-{size}", "size": size,
                     "constraint": arm, "seed": seed, "mixture_path": m["path"], "rows": m["rows"],
                     "output_dir": str(runs_dir / name), "params": {**arm_kwargs(arm), **extra}})

    for seed in cfg.seeds:  # seed-major: a cut-short grid still has complete seeds to compare
        for strategy in cfg.strategies:
            for arm in cfg.constraints:
                add("main", strategy, cfg.size, arm, seed)
    for seed in cfg.sweep_seeds:
        for arm in cfg.sweep:
            add("sweep", cfg.sweep_strategy, cfg.size, arm, seed)
    for size in cfg.degeneration_sizes:
        for arm in cfg.degeneration_arms:
            add("degeneration", cfg.degeneration_strategy, size, arm, cfg.seeds[0], response_token_budget=0,
                max_steps=cfg.degeneration_steps, save_steps=cfg.degeneration_save_steps)
    for r in runs:
        if "gravity_weights" in r["params"]:
            r["params"]["gravity_weights"] = list(r["params"]["gravity_weights"])
    return runs


def evaluate_base(base_path: str, eval_path: str, out_path: str | os.PathLike, template: str = "alpaca_zh",
                  cutoff_len: int = 256, gen_max_new_tokens: int = 48, device: str = "cpu") -> dict:
    """The step-0 figures: the base model alone (every arm starts here: LoRA's B starts at zero),
    with per-item scores (``base_items.parquet`` beside ``out_path``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from curate.io import write_parquet

    from ..evaluate import FIXED_PROMPTS, generate, loss_by_type, repetition_metrics
    from ..finetune import load_alpaca_json, score_items
    from ..prompt import get_template

    if Path(out_path).is_file():
        return read_json(out_path)
    tok = AutoTokenizer.from_pretrained(base_path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).to(device)
    tmpl = get_template(template)
    records = load_alpaca_json(eval_path)
    items = score_items(model, tok, tmpl, records, cutoff_len, gen_max_new_tokens, 16)
    ev = loss_by_type(records, list(zip(items["nll"].tolist(), items["tokens"].tolist())))  # no second pass
    gens = generate(model, tok, tmpl, FIXED_PROMPTS, gen_max_new_tokens, cutoff_len)
    write_parquet(Path(out_path).with_name("base_items.parquet"), items)
    row = {"step": 0, "eval_loss": ev["loss"], "eval_ppl": ev["ppl"], "eval_loss_micro": ev["loss_micro"],
           "by_type": ev["by_type"], **repetition_metrics(gens), "generations": gens,
           "exact": float(items["exact"].mean()), "chrf": float(items["chrf"].mean())}
    write_json(out_path, row)
    return row
