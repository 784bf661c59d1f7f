"""The experiment: verdict arithmetic on hand-made tables, and a miniature grid end to end through Prefect."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import flows  # noqa: F401  (Prefect env defaults)
from curate.io import write_parquet
from train.experiment import ExperimentConfig, paired_effect, t_interval, verdict
from train.tiny import TinySpec

from test_train import make_pool  # noqa: E402  (same real mirror rows as the training tests)


def test_t_interval_matches_scipy():
    d = np.array([-0.12, -0.05, -0.09, -0.02])
    mean, low, high, n = t_interval(d)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert n == 4 and mean == pytest.approx(d.mean())
    assert (low, high) == pytest.approx((ci.low, ci.high))


def _table(loss: dict, seeds=(0, 1, 2), noise=0.0, rng=None) -> pd.DataFrame:
    rows = []
    for s in seeds:
        for (mix, con), v in loss.items():
            eps = rng.normal(0, noise) if rng is not None else 0.0
            rows.append({"mixture": mix, "constraint": con, "seed": s, "eval_loss": v + 0.01 * s + eps,
                         "rep_rate": 0.1, "distinct_2": 0.5})
    return pd.DataFrame(rows)


def test_verdict_states_support_and_its_absence_plainly():
    cfg = ExperimentConfig(pool_path="-", out_dir="-", size=100)
    arms = {(m, c): base + {"none": 0.0, "gravity": 0.0, "kl": 0.0}[c] for m, base in
            (("diverse-100", 2.0), ("random-100", 2.3), ("narrow-100", 2.6)) for c in ("none", "gravity", "kl")}
    rng = np.random.default_rng(0)
    good = _table(arms, noise=0.01, rng=rng)
    text, eff = verdict(good, cfg)
    assert eff["finding"]["diversity_supported"] is True
    e = paired_effect(good, "mixture", "diverse-100", "random-100", {"constraint": "none"})
    assert e["mean"] == pytest.approx(-0.3, abs=0.05) and e["high"] < 0 and e["n"] == 3
    assert "Diversity: supported" in text and "diverse-100 is better than random-100" in text
    assert "Constraints: consistent with the finding" in text

    # the same means but noise larger than the effect: the verdict must not claim support
    flat = {(m, c): 2.0 for m, c in arms}
    noisy = _table(flat, noise=0.2, rng=np.random.default_rng(1))
    text, eff = verdict(noisy, cfg)
    assert eff["finding"]["diversity_supported"] is False
    assert "not shown" in text or "contradicted" in text

    # a constraint that clearly helps contradicts the finding
    helped = {(m, c): v - (0.2 if c == "kl" else 0.0) for (m, c), v in arms.items()}
    text, eff = verdict(_table(helped, noise=0.01, rng=np.random.default_rng(2)), cfg)
    assert eff["finding"]["constraints_that_help"] == ["kl"]
    assert "Constraints: contradicted for kl" in text


def test_experiment_flow_end_to_end(mirror, tmp_path):
    from flows.experiment import experiment_flow
    from train.evaluate import eval_overlap_mask
    from train.finetune import load_alpaca_json

    pool_path = tmp_path / "kept.parquet"
    write_parquet(pool_path, make_pool(mirror))
    tiny = TinySpec(vocab_size=1000, hidden_size=48, n_layer=2, n_head=2, seq_len=64, pretrain_steps=60,
                    batch_size=8, learning_rate=5e-3, warmup_steps=5)
    cfg = ExperimentConfig(pool_path=str(pool_path), out_dir=str(tmp_path / "exp"), size=40, seeds=(0, 1),
                           eval_per_type=2, tiny=tiny, models_dir=str(tmp_path / "models"), max_steps=4, save_steps=2,
                           micro_batch_size=4, learning_rate=5e-3, cutoff_len=96)
    res = experiment_flow(cfg.to_dict())
    out = tmp_path / "exp"
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 3 * 3 * 2
    assert set(results["mixture"]) == {"diverse-40", "random-40", "narrow-40"}
    assert set(results["constraint"]) == {"none", "gravity", "kl"}
    assert (results["steps"] == 4).all() and results["eval_loss"].notna().all()
    assert any(c.startswith("loss[") for c in results.columns)
    assert pd.read_csv(out / "results.csv").shape[0] == 18
    steps = pd.read_parquet(out / "steps.parquet")
    assert sorted(steps["step"].unique()) == [0, 2, 4]  # step 0 is the base, once per arm
    for p in res["plots"]:
        assert Path(p).stat().st_size > 10_000
    text = (out / "verdict.md").read_text(encoding="utf-8")
    assert "## Verdict" in text and "95% CI" in text and "The finding" in text
    eff = json.loads((out / "experiment.json").read_text())["effects"]
    assert all(e["n"] == 2 for e in eff["diversity"] + eff["constraints"])
    # every mixture was kept clear of the eval set (ids, text, near-duplicates)
    prepared = json.loads((out / "prepared.json").read_text())
    eval_df = pd.DataFrame(load_alpaca_json(prepared["eval_path"]))
    for m in prepared["mixtures"]:
        mix = pd.DataFrame(load_alpaca_json(m["path"])).assign(id="")
        assert not eval_overlap_mask(mix, eval_df).any(), m["name"]
    # a second call finds everything done: no run is trained again
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("runs-*/*/summary.json")}
    experiment_flow(cfg.to_dict())
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs-*/*/summary.json")} == stamp


def test_verdict_names_an_arm_that_ended_at_the_base():
    cfg = ExperimentConfig(pool_path="-", out_dir="-", size=100)
    base = {"eval_loss": 5.4}
    arms = {(m, c): {"none": 5.33, "gravity": 5.4, "kl": 5.35}[c] for m in ("diverse-100", "random-100", "narrow-100")
            for c in ("none", "gravity", "kl")}
    table = _table(arms)
    table["eval_loss"] = table.apply(lambda r: 5.4 if r["constraint"] == "gravity" else r["eval_loss"], axis=1)
    text, eff = verdict(table, cfg, base)
    assert eff["collapsed_to_base"] == ["gravity"]
    assert "Arms that ended at the base model:** gravity" in text
    # without the base's figures and without adapter norms nothing can be said
    assert verdict(table, cfg)[1]["collapsed_to_base"] == []
    # an adapter norm recorded as zero is enough
    table["adapter_delta_norm"] = [0.0 if c == "gravity" else 0.3 for c in table["constraint"]]
    assert verdict(table, cfg)[1]["collapsed_to_base"] == ["gravity"]
