"""Step 4: results table, plots and verdict written to the experiment folder."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from curate.io import write_json, write_parquet, write_text

from .config import ExperimentConfig
from .plots import plot
from .stats import collect
from .verdict import verdict


def report(cfg: ExperimentConfig, runs: list[dict], prepared: dict, base_row: dict | None,
           seconds: float | None = None) -> dict[str, Any]:
    """Write results.{parquet,csv}, steps.{parquet,csv}, plots/, verdict.md, experiment.json."""
    out = Path(cfg.out_dir)
    results, steps = collect(runs, base_row)
    if results.empty:
        raise RuntimeError(f"{out}: no finished runs to report on")
    write_parquet(out / "results.parquet", results)
    write_text(out / "results.csv", results.to_csv(index=False))
    write_parquet(out / "steps.parquet", steps)
    write_text(out / "steps.csv", steps.to_csv(index=False))
    plots = plot(results, steps, out / "plots", base_row)
    text, effects = verdict(results, cfg, base_row)
    arms = (results.groupby(["mixture", "constraint"], sort=False)[["eval_loss", "eval_ppl", "rep_rate", "distinct_2"]]
            .agg(["mean", "std"]).round(4))
    table = ["| mixture | constraint | eval loss | eval ppl | rep. 4-gram rate | distinct-2 |", "|---|---|---|---|---|---|"]
    for (m, c), row in arms.iterrows():
        table.append(f"| {m} | {c} | {row[('eval_loss', 'mean')]:.4f} ± {row[('eval_loss', 'std')]:.4f} | "
                     f"{row[('eval_ppl', 'mean')]:.1f} | {row[('rep_rate', 'mean')]:.3f} | {row[('distinct_2', 'mean')]:.3f} |")
    base = (f"The base alone (step 0): eval loss {base_row['eval_loss']:.4f}, repeated 4-gram rate "
            f"{base_row['rep_rate']:.3f}, distinct-2 {base_row['distinct_2']:.3f}.\n\n" if base_row else "")
    doc = (f"# Experiment: diverse data vs training constraints\n\n"
           f"{len(results)} of {len(runs)} runs finished. Eval set: {sum(prepared['eval_by_type'].values())} records "
           f"({', '.join(f'{k} {v}' for k, v in prepared['eval_by_type'].items())}); "
           f"{prepared['removed_from_pool']} eval items and near-duplicates removed from the pool before mixing.\n\n"
           f"## Arms (mean ± sd over seeds, last checkpoint)\n\n" + "\n".join(table) + "\n\n" + base + text)
    write_text(out / "verdict.md", doc)
    summary = {"config": cfg.to_dict(), "runs": len(runs), "finished": int(len(results)), "effects": effects,
               "plots": plots, "seconds": seconds,
               "run_seconds_mean": float(results["seconds"].mean()),
               "tokens_per_second_mean": float(results["tokens_per_second"].mean())}
    write_json(out / "experiment.json", summary)
    return {"verdict": str(out / "verdict.md"), "results": str(out / "results.parquet"), "plots": plots,
            "effects": effects}
