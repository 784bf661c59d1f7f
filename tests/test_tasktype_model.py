"""The learned second opinion and the per-label confidence (issue #14)."""
import csv
import json

import numpy as np
import pandas as pd

import sys
from pathlib import Path

from curate.ops.task_type_tagger import TaskTypeTagger
from curate.tasktype import match_rule
from curate.tasktype_model import (GENERIC_RULES, MIN_CONFIDENCE, TRAIN_JSONL, TaskTypeModel, default_model,
                                   label_rows, rule_confidence, rule_precision, training_rows)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from labeleval import DEVSET_CSV, model_training_text  # noqa: E402


def test_the_packaged_training_rows_are_the_hand_labelled_tune_rows():
    """curate/tasktype_train.jsonl (what an installed package trains on) equals what tests/data says;
    after relabelling, rewrite it with ``python benchmarks/labeleval.py``."""
    assert TRAIN_JSONL.read_text(encoding="utf-8") == model_training_text()


def test_model_trains_on_the_authored_tune_rows_only():
    texts, labels = training_rows()
    with DEVSET_CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(texts) == len(labels) == sum(r["split"] == "authored_tune" for r in rows)
    assert len(set(labels)) == 11
    # Traditional rows arrive simplified, as the pipeline's normalize stage hands them to the labeller
    assert not any("這" in t or "麼" in t for t in texts)


def test_model_is_deterministic():
    texts, labels = training_rows()
    a = TaskTypeModel().fit(texts, labels)
    b = TaskTypeModel().fit(texts, labels)
    la, pa = a.predict(texts[:50])
    lb, pb = b.predict(texts[:50])
    assert la == lb and np.array_equal(pa, pb)


def test_label_rows_names_how_each_label_was_decided():
    ins = ["把下面这句话翻译成英文：今天天气很好，我们去公园散步吧，顺便买点水果。", "为什么天空是蓝色的？", "你好"]
    labels, decided, conf = label_rows(ins, [""] * 3, [""] * 3)
    assert labels == [match_rule(i)[0] for i in ins]
    assert decided == ["rule:" + match_rule(i)[1] for i in ins]
    assert all(0 < c < 1 for c in conf)
    # with the model, only rows a generic rule decided can change, and they say so
    labels_m, decided_m, conf_m = label_rows(ins, [""] * 3, [""] * 3, model=True)
    for d, dm, lab, lab_m in zip(decided, decided_m, labels, labels_m):
        if d.removeprefix("rule:") not in GENERIC_RULES:
            assert (dm, lab_m) == (d, lab)
        else:
            assert dm == "model"
    assert decided_m[1] == "model"  # "question" is generic


def test_rule_confidence_is_the_smoothed_precision():
    table = rule_precision()
    r = table["question"]
    assert rule_confidence("question") == (r["correct"] + 1) / (r["rows"] + 2)
    assert rule_confidence("no_such_rule") == 0.5
    # specific rules are surer than the generic fallback
    assert rule_confidence("rewrite_words") > MIN_CONFIDENCE > rule_confidence("fallback")


def test_tagger_adds_confidence_and_counts_the_unsure():
    df = pd.DataFrame({"id": ["a", "b", "c"], "instruction": ["翻译成英文：你好，世界", "为什么天空是蓝色的？", "诊断以下医学症状。"],
                       "input": ["", "", ""], "output": ["", "", ""], "history": ["[]", "[]", "[]"]})
    res = TaskTypeTagger()(df)
    assert list(res.kept["task_confidence"]) == [rule_confidence(match_rule(i)[1]) for i in df["instruction"]]
    assert res.stats["low_confidence"] == sum(c < MIN_CONFIDENCE for c in res.kept["task_confidence"])
    assert "model" not in res.stats["rules"]  # off by default
    with_model = TaskTypeTagger(model=True)(df)
    assert with_model.stats["rules"].get("model", 0) >= 1
    assert json.dumps(with_model.stats)  # stats stay JSON


def test_default_model_is_cached():
    assert default_model() is default_model()
