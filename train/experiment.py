"""The experiment: does a more diverse SFT set beat training constraints?

Chinese-Tiger-LoRA reported that adding constraints during SFT did not help while a more diverse
SFT set did. The grid here tests that: mixtures (``diverse-N``, ``random-N``, ``narrow-N``, same N)
× constraint arms (``none``, ``gravity``, ``kl``) × seeds, each a LoRA fine-tune of the same base,
all scored on one held-out eval set balanced over task types.

Steps (each a plain function; flows/experiment.py runs them as Prefect tasks):

1. ``prepare``: choose the eval set from the pool, take it and its near-duplicates out of the pool,
   build every mixture (one per strategy and seed: the seed draws the mixture and seeds the
   training) from what is left, and check again that no mixture holds an eval item.
2. ``build_tiny`` (train/tiny.py) when the base is ``tiny``, pretrained on the pool minus the eval set.
3. ``finetune`` for every (mixture, constraint, seed), ``evaluate_base`` once for step 0.
4. ``collect`` → results table, ``plot`` → figures, ``verdict`` → mean differences with 95%
   t-intervals over seeds, said plainly.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from curate.io import read_json, read_parquet, write_json, write_parquet, write_text

from .evaluate import assert_no_eval_items, remove_eval_items, select_eval_set
from .tiny import TinySpec

EVAL_COLUMNS = ["id", "task_type", "instruction", "input", "output", "history"]


@dataclass
class ExperimentConfig:
    pool_path: str
    out_dir: str
    strategies: tuple[str, ...] = ("diverse", "random", "narrow")
    size: int = 1000  # N: every mixture has this many rows
    constraints: tuple[str, ...] = ("none", "gravity", "kl")
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_per_type: int = 20
    eval_seed: int = 0
    near_dup_threshold: float = 0.7
    base_model: str = "tiny"
    tiny: TinySpec = field(default_factory=TinySpec)
    models_dir: str = "data/processed/models"
    # passed to finetune (see train/finetune.py for the rest of its defaults)
    max_steps: int = 150
    save_steps: int = 75
    micro_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-3  # a tiny base takes a larger step than alpaca-lora's 3e-4 for 7B
    cutoff_len: int = 256
    lora_r: int = 8
    kl_coef: float = 1.0
    gravity_weights: tuple[float, float] = (0.7, 0.3)
    template: str = "alpaca_zh"
    device: str = "cpu"

    def finetune_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("max_steps", "save_steps", "micro_batch_size",
                                              "gradient_accumulation_steps", "learning_rate", "cutoff_len",
                                              "lora_r", "kl_coef", "gravity_weights", "template", "device")}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def arm_name(strategy: str, size: int, constraint: str, seed: int) -> str:
    return f"{strategy}-{size}__{constraint}__s{seed}"


# ---- 1. eval set and mixtures ------------------------------------------------------------------


def prepare(cfg: ExperimentConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Eval set, cleaned pool and mixtures on disk; returns their paths and counts."""
    from curate.mix import build_mixture, write_alpaca_json

    out = Path(cfg.out_dir)
    done = out / "prepared.json"
    if done.is_file():
        prev = read_json(done)
        if prev.get("config_key") == _prep_key(cfg):
            return prev
    pool = read_parquet(cfg.pool_path)
    eval_df = select_eval_set(pool, cfg.eval_per_type, cfg.eval_seed)
    log(f"experiment: eval set of {len(eval_df)} records over {eval_df['task_type'].nunique()} task types")
    clean, removed = remove_eval_items(pool, eval_df, cfg.near_dup_threshold)
    log(f"experiment: removed {len(removed)} eval items and near-duplicates from the pool of {len(pool):,}")
    eval_path = out / "eval.json"
    write_json(eval_path, _eval_records(eval_df))
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
    prepared = {"config_key": _prep_key(cfg), "eval_path": str(eval_path), "eval_ids": sorted(eval_df["id"]),
                "eval_by_type": {str(k): int(v) for k, v in eval_df["task_type"].value_counts().sort_index().items()},
                "pool_rows": len(pool), "removed_from_pool": len(removed), "mixtures": mixtures}
    write_json(done, prepared)
    return prepared


def _prep_key(cfg: ExperimentConfig) -> str:
    from curate.io import sha256_file

    keys = ("strategies", "size", "seeds", "eval_per_type", "eval_seed", "near_dup_threshold")
    return json.dumps({"pool": sha256_file(cfg.pool_path), **{k: cfg.to_dict()[k] for k in keys}}, sort_keys=True)


def _eval_records(eval_df: pd.DataFrame) -> list[dict]:
    recs = []
    for r in eval_df.to_dict("records"):
        hist = json.loads(r.get("history") or "[]")
        rec = {"id": r["id"], "task_type": r["task_type"], "instruction": r["instruction"], "input": r["input"],
               "output": r["output"]}
        if hist:
            rec["history"] = hist
        recs.append(rec)
    return recs


# ---- 3. runs ----------------------------------------------------------------------------------


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

    from .evaluate import FIXED_PROMPTS, eval_loss_by_type, generate, repetition_metrics
    from .finetune import load_alpaca_json
    from .prompt import get_template

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


# ---- 4. tables, plots, verdict -------------------------------------------------------------------


def collect(runs: list[dict], base_row: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(results, steps)``: one row per finished run (final checkpoint) and one per run × checkpoint."""
    from .finetune import read_metrics

    res_rows, step_rows = [], []
    for r in runs:
        summary_path = Path(r["output_dir"]) / "summary.json"
        if not summary_path.is_file():
            continue
        s = read_json(summary_path)
        ident = {k: r[k] for k in ("arm", "mixture", "strategy", "constraint", "seed")}
        metrics = read_metrics(r["output_dir"])
        if base_row is not None:
            metrics = [base_row] + [m for m in metrics if m["step"] != 0]
        for m in metrics:
            step_rows.append({**ident, **_flat(m)})
        final = _flat(s["final"])
        res_rows.append({**ident, "rows": r["rows"], **{k: v for k, v in final.items() if k != "step"},
                         "steps": s["steps"], "train_loss_first": s["train_loss_first"],
                         "train_loss_last": s["train_loss_last"], "tokens_seen": s["tokens_seen"],
                         "tokens_per_second": s["tokens_per_second"], "train_seconds": s["train_seconds"],
                         "seconds": s["seconds"], "cpu_seconds": s.get("cpu_seconds"),
                         "adapter_delta_norm": s.get("adapter_delta_norm"),
                         "output_dir": r["output_dir"]})
    return pd.DataFrame(res_rows), pd.DataFrame(step_rows)


def _flat(m: dict) -> dict:
    out = {k: v for k, v in m.items() if k not in ("by_type", "generations")}
    for t, v in sorted((m.get("by_type") or {}).items()):
        out[f"loss[{t}]"] = v["loss"]
    for t, v in sorted((m.get("by_type") or {}).items()):
        out[f"ppl[{t}]"] = v["ppl"]
    return out


def t_interval(diffs: np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """Mean of paired differences and its t confidence interval: ``(mean, low, high, n)``."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    n = len(d)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(d.mean())
    if n == 1:
        return mean, float("nan"), float("nan"), 1
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def paired_effect(results: pd.DataFrame, factor: str, a: str, b: str, fixed: dict | None = None,
                  metric: str = "eval_loss") -> dict[str, Any]:
    """Mean over seeds of ``metric(a) - metric(b)`` for ``factor`` ∈ {mixture, constraint}.

    With ``fixed`` (e.g. ``{"constraint": "none"}``) only those runs count; without, the other
    factor is averaged within each seed first, so there is still one difference per seed.
    """
    df = results
    for k, v in (fixed or {}).items():
        df = df[df[k] == v]
    per_seed = df.groupby(["seed", factor])[metric].mean().unstack(factor)
    if a not in per_seed.columns or b not in per_seed.columns:
        return {"a": a, "b": b, "metric": metric, "n": 0, "mean": None, "low": None, "high": None}
    d = (per_seed[a] - per_seed[b]).dropna()
    mean, low, high, n = t_interval(d.to_numpy())
    return {"factor": factor, "a": a, "b": b, "fixed": fixed or {}, "metric": metric, "n": n,
            "mean": mean, "low": low, "high": high, "diffs": [float(x) for x in d.to_numpy()],
            "mean_a": float(per_seed[a].mean()), "mean_b": float(per_seed[b].mean())}


def _say(e: dict, lower_is_better: bool = True) -> str:
    """One plain sentence for an effect."""
    if not e["n"]:
        return f"{e['a']} vs {e['b']}: no paired runs."
    fmt = lambda x: "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.4f}"  # noqa: E731
    head = (f"{e['a']} − {e['b']} on {e['metric']}: {fmt(e['mean'])} "
            f"(95% CI {fmt(e['low'])} to {fmt(e['high'])}, n={e['n']} seeds)")
    if e["low"] is None or math.isnan(e["low"]):
        return head + ": too few seeds for an interval."
    better = e["high"] < 0 if lower_is_better else e["low"] > 0
    worse = e["low"] > 0 if lower_is_better else e["high"] < 0
    if better:
        return head + f": {e['a']} is better than {e['b']}."
    if worse:
        return head + f": {e['a']} is worse than {e['b']}."
    return head + ": the interval includes 0, so no difference is shown."


def _t_note(n: int) -> str:
    if n < 2:
        return " (one seed: no interval)"
    from scipy import stats

    return (f"; with {n} seeds the interval is ±{stats.t.ppf(0.975, n - 1):.2f} standard errors wide, "
            f"so only effects consistent across seeds clear zero")


BASE_LOSS_TOL = 1e-3  # an arm within this of the base's eval loss on every seed has learnt nothing measurable
ADAPTER_ZERO_NORM = 1e-4  # adapters that move the weights by less than this leave the base as it was


def collapsed_arms(results: pd.DataFrame, base_row: dict | None) -> list[str]:
    """Constraint arms whose every run ended where it started: eval loss within ``BASE_LOSS_TOL``
    of the base's, or (where it was recorded) adapters moving the weights by < ``ADAPTER_ZERO_NORM``."""
    out = []
    for c, part in results.groupby("constraint", sort=False):
        signs = []  # per run: did it end at the base, by each figure available
        if base_row:
            signs.append((part["eval_loss"] - base_row["eval_loss"]).abs() < BASE_LOSS_TOL)
        if "adapter_delta_norm" in part and part["adapter_delta_norm"].notna().all():
            signs.append(part["adapter_delta_norm"] < ADAPTER_ZERO_NORM)
        if signs and len(part) and bool(np.logical_or.reduce(signs).all()):
            out.append(str(c))
    return out


def verdict(results: pd.DataFrame, cfg: ExperimentConfig, base_row: dict | None = None) -> tuple[str, dict[str, Any]]:
    """The verdict section (markdown) and its figures (JSON)."""
    n = cfg.size
    mix = {s: f"{s}-{n}" for s in cfg.strategies}
    effects: dict[str, Any] = {"diversity": [], "constraints": [], "repetition": []}
    lines = ["## Verdict", ""]
    lines.append(f"Metric: eval loss (mean response-token cross-entropy, macro-averaged over the "
                 f"task types of the balanced held-out set; lower is better) at the "
                 f"last checkpoint. Each effect is the mean over seeds of a paired difference (same seed), "
                 f"with a 95% t-interval over seeds" + _t_note(len(cfg.seeds)) + ".")
    lines.append("")
    if "diverse" in mix:
        lines.append("**Effect of diversity** (diverse mixture minus the other at the same N; negative = diverse is better):")
        lines.append("")
        for other in [s for s in cfg.strategies if s != "diverse"]:
            for fixed in ([{"constraint": "none"}] if "none" in cfg.constraints else []) + [None]:
                e = paired_effect(results, "mixture", mix["diverse"], mix[other], fixed)
                effects["diversity"].append(e)
                where = "without constraints" if fixed else "averaged over constraint arms"
                lines.append(f"- {where}: {_say(e)}")
        lines.append("")
    if "none" in cfg.constraints:
        lines.append("**Effect of each constraint** (arm minus `none`; negative = the constraint helps):")
        lines.append("")
        for c in [c for c in cfg.constraints if c != "none"]:
            for fixed in ([{"mixture": mix["diverse"]}] if "diverse" in mix else []) + [None]:
                e = paired_effect(results, "constraint", c, "none", fixed)
                effects["constraints"].append(e)
                where = f"on {mix['diverse']}" if fixed else "averaged over mixtures"
                lines.append(f"- {c}, {where}: {_say(e)}")
        lines.append("")
    lines.append("**Repetition of greedy generations** (repeated 4-gram rate, lower is better; distinct-2, higher is better):")
    lines.append("")
    for metric, lib in (("rep_rate", True), ("distinct_2", False)):
        for other in [s for s in cfg.strategies if s != "diverse"] if "diverse" in mix else []:
            e = paired_effect(results, "mixture", mix["diverse"], mix[other], None, metric)
            effects["repetition"].append(e)
            lines.append(f"- {_say(e, lower_is_better=lib)}")
        for c in [c for c in cfg.constraints if c != "none"]:
            e = paired_effect(results, "constraint", c, "none", None, metric)
            effects["repetition"].append(e)
            lines.append(f"- {_say(e, lower_is_better=lib)}")
    lines.append("")

    # The finding, judged on the primary metric.
    div = [e for e in effects["diversity"] if not e["fixed"]]
    con = [e for e in effects["constraints"] if not e["fixed"]]
    div_ok = bool(div) and all(e["n"] > 1 and e["high"] < 0 for e in div)
    div_against = any(e["n"] > 1 and e["low"] > 0 for e in div)
    con_helps = [e["a"] for e in con if e["n"] > 1 and e["high"] < 0]
    con_hurts = [e["a"] for e in con if e["n"] > 1 and e["low"] > 0]
    collapsed = collapsed_arms(results, base_row)
    effects["collapsed_to_base"] = collapsed
    if collapsed:
        lines.append(f"**Arms that ended at the base model:** {', '.join(collapsed)} — on every run the eval loss is the "
                     f"base's (within {BASE_LOSS_TOL}) or the adapters no longer move the weights: the penalty drove the "
                     f"LoRA matrices back to zero, so the model these runs produce *is* the base. Their repetition and "
                     f"distinct-n figures are the base's own (short outputs), not an effect of constrained training.")
        lines.append("")
    lines.append("**The finding** — \"constraints during SFT do not help; a more diverse SFT set does\":")
    lines.append("")
    if div_ok:
        lines.append("- Diversity: supported — the diverse mixture has a lower eval loss than every other mixture, "
                     "with intervals below zero.")
    elif div_against:
        lines.append("- Diversity: contradicted — at least one less diverse mixture has a lower eval loss than the "
                     "diverse one, with an interval above zero.")
    else:
        lines.append("- Diversity: not shown — at least one interval includes zero; this data does not support "
                     "the claim at this scale.")
    if con_helps:
        lines.append(f"- Constraints: contradicted for {', '.join(con_helps)} — it lowers eval loss with an "
                     f"interval below zero.")
    elif con_hurts:
        lines.append(f"- Constraints: consistent with the finding — none helps; {', '.join(con_hurts)} "
                     f"raises eval loss (interval above zero).")
    else:
        lines.append("- Constraints: consistent with the finding — no constraint shows a benefit (every interval "
                     "includes zero or lies above it).")
    if collapsed:
        lines.append(f"- {', '.join(collapsed)}: does not help because it undoes the fine-tune (the runs end at the base "
                     f"model, above), which says more about the penalty's form and weight than about constraints in general.")
    lines.append("")
    lines.append(f"Scale: N = {n} examples per mixture, {cfg.max_steps} steps of {cfg.micro_batch_size * cfg.gradient_accumulation_steps} "
                 f"examples, base `{cfg.base_model}`, seeds {list(cfg.seeds)}. A tiny base trained for minutes is a "
                 f"weak stand-in for bloomz; the same command with `--base-model bigscience/bloomz-560m --device cuda` "
                 f"and larger N/steps tests the claim where it was made.")
    effects["finding"] = {"diversity_supported": div_ok, "diversity_contradicted": div_against,
                          "constraints_that_help": con_helps, "constraints_that_hurt": con_hurts}
    return "\n".join(lines) + "\n", effects


def plot(results: pd.DataFrame, steps: pd.DataFrame, out_dir: str | os.PathLike,
         base_row: dict | None = None) -> list[str]:
    """``eval_loss_by_task_type.png`` and ``metrics_vs_steps.png``; returns their paths.

    With ``base_row`` the bars are the change from the base's loss on that task type (the arms
    differ by far less than the task types do, so absolute bars would hide the differences).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
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
        fig.suptitle("Eval loss per task type" + (", change from the base" if base_row else "")
                     + " (mean over seeds, error bar = sd; lower is better)")
        fig.tight_layout()
        p = out_dir / "eval_loss_by_task_type.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(str(p))
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
        fig.suptitle("Metrics against steps (mean over seeds; step 0 = the base)")
        fig.tight_layout()
        p = out_dir / "metrics_vs_steps.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(str(p))
    return paths


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
