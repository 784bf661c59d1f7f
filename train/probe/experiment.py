"""The rule-probe experiment: training-rule diversity × phrasing diversity × constraint arm × seed.

Every mixture has the same number of examples (``size``) and every run the same optimizer steps, so
arms differ only in what the examples are and in the loss. A run is a LoRA fine-tune
(``train.finetune.finetune``, the constraint arms of ``train.constraints``) followed by exact-match
scoring on the whole suite. The report gives accuracy per split (own seen rules, their held-out
phrasings, held-out rules, seen rules the mixture left out) and per family, with 95% intervals from
a bootstrap over seeds and items, a plot of held-out accuracy against the number of training rules
(one line per arm) and a verdict gated by a positive control: seen-rule accuracy must clear the
best no-skill floor (the untrained base, copying the input, each rule's most frequent answer).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from curate.io import read_json, write_json, write_parquet, write_text

from . import template as _template  # noqa: F401  (registers probe_zh)
from ..bootstrap import bootstrap  # noqa: F401  (shared with tiger experiment)
from ..constraints import arm_kwargs, parse_arm  # noqa: F401  (re-exported: tests and callers use them here)
from .base import CharBaseSpec
from .evaluate import baseline_correct, load_suite, score_model
from .suite import SuiteSpec, blend_tag, mixture_name, seen_rules, write_mixture, write_suite

# Every linear layer, the output head included: on the tiny character base, LoRA without lm_head
# barely moves the loss in hundreds of steps (the output distribution cannot shift), with it it learns
# about as fast as a full fine-tune.
LORA_ALL = ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "lm_head")
METRICS = ("seen", "heldout_phrasing", "heldout_rule", "seen_untrained", "no_rule_made_up", "no_rule_rule_applied")


@dataclass
class ProbeConfig:
    out_dir: str = "data/processed/probe"  # suite, mixtures, runs, results, plots and verdict.md go here
    base_model: str = "char"  # "char": the character-level base (train/probe/base.py); else a model path or name
    text_source: str | None = None  # pretraining text of the char base; default: the mirror's translated alpaca
    models_dir: str = "data/processed/models"  # where the char base is built and cached
    base: CharBaseSpec = field(default_factory=CharBaseSpec)
    # the suite
    suite_seed: int = 0  # seeds every eval item and training example
    seen_items: int = 12  # eval items per seen rule, on its trainable phrasings
    heldout_phrasing_items: int = 12  # eval items per seen rule, on its held-out phrasings
    heldout_rule_items: int = 16  # eval items per held-out rule (new rules and compositions)
    no_rule_items: int = 32  # unanswerable instructions (made-up answers are counted)
    # the grid
    n_rules: tuple[int, ...] = (2, 8, 0)  # training rules per mixture; 0: every seen rule
    phrasings: tuple[int, ...] = (3, 1)  # trainable phrasings per rule: 3 (all) or 1
    # constraint arms, name-weight: none, gravity-W (loss (1-W)·CE + W·LoRA norm; gravity-0.3 is the original's
    # 0.7·CE + 0.3·norm), kl-C (CE + C·KL to the base)
    arms: tuple[str, ...] = ("none", "gravity-0.3", "kl-1")
    one_phrasing_arms: tuple[str, ...] = ("none",)  # arms also trained on the 1-phrasing mixtures
    one_phrasing_rules: tuple[int, ...] = (8,)  # rule counts that get 1-phrasing mixtures (0: all rules); (): every count
    constraint_rules: tuple[int, ...] = (2, 0)  # rule counts the arms other than none run at (0: all rules); (): every count
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds: each also draws its own mixture and rule order
    # curated pool mixtures (alpaca JSON, e.g. a run's diverse-N and narrow-N) blended into the mixtures
    # of every rule count at all phrasings, for the blend_arms: does general SFT data help the probe?
    blends: tuple[str, ...] = ()
    blend_fraction: float = 0.25  # share of the size examples taken from the pool mixture (budget fixed)
    blend_arms: tuple[str, ...] = ("none",)  # arms trained on the blended mixtures
    size: int = 8000  # examples per mixture: the fixed training budget (one epoch of max_steps x micro_batch_size)
    # passed to finetune
    max_steps: int = 1000  # optimizer steps per run
    micro_batch_size: int = 8  # examples per step: 8 learns more per example than 16 for ~20% more time
    learning_rate: float = 3e-3  # peak LoRA learning rate (linear warm-up, then linear decay)
    warmup_steps: int = 10  # steps of linear warm-up
    lora_r: int = 16  # LoRA rank
    lora_alpha: int = 32  # LoRA scale (alpha / r multiplies the update)
    lora_dropout: float = 0.0  # dropout on LoRA inputs: none, it slows a small CPU run by a fifth and learning too
    target_modules: tuple[str, ...] = LORA_ALL  # modules LoRA adapts (the output head included)
    cutoff_len: int = 192  # tokens per example at most (prompt and answer)
    template: str = "probe_zh"  # short headers (train/probe/template.py); alpaca_zh for bigger models
    device: str = "cpu"  # cpu or cuda
    threads: int = 1  # torch threads per run: on a shared CPU one thread per process is far faster
    eval_batch_size: int = 64  # eval items generated at once
    bootstrap: int = 2000  # bootstrap resamples behind every 95% interval

    def suite_spec(self) -> SuiteSpec:
        return SuiteSpec(self.suite_seed, self.seen_items, self.heldout_phrasing_items, self.heldout_rule_items,
                         self.no_rule_items)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ProbeConfig":
        d = dict(d)
        d["base"] = CharBaseSpec(**d.get("base", {}))
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def all_rules() -> int:
    return len(seen_rules())


def grid(cfg: ProbeConfig) -> list[dict[str, Any]]:
    """One dict per run: its name, mixture coordinates, arm, seed and folders."""
    out = Path(cfg.out_dir)
    runs = []
    for seed in cfg.seeds:
        for k in cfg.n_rules:
            n = k or all_rules()
            for p in cfg.phrasings:
                for arm in cfg.arms:
                    if p != max(cfg.phrasings) and (arm not in cfg.one_phrasing_arms
                                                    or not _at(k, cfg.one_phrasing_rules)):
                        continue
                    if arm != "none" and not _at(k, cfg.constraint_rules):
                        continue
                    parse_arm(arm)
                    runs.append(_run(out, n, p, arm, seed, cfg.size))
            for blend in cfg.blends:
                tag = blend_tag(blend, cfg.blend_fraction)
                for arm in cfg.blend_arms:
                    parse_arm(arm)
                    runs.append(_run(out, n, max(cfg.phrasings), arm, seed, cfg.size, blend, tag))
    return runs


def _at(k: int, counts: tuple[int, ...]) -> bool:
    """Whether rule count ``k`` is in ``counts`` (0 meaning all rules); an empty ``counts`` takes every count."""
    return not counts or (k or all_rules()) in {c or all_rules() for c in counts}


def _run(out: Path, n: int, p: int, arm: str, seed: int, size: int, blend: str = "", tag: str = "") -> dict:
    name = f"r{n}-p{p}-{arm}" + (f"-{tag}" if tag else "") + f"-s{seed}"
    mix = mixture_name(n, p, size, seed) + (f"-{tag}" if tag else "")
    return {"run": name, "n_rules": n, "phrasings": p, "arm": arm, "seed": seed, "blend": tag, "blend_path": blend,
            "mixture": str(out / "mixtures" / f"{mix}.json"), "output_dir": str(out / "runs" / name)}


def prepare(cfg: ProbeConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the suite and every mixture of the grid (deterministic: rewriting gives the same bytes)."""
    out = Path(cfg.out_dir)
    spec = cfg.suite_spec()
    manifest = write_suite(out / "suite", spec)
    from .suite import eval_splits

    splits = eval_splits(spec)
    made = set()
    for r in grid(cfg):
        key = (r["n_rules"], r["phrasings"], r["seed"], r["blend"])
        if key not in made:
            write_mixture(out / "mixtures", spec, r["n_rules"], r["phrasings"], cfg.size, r["seed"], splits,
                          blend=r["blend_path"] or None, blend_fraction=cfg.blend_fraction)
            made.add(key)
    log(f"probe: suite of {sum(s['items'] for s in manifest['splits'].values())} eval items, {len(made)} mixtures "
        f"of {cfg.size} examples")
    return {"suite_dir": str(out / "suite"), "mixtures": len(made)}


def resolve_base(cfg: ProbeConfig, log: Callable[[str], None] = print) -> str:
    if cfg.base_model != "char":
        return cfg.base_model
    from .base import build_char_base

    return str(build_char_base(cfg.text_source, cfg.models_dir, cfg.base, log=log, threads=cfg.threads))


def finetune_kwargs(cfg: ProbeConfig) -> dict[str, Any]:
    return {"max_steps": cfg.max_steps, "save_steps": cfg.max_steps, "micro_batch_size": cfg.micro_batch_size,
            "learning_rate": cfg.learning_rate, "warmup_steps": cfg.warmup_steps, "lora_r": cfg.lora_r,
            "lora_alpha": cfg.lora_alpha, "lora_dropout": cfg.lora_dropout, "response_logits_only": True,
            "target_modules": tuple(cfg.target_modules), "cutoff_len": cfg.cutoff_len,
            "template": cfg.template, "device": cfg.device, "threads": cfg.threads,
            "gen_max_new_tokens": 8, "eval_batch_size": cfg.eval_batch_size}


def train_and_score(cfg: ProbeConfig, run: dict, base: str, suite_dir: str,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """One run: the fine-tune (skipped when finished) and its scores (skipped when written)."""
    from ..finetune import finetune

    out = Path(run["output_dir"])
    summary = finetune(run["mixture"], out, base_model=base, seed=run["seed"], log_every=25,
                       **arm_kwargs(run["arm"]), **finetune_kwargs(cfg))
    if not (out / "probe" / "scores.json").is_file():
        score_model(str(out / "adapter"), suite_dir, out / "probe", cfg.template, cfg.device, cfg.eval_batch_size,
                    base_model=base, threads=cfg.threads)
    scores = read_json(out / "probe" / "scores.json")
    log(f"probe: {run['run']}: seen {scores['accuracy'].get('seen', float('nan')):.3f}, held-out rules "
        f"{scores['accuracy'].get('heldout_rule', float('nan')):.3f}, {summary['steps']} steps, "
        f"{summary['train_seconds']:.0f} s")
    return scores


def score_base(cfg: ProbeConfig, base: str, suite_dir: str) -> dict[str, Any]:
    out = Path(cfg.out_dir) / "base"
    if not (out / "scores.json").is_file():
        score_model(base, suite_dir, out, cfg.template, cfg.device, cfg.eval_batch_size, threads=cfg.threads)
    return read_json(out / "scores.json")


# ---- collecting and statistics --------------------------------------------------------------------


def item_table(cfg: ProbeConfig, runs: list[dict]) -> pd.DataFrame:
    """One row per (finished run, eval item): correctness, whether the item's rule was trained on, and
    the no-skill floors for that item (base model, copy of the input, the rule's most frequent answer)."""
    suite_dir = Path(cfg.out_dir) / "suite"
    items = load_suite(suite_dir)
    base = pd.read_parquet(Path(cfg.out_dir) / "base" / "predictions.parquet")[["item", "correct"]]
    floors = _item_floors(items).merge(base.rename(columns={"correct": "base_correct"}), on="item")
    frames = []
    for r in runs:
        p = Path(r["output_dir"]) / "probe" / "predictions.parquet"
        if not p.is_file():
            continue
        df = pd.read_parquet(p)
        man = read_json(Path(r["mixture"]).with_name(Path(r["mixture"]).stem + ".manifest.json"))
        df["in_mixture"] = df["rule"].isin(man["rules"])
        for k in ("run", "n_rules", "phrasings", "arm", "seed", "blend"):
            df[k] = r.get(k, "")
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True).merge(floors, on="item", how="left")


def _item_floors(items: list[dict]) -> pd.DataFrame:
    return baseline_correct(items)


def select(df: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, str]:
    """The items a metric is computed on and the column that scores them."""
    if metric in ("seen", "heldout_phrasing"):
        return df[(df["split"] == metric) & df["in_mixture"]], "correct"
    if metric == "seen_untrained":
        return df[(df["split"] == "seen") & ~df["in_mixture"]], "correct"
    if metric == "heldout_rule":
        return df[df["split"] == "heldout_rule"], "correct"
    if metric == "no_rule_made_up":
        return df[df["split"] == "no_rule"], "made_up"
    if metric == "no_rule_rule_applied":
        return df[df["split"] == "no_rule"], "rule_applied"
    raise KeyError(metric)


def per_seed(df: pd.DataFrame, metric: str, col: str | None = None) -> dict[int, np.ndarray]:
    """seed → the metric's per-item scores (in item order) for the runs in ``df`` (one config)."""
    sub, c = select(df, metric)
    c = col or c
    return {int(s): g.sort_values("item")[c].astype(float).to_numpy() for s, g in sub.groupby("seed") if len(g)}


def _with_blend(items: pd.DataFrame) -> pd.DataFrame:
    return items if "blend" in items else items.assign(blend="")


def config_table(items: pd.DataFrame, reps: int) -> pd.DataFrame:
    """Per (arm, n_rules, phrasings, blend) and metric: mean, 95% interval, seeds, items, and the floor."""
    items = _with_blend(items)
    rows = []
    for (arm, n, p, b), g in items.groupby(["arm", "n_rules", "phrasings", "blend"], sort=True):
        for metric in METRICS:
            ps = per_seed(g, metric)
            if not ps:
                continue
            e = bootstrap(ps, reps=reps)
            row = {"arm": arm, "n_rules": n, "phrasings": p, "blend": b, "metric": metric, **e}
            if not metric.startswith("no_rule"):
                row["floor"] = max(float(np.mean([v.mean() for v in per_seed(g, metric, c).values()]))
                                   for c in ("base_correct", "copy_correct", "majority_correct"))
            rows.append(row)
    return pd.DataFrame(rows)


def family_table(items: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (arm, n_rules, phrasings, split, family): mean over seeds and items, with a 95%
    Wilson interval over the pooled items (families hold few items per run)."""
    rows = []
    items = _with_blend(items)
    rule_items = items[items["split"] != "no_rule"]
    for (arm, n, p, b, split, fam), g in rule_items.groupby(["arm", "n_rules", "phrasings", "blend", "split",
                                                             "family"]):
        own = g[g["in_mixture"]] if split in ("seen", "heldout_phrasing") else g
        if not len(own):
            continue
        k, m = float(own["correct"].astype(float).sum()), len(own)
        lo, hi = _wilson(k, m)
        rows.append({"arm": arm, "n_rules": n, "phrasings": p, "blend": b, "split": split, "family": fam,
                     "accuracy": k / m, "low": lo, "high": hi, "items": m})
    return pd.DataFrame(rows)


def _wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(c - h), float(c + h)


def run_table(runs: list[dict], items: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: its accuracies and training figures."""
    rows = []
    for r in runs:
        sp = Path(r["output_dir"]) / "summary.json"
        g = items[items["run"] == r["run"]] if len(items) else items
        if not sp.is_file() or not len(g):
            continue
        s = read_json(sp)
        row = {k: r.get(k, "") for k in ("run", "n_rules", "phrasings", "arm", "seed", "blend")}
        for metric in METRICS:
            sub, c = select(g, metric)
            row[metric] = float(sub[c].astype(float).mean()) if len(sub) else np.nan
        row.update(train_loss_first=s["train_loss_first"], train_loss_last=s["train_loss_last"],
                   adapter_delta_norm=s["adapter_delta_norm"], tokens_seen=s["tokens_seen"],
                   train_seconds=s["train_seconds"], tokens_per_second=s["tokens_per_second"],
                   cpu_seconds=s["cpu_seconds"])
        rows.append(row)
    return pd.DataFrame(rows)


# ---- verdict and plot ------------------------------------------------------------------------------


def _fmt(e: dict) -> str:
    if e.get("mean") is None:
        return "not measured"
    return f"{e['mean']:+.3f} (95% CI {e['low']:+.3f} to {e['high']:+.3f})"


def _cell(items: pd.DataFrame, c: dict) -> pd.DataFrame:
    return items[(items["arm"] == c["arm"]) & (items["n_rules"] == c["n_rules"]) & (items["phrasings"] == c["phrasings"])
                 & (items["blend"] == c.get("blend", ""))]


def _effect(items: pd.DataFrame, metric: str, a: dict, b: dict, reps: int) -> dict:
    ga, gb = _cell(items, a), _cell(items, b)
    pa, pb = per_seed(ga, metric), per_seed(gb, metric)
    ia = select(ga, metric)[0].groupby("seed")["item"].apply(lambda s: tuple(sorted(s)))
    ib = select(gb, metric)[0].groupby("seed")["item"].apply(lambda s: tuple(sorted(s)))
    paired = len(ia) > 0 and ia.to_dict() == ib.to_dict()
    e = bootstrap(pa, pb, paired_items=paired, reps=reps)
    e.update(metric=metric, a=a, b=b, paired_items=paired)
    return e


def _sentence(label: str, e: dict, what: str) -> str:
    if e.get("mean") is None:
        return f"- **{label}**: not measured (the runs are missing)."
    if e["low"] > 0:
        verdict = f"higher: measured, {what}"
    elif e["high"] < 0:
        verdict = f"lower: measured, the opposite of \"{what}\""
    elif e["high"] - e["low"] < 1e-9:
        verdict = "no difference on any item (both score the same on every item, e.g. all 0)"
    else:
        half = (e["high"] - e["low"]) / 2
        verdict = f"not shown: the interval includes 0; a difference smaller than about ±{half:.2f} could not be seen"
    return f"- **{label}**: {_fmt(e)}: {verdict}."


def verdict(cfg: ProbeConfig, items: pd.DataFrame, table: pd.DataFrame, base_scores: dict) -> tuple[str, dict]:
    items = _with_blend(items)  # the cells below select on it
    reps = cfg.bootstrap
    ks = sorted(items["n_rules"].unique())
    p_all = max(cfg.phrasings)
    lines = ["## Positive control: seen-rule accuracy above the no-skill floor", ""]
    control = {}
    none_rows = table[(table["arm"] == "none") & (table["phrasings"] == p_all) & (table["metric"] == "seen")]
    for _, r in none_rows.sort_values("n_rules").iterrows():
        ok = r["low"] is not None and r["low"] > r["floor"]
        control[int(r["n_rules"])] = bool(ok)
        lines.append(f"- {int(r['n_rules'])} rules, `none`: seen-rule accuracy {r['mean']:.3f} (95% CI {r['low']:.3f}–"
                     f"{r['high']:.3f}) against a floor of {r['floor']:.3f}: {'passes' if ok else 'FAILS'}.")
    passed = bool(control) and all(control.values())
    base_acc = base_scores.get("accuracy", {})
    lines += ["", f"The floor is the best of: the untrained base (seen {base_acc.get('seen', 0):.3f}, held-out rules "
              f"{base_acc.get('heldout_rule', 0):.3f}), copying the input, and each rule's most frequent answer on "
              f"the same items. " + ("The control passes: the instrument learns the rules it is shown, so a missing "
                                     "effect below is a measured absence within its interval, not blindness."
                                     if passed else
                                     "The control does not pass everywhere: where it fails the grid cannot tell "
                                     "learning from its absence, and no effect below should be read as evidence."), ""]
    effects: dict[str, Any] = {"control": control, "control_passed": passed}
    # A comparison is read only between configurations whose own control passed.
    ok_ks = [k for k in ks if control.get(int(k))]
    lines += ["## Diversity (no constraint)", ""]
    lo_k, hi_k = (ok_ks[0], ok_ks[-1]) if len(ok_ks) >= 2 else (ks[0], ks[-1])
    if len(ok_ks) < 2:
        lines.append(f"- Fewer than two rule counts pass the control, so the diversity comparison below "
                     f"({hi_k} vs {lo_k} rules) is reported but cannot be read as evidence.")
    elif lo_k != ks[0]:
        lines.append(f"- Mixtures of {', '.join(str(k) for k in ks if k not in ok_ks)} rules fail the control, so "
                     f"diversity is compared between {lo_k} and {hi_k} rules.")
    for metric, label in (("heldout_rule", "held-out rules"), ("heldout_phrasing", "held-out phrasings of trained rules")):
        e = _effect(items, metric, {"arm": "none", "n_rules": hi_k, "phrasings": p_all},
                    {"arm": "none", "n_rules": lo_k, "phrasings": p_all}, reps)
        effects[f"diversity_{metric}"] = e
        lines.append(_sentence(f"{hi_k} − {lo_k} training rules, {label}", e,
                               "more training rules help" if metric == "heldout_rule" else
                               "more training rules help rephrased instructions"))
    p_lo = min(cfg.phrasings)
    k_p = _compare_at(items, ("none", p_lo), control, hi_k)
    if p_lo != p_all and k_p is not None:
        e = _effect(items, "heldout_phrasing", {"arm": "none", "n_rules": k_p, "phrasings": p_all},
                    {"arm": "none", "n_rules": k_p, "phrasings": p_lo}, reps)
        effects["phrasing_diversity"] = e
        lines.append(_sentence(f"{p_all} − {p_lo} phrasings per rule ({k_p} rules), held-out phrasings", e,
                               "more phrasings help rephrased instructions"))
    lines += ["", f"## Constraints (against `none` at the same rule count, {p_all} phrasings)", ""]
    arm_k = {}
    for arm in cfg.arms:
        if arm == "none" or (k := _compare_at(items, (arm, p_all), control, hi_k)) is None:
            continue
        arm_k[arm] = k
        if not control.get(int(k)):
            lines.append(f"- The control fails at {k} rules: the `{arm}` differences cannot be read as evidence.")
        for metric, label in (("seen", "seen rules"), ("heldout_phrasing", "held-out phrasings"),
                              ("heldout_rule", "held-out rules")):
            e = _effect(items, metric, {"arm": arm, "n_rules": k, "phrasings": p_all},
                        {"arm": "none", "n_rules": k, "phrasings": p_all}, reps)
            effects[f"{arm}_{metric}"] = e
            lines.append(_sentence(f"`{arm}` − `none`, {k} rules, {label}", e, f"`{arm}` helps"))
    lines += ["", "## No-rule control (unanswerable instructions)", ""]
    nr = table[(table["metric"] == "no_rule_made_up") & (table["n_rules"] == hi_k) & (table["phrasings"] == p_all)]
    ra = table[(table["metric"] == "no_rule_rule_applied") & (table["n_rules"] == hi_k) & (table["phrasings"] == p_all)]
    for (_, a), (_, b) in zip(nr.iterrows(), ra.iterrows()):
        lines.append(f"- `{a['arm']}`: answers {a['mean']:.2f} of unanswerable items (95% CI {a['low']:.2f}–{a['high']:.2f}); "
                     f"{b['mean']:.2f} are a seen rule's answer or a copy of the input (the instruction ignored).")
    lines += ["", "## Finding", ""]
    d_rule = effects["diversity_heldout_rule"]
    if not ok_ks:
        lines.append("The positive control failed everywhere, so this grid cannot support a finding: the model "
                     "did not learn the rules it was shown well enough for exact match to see anything.")
    else:
        parts = []
        if len(ok_ks) < 2:
            parts.append("the effect of rule diversity could not be tested (only one rule count passes the control)")
        elif d_rule.get("low") is not None and d_rule["low"] > 0:
            parts.append(f"training on {hi_k} rules instead of {lo_k} raised held-out-rule accuracy by {d_rule['mean']:.3f}")
        else:
            parts.append(f"going from {lo_k} to {hi_k} training rules did not measurably change held-out-rule "
                         f"accuracy ({_fmt(d_rule)})")
        d_phr = effects["diversity_heldout_phrasing"]
        if len(ok_ks) >= 2 and d_phr.get("low") is not None and (d_phr["low"] > 0 or d_phr["high"] < 0):
            parts.append(f"held-out-phrasing accuracy on the trained rules went {'up' if d_phr['low'] > 0 else 'down'} "
                         f"by {abs(d_phr['mean']):.3f} from {lo_k} to {hi_k} rules (at a fixed budget each rule "
                         f"gets {hi_k / lo_k:.1f}x fewer examples)")
        readable = [a for a, k in arm_k.items() if control.get(int(k))]
        if readable:
            helps = [a for a in readable if (effects.get(f"{a}_heldout_rule", {}).get("low") or -1) > 0]
            hurts = [a for a in readable if (effects.get(f"{a}_seen", {}).get("high") or 1) < 0]
            parts.append("no constraint raised held-out-rule accuracy" if not helps else
                         f"{', '.join(helps)} raised held-out-rule accuracy")
            if hurts:
                parts.append(f"{', '.join(hurts)} lowered seen-rule accuracy")
            for a in readable:
                e = effects.get(f"{a}_heldout_phrasing", {})
                if e.get("high") is not None and e["high"] < 0:
                    parts.append(f"{a} lowered held-out-phrasing accuracy by {abs(e['mean']):.3f}")
        lines.append("At this scale (a " + _base_words(cfg) + f", {cfg.size} examples, {cfg.max_steps} steps, seeds "
                     f"{', '.join(map(str, cfg.seeds))}): " + "; ".join(parts) + ". Intervals come from a bootstrap "
                     "over seeds and items; with few seeds they are wide, and only what is listed above was measured.")
    return "\n".join(lines) + "\n", effects


def blend_section(cfg: ProbeConfig, items: pd.DataFrame, table: pd.DataFrame) -> tuple[str, dict]:
    """Blended minus unblended mixtures (arm, rule count and phrasings equal), per blend and rule count."""
    p_all = max(cfg.phrasings)
    lines = ["## General SFT data blended in", "",
             f"{round(cfg.blend_fraction * 100)}% of each mixture's {cfg.size} examples come from a curated pool "
             "mixture instead of the probe rules (the budget is fixed, so the rules get fewer examples). "
             "Differences are blended − unblended; read them only where the blended runs' own control passes.", ""]
    effects: dict[str, Any] = {}
    for tag in sorted(t for t in items["blend"].unique() if t):
        for arm in cfg.blend_arms:
            for n in sorted(items.loc[items["blend"] == tag, "n_rules"].unique()):
                ctl = table[(table["blend"] == tag) & (table["arm"] == arm) & (table["n_rules"] == n)
                            & (table["phrasings"] == p_all) & (table["metric"] == "seen")]
                if len(ctl):
                    r = ctl.iloc[0]
                    ok = r["low"] > r["floor"]
                    lines.append(f"- `{tag}`, `{arm}`, {n} rules: seen-rule accuracy {r['mean']:.3f} (95% CI "
                                 f"{r['low']:.3f}–{r['high']:.3f}), floor {r['floor']:.3f}: control "
                                 f"{'passes' if ok else 'FAILS'}.")
                for metric, label in (("seen", "seen rules"), ("heldout_phrasing", "held-out phrasings"),
                                      ("heldout_rule", "held-out rules")):
                    a = {"arm": arm, "n_rules": n, "phrasings": p_all, "blend": tag}
                    e = _effect(items, metric, a, {**a, "blend": ""}, cfg.bootstrap)
                    effects[f"blend_{tag}_{arm}_{n}_{metric}"] = e
                    lines.append("  " + _sentence(f"`{tag}` − unblended, {label}", e, "the pool data helps"))
    return "\n".join(lines) + "\n", effects


def _compare_at(items: pd.DataFrame, cell: tuple[str, int], control: dict, prefer: int) -> int | None:
    """The rule count to compare ``(arm, phrasings)`` with unconstrained all-phrasing runs at: ``prefer``
    when both ran there, else the largest count where both ran and the control passed, else the largest
    where both ran; None when they share no count."""
    base = items[(items["blend"] == "") & (items["arm"] == "none")]
    p_all = int(base["phrasings"].max()) if len(base) else 0
    mine = items[(items["blend"] == "") & (items["arm"] == cell[0]) & (items["phrasings"] == cell[1])]
    both = sorted(set(mine["n_rules"]) & set(base.loc[base["phrasings"] == p_all, "n_rules"]))
    if not both:
        return None
    if prefer in both:
        return int(prefer)
    passing = [k for k in both if control.get(int(k))]
    return int((passing or both)[-1])


def _base_words(cfg: ProbeConfig) -> str:
    if cfg.base_model == "char":
        b = cfg.base
        return f"{b.n_layer}-layer, {b.hidden_size}-wide character-level Bloom pretrained {b.pretrain_steps} steps"
    return f"base {cfg.base_model}"


def plot(table: pd.DataFrame, out_dir: str | os.PathLike, phrasings_all: int) -> str:
    """Accuracy on own seen rules, their held-out phrasings and held-out rules against the number of
    training rules; one line per arm (all phrasings), dashed for single-phrasing mixtures, dash-dotted for
    blended ones, dotted floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("seen", "seen rules (positive control)"), ("heldout_phrasing", "held-out phrasings"),
               ("heldout_rule", "held-out rules")]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
    arms = list(dict.fromkeys(table["arm"]))
    colors = dict(zip(arms, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, (metric, title) in zip(axes, metrics):
        t = table[table["metric"] == metric]
        for (arm, p, b), g in t.groupby(["arm", "phrasings", "blend"], sort=False):
            g = g.sort_values("n_rules")
            y = g["mean"].astype(float).to_numpy()
            err = np.vstack([y - g["low"].astype(float).to_numpy(), g["high"].astype(float).to_numpy() - y])
            ax.errorbar(g["n_rules"], y, yerr=err, marker="s" if b else "o", capsize=3, color=colors[arm],
                        linestyle="-." if b else ("-" if p == phrasings_all else "--"),
                        label=f"{arm}" + ("" if p == phrasings_all else f", {p} phrasing") + (f", + {b}" if b else ""))
        fl = t[(t["arm"] == "none") & (t["phrasings"] == phrasings_all) & (t["blend"] == "")].sort_values("n_rules")
        if "floor" in fl and len(fl):
            ax.plot(fl["n_rules"], fl["floor"], ":", color="grey", label="no-skill floor")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(t["n_rules"].unique()))
        ax.set_xticklabels([str(x) for x in sorted(t["n_rules"].unique())])
        ax.set_xlabel("training rules in the mixture (same number of examples)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("exact match (95% CI, seeds × items)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    p = Path(out_dir) / "plots" / "probe_accuracy_vs_rules.png"
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return str(p)


def report(cfg: ProbeConfig, runs: list[dict], seconds: float | None = None) -> dict[str, Any]:
    """Write results.{csv,parquet} (per run), items.parquet, arms.csv, families.csv, the plot, verdict.md."""
    out = Path(cfg.out_dir)
    items = item_table(cfg, runs)
    if items.empty:
        raise RuntimeError(f"{out}: no finished runs to report on")
    results = run_table(runs, items)
    table = config_table(items, cfg.bootstrap)
    fams = family_table(items)
    write_parquet(out / "results.parquet", results)
    write_text(out / "results.csv", results.to_csv(index=False))
    write_parquet(out / "items.parquet", items)
    write_text(out / "arms.csv", table.to_csv(index=False))
    write_text(out / "families.csv", fams.to_csv(index=False))
    fig = plot(table, out, max(cfg.phrasings))
    base_scores = read_json(out / "base" / "scores.json")
    main = items["blend"] == ""
    text, effects = verdict(cfg, items[main], table[table["blend"] == ""], base_scores)
    if not main.all():
        more, blend_effects = blend_section(cfg, items, table)
        text += "\n" + more
        effects.update(blend_effects)
    acc = table[table["metric"].isin(["seen", "heldout_phrasing", "heldout_rule", "seen_untrained"])]
    pivot = acc.pivot_table(index=["arm", "phrasings", "blend", "n_rules"], columns="metric", values="mean")
    head = ["| arm | phrasings | blend | rules | " + " | ".join(pivot.columns) + " |",
            "|---|---|---|---|" + "---|" * len(pivot.columns)]
    for (arm, p, b, n), row in pivot.iterrows():
        head.append(f"| {arm} | {p} | {b or '—'} | {n} | " + " | ".join("" if pd.isna(v) else f"{v:.3f}" for v in row)
                    + " |")
    held = fams[(fams["split"] == "heldout_rule") & (fams["arm"] == "none") & (fams["blend"] == "")]
    fam_lines = ["| rules | phrasings | family | accuracy (95% Wilson) |", "|---|---|---|---|"]
    for _, r in held.sort_values(["phrasings", "n_rules", "family"]).iterrows():
        fam_lines.append(f"| {r['n_rules']} | {r['phrasings']} | {r['family']} | {r['accuracy']:.3f} "
                         f"({r['low']:.3f}–{r['high']:.3f}) |")
    doc = (f"# Rule probe: does task diversity teach a model to follow unseen instructions?\n\n"
           f"{len(results)} of {len(runs)} runs finished; {_base_words(cfg)}; {cfg.size} examples and "
           f"{cfg.max_steps} steps of {cfg.micro_batch_size} per run; LoRA r {cfg.lora_r} on "
           f"{', '.join(cfg.target_modules)}; seeds {', '.join(map(str, cfg.seeds))}; "
           f"{len(load_suite(out / 'suite'))} eval items. Exact match after whitespace and full-width folding only.\n\n"
           f"## Accuracy (mean over seeds; `seen`/`heldout_phrasing` on the mixture's own rules, "
           f"`seen_untrained` on seen rules it left out)\n\n" + "\n".join(head) + "\n\n" + text +
           "\n## Held-out rules per family (`none`)\n\n" + "\n".join(fam_lines) + "\n")
    write_text(out / "verdict.md", doc)
    summary = {"config": cfg.to_dict(), "runs": len(runs), "finished": int(len(results)), "seconds": seconds,
               "plot": fig, "effects": effects,
               "train_seconds_mean": float(results["train_seconds"].mean()),
               "tokens_seen_mean": float(results["tokens_seen"].mean())}
    write_json(out / "probe.json", summary)
    return {"verdict": str(out / "verdict.md"), "results": str(out / "results.csv"), "plot": fig,
            "control_passed": effects["control_passed"],
            "control": {str(k): v for k, v in effects["control"].items()}}


def run_probe(cfg: ProbeConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole grid without Prefect (flows/probe.py runs the same steps as tasks)."""
    t0 = time.time()
    prepared = prepare(cfg, log)
    base = resolve_base(cfg, log)
    score_base(cfg, base, prepared["suite_dir"])
    runs = grid(cfg)
    for i, r in enumerate(runs):
        log(f"probe: run {i + 1}/{len(runs)} {r['run']}")
        train_and_score(cfg, r, base, prepared["suite_dir"], log)
    return report(cfg, runs, time.time() - t0)
