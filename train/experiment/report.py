"""Step 4: results tables, plots and verdict written to the experiment folder."""
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
    """Write results / steps / items (.parquet, .csv), plots/, verdict.md, experiment.json."""
    out = Path(cfg.out_dir)
    results, steps, items = collect(runs, base_row)
    if results.empty:
        raise RuntimeError(f"{out}: no finished runs to report on")
    for name, df in (("results", results), ("steps", steps), ("items", items)):
        write_parquet(out / f"{name}.parquet", df)
        if name != "items":
            write_text(out / f"{name}.csv", df.to_csv(index=False))
    text, effects = verdict(results, cfg, base_row, items, prepared, steps)
    plots = plot(results, steps, out / "plots", base_row, cfg, effects)
    main = results[results["part"] == "main"]
    cols = ["eval_loss", "chrf", "exact", "rep_rate", "response_tokens_seen", "steps"]
    arms = main.groupby(["mixture", "constraint"], sort=False)[[c for c in cols if c in main]].agg(["mean", "std"])
    table = ["| mixture | constraint | eval loss | chrF | exact match | rep. 4-gram rate | trained-on tokens | steps |",
             "|---|---|---|---|---|---|---|---|"]
    for (m, c), row in arms.iterrows():
        g = lambda k, f: f.format(row[(k, "mean")]) if (k, "mean") in row else "n/a"  # noqa: E731
        table.append(f"| {m} | {c} | {row[('eval_loss', 'mean')]:.4f} ± {row[('eval_loss', 'std')]:.4f} | "
                     f"{g('chrf', '{:.2f}')} | {g('exact', '{:.3f}')} | {g('rep_rate', '{:.3f}')} | "
                     f"{g('response_tokens_seen', '{:,.0f}')} | {g('steps', '{:.0f}')} |")
    base = (f"The base alone (step 0): eval loss {base_row['eval_loss']:.4f}, chrF {base_row.get('chrf', float('nan')):.2f}, "
            f"exact match {base_row.get('exact', float('nan')):.3f}, repeated 4-gram rate {base_row['rep_rate']:.3f}.\n\n"
            if base_row else "")
    removed = ", ".join(f"{k} {v}" for k, v in prepared.get("removed_by_reason", {}).items())
    doc = (f"# Experiment: diverse data vs training constraints\n\n"
           f"{len(results)} of {len(runs)} runs finished. Eval set: {sum(prepared['eval_by_type'].values())} records "
           f"({', '.join(f'{k} {v}' for k, v in prepared['eval_by_type'].items())}). Decontamination: "
           f"{prepared['removed_from_pool']} pool rows removed ({removed}); after-check: {prepared.get('after_check', 'n/a')}. "
           f"The tiny base's pretraining text excludes the same rows.\n\n"
           f"## Arms (main grid; mean ± sd over seeds, last checkpoint)\n\n" + "\n".join(table) + "\n\n" + base + text)
    write_text(out / "verdict.md", doc)
    summary = {"config": cfg.to_dict(), "runs": len(runs), "finished": int(len(results)), "effects": effects,
               "plots": plots, "seconds": seconds, "decontamination": {k: prepared.get(k) for k in
                                                                      ("removed_from_pool", "removed_by_reason", "after_check")},
               "run_seconds_mean": float(results["seconds"].mean()),
               "tokens_per_second_mean": float(results["tokens_per_second"].mean())}
    write_json(out / "experiment.json", summary)
    return {"verdict": str(out / "verdict.md"), "results": str(out / "results.parquet"), "plots": plots,
            "effects": effects}
