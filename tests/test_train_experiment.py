"""The experiment: scoring and decontamination on hand-made cases, the verdict's gate and arithmetic on
hand-made per-item tables, matched token budgets, and a miniature grid end to end through Prefect."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import flows  # noqa: F401  (Prefect env defaults)
from curate.io import write_parquet
from curate.records import make_record, records_frame
from train.evaluate import (ContaminationError, check_decontaminated, chrf, exact_match, normalize_answer,
                            prompt_jaccard_pairs, remove_eval_items, select_eval_set)
from train.experiment import ExperimentConfig, item_effect, t_interval, verdict
from train.tiny import TinySpec

from test_train import make_pool, pool_path, tiny_dir  # noqa: E402,F401  (same real mirror rows and test base)


def test_t_interval_matches_scipy():
    d = np.array([-0.12, -0.05, -0.09, -0.02])
    mean, low, high, n = t_interval(d)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert n == 4 and mean == pytest.approx(d.mean())
    assert (low, high) == pytest.approx((ci.low, ci.high))


# ---- scoring ---------------------------------------------------------------------------------------


def test_exact_match_normalises_only_whitespace_width_and_edge_punctuation():
    assert normalize_answer(" 积极。") == "积极"
    assert exact_match("积极", "积极。") and exact_match("ＡＢＣ １２", "abc12")
    assert not exact_match("消极", "积极") and not exact_match("", "")
    assert not exact_match("积极的", "积极")  # no partial credit
    # math: the last number decides, so a shown working still matches
    assert exact_match("25加17等于42", "42", "math") and exact_match("答案是 3.50", "3.5", "math")
    assert not exact_match("25加17等于43", "42", "math")
    assert not exact_match("25加17等于42", "42", "classification")


def test_chrf_on_hand_made_cases():
    assert chrf("北京是中国的首都", "北京是中国的首都") == pytest.approx(100.0)
    assert chrf("完全不同", "北京是中国的首都") == pytest.approx(0.0)
    close, far = chrf("北京是中国首都", "北京是中国的首都"), chrf("上海是城市", "北京是中国的首都")
    assert 0 < far < close < 100
    assert chrf("北京 是 中国 的 首都", "北京是中国的首都") == pytest.approx(100.0)  # whitespace ignored


# ---- decontamination ---------------------------------------------------------------------------------


def _eval_frame():
    recs = [make_record("ev", "e.json", 0, "为一个旨在在紧急情况下提供帮助的机器人想出一份工作", "", "它可以担任急救调度员。"),
            make_record("ev", "e.json", 1, "判断下面这句话的情感。", "今天的电影太精彩了，我非常喜欢。", "积极")]
    return records_frame(recs).assign(task_type=["generation", "classification"])


def test_prompt_twins_are_removed_and_the_after_check_fails_on_a_planted_one():
    eval_df = _eval_frame()
    pool = records_frame([
        # the pair: the same request, worded a little differently, with another answer
        make_record("p", "p.json", 0, "为在紧急情况下提供帮助的机器人想出一份工作", "", "搜救向导。"),
        # the same prompt exactly, another answer
        make_record("p", "p.json", 1, "判断下面这句话的情感。", "今天的电影太精彩了，我非常喜欢。", "这句话是积极的。"),
        make_record("p", "p.json", 2, "把这句话翻译成英文。", "我爱北京。", "I love Beijing."),
    ])
    kept, removed = remove_eval_items(pool, eval_df)
    assert list(kept["instruction"]) == ["把这句话翻译成英文。"]
    assert list(removed["removed_because"]) == ["near_dup_prompt", "near_dup_prompt"]
    check_decontaminated(kept, eval_df)  # passes on what is left
    # planted back into a mixture, each twin makes the independent check fail loudly
    for i in range(2):
        with pytest.raises(ContaminationError, match="prompt 3-gram Jaccard"):
            check_decontaminated(pd.concat([kept, pool.iloc[[i]]]), eval_df, "planted")
    with pytest.raises(ContaminationError, match="eval id"):
        check_decontaminated(eval_df.iloc[[1]], eval_df)


def test_after_check_jaccard_is_exact():
    a = ["abcdef", "xyz", "ab"]
    b = ["abcdeg", "ab"]
    # abcdef vs abcdeg: 3-grams {abc,bcd,cde,def} vs {abc,bcd,cde,deg}: 3 / 5
    assert prompt_jaccard_pairs(a, b, threshold=0.5) == [(0, 0, 0.6), (2, 1, 1.0)]
    assert prompt_jaccard_pairs(a, b, threshold=0.61) == [(2, 1, 1.0)]


def test_decontamination_on_the_mirror_pool_counts_reasons(pool_path):
    pool = pd.read_parquet(pool_path)
    eval_df = select_eval_set(pool, per_type=5, seed=0)
    kept, removed = remove_eval_items(pool, eval_df)
    assert set(removed["removed_because"]) <= {"eval_id", "same_text", "near_dup_record", "near_dup_prompt"}
    assert (removed["removed_because"] == "eval_id").sum() == len(eval_df)
    check_decontaminated(kept.sample(n=min(2000, len(kept)), random_state=0), eval_df)


# ---- the verdict ---------------------------------------------------------------------------------------

TYPES = ["generation", "open qa", "extract", "math", "classification"]


def _items(loss, seeds=(0, 1, 2), per_type=12, noise=0.05, seed=0) -> pd.DataFrame:
    """Per-item rows for a main grid; ``loss(mixture, constraint, task_type)`` gives the mean."""
    rng = np.random.default_rng(seed)
    item_base = rng.normal(0, 0.3, len(TYPES) * per_type)  # items differ; arms share that
    rows = []
    for s in seeds:
        for mix in ("diverse-100", "random-100", "narrow-100"):
            for con in ("none", "gravity-0.3"):
                for i in range(len(TYPES) * per_type):
                    t = TYPES[i // per_type]
                    rows.append({"arm": f"{mix}__{con}__s{s}", "part": "main", "mixture": mix, "strategy": mix[:-4],
                                 "size": 100, "constraint": con, "seed": s, "item": i, "task_type": t,
                                 "loss": 3.0 + item_base[i] + loss(mix, con, t) + rng.normal(0, noise),
                                 "chrf": 20.0, "exact": 0.0 if t in ("extract", "math", "classification") else np.nan})
    return pd.DataFrame(rows)


def _results(items: pd.DataFrame) -> pd.DataFrame:
    r = items.groupby(["arm", "part", "mixture", "constraint", "seed"], as_index=False)["loss"].mean()
    return r.rename(columns={"loss": "eval_loss"}).assign(rep_rate=0.1, adapter_delta_norm=0.5)


PREPARED = {"eval_by_type": {t: 12 for t in TYPES},
            "mixtures": [{"strategy": "narrow", "size": 100, "seed": s, "task_types": ["generation", "open qa"]}
                         for s in (0, 1, 2)]}
CFG = ExperimentConfig(pool_path="-", out_dir="-", size=100, constraints=("none", "gravity-0.3"), sweep=(),
                       bootstrap=500)


def test_verdict_refuses_to_conclude_when_the_positive_control_fails():
    flat = _items(lambda m, c, t: 0.0)
    text, eff = verdict(_results(flat), CFG, items=flat, prepared=PREPARED)
    assert eff["positive_control"]["available"] and not eff["positive_control"]["passed"]
    assert eff["positive_control"]["excluded_types"] == ["classification", "extract", "math"]
    assert "**Failed.**" in text and "cannot see at this scale" in text
    assert "Not tested" in text and "Diversity: supported" not in text
    assert eff["finding"] == {"control_passed": False, "diversity_supported": False, "diversity_contradicted": False,
                              "constraints_that_help": [], "constraints_that_hurt": []}
    # a real diversity effect does not get claimed either while the control fails
    div_only = _items(lambda m, c, t: -0.2 if m == "diverse-100" and t in ("generation",) else 0.0)
    text, eff = verdict(_results(div_only), CFG, items=div_only, prepared=PREPARED)
    assert not eff["finding"]["diversity_supported"] and "Not tested" in text


def test_verdict_with_a_passing_control_states_support_and_constraints_plainly():
    def loss(m, c, t):
        v = 0.0
        if m == "narrow-100" and t not in ("generation", "open qa"):
            v += 0.3  # never trained on those types
        if m == "diverse-100":
            v -= 0.1
        return v + (0.05 if c == "gravity-0.3" else 0.0)

    items = _items(loss)
    text, eff = verdict(_results(items), CFG, items=items, prepared=PREPARED)
    ctrl = eff["positive_control"]
    assert ctrl["passed"] and ctrl["excluded"]["mean"] == pytest.approx(0.4, abs=0.03) and ctrl["excluded"]["low"] > 0
    assert "**Passed.**" in text and "Diversity: supported" in text
    assert eff["finding"]["constraints_that_hurt"] == ["gravity-0.3"]
    loss_effects = [e for e in eff["diversity"] if e["metric"] == "loss" and e["fixed"]["constraint"] == "none"]
    assert len(loss_effects) == 2 and all(e["high"] < 0 and e["mde"] > 0 for e in loss_effects)
    assert "paired bootstrap" in text and "detectable" in text
    # per constraint arm separately, the no-constraint arm first
    arms = [e["fixed"]["constraint"] for e in eff["diversity"]]
    assert arms[0] == "none" and "gravity-0.3" in arms


def test_item_effect_pairs_items_within_seeds():
    items = _items(lambda m, c, t: 0.1 if m == "random-100" else 0.0, noise=0.0)
    e = item_effect(items, "mixture", "random-100", "diverse-100", {"constraint": "none"}, "loss", reps=300)
    # the same items differ by exactly 0.1: the paired interval has no width
    assert e["mean"] == pytest.approx(0.1) and e["high"] - e["low"] < 1e-9 and e["n"] == 3


def test_collapse_is_claimed_only_where_the_adapter_norm_was_measured():
    from train.experiment import collapsed_arms

    r = pd.DataFrame({"constraint": ["none", "gravity-0.3", "gravity-0.3"], "eval_loss": [5.3, 5.4, 5.4],
                      "adapter_delta_norm": [0.5, 1e-7, 2e-6]})
    assert collapsed_arms(r) == ["gravity-0.3"]
    r.loc[2, "adapter_delta_norm"] = 0.01  # one run kept its adapter
    assert collapsed_arms(r) == []
    assert collapsed_arms(r.drop(columns="adapter_delta_norm")) == []


# ---- budgets, presets, and the grid end to end ---------------------------------------------------------


def test_response_token_budget_matches_arms_with_different_answer_lengths(tiny_dir, pool_path, tmp_path):
    from curate.io import write_json
    from train.finetune import finetune

    pool = pd.read_parquet(pool_path)
    lens = pool["output"].str.len()
    short = pool[(lens > 5) & (lens < 40)].head(64)
    long = pool[(lens > 150) & (lens < 400)].head(64)
    summaries = []
    for name, df in (("short", short), ("long", long)):
        path = write_json(tmp_path / f"{name}.json", df[["instruction", "input", "output"]].to_dict("records"))
        summaries.append(finetune(path, tmp_path / name, base_model=str(tiny_dir), response_token_budget=3000,
                                  micro_batch_size=4, save_steps=1000, cutoff_len=192, learning_rate=1e-3,
                                  warmup_steps=1, gen_max_new_tokens=4, seed=0, threads=1))
    s_short, s_long = summaries
    assert s_short["steps"] > 2 * s_long["steps"]  # short answers need more steps for the same tokens
    for s in summaries:
        assert 0.8 * 3000 <= s["response_tokens_seen"] <= 1.35 * 3000, s["response_tokens_seen"]


def test_cli_preset_then_flags():
    import argparse

    from flows.train_cli import _pick, experiment_params, register
    from train.experiment import PRESETS, preset_values

    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="cmd"))
    a = p.parse_args(["experiment", "--preset", "original", "--seeds", "0", "--sweep"])

    settings = {**preset_values(a.preset), **_pick(a, set(experiment_params()) - {"tiny"})}
    cfg = ExperimentConfig(pool_path="-", out_dir="-", **settings)
    assert cfg.learning_rate == PRESETS["original"]["learning_rate"] and cfg.train_on_inputs is True
    assert cfg.seeds == (0,) and cfg.sweep == ()
    assert ExperimentConfig(pool_path="-", out_dir="-", **preset_values("gpu")).base_model == "bigscience/bloomz-560m"
    with pytest.raises(ValueError, match="unknown preset"):
        preset_values("fast")
    with pytest.raises(ValueError, match="gravity-<weight>"):
        ExperimentConfig(pool_path="-", out_dir="-", constraints=("none", "gravity=0.3"))


def test_original_preset_trains_a_few_steps(tiny_dir, pool_path, tmp_path):
    """The `original` preset's training settings (train_on_inputs, its learning rate and warm-up) run."""
    from curate.io import write_json
    from train.experiment import preset_values
    from train.finetune import finetune

    cfg = ExperimentConfig(pool_path="-", out_dir="-", **{**preset_values("original"), "max_steps": 3,
                                                          "response_token_budget": 0, "micro_batch_size": 4,
                                                          "save_steps": 3, "cutoff_len": 96, "gen_max_new_tokens": 4})
    rows = pd.read_parquet(pool_path).head(16)[["instruction", "input", "output"]].to_dict("records")
    s = finetune(write_json(tmp_path / "m.json", rows), tmp_path / "run", base_model=str(tiny_dir),
                 constraint="gravity", gravity_weights=(0.7, 0.3), **cfg.finetune_kwargs())
    assert s["steps"] == 3 and s["config"]["train_on_inputs"] is True and s["config"]["learning_rate"] == 5e-5
    # trained on prompts too: more tokens carry a label than the responses alone
    assert s["response_tokens_seen"] > 0.9 * s["tokens_seen"]


def test_experiment_flow_end_to_end(mirror, tmp_path):
    from flows.experiment import experiment_flow
    from train.finetune import load_alpaca_json

    pool_file = tmp_path / "kept.parquet"
    write_parquet(pool_file, make_pool(mirror))
    tiny = TinySpec(vocab_size=1000, hidden_size=48, n_layer=2, n_head=2, seq_len=64, pretrain_steps=60,
                    batch_size=8, learning_rate=5e-3, warmup_steps=5)
    cfg = ExperimentConfig(pool_path=str(pool_file), out_dir=str(tmp_path / "exp"), size=40, seeds=(0, 1),
                           constraints=("none", "gravity-0.3"), sweep=("gravity-0.03", "kl-0.1"),
                           degeneration_sizes=(40,), degeneration_steps=6, degeneration_save_steps=3,
                           eval_per_type=2, tiny=tiny, models_dir=str(tmp_path / "models"), response_token_budget=400,
                           save_steps=2, micro_batch_size=4, learning_rate=5e-3, cutoff_len=96, gen_max_new_tokens=6,
                           bootstrap=200)
    res = experiment_flow(cfg.to_dict())
    out = tmp_path / "exp"
    results = pd.read_parquet(out / "results.parquet")
    main = results[results["part"] == "main"]
    assert len(main) == 3 * 2 * 2 and set(main["constraint"]) == {"none", "gravity-0.3"}
    assert set(results[results["part"] == "sweep"]["constraint"]) == {"gravity-0.03", "kl-0.1"}
    assert (results[results["part"] == "degeneration"]["steps"] == 6).all()
    assert results["eval_loss"].notna().all() and results["chrf"].notna().all()
    assert (main["response_tokens_seen"] > 0).all()
    items = pd.read_parquet(out / "items.parquet")
    # generation metrics per task type: chrF for every type, exact match for the checkable ones only
    assert {c[5:-1] for c in results if c.startswith("chrf[")} == set(items["task_type"])
    exact_types = {c[6:-1] for c in results if c.startswith("exact[")}
    assert exact_types == set(items["task_type"]) & {"math", "classification", "closed qa", "extract"}
    assert len(items) == len(results) * len(load_alpaca_json(json.loads((out / "prepared.json").read_text())["eval_path"]))
    steps = pd.read_parquet(out / "steps.parquet")
    assert sorted(steps[steps["part"] == "degeneration"]["step"].unique()) == [0, 3, 6]
    names = {Path(p).name for p in res["plots"]}
    assert {"eval_loss_by_task_type.png", "metrics_vs_steps.png", "constraint_sweep.png", "degeneration.png"} <= names
    text = (out / "verdict.md").read_text(encoding="utf-8")
    assert "### Positive control" in text and "paired bootstrap" in text and "The finding" in text
    prepared = json.loads((out / "prepared.json").read_text())
    assert prepared["removed_by_reason"]["eval_id"] == len(prepared["eval_ids"])
    assert set(prepared["eval_ids"]) <= set(prepared["pretrain_exclude_ids"])
    build = json.loads(next((tmp_path / "models").glob("tiny-*/build.json")).read_text())
    assert build["excluded_ids"] == len(prepared["pretrain_exclude_ids"])
    # a second call finds everything done: no run is trained again
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("runs-*/*/summary.json")}
    experiment_flow(cfg.to_dict())
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs-*/*/summary.json")} == stamp
