"""The rule probe (issue 11): answer functions, splits, determinism, scoring, and a short training run."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from train.probe import rules as R
from train.probe.suite import (SPLITS, SuiteSpec, eval_splits, exact_match, normalize_answer, rule_order,
                               score_item, write_mixture, write_suite)

# ---- answer functions on hand-made cases ----------------------------------------------------------


@pytest.mark.parametrize("n,text", [(0, "零"), (5, "五"), (10, "十"), (11, "十一"), (20, "二十"), (37, "三十七"),
                                    (99, "九十九"), (100, "一百"), (105, "一百零五"), (110, "一百一十"),
                                    (999, "九百九十九"), (1001, "一千零一"), (1010, "一千零一十"),
                                    (2300, "二千三百")])
def test_cn_numeral_both_ways(n, text):
    assert R.cn_numeral(n) == text
    assert R.parse_cn_numeral(text) == n


def test_cn_numeral_variants_and_errors():
    assert R.parse_cn_numeral("一十五") == 15
    assert R.parse_cn_numeral("两百") == 200
    with pytest.raises(ValueError):
        R.parse_cn_numeral("三x")
    with pytest.raises(ValueError):
        R.cn_numeral(10000)


def test_cn_arithmetic():
    assert R.cn_arith("三十七加五") == "42"
    assert R.cn_arith("三十七 加 五") == "42"
    assert R.cn_arith("三十七减五") == "32"
    assert R.cn_arith("十减十") == "0"
    assert R.cn_arith("九十九加九十九") == "198"
    with pytest.raises(ValueError):
        R.cn_arith("三十七乘五")


def test_dates():
    assert R.cn_date_to_iso("2023年7月3日") == "2023-07-03"
    assert R.cn_date_to_slash("2023年7月3日") == "2023/07/03"
    assert R.iso_to_cn_date("2023-07-03") == "2023年7月3日"
    assert R.iso_to_cn_date("1999-12-31") == "1999年12月31日"
    assert R.cn_date_to_iso("2024年2月29日") == "2024-02-29"
    with pytest.raises(ValueError):
        R.cn_date_to_iso("2023年2月29日")  # not a date
    with pytest.raises(ValueError):
        R.iso_to_cn_date("2023/07/03")


def test_string_rules():
    assert R.reverse("天地人") == "人地天"
    assert R.dedupe_chars("天天地人地") == "天地人"
    assert R.count_char("天天地人地天", "天") == "3"
    assert R.count_char("天地", "人") == "0"
    assert R.remove_char("天地天人", "天") == "地人"
    assert R.double_chars("天地") == "天天地地"


def test_digit_rules():
    assert R.sort_digits("30291") == "01239"
    assert R.sort_digits("30291", descending=True) == "93210"
    assert R.digit_sum("30291") == "15"
    assert R.max_digit("30291") == "9"


def test_list_rules():
    assert R.nth_item("苹果，香蕉，西瓜", 2) == "香蕉"
    assert R.nth_item("苹果、香蕉、西瓜", 3) == "西瓜"
    assert R.count_items("苹果、香蕉、西瓜、葡萄") == "4"
    assert R.last_item("苹果，香蕉") == "香蕉"
    assert R.reverse_list("苹果、香蕉、西瓜") == "西瓜、香蕉、苹果"
    with pytest.raises(ValueError):
        R.split_list("苹果，香蕉、西瓜")  # two separators: not one list


def test_table_brackets_fields():
    assert R.substitute("天地天人", "天→山，地→水") == "山水山人"
    assert R.wrap_words("苹果 香蕉 西瓜") == "【苹果】【香蕉】【西瓜】"
    assert R.wrap_words("苹果 香蕉", "《", "》") == "《苹果》《香蕉》"
    rec = "姓名：张三；城市：北京；爱好：画画"
    assert R.swap_fields(rec, "姓名", "爱好") == "姓名：画画；城市：北京；爱好：张三"
    assert R.get_field(rec, "城市") == "北京"


def test_compositions():
    r = R.RULES_BY_NAME
    assert R.answer(r["reverse_then_substitute"], "天地人", {"table": "天→山，地→水"}) == "人水山"
    assert R.answer(r["dedupe_then_reverse"], "天天地人地", {}) == "人地天"
    assert R.answer(r["nth_item_then_reverse"], "苹果，香蕉", {"n": "二"}) == "蕉香"
    assert R.answer(r["nth_item"], "苹果，香蕉，西瓜", {"n": "三"}) == "西瓜"


def test_suite_shape():
    rules = R.RULES
    assert len(rules) >= 24
    assert len({r.name for r in rules}) == len(rules)
    assert len({r.family for r in rules if r.kind == "seen"}) >= 5
    assert {r.kind for r in rules} == {"seen", "new", "composition"}
    phr = [p for r in rules for p in r.phrasings]
    assert all(len(r.phrasings) >= 5 for r in rules)
    assert len(set(phr)) == len(phr), "a phrasing is shared by two rules"
    # new rules belong to families that have seen rules
    seen_fams = {r.family for r in rules if r.kind == "seen"}
    assert all(r.family in seen_fams for r in rules if r.kind == "new")


def test_every_item_answer_recomputed():
    """The stored answer is what the rule's function gives on the stored input (params re-read from the prompt)."""
    sp = eval_splits(SuiteSpec())
    for it in sp["seen"] + sp["heldout_phrasing"]:
        if it["rule"] == "reverse":
            assert it["output"] == it["input"][::-1]
        if it["rule"] == "cn_add":
            a, b = it["input"].split("加")
            assert int(it["output"]) == R.parse_cn_numeral(a) + R.parse_cn_numeral(b)
        if it["rule"] == "count_char":
            c = re.search(r"“(.)”|^(.)的个数", it["instruction"])
            ch = c.group(1) or c.group(2)
            assert it["output"] == str(it["input"].count(ch))
    assert all(it["output"] for s in ("seen", "heldout_phrasing", "heldout_rule") for it in sp[s])


# ---- splits --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("probe")
    spec = SuiteSpec(seed=3)
    write_suite(d / "suite", spec)
    splits = {s: json.loads((d / "suite" / f"{s}.json").read_text(encoding="utf-8")) for s in SPLITS}
    mixtures = [write_mixture(d / "mix", spec, k, p, 400, seed, splits)
                for k in (2, 19) for p in (1, 3) for seed in (0, 1)]
    return d, splits, mixtures


def test_splits_disjoint_by_exact_search(written):
    """Independent check on the written files: no held-out phrasing, held-out rule text or eval item
    appears in any training mixture, searched as plain substrings of the mixture files' text."""
    d, splits, mixtures = written
    manifest = json.loads((d / "suite" / "suite.manifest.json").read_text(encoding="utf-8"))
    for path in mixtures:
        train = json.loads(path.read_text(encoding="utf-8"))
        instr_blob = "\n".join(r["instruction"] for r in train)
        pairs = {(r["instruction"], r["input"]) for r in train}
        inputs = {r["input"] for r in train}
        for split in ("heldout_phrasing", "heldout_rule", "no_rule"):
            for it in splits[split]:
                assert it["instruction"] not in instr_blob, (path.name, split, it["instruction"])
        for split in SPLITS:
            for it in splits[split]:
                assert (it["instruction"], it["input"]) not in pairs
                assert it["input"] not in inputs, (path.name, split, it["input"])
        # every literal piece of a held-out template (slots cut out) is absent from training
        for rule in manifest["rules"]:
            for ph in rule["phrasings"]:
                if ph["trainable"]:
                    continue
                for chunk in re.split(r"\{[a-z]+\}", ph["text"]):
                    if len(chunk) >= 6:  # shorter fragments (e.g. "后输出。") are ordinary words
                        assert chunk not in instr_blob, (rule["name"], chunk)
        trained_rules = {r["rule"] for r in train}
        assert all(R.RULES_BY_NAME[r].kind == "seen" for r in trained_rules)


def test_eval_splits_disjoint_from_each_other(written):
    _, splits, _ = written
    keys = [(it["instruction"], it["input"]) for s in SPLITS for it in splits[s]]
    assert len(keys) == len(set(keys))
    assert {it["rule"] for it in splits["heldout_rule"]} == {r.name for r in R.RULES if r.kind != "seen"}
    assert all(it["phrasing"] >= R.SEEN_PHRASINGS for it in splits["heldout_phrasing"])
    assert all(it["phrasing"] < R.SEEN_PHRASINGS for it in splits["seen"])


def test_mixture_diversity_dial(written):
    d, _, mixtures = written
    for path in mixtures:
        man = json.loads(path.with_name(path.name.replace(".json", ".manifest.json")).read_text(encoding="utf-8"))
        train = json.loads(path.read_text(encoding="utf-8"))
        assert len(train) == 400
        assert sorted({r["rule"] for r in train}) == sorted(man["rules"])
        assert len(man["rules"]) == man["n_rules"]
        assert {r["phrasing"] for r in train} == set(range(man["phrasings"]))
        counts = list(man["per_rule"].values())
        assert max(counts) - min(counts) <= 1  # the budget is split evenly over rules
    order = rule_order(0)
    assert len({R.RULES_BY_NAME[r].family for r in order[:6]}) == 6  # the first k rules span k families


def test_blend_with_pool_mixture(tmp_path, mirror):
    """A blended mixture keeps the budget: 25% real curated rows (from the mirror's translated alpaca),
    the rest probe rules; still disjoint from every eval split and every held-out phrasing piece;
    rewriting gives the same bytes; the grid gives blended runs their own mixture and folder."""
    from train.probe.experiment import ProbeConfig, grid, prepare
    from train.probe.suite import heldout_fragments

    pool = mirror / "trans_chinese_alpaca" / "alpaca_chinese_part_0.json"
    spec = SuiteSpec(seed=3)
    splits = eval_splits(spec)
    paths = [write_mixture(tmp_path / d, spec, 4, 3, 400, 0, splits, blend=pool, blend_fraction=0.25)
             for d in ("a", "b")]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    train = json.loads(paths[0].read_text(encoding="utf-8"))
    man = json.loads(paths[0].with_name(paths[0].name.replace(".json", ".manifest.json")).read_text(encoding="utf-8"))
    pool_rows = [r for r in train if r["rule"] == "pool"]
    assert len(train) == 400 and len(pool_rows) == 100 and man["blend"]["rows"] == 100
    assert sum(man["per_rule"].values()) == 300 and len(man["per_rule"]) == 4
    source = {(r["instruction"], r.get("input", ""), r["output"]) for r in json.loads(pool.read_text(encoding="utf-8"))}
    assert all((r["instruction"], r["input"], r["output"]) in source for r in pool_rows)
    blob = "\n".join(r["instruction"] + "\n" + r["input"] for r in train)
    inputs = {r["input"] for r in train}
    for split in SPLITS:
        for it in splits[split]:
            assert it["input"] not in inputs
            if split != "seen":
                assert it["instruction"] not in blob
    assert not any(f in blob for f in heldout_fragments())
    cfg = ProbeConfig(out_dir=str(tmp_path / "g"), n_rules=(2,), phrasings=(3,), arms=("none", "kl-1"),
                      seeds=(0,), size=200, blends=(str(pool),), seen_items=2, heldout_phrasing_items=1,
                      heldout_rule_items=1, no_rule_items=2)
    runs = grid(cfg)
    assert [r["run"] for r in runs] == ["r2-p3-none-s0", "r2-p3-kl-1-s0", "r2-p3-none-alpaca_chinese_part_0-25-s0"]
    prepare(cfg, log=lambda _: None)
    assert all(Path(r["mixture"]).is_file() for r in runs)
    with pytest.raises(ValueError, match="blend_fraction"):
        write_mixture(tmp_path / "c", spec, 2, 3, 100, 0, splits, blend=pool, blend_fraction=1.0)


def test_deterministic(tmp_path):
    spec = SuiteSpec(seed=5, seen_items=3, heldout_phrasing_items=2, heldout_rule_items=3, no_rule_items=5)
    for d in ("a", "b"):
        write_suite(tmp_path / d, spec)
        write_mixture(tmp_path / d, spec, 4, 3, 120, 1)
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name
    write_suite(tmp_path / "c", SuiteSpec(seed=6, seen_items=3, heldout_phrasing_items=2, heldout_rule_items=3,
                                          no_rule_items=5))
    assert (tmp_path / "c" / "seen.json").read_bytes() != (tmp_path / "a" / "seen.json").read_bytes()


# ---- scoring --------------------------------------------------------------------------------------


def test_normalisation_is_whitespace_and_fullwidth_only():
    assert normalize_answer(" ４２\n") == "42"
    assert normalize_answer("２０２３－０７－０３") == "2023-07-03"
    assert normalize_answer("【苹果】 【香蕉】") == "【苹果】【香蕉】"
    assert normalize_answer("苹果\u3000香蕉") == "苹果香蕉"
    assert exact_match("４２", "42")
    assert exact_match("苹果 ，香蕉", "苹果,香蕉")  # U+FF0C is full-width ASCII: folded like the rest
    assert not exact_match("42。", "42")  # punctuation is not stripped
    assert not exact_match("Abc", "abc")  # no case folding
    assert not exact_match("三十七", "37")  # no numeral conversion
    assert not exact_match("《苹果》", "【苹果】")


def test_score_item():
    it = {"split": "seen", "output": "42"}
    assert score_item(it, " 42 ")["correct"] and not score_item(it, "43")["correct"]
    nr = {"split": "no_rule", "output": "", "candidates": ["人地天", "天地人"]}
    assert score_item(nr, "人地天") == {"correct": None, "made_up": True, "rule_applied": True}
    assert score_item(nr, "不知道") == {"correct": None, "made_up": True, "rule_applied": False}
    assert score_item(nr, "  ") == {"correct": None, "made_up": False, "rule_applied": False}


# ---- the experiment's pieces ----------------------------------------------------------------------


def test_arms_and_grid(tmp_path):
    from train.probe.experiment import ProbeConfig, arm_kwargs, grid, parse_arm

    assert parse_arm("none") == ("none", None)
    assert arm_kwargs("gravity-0.3") == {"constraint": "gravity", "gravity_weights": (0.7, 0.3)}
    assert arm_kwargs("kl-0.5") == {"constraint": "kl", "kl_coef": 0.5}
    for bad in ("gravity", "gravity-1.5", "none-1", "l2-0.1"):
        with pytest.raises(ValueError):
            parse_arm(bad)
    cfg = ProbeConfig(out_dir=str(tmp_path), n_rules=(2, 0), phrasings=(3, 1), arms=("none", "kl-1"),
                      one_phrasing_arms=("none",), one_phrasing_rules=(), constraint_rules=(), seeds=(0, 1))
    runs = grid(cfg)
    assert len(runs) == 2 * 2 * (2 + 1)  # seeds × rule counts × (two arms on 3 phrasings + none on 1)
    assert {r["n_rules"] for r in runs} == {2, 19}
    assert len({r["output_dir"] for r in runs}) == len(runs)
    # arms and single-phrasing mixtures only at the rule counts asked for (0: all rules)
    cfg = ProbeConfig(out_dir=str(tmp_path), n_rules=(2, 8, 0), phrasings=(3, 1), arms=("none", "kl-1"),
                      one_phrasing_rules=(8,), constraint_rules=(2, 0), seeds=(0,))
    names = sorted(r["run"] for r in grid(cfg))
    assert names == sorted(["r2-p3-none-s0", "r8-p3-none-s0", "r19-p3-none-s0", "r8-p1-none-s0",
                            "r2-p3-kl-1-s0", "r19-p3-kl-1-s0"])


def test_bootstrap_interval():
    import numpy as np

    from train.probe.experiment import bootstrap

    a = {0: np.array([1.0] * 30 + [0.0] * 10), 1: np.array([1.0] * 28 + [0.0] * 12)}
    e = bootstrap(a, reps=500)
    assert e["mean"] == pytest.approx((0.75 + 0.70) / 2)
    assert e["low"] < e["mean"] < e["high"] and e["high"] - e["low"] < 0.4
    same = bootstrap(a, a, paired_items=True, reps=200)
    assert same["mean"] == 0 and same["low"] == 0 and same["high"] == 0  # paired draws cancel exactly
    b = {0: np.zeros(40), 1: np.zeros(40)}
    d = bootstrap(a, b, reps=500)
    assert d["low"] > 0.5  # a clear difference is seen


def _fake_items(seen_acc: float, n_items: int = 40):
    """A made-up item table: arms none/gravity-0.3 at 2 and 19 rules, seen accuracy ``seen_acc``."""
    import pandas as pd

    rows = []
    for seed in (0, 1):
        for n in (2, 19):
            for arm in ("none", "gravity-0.3"):
                for i in range(n_items):
                    for split in ("seen", "heldout_phrasing", "heldout_rule", "no_rule"):
                        acc = seen_acc[n] if isinstance(seen_acc, dict) else seen_acc
                        ok = i < acc * n_items if split == "seen" else False
                        rows.append({"run": f"{n}-{arm}-{seed}", "n_rules": n, "phrasings": 3, "arm": arm, "seed": seed,
                                     "item": hash((split, i)) % 10**6, "split": split, "rule": "r", "family": "f",
                                     "in_mixture": True, "correct": ok if split != "no_rule" else None,
                                     "made_up": split == "no_rule", "rule_applied": False,
                                     "base_correct": False, "copy_correct": False, "majority_correct": i < 2})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seen_acc,passes", [(0.05, False), (0.6, True)])
def test_verdict_gated_by_positive_control(tmp_path, seen_acc, passes):
    from train.probe.experiment import ProbeConfig, config_table, verdict

    cfg = ProbeConfig(out_dir=str(tmp_path), n_rules=(2, 0), phrasings=(3,), arms=("none", "gravity-0.3"),
                      seeds=(0, 1), bootstrap=300)
    items = _fake_items(seen_acc)
    table = config_table(items, 300)
    text, effects = verdict(cfg, items, table, {"accuracy": {}})
    assert effects["control_passed"] is passes
    if passes:
        assert "The control passes" in text and "cannot support a finding" not in text
        assert effects["gravity-0.3_seen"]["mean"] == 0
    else:
        assert "FAILS" in text and "cannot support a finding" in text and "did not learn" in text


def test_verdict_compares_arms_where_they_ran(tmp_path):
    """With the arm trained at 2 rules only, its effect is measured against `none` at 2 rules."""
    from train.probe.experiment import ProbeConfig, config_table, verdict

    items = _fake_items(0.6)
    items = items[~((items["arm"] == "gravity-0.3") & (items["n_rules"] == 19))]
    cfg = ProbeConfig(out_dir=str(tmp_path), n_rules=(2, 0), phrasings=(3,), arms=("none", "gravity-0.3"),
                      seeds=(0, 1), bootstrap=300, constraint_rules=(2,))
    text, effects = verdict(cfg, items, config_table(items, 300), {"accuracy": {}})
    assert effects["gravity-0.3_seen"]["a"]["n_rules"] == 2 and effects["gravity-0.3_seen"]["mean"] == 0
    assert "`gravity-0.3` − `none`, 2 rules, seen rules" in text


def test_verdict_partial_control(tmp_path):
    """Control passes with all rules but fails with 2: diversity is declared untestable, not absent."""
    from train.probe.experiment import ProbeConfig, config_table, verdict

    cfg = ProbeConfig(out_dir=str(tmp_path), n_rules=(2, 0), phrasings=(3,), arms=("none", "gravity-0.3"),
                      seeds=(0, 1), bootstrap=300)
    items = _fake_items({2: 0.0, 19: 0.6})
    text, effects = verdict(cfg, items, config_table(items, 300), {"accuracy": {}})
    assert effects["control"] == {2: False, 19: True}
    assert "could not be tested" in text and "cannot be read as evidence" in text


def test_blend_section_compares_like_with_like(tmp_path):
    """Blended runs are kept out of the main verdict and compared with the unblended runs of the same
    arm, rule count and phrasings: a blend that lifts seen accuracy from 0.3 to 0.6 is seen as higher."""
    import pandas as pd

    from train.probe.experiment import ProbeConfig, blend_section, config_table

    plain = _fake_items({2: 0.3, 19: 0.3})
    plain = plain[plain["arm"] == "none"].assign(blend="")
    blended = _fake_items({2: 0.6, 19: 0.6})
    blended = blended[blended["arm"] == "none"].assign(blend="pool-25")
    items = pd.concat([plain, blended], ignore_index=True)
    cfg = ProbeConfig(out_dir=str(tmp_path), n_rules=(2, 0), phrasings=(3,), arms=("none",), seeds=(0, 1),
                      blends=("pool.json",), bootstrap=300)
    text, effects = blend_section(cfg, items, config_table(items, 300))
    e = effects["blend_pool-25_none_19_seen"]
    assert e["mean"] == pytest.approx(0.3) and e["low"] > 0
    assert "`pool-25` − unblended, seen rules" in text and "control passes" in text


def test_cli_help():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from flows.cli import main; main()", "probe", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--evaluate", "--n-rules", "--arms", "--seeds", "--base-pretrain-steps", "--one-phrasing-arms",
                 "--blends"):
        assert flag in out
    # every option is explained, not only given a default
    import dataclasses

    from flows.probe_cli import field_notes
    from train.probe.base import CharBaseSpec
    from train.probe.experiment import ProbeConfig

    for cls in (ProbeConfig, CharBaseSpec):
        notes = field_notes(cls)
        missing = [f.name for f in dataclasses.fields(cls) if f.name != "base" and len(notes.get(f.name, "")) < 5]
        assert not missing, (cls.__name__, missing)
    assert "LoRA rank" in out and "the grid" not in out  # a section heading is not a field's help


# ---- a short real training run ----------------------------------------------------------------------


@pytest.mark.slow
def test_short_training_run_learns_seen_rules(tmp_path, mirror):
    """A small character base (pretrained briefly on real mirror text) and a short LoRA run on two seen
    rules reach exact-match accuracy on their eval items above every no-skill floor (the untrained
    base, copying the input, each rule's most frequent answer), all of which score 0 here. The bar is
    low on purpose (at least 2 of 32 exact answers): this base is far weaker than the grid's 1,500-step
    one, and the run is kept to a few minutes on a quiet CPU (11 min under a load average of ~8).
    A weaker base (64-token windows, 2,000 texts) got none right: the check can fail."""
    import pandas as pd

    from train.finetune import finetune
    from train.probe.base import CharBaseSpec, build_char_base
    from train.probe.evaluate import baseline_correct, load_suite, score_model
    from train.probe.experiment import LORA_ALL
    from train.probe.suite import eval_inputs, mixture_records

    spec = SuiteSpec(seed=0, seen_items=16, heldout_phrasing_items=2, heldout_rule_items=1, no_rule_items=2)
    write_suite(tmp_path / "suite", spec)
    rules = ["get_field", "last_item"]
    recs = mixture_records(spec, rules, 3, 200 * 16, 0, eval_inputs(eval_splits(spec)))
    (tmp_path / "mix.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    base = build_char_base(mirror / "trans_chinese_alpaca", tmp_path / "models",
                           CharBaseSpec(pretrain_steps=150, warmup_steps=20, max_texts=3000), threads=1)
    finetune(tmp_path / "mix.json", tmp_path / "run", base_model=str(base), template="probe_zh", lora_r=16,
             lora_alpha=32, target_modules=LORA_ALL, learning_rate=3e-3, max_steps=200, micro_batch_size=16,
             save_steps=200, gen_max_new_tokens=4, threads=1, seed=0, lora_dropout=0.0, response_logits_only=True)
    score_model(str(tmp_path / "run" / "adapter"), tmp_path / "suite", tmp_path / "score", "probe_zh", threads=1)
    score_model(str(base), tmp_path / "suite", tmp_path / "base_score", "probe_zh", threads=1)
    items = load_suite(tmp_path / "suite")
    df = pd.read_parquet(tmp_path / "score" / "predictions.parquet").merge(baseline_correct(items), on="item")
    base_df = pd.read_parquet(tmp_path / "base_score" / "predictions.parquet")
    own = (df["split"] == "seen") & df["rule"].isin(rules)
    acc = df.loc[own, "correct"].astype(float).mean()
    floor = max(df.loc[own, "copy_correct"].mean(), df.loc[own, "majority_correct"].mean(),
                base_df.loc[own.to_numpy(), "correct"].astype(float).mean())
    n_right = int(df.loc[own, "correct"].astype(float).sum())
    assert acc > floor and n_right >= 2, (acc, floor, n_right, int(own.sum()))
