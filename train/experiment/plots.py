"""Step 4c: the experiment's figures."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd


def plot(results: pd.DataFrame, steps: pd.DataFrame, out_dir: str | os.PathLike,
         base_row: dict | None = None, cfg=None, effects: dict | None = None) -> list[str]:
    """``eval_loss_by_task_type.png`` and ``metrics_vs_steps.png`` (main grid), ``constraint_sweep.png``
    (eval loss and adapter norm against the weight) and ``degeneration.png`` (eval loss and repetition
    against steps in the long runs); returns their paths.

    With ``base_row`` the bars are the change from the base's loss on that task type (the arms
    differ by far less than the task types do, so absolute bars would hide the differences).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    all_steps = steps
    if "part" in results:
        results = results[results["part"] == "main"]
    if "part" in steps:
        steps = steps[steps["part"] == "main"]
    type_cols = sorted(c for c in results.columns if c.startswith("loss["))
    constraints = list(dict.fromkeys(results["constraint"]))
    mixtures = list(dict.fromkeys(results["mixture"]))
    if type_cols:
        fig, axes = plt.subplots(len(constraints), 1, figsize=(12, 3.2 * len(constraints)), sharex=True, squeeze=False)
        x = np.arange(len(type_cols))
        width = 0.8 / max(1, len(mixtures))
        by_type = (base_row or {}).get("by_type") or {}
        ref = np.array([by_type.get(col[5:-1], {}).get("loss", np.nan) for col in type_cols]) if base_row else 0.0
        for ax, c in zip(axes[:, 0], constraints):
            for i, m in enumerate(mixtures):
                part = results[(results["constraint"] == c) & (results["mixture"] == m)]
                if part.empty:
                    continue
                ax.bar(x + i * width, part[type_cols].mean().to_numpy() - ref, width,
                       yerr=part[type_cols].std(ddof=1).fillna(0).to_numpy() if len(part) > 1 else None,
                       label=m, capsize=2)
            ax.set_title(f"constraint: {c}")
            ax.set_ylabel("eval loss − base" if base_row else "eval loss")
            ax.axhline(0, color="black", linewidth=0.6)
            ax.legend(fontsize=8, ncol=len(mixtures))
            if not base_row:
                lo = np.nanmin(results[type_cols].to_numpy())
                hi = np.nanmax(results[type_cols].to_numpy())
                ax.set_ylim(max(0.0, lo - 0.1 * (hi - lo + 1e-9)), hi + 0.1 * (hi - lo + 1e-9))
        axes[-1, 0].set_xticks(x + width * (len(mixtures) - 1) / 2)
        axes[-1, 0].set_xticklabels([c[5:-1] for c in type_cols], rotation=30)
        title = ("Eval loss per task type" + (", change from the base" if base_row else "")
                 + " (mean over seeds, error bar = sd; lower is better)")
        paths.append(_save(fig, out_dir / "eval_loss_by_task_type.png", title))
    if not steps.empty:
        metrics = [m for m in ("eval_loss", "rep_rate", "distinct_2", "mean_len") if m in steps.columns]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
        styles = dict(zip(constraints, ["-", "--", ":", "-."]))
        colors = dict(zip(mixtures, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
        for ax, metric in zip(axes[0], metrics):
            for (m, c), part in steps.groupby(["mixture", "constraint"], sort=False):
                curve = part.groupby("step")[metric].mean()
                ax.plot(curve.index, curve.to_numpy(), styles.get(c, "-"), color=colors.get(m), label=f"{m} / {c}")
            ax.set_xlabel("step")
            ax.set_title(metric)
        axes[0][0].legend(fontsize=7)
        paths.append(_save(fig, out_dir / "metrics_vs_steps.png", "Metrics against steps (mean over seeds; step 0 = the base)"))
    sweep = pd.DataFrame((effects or {}).get("sweep") or [])
    if len(sweep) > 1:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        none = sweep[sweep["kind"] == "none"]
        for kind, marker in (("gravity", "o-"), ("kl", "s--")):
            part = sweep[sweep["kind"] == kind].sort_values("weight")
            if part.empty:
                continue
            axes[0].plot(part["weight"], part["eval_loss"], marker, label=kind)
            axes[1].plot(part["weight"], part["adapter_delta_norm"], marker, label=kind)
        for ax, col in zip(axes, ("eval_loss", "adapter_delta_norm")):
            if len(none):
                ax.axhline(float(none[col].iloc[0]), color="gray", linewidth=0.8, label="none")
            if base_row and col == "eval_loss":
                ax.axhline(base_row["eval_loss"], color="black", linestyle=":", linewidth=0.8, label="base")
            ax.set_xscale("log")
            ax.set_xlabel("weight (gravity: penalty share; kl: coefficient)")
            ax.set_title(col)
            ax.legend(fontsize=8)
        norms = sweep["adapter_delta_norm"].dropna()
        if len(norms) and (norms > 0).all():
            axes[1].set_yscale("log")  # a collapsed arm sits orders of magnitude below the others
        else:
            axes[1].set_yscale("symlog", linthresh=1e-6)
        paths.append(_save(fig, out_dir / "constraint_sweep.png", "Constraint weight sweep (final checkpoint)"))
    deg = all_steps[all_steps["part"] == "degeneration"] if "part" in all_steps else all_steps.iloc[0:0]
    if len(deg):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for arm, part in deg.groupby("arm", sort=False):
            part = part.sort_values("step")
            axes[0].plot(part["step"], part["eval_loss"], "-o", markersize=3, label=str(part["mixture"].iloc[0]))
            axes[1].plot(part["step"], part["rep_rate"], "-o", markersize=3, label=str(part["mixture"].iloc[0]))
        axes[0].set_title("eval loss")
        axes[1].set_title("repeated 4-gram rate (fixed prompts)")
        for ax in axes:
            ax.set_xlabel("step")
            ax.legend(fontsize=8)
        paths.append(_save(fig, out_dir / "degeneration.png",
                           "Degeneration over longer training (no constraint; step 0 = the base)"))
    return paths


def _save(fig, path: Path, title: str) -> str:
    """Title, lay out, write at the project's plot resolution, and free the figure."""
    import matplotlib.pyplot as plt

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
