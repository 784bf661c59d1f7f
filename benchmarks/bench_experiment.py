"""Where `tiger experiment`'s time goes: tokens/s and the split into base build, fine-tunes and evaluation.

    .venv/bin/python benchmarks/bench_experiment.py [EXPERIMENT_DIR]

Reads a finished experiment folder (default: the newest `data/processed/run-*/experiment`) and prints,
per part of the grid (main, sweep, degeneration): runs, steps, trained-on tokens, tokens/s, and the
seconds spent training versus evaluating (checkpoint evaluations and the final per-item scoring),
plus the tiny base's build time and the command's wall time. Runs go two at a time on two cores,
so the summed run seconds exceed the wall time.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    exp = Path(sys.argv[1]) if len(sys.argv) > 1 else sorted(ROOT.glob("data/processed/run-*/experiment"))[-1]
    summary = json.loads((exp / "experiment.json").read_text())
    res = pd.read_parquet(exp / "results.parquet")
    steps = pd.read_parquet(exp / "steps.parquet")
    cfg = summary["config"]
    builds = sorted((ROOT / cfg["models_dir"]).glob("tiny-*/build.json")) if cfg["base_model"] == "tiny" else []
    prepared = json.loads((exp / "prepared.json").read_text())
    build = next((json.loads(b.read_text()) for b in builds
                  if json.loads(b.read_text())["excluded_ids"] == len(prepared.get("pretrain_exclude_ids", []))), None)
    ckpt_eval = steps[steps["step"] > 0].groupby("arm")["eval_seconds"].sum() if "eval_seconds" in steps else None
    res = res.assign(eval_seconds=res["arm"].map(ckpt_eval) if ckpt_eval is not None else 0.0)
    res["other_seconds"] = res["seconds"] - res["train_seconds"]  # load, final per-item scoring, saving
    res["train_seconds"] = res["train_seconds"] - res["eval_seconds"]  # the Trainer's time less its evaluations
    table = res.groupby("part").agg(runs=("arm", "count"), steps=("steps", "mean"),
                                    trained_on_tokens=("response_tokens_seen", "mean"),
                                    tokens_per_second=("tokens_per_second", "mean"),
                                    train_seconds=("train_seconds", "sum"), eval_seconds=("eval_seconds", "sum"),
                                    outside_training_seconds=("other_seconds", "sum"), cpu_seconds=("cpu_seconds", "sum"))
    print(f"experiment: {exp}")
    if build:
        print(f"tiny base: {build['parameters'] / 1e6:.1f}M parameters, {build['tokens']:,} tokens, "
              f"{build['spec']['pretrain_steps']} steps: {build['seconds']} s wall, {build['cpu_seconds']} CPU-s")
    print(f"whole command: {summary.get('seconds')} s wall (this call; a cached base or finished runs are not redone)")
    print("per part (seconds summed over runs; train: optimizer steps; eval: checkpoint evaluations; "
          "outside_training: model load, the final per-item answers and scores, saving):")
    print(table.round(1).to_string())


if __name__ == "__main__":
    main()
