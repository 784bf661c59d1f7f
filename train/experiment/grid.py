"""Step 3: the runs of the grid (mixture × constraint × seed) and the base model's own evaluation."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from curate.io import read_json, write_json

from .config import ExperimentConfig, arm_name


def runs_key(cfg: ExperimentConfig, prepared: dict) -> str:
    """Hash of everything the fine-tunes depend on: changed settings get fresh run folders."""
    import hashlib

    blob = json.dumps({"finetune": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.finetune_kwargs().items()},
                       "base": cfg.base_model, "tiny": asdict(cfg.tiny), "prep": prepared.get("config_key")},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def base_eval_path(cfg: ExperimentConfig, prepared: dict) -> Path:
    return Path(cfg.out_dir) / f"runs-{runs_key(cfg, prepared)}" / "base_eval.json"


def grid(cfg: ExperimentConfig, prepared: dict) -> list[dict[str, Any]]:
    """One dict per fine-tune: its mixture file, constraint, seed and output folder."""
    by_key = {(m["strategy"], m["seed"]): m for m in prepared["mixtures"]}
    runs_dir = Path(cfg.out_dir) / f"runs-{runs_key(cfg, prepared)}"
    runs = []
    for seed in cfg.seeds:  # seed-major: a cut-short grid still has complete seeds to compare
        for strategy in cfg.strategies:
            for constraint in cfg.constraints:
                m = by_key[(strategy, seed)]
                runs.append({"arm": arm_name(strategy, cfg.size, constraint, seed), "strategy": strategy,
                             "mixture": f"{strategy}-{cfg.size}", "constraint": constraint, "seed": seed,
                             "mixture_path": m["path"], "rows": m["rows"],
                             "output_dir": str(runs_dir / arm_name(strategy, cfg.size, constraint, seed))})
    return runs


def evaluate_base(base_path: str, eval_path: str, out_path: str | os.PathLike, template: str = "alpaca_zh",
                  cutoff_len: int = 256, gen_max_new_tokens: int = 48, device: str = "cpu") -> dict:
    """The step-0 figures: the base model alone (every arm starts here: LoRA's B starts at zero)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..evaluate import FIXED_PROMPTS, eval_loss_by_type, generate, repetition_metrics
    from ..finetune import load_alpaca_json
    from ..prompt import get_template

    if Path(out_path).is_file():
        return read_json(out_path)
    tok = AutoTokenizer.from_pretrained(base_path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32).to(device)
    tmpl = get_template(template)
    ev = eval_loss_by_type(model, tok, tmpl, load_alpaca_json(eval_path), cutoff_len)
    gens = generate(model, tok, tmpl, FIXED_PROMPTS, gen_max_new_tokens, cutoff_len)
    row = {"step": 0, "eval_loss": ev["loss"], "eval_ppl": ev["ppl"], "eval_loss_micro": ev["loss_micro"],
           "by_type": ev["by_type"], **repetition_metrics(gens), "generations": gens}
    write_json(out_path, row)
    return row
