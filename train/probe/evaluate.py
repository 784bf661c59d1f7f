"""Score a model on the probe suite: greedy generation, exact match after ``normalize_answer``.

``load_model`` takes a LoRA adapter folder (``adapter_config.json``: its base is loaded first), a
local model folder or a hub name; ``score_model`` writes one row per item (prediction and scores)
and returns the accuracy per split and per family. ``baselines`` gives the accuracy that needs no
model (copy the input; each rule's most frequent answer), the floor a trained model must clear.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from curate.io import read_json, write_json, write_parquet

from . import template as _template  # noqa: F401  (registers probe_zh)
from .suite import SPLITS, normalize_answer, score_item


def load_suite(suite_dir: str | os.PathLike) -> list[dict]:
    """Every eval item of a written suite, in split order, each with its ``item`` index."""
    items = []
    for split in SPLITS:
        for it in read_json(Path(suite_dir) / f"{split}.json"):
            items.append({**it, "item": len(items)})
    return items


def load_model(path_or_name: str, device: str = "cpu", base_model: str | None = None):
    """(model, tokenizer) for an adapter folder, a model folder or a hub name."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path_or_name)
    if (p / "adapter_config.json").is_file():
        from peft import PeftModel

        base = base_model or read_json(p / "adapter_config.json")["base_model_name_or_path"]
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), str(p))
    else:
        tokenizer = AutoTokenizer.from_pretrained(path_or_name)
        model = AutoModelForCausalLM.from_pretrained(path_or_name, dtype=torch.float32)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.eval()
    return model, tokenizer


def max_answer_chars(items: list[dict]) -> int:
    return max((len(it["output"]) for it in items), default=0)


def predict(model, tokenizer, items: list[dict], template: str = "alpaca_zh", max_new_tokens: int | None = None,
            cutoff_len: int = 256, batch_size: int = 64) -> list[str]:
    """Greedy answers (``train.evaluate.generate``); by default room for the longest answer + 8 tokens."""
    from ..evaluate import generate
    from ..prompt import get_template

    n_new = max_new_tokens or max_answer_chars(items) + 8
    prompts = [{"instruction": it["instruction"], "input": it["input"]} for it in items]
    return generate(model, tokenizer, get_template(template), prompts, n_new, cutoff_len + n_new, batch_size)


def score_predictions(items: list[dict], preds: list[str]) -> pd.DataFrame:
    rows = []
    for it, pred in zip(items, preds):
        rows.append({"item": it["item"], "split": it["split"], "rule": it["rule"], "family": it["family"],
                     "kind": it["kind"], "phrasing": it["phrasing"], "instruction": it["instruction"],
                     "input": it["input"], "gold": it["output"], "prediction": pred, **score_item(it, pred)})
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """Accuracy per split and per (split, family); made-up and rule-applied rates on ``no_rule``."""
    out: dict[str, Any] = {"accuracy": {}, "by_family": {}, "items": {}}
    rule_items = df[df["split"] != "no_rule"]
    for split, g in rule_items.groupby("split"):
        out["accuracy"][split] = float(g["correct"].astype(float).mean())
        out["items"][split] = int(len(g))
        out["by_family"][split] = {f: float(h["correct"].astype(float).mean()) for f, h in g.groupby("family")}
    nr = df[df["split"] == "no_rule"]
    if len(nr):
        out["no_rule_made_up"] = float(nr["made_up"].astype(float).mean())
        out["no_rule_rule_applied"] = float(nr["rule_applied"].astype(float).mean())
        out["items"]["no_rule"] = int(len(nr))
    return out


def score_model(model_path: str, suite_dir: str | os.PathLike, out_dir: str | os.PathLike, template: str = "alpaca_zh",
                device: str = "cpu", batch_size: int = 64, max_new_tokens: int | None = None,
                base_model: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """Score ``model_path`` on the suite; writes ``predictions.parquet`` and ``scores.json`` in ``out_dir``."""
    import torch

    if device == "cpu" and threads:
        torch.set_num_threads(threads)
    items = load_suite(suite_dir)
    model, tok = load_model(model_path, device, base_model)
    preds = predict(model, tok, items, template, max_new_tokens, batch_size=batch_size)
    df = score_predictions(items, preds)
    out_dir = Path(out_dir)
    write_parquet(out_dir / "predictions.parquet", df)
    summary = {"model": str(model_path), "suite": str(suite_dir), **summarize(df)}
    write_json(out_dir / "scores.json", summary)
    return summary


def rule_majority_answers(samples: int = 500, seed: int = 0) -> dict[str, str]:
    """Each rule's most frequent answer over ``samples`` fresh draws of its generator: the best
    constant guess a model could learn from the answer distribution alone, without reading the input."""
    
    from collections import Counter

    from .rules import RULES
    from .suite import _rng, make_item

    out = {}
    for r in RULES:
        rng = _rng(seed, "majority", r.name)
        c = Counter(normalize_answer(make_item(r, 0, rng, "majority")["output"]) for _ in range(samples))
        out[r.name] = min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0]  # ties by text: deterministic
    return out


def baseline_correct(items: list[dict]) -> pd.DataFrame:
    """Per item, whether a no-skill answer is right: a copy of the input, or the rule's most frequent answer."""
    majority = rule_majority_answers()
    rows = []
    for it in items:
        rule_item = it["split"] != "no_rule"
        gold = normalize_answer(it["output"])
        rows.append({"item": it["item"], "copy_correct": rule_item and normalize_answer(it["input"]) == gold,
                     "majority_correct": rule_item and majority[it["rule"]] == gold})
    return pd.DataFrame(rows)


def baselines(items: list[dict]) -> dict[str, dict[str, float]]:
    """Accuracy per split of the no-skill answers of ``baseline_correct``."""
    df = baseline_correct(items)
    df["split"] = [it["split"] for it in items]
    df = df[df["split"] != "no_rule"]
    return {c: {s: float(g[c].mean()) for s, g in df.groupby("split")} for c in ("copy_correct", "majority_correct")}


def dumps(summary: dict) -> str:
    return json.dumps(summary, ensure_ascii=False, indent=2)
