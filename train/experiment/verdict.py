"""Step 4b: the verdict, gated by a positive control, said plainly from the paired effects.

The positive control: ``narrow`` holds a few task types, ``diverse`` all of them, so on the eval items
of the types ``narrow`` never trained on, ``narrow`` must be worse (higher loss) with an interval
above zero. An instrument that cannot see that cannot test whether diversity helps; the verdict
then says so and draws no conclusion about the finding.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..constraints import parse_arm
from .config import ExperimentConfig
from .stats import item_effect, paired_effect

ADAPTER_ZERO_NORM = 1e-4  # adapters that move the weights by less than this leave the base as it was


def _fmt(x, digits: int = 4) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def say_effect(e: dict, lower_is_better: bool = True, digits: int = 4) -> str:
    """One plain sentence for an effect (run-level or per-item)."""
    if not e["n"]:
        return f"{e['a']} vs {e['b']}: no paired runs."
    scope = e.get("task_types")
    scope = "" if scope in (None, "all") else f" ({len(scope)} task types)"
    n = f"n={e['n']} seeds" + (f" × {e['items']} items" if e.get("items") else "")
    head = (f"{e['a']} − {e['b']} on {e['metric']}{scope}: {_fmt(e['mean'], digits)} "
            f"(95% CI {_fmt(e['low'], digits)} to {_fmt(e['high'], digits)}, {n}"
            + (f"; detectable ≈ {abs(e['mde']):.{digits}f}" if e.get("mde") else "") + ")")
    if e["low"] is None or (isinstance(e["low"], float) and math.isnan(e["low"])):
        return head + ": too few seeds for an interval."
    better = e["high"] < 0 if lower_is_better else e["low"] > 0
    worse = e["low"] > 0 if lower_is_better else e["high"] < 0
    if better:
        return head + f": {e['a']} is better."
    if worse:
        return head + f": {e['a']} is worse."
    return head + ": the interval includes 0, so no difference is shown."


def type_split(prepared: dict, cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
    """``(own, excluded)``: eval task types ``narrow`` trained on, and those it never saw."""
    eval_types = sorted(prepared["eval_by_type"])
    narrow = [m for m in prepared["mixtures"] if m["strategy"] == "narrow" and m.get("size", cfg.size) == cfg.size]
    seen = set().union(*[set(m["task_types"]) for m in narrow]) if narrow else set()
    return [t for t in eval_types if t in seen], [t for t in eval_types if t not in seen]


def positive_control(items: pd.DataFrame, cfg: ExperimentConfig, prepared: dict, arm: str = "none") -> dict[str, Any]:
    """narrow − diverse loss on the types narrow excludes (must be > 0), and on its own types."""
    own, excluded = type_split(prepared, cfg)
    if not {"narrow", "diverse"} <= set(cfg.strategies) or items.empty or not excluded:
        return {"available": False, "passed": False, "arm": arm, "own_types": own, "excluded_types": excluded}
    main = items[items["part"] == "main"]
    n, d = f"narrow-{cfg.size}", f"diverse-{cfg.size}"
    exc = item_effect(main, "mixture", n, d, {"constraint": arm}, "loss", excluded, cfg.bootstrap)
    own_e = item_effect(main, "mixture", n, d, {"constraint": arm}, "loss", own, cfg.bootstrap) if own else None
    passed = bool(exc["n"] and exc["low"] is not None and exc["low"] > 0)
    return {"available": True, "passed": passed, "arm": arm, "own_types": own, "excluded_types": excluded,
            "excluded": exc, "own": own_e}


def collapsed_arms(results: pd.DataFrame) -> list[str]:
    """Constraint arms whose every run ended at the base: adapters measured to move the weights by
    less than ``ADAPTER_ZERO_NORM`` (no claim where the norm was not recorded)."""
    out = []
    if "adapter_delta_norm" not in results:
        return out
    for c, part in results.groupby("constraint", sort=False):
        norms = part["adapter_delta_norm"]
        if len(part) and norms.notna().all() and bool((norms < ADAPTER_ZERO_NORM).all()):
            out.append(str(c))
    return out


def sweep_table(results: pd.DataFrame, cfg: ExperimentConfig) -> pd.DataFrame:
    """Per constraint arm on the sweep mixture: its weight, mean eval loss and adapter norm."""
    mix = f"{cfg.sweep_strategy}-{cfg.size}"
    df = results[results["part"].isin(["main", "sweep"])] if "part" in results else results
    df = df[(df["mixture"] == mix) & df["seed"].isin(list(cfg.sweep_seeds))]
    rows = []
    for arm, g in df.groupby("constraint", sort=False):
        kind, w = parse_arm(str(arm))
        rows.append({"constraint": arm, "kind": kind, "weight": w if w is not None else 0.0,
                     "eval_loss": float(g["eval_loss"].mean()),
                     "adapter_delta_norm": float(g["adapter_delta_norm"].mean()) if "adapter_delta_norm" in g else None,
                     "runs": len(g)})
    return pd.DataFrame(rows).sort_values(["kind", "weight"]).reset_index(drop=True) if rows else pd.DataFrame()


def degeneration_lines(steps: pd.DataFrame) -> list[str]:
    out = []
    deg = steps[steps["part"] == "degeneration"] if "part" in steps else steps.iloc[0:0]
    for arm, g in deg.groupby("arm", sort=False):
        g = g.sort_values("step")
        best = g.loc[g["eval_loss"].idxmin()]
        last, first = g.iloc[-1], g[g["step"] > 0].iloc[0] if (g["step"] > 0).any() else g.iloc[0]
        out.append(f"- {arm}: eval loss lowest at step {int(best['step'])} ({best['eval_loss']:.4f}), "
                   f"{last['eval_loss']:.4f} at step {int(last['step'])} ({last['eval_loss'] - best['eval_loss']:+.4f}); "
                   f"repeated 4-gram rate of the fixed prompts' answers {first['rep_rate']:.3f} at step {int(first['step'])} → "
                   f"{last['rep_rate']:.3f} at step {int(last['step'])} (max {g['rep_rate'].max():.3f}).")
    return out


def verdict(results: pd.DataFrame, cfg: ExperimentConfig, base_row: dict | None = None,
            items: pd.DataFrame | None = None, prepared: dict | None = None,
            steps: pd.DataFrame | None = None) -> tuple[str, dict[str, Any]]:
    """The verdict section (markdown) and its figures (JSON)."""
    items = items if items is not None else pd.DataFrame()
    prepared = prepared or {"eval_by_type": {}, "mixtures": []}
    main_res = results[results["part"] == "main"] if "part" in results else results
    main_items = items[items["part"] == "main"] if len(items) else items
    n = cfg.size
    mix = {s: f"{s}-{n}" for s in cfg.strategies}
    effects: dict[str, Any] = {"diversity": [], "constraints": [], "repetition": []}
    lines = ["## Verdict", ""]
    lines.append("Test: every effect is a paired difference between two arms that share a seed and the eval set; its "
                 "95% interval comes from a paired bootstrap (seeds resampled, then eval items within each seed, the "
                 f"same items for both arms, {cfg.bootstrap} resamples). \"detectable\" is the minimal effect this grid "
                 "could detect (2.8 bootstrap standard errors: 80% power, two-sided 5%). Metrics: `loss` = an item's "
                 "mean response-token cross-entropy (lower is better); `chrf` = character n-gram F-score of the greedy "
                 "answer against the reference, 0–100; `exact` = exact match after normalisation, on the checkable "
                 "types (math, classification, closed qa, extract) only.")
    lines.append("")

    # 1. the positive control gates everything after it
    ctrl = positive_control(main_items, cfg, prepared)
    effects["positive_control"] = ctrl
    lines.append("### Positive control")
    lines.append("")
    if not ctrl["available"]:
        lines.append("- Not available: it needs the `narrow` and `diverse` mixtures, per-item scores and eval items of "
                     "task types `narrow` leaves out.")
    else:
        lines.append(f"`narrow-{n}` trained on {', '.join(ctrl['own_types'])}; on the {len(ctrl['excluded_types'])} types it "
                     f"never saw ({', '.join(ctrl['excluded_types'])}) it must do worse than `diverse-{n}`.")
        lines.append("")
        lines.append(f"- excluded types, no constraint: {say_effect(ctrl['excluded'])}")
        if ctrl["own"]:
            lines.append(f"- its own types, no constraint: {say_effect(ctrl['own'])}")
        lines.append(f"- **{'Passed' if ctrl['passed'] else 'Failed'}.**")
    lines.append("")
    sees = ctrl["passed"]
    if not sees:
        lines.append("**The instrument cannot see at this scale**: it does not separate a model trained on a few task "
                     "types from one trained on all of them, so it cannot test whether diversity helps. The effects "
                     "below are what was measured; no conclusion about the finding is drawn from them.")
        lines.append("")

    # 2. diversity, on each constraint arm separately (no constraint first)
    if "diverse" in mix and len(main_items):
        lines.append("### Effect of diversity, per constraint arm (diverse minus the other mixture; loss: negative = diverse better)")
        lines.append("")
        for arm in cfg.constraints:
            for other in [s for s in cfg.strategies if s != "diverse"]:
                for metric, lib in (("loss", True), ("chrf", False), ("exact", False)):
                    e = item_effect(main_items, "mixture", mix["diverse"], mix[other], {"constraint": arm}, metric,
                                    reps=cfg.bootstrap)
                    effects["diversity"].append(e)
                    lines.append(f"- `{arm}`: {say_effect(e, lower_is_better=lib)}")
        lines.append("")

    # 3. constraints, on each mixture
    if len(main_items) and len(cfg.constraints) > 1:
        lines.append("### Effect of each constraint (arm minus `none`, per mixture; loss: negative = the constraint helps)")
        lines.append("")
        for arm in [c for c in cfg.constraints if c != "none"]:
            for s in cfg.strategies:
                e = item_effect(main_items, "constraint", arm, "none", {"mixture": mix[s]}, "loss", reps=cfg.bootstrap)
                effects["constraints"].append(e)
                lines.append(f"- `{arm}` on {mix[s]}: {say_effect(e)}")
        lines.append("")
    lines.append("**Repetition of greedy answers to the fixed prompts** (repeated 4-gram rate, lower is better; "
                 "t-interval over seeds):")
    lines.append("")
    for other in [s for s in cfg.strategies if s != "diverse"] if "diverse" in mix else []:
        e = paired_effect(main_res, "mixture", mix["diverse"], mix[other], {"constraint": "none"}, "rep_rate")
        effects["repetition"].append(e)
        lines.append(f"- no constraint: {say_effect(e)}")
    lines.append("")

    # 4. the sweep: loss and adapter norm against the weight
    sw = sweep_table(results, cfg)
    effects["sweep"] = sw.to_dict("records")
    if len(sw) > 1:
        lines.append(f"### Constraint weights on {cfg.sweep_strategy}-{n} (seeds {list(cfg.sweep_seeds)})")
        lines.append("")
        lines.append("| arm | weight | eval loss | adapter delta norm |")
        lines.append("|---|---|---|---|")
        for r in sw.to_dict("records"):
            lines.append(f"| {r['constraint']} | {r['weight']:g} | {r['eval_loss']:.4f} | {r['adapter_delta_norm']:.2e} |")
        lines.append("")
    collapsed = collapsed_arms(results)
    effects["collapsed_to_base"] = collapsed
    if collapsed:
        lines.append(f"**Arms that ended at the base model:** {', '.join(collapsed)} — on every run the adapters were "
                     f"measured to move the weights by less than {ADAPTER_ZERO_NORM:g} (`adapter_delta_norm`): the "
                     "penalty drove the LoRA matrices back to zero, so these runs' model *is* the base.")
        lines.append("")

    # 5. degeneration over training
    deg = degeneration_lines(steps) if steps is not None and len(steps) else []
    if deg:
        lines.append("### Degeneration over longer training (no constraint)")
        lines.append("")
        lines.extend(deg)
        lines.append("")

    # 6. the finding, only where the instrument can see
    div = [e for e in effects["diversity"] if e["fixed"].get("constraint") == "none" and e["metric"] == "loss"]
    con = effects["constraints"]
    div_ok = bool(div) and all(e["n"] and e["high"] is not None and e["high"] < 0 for e in div)
    div_against = any(e["n"] and e["low"] is not None and e["low"] > 0 for e in div)
    con_helps = sorted({e["a"] for e in con if e["n"] and e["high"] is not None and e["high"] < 0})
    con_hurts = sorted({e["a"] for e in con if e["n"] and e["low"] is not None and e["low"] > 0} - set(con_helps))
    lines.append("### The finding — \"constraints during SFT do not help; a more diverse SFT set does\"")
    lines.append("")
    if not sees:
        lines.append("- Not tested: the positive control failed (above), so a null result here says nothing about the claim.")
    else:
        if div_ok:
            lines.append("- Diversity: supported — without constraints, the diverse mixture has a lower eval loss than "
                         "every other mixture, with intervals below zero.")
        elif div_against:
            lines.append("- Diversity: contradicted — without constraints, a less diverse mixture has a lower eval loss "
                         "than the diverse one, with an interval above zero.")
        else:
            lines.append("- Diversity: not shown against every mixture — " + "; ".join(
                f"against {e['b']}: {'better' if e['high'] < 0 else 'no difference shown'} ({_fmt(e['mean'])}, "
                f"95% CI {_fmt(e['low'])} to {_fmt(e['high'])}, detectable ≈ {abs(e['mde'] or 0):.4f})"
                for e in div if e["n"] and e["high"] is not None) + ".")
        if con_helps:
            lines.append(f"- Constraints: contradicted for {', '.join(con_helps)} — it lowers eval loss on at least one "
                         f"mixture, with an interval below zero.")
        elif con_hurts:
            lines.append(f"- Constraints: consistent with the finding — none helps; eval loss is higher (interval above "
                         f"zero) with {', '.join(con_hurts)} on at least one mixture.")
        else:
            lines.append("- Constraints: consistent with the finding — no constraint shows a benefit.")
    if collapsed:
        lines.append(f"- {', '.join(collapsed)}: ends at the base model in this setting (adapter norm measured ≈ 0); "
                     "that is a finding about this penalty weight, base and learning rate, not about constraints in general.")
    lines.append("")
    lines.append(f"Scale: N = {n} examples per mixture, {cfg.response_token_budget:,} trained-on tokens per run "
                 f"(steps follow from it), base `{cfg.base_model}`, seeds {list(cfg.seeds)}. A tiny base trained for "
                 "minutes is a weak stand-in for bloomz; `--preset gpu` runs the grid on bloomz-560m.")
    effects["finding"] = {"control_passed": sees, "diversity_supported": sees and div_ok,
                          "diversity_contradicted": sees and div_against,
                          "constraints_that_help": con_helps if sees else [],
                          "constraints_that_hurt": con_hurts if sees else []}
    return "\n".join(lines) + "\n", effects

