"""The task-type labeller against people: the hand-labelled development set and held-out silver labels.

The figures asserted here are the ones reported in tests/data/README.md (run with ``-s`` to see the
confusion matrices). The floors sit a little under the measured values, so a rule change that makes
the labeller worse fails here.
"""
import csv
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from labeleval import (DEVSET_CSV, SEED_CSV, confusion_markdown, evaluate, load_devset,  # noqa: E402
                       load_drcd_silver, load_seed_silver, misses, predict)
from curate.tasktype import TASK_TYPES  # noqa: E402

SOURCES = {"trans_chinese_alpaca", "alpaca_chinese", "belle", "traditional"}


@pytest.fixture(scope="module")
def dev(mirror):
    return load_devset(mirror)


@pytest.fixture(scope="module")
def dev_pred(dev):
    return predict(dev)


def _split(dev, pred, split):
    mask = (dev["split"] == split).tolist()
    return [g for g, m in zip(dev["label"], mask) if m], [p for p, m in zip(pred, mask) if m]


def test_devset_file_is_traceable_and_stratified():
    with DEVSET_CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["id", "source", "file", "row", "split", "label"]
    assert len(rows) >= 400 and len({r["id"] for r in rows}) == len(rows)
    assert {r["source"] for r in rows} == SOURCES | {"authored"}  # every source of the mirror, and the authored rows
    assert {r["split"] for r in rows} == {"tune", "test", "authored_tune", "authored_test"}
    # mirror rows are in the mirror's splits, authored rows in their own
    assert all((r["source"] == "authored") == r["split"].startswith("authored_") for r in rows)
    test_rows = [r for r in rows if r["split"] == "test"]
    assert len(test_rows) >= 400
    assert {r["source"] for r in test_rows} == SOURCES
    assert {r["label"] for r in rows} <= set(TASK_TYPES)
    assert len({r["label"] for r in test_rows}) == len(TASK_TYPES)  # every type occurs in the test split
    # the seed tasks are the held-out silver set, so none is in the development set
    assert not any(r["file"] == "zh_seed_tasks.json" for r in rows)


def test_devset_rows_are_read_back_from_the_mirror(dev):
    # load_devset checks every id against the mirror's row, so a changed file cannot be scored silently
    assert len(dev) >= 400 and dev["instruction"].str.len().gt(0).all()
    # normalised as in the pipeline: DRCD's traditional characters arrive simplified
    drcd = dev[dev["file"] == "DRCD_dev.json"]
    assert len(drcd) > 10 and not drcd["instruction"].str.contains("麼|們|這").any()


def test_labeller_on_the_whole_devset(dev, dev_pred):
    """The mirror's rows (tune + test); the authored rows have their own tests."""
    mirror_rows = (dev["source"] != "authored").tolist()
    gold = [g for g, m in zip(dev["label"], mirror_rows) if m]
    r = evaluate(gold, [p for p, m in zip(dev_pred, mirror_rows) if m])
    print("\nwhole development set (mirror rows)", r["rows"], r["accuracy"], r["macro_f1"])
    print(confusion_markdown(r))
    assert r["accuracy"] >= 0.86  # measured 0.870 (0.871 before issue #14)
    assert r["macro_f1"] >= 0.83  # measured 0.850 (0.840 before issue #14)
    assert sum(sum(row.values()) for row in r["confusion"].values()) == sum(mirror_rows)


def test_labeller_on_the_test_split(dev, dev_pred):
    """The rules were changed while reading the tuning split only; the test split is the honest figure."""
    gold, pred = _split(dev, dev_pred, "test")
    r = evaluate(gold, pred)
    print("\ntest split", r["rows"], r["accuracy"], r["macro_f1"])
    print(confusion_markdown(r))
    # issue #14: no worse than before it (0.814 / 0.809); measured 0.817 / 0.812
    assert r["accuracy"] >= 0.814
    assert r["macro_f1"] >= 0.809
    # the big types are recognised well
    for t in ("math", "open qa", "generation"):
        assert r["per_type"][t]["f1"] >= 0.75, (t, r["per_type"][t])
    tune = evaluate(*_split(dev, dev_pred, "tune"))
    assert tune["accuracy"] >= r["accuracy"]  # tuned on it: it must not be the weaker split


def test_heldout_seed_tasks_silver_labels(mirror):
    """BELLE's seed tasks, labelled from their task names (mapped by hand in seed_task_types.csv)."""
    seed = load_seed_silver(mirror)
    assert len(seed) == 175
    with SEED_CSV.open(encoding="utf-8", newline="") as f:
        assert len(list(csv.DictReader(f))) == 175
    r = evaluate(seed["label"].tolist(), predict(seed))
    print("\nseed tasks", r["rows"], r["accuracy"], r["macro_f1"])
    print(confusion_markdown(r))
    assert r["accuracy"] >= 0.74  # measured 0.760
    assert r["macro_f1"] >= 0.70  # measured 0.721


def test_heldout_drcd_questions_are_closed_qa(mirror):
    """DRCD: a question and its paragraph, closed qa by construction; none of its rows tuned a rule."""
    with DEVSET_CSV.open(encoding="utf-8", newline="") as f:
        dev_ids = {r["id"] for r in csv.DictReader(f)}
    drcd = load_drcd_silver(mirror, exclude_ids=dev_ids, n=600, seed=1)
    pred = Counter(predict(drcd))
    print("\nDRCD", dict(pred))
    assert pred["closed qa"] / len(drcd) >= 0.92  # measured 0.942


def test_evaluate_by_hand():
    r = evaluate(["math", "math", "code", "rewrite"], ["math", "code", "code", "rewrite"])
    assert r["accuracy"] == 0.75
    # per type F1: math 2/3, code 2/3, rewrite 1 → macro (2/3 + 2/3 + 1) / 3
    assert r["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3, abs=1e-4)
    assert r["confusion"]["math"] == {"rewrite": 0, "math": 1, "code": 1} or r["confusion"]["math"]["code"] == 1
    with pytest.raises(ValueError):
        evaluate(["math"], [])


def test_misses_name_the_rule_that_decided(dev, dev_pred):
    tune = dev["split"] == "tune"
    got = misses(dev[tune], [p for p, m in zip(dev_pred, tune) if m], n=1000)
    wrong = sum(g != p for g, p, m in zip(dev["label"], dev_pred, tune) if m)
    assert len(got) == wrong > 0
    assert all(m["gold"] != m["pred"] and m["rule"] for m in got)
    print("\ntune misses by rule", Counter(m["rule"] for m in got).most_common(8))


def _authored(dev, pred, split):
    mask = (dev["split"] == split).tolist()
    rows = dev[mask]
    return rows, [p for p, m in zip(pred, mask) if m]


def test_authored_rows_are_unlike_the_mirror(dev):
    """The authored rows (issue #14): single-field prompts, chat turns, short questions, Traditional script."""
    rows = dev[dev["source"] == "authored"]
    assert len(rows) >= 600
    kinds = Counter(json.loads(e)["kind"] for e in rows["extra"])
    assert set(kinds) == {"single", "chat", "short", "trad", "followup"} and kinds["trad"] >= 60 and kinds["chat"] >= 60
    assert (rows["input"] == "").mean() > 0.95  # the text is inside the prompt, not in ``input``
    for split in ("authored_tune", "authored_test"):
        part = rows[rows["split"] == split]
        assert len(part) >= 300 and set(part["label"]) == set(TASK_TYPES)


def test_labeller_on_the_authored_test_split(dev, dev_pred):
    """Written before any rule of issue #14 was changed and not read while tuning: the honest figure for
    prompts unlike the mirror's alpaca shape (it was 0.645 / 0.600 before)."""
    rows, pred = _authored(dev, dev_pred, "authored_test")
    r = evaluate(rows["label"].tolist(), pred)
    print("\nauthored test split", r["rows"], r["accuracy"], r["macro_f1"])
    print(confusion_markdown(r))
    assert r["accuracy"] >= 0.82  # measured 0.844
    assert r["macro_f1"] >= 0.84  # measured 0.859
    assert min(v["f1"] for v in r["per_type"].values()) >= 0.72, r["per_type"]  # measured 0.746 (brainstorming)
    assert r["per_type"]["closed qa"]["f1"] >= 0.78  # measured 0.812 (0.056 before)
    kinds = [json.loads(e)["kind"] for e in rows["extra"]]
    for kind in ("single", "chat", "trad", "short"):  # every shape of prompt, not only the commonest
        hits = [g == p for g, p, k in zip(rows["label"], pred, kinds) if k == kind]
        assert sum(hits) / len(hits) >= 0.80, (kind, sum(hits), len(hits))  # measured 0.836 / 0.829 / 0.875 / 0.895


def test_labeller_on_the_authored_tune_split(dev, dev_pred):
    """The rules of issue #14 were tuned on these rows: a floor against regressions, not a fair figure."""
    rows, pred = _authored(dev, dev_pred, "authored_tune")
    r = evaluate(rows["label"].tolist(), pred)
    print("\nauthored tune split", r["rows"], r["accuracy"], r["macro_f1"])
    assert r["accuracy"] >= 0.93  # measured 0.948 (0.616 before, on its first 310 rows)
    assert r["macro_f1"] >= 0.93  # measured 0.954


def test_rule_precision_table_is_up_to_date(dev):
    """curate/rule_precision.json (the rules' confidences) is what the tuning splits give today; after a
    rule change, rewrite it with ``python benchmarks/labeleval.py MIRROR``."""
    from labeleval import rule_precision_table
    from curate.tasktype_model import rule_precision

    assert rule_precision_table(dev)["rules"] == rule_precision()


def test_learned_model_option(dev):
    """``task_type_tagger: {model: true}``: the model decides the rows only a generic rule decided. It
    helps on the authored (single-field, chat) test split and leaves the mirror's test split where the
    rules have it; off by default because it lowers the mirror's tune split (see tests/data/README.md)."""
    from curate.tasktype_model import label_rows

    labels, decided, conf = label_rows(dev["instruction"], dev["input"], dev["output"], dev["history"], model=True)
    rules, _, _ = label_rows(dev["instruction"], dev["input"], dev["output"], dev["history"])
    fig = {}
    for split in ("test", "authored_test"):
        mask = (dev["split"] == split).tolist()
        gold = [g for g, m in zip(dev["label"], mask) if m]
        fig[split] = (evaluate(gold, [p for p, m in zip(labels, mask) if m]),
                      evaluate(gold, [p for p, m in zip(rules, mask) if m]))
        print(f"\n{split}: rules {fig[split][1]['accuracy']} / {fig[split][1]['macro_f1']}, "
              f"with the model {fig[split][0]['accuracy']} / {fig[split][0]['macro_f1']}")
    with_model, rules_only = fig["authored_test"]
    assert with_model["accuracy"] >= rules_only["accuracy"] + 0.02  # measured 0.879 against 0.844
    assert with_model["macro_f1"] >= 0.86 and min(v["f1"] for v in with_model["per_type"].values()) >= 0.75
    assert fig["test"][0]["accuracy"] >= 0.81 and fig["test"][0]["macro_f1"] >= 0.80  # measured 0.814 / 0.810
    assert all(d == "model" or d.startswith("rule:") for d in decided)
