"""Entropy, distinct-n and the diversity summary: hand-computed cases and real rows."""
import json
import math

import pytest

from curate.diversity import distinct_n, diversity_by, diversity_metrics, entropy, normalized_entropy
from curate.records import make_record, records_frame
from curate.tasktype import TASK_TYPES, TaskTypeTagger


def test_entropy_in_bits():
    assert entropy([1, 1]) == pytest.approx(1.0)
    assert entropy([5, 5, 5, 5]) == pytest.approx(2.0)
    assert entropy([2, 1, 1]) == pytest.approx(1.5)  # -(.5 log .5 + 2 * .25 log .25)
    assert entropy({"a": 7}) == 0.0
    assert entropy({"a": 3, "b": 0, "c": 3}) == pytest.approx(1.0)  # zeros ignored
    assert entropy([]) == 0.0
    with pytest.raises(ValueError):
        entropy([1, -1])


def test_normalized_entropy():
    assert normalized_entropy([1, 1, 1, 1]) == pytest.approx(1.0)
    assert normalized_entropy([1, 1, 1, 1], k=8) == pytest.approx(2 / 3)
    assert normalized_entropy([3, 1], k=2) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert normalized_entropy([9]) == 0.0
    with pytest.raises(ValueError):
        normalized_entropy([1, 1, 1], k=2)


def test_distinct_n_by_hand():
    assert distinct_n(["abab"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["abab"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["abab"], 3) == pytest.approx(1.0)  # aba, bab
    assert distinct_n(["ab", "ab"], 2) == pytest.approx(1 / 2)  # counted over the whole set
    assert distinct_n(["ab", "ba"], 3) == 0.0  # no text long enough
    assert distinct_n(["你好你好"], 2) == pytest.approx(2 / 3)  # characters, not bytes
    assert distinct_n(["xy", "yx"], 2) == pytest.approx(1.0)  # no n-gram across texts ("yy")
    with pytest.raises(ValueError):
        distinct_n(["a"], 0)


def _tiny():
    rows = [make_record("s1", "f", 0, "abab"), make_record("s1", "f", 1, "abab"),
            make_record("s2", "f", 2, "cd"), make_record("s2", "f", 3, "cdcd")]
    df = records_frame(rows)
    df["task_type"] = ["math", "math", "code", "rewrite"]
    df["cluster"] = [0, 0, 1, 2]
    return df


def test_diversity_metrics_by_hand():
    m = diversity_metrics(_tiny())
    assert m["rows"] == 4
    assert m["task_type_entropy"] == pytest.approx(1.5)
    assert m["task_type_entropy_norm"] == pytest.approx(1.5 / math.log2(11), abs=1e-6)
    assert m["task_type_coverage"] == pytest.approx(3 / 11, abs=1e-6)
    assert m["cluster_entropy"] == pytest.approx(1.5)
    assert m["cluster_entropy_norm"] == pytest.approx(1.5 / math.log2(3), abs=1e-6)  # clusters present
    assert m["clusters_present"] == 3
    # characters of abab, abab, cd, cdcd: a b a b a b a b c d c d c d -> {a, b, c, d} / 14
    assert m["distinct_1"] == pytest.approx(4 / 14, abs=1e-6)
    # bigrams: 3 + 3 + 1 + 3 = 10, distinct {ab, ba, cd, dc}
    assert m["distinct_2"] == pytest.approx(4 / 10, abs=1e-6)
    assert m["mean_instruction_chars"] == pytest.approx(14 / 4)
    # with the clustering's k the same spread reads as less even
    assert diversity_metrics(_tiny(), n_clusters=50)["cluster_entropy_norm"] == pytest.approx(1.5 / math.log2(50), abs=1e-6)


def test_missing_columns_and_plain_types():
    df = _tiny().drop(columns=["task_type", "cluster"])
    m = diversity_metrics(df)
    assert m["task_type_entropy"] is None and m["cluster_entropy"] is None
    json.dumps(m)
    assert all(type(v) in (int, float, type(None)) for v in m.values())
    bad = _tiny()
    bad.loc[0, "task_type"] = "poetry"
    with pytest.raises(ValueError, match="poetry"):
        diversity_metrics(bad)


def test_diversity_by_source_on_real_rows(mirror):
    rows = []
    data = json.loads((mirror / "trans_chinese_alpaca/alpaca_chinese_part_3.json").read_text(encoding="utf-8"))
    rows += [make_record("trans_chinese_alpaca", "alpaca_chinese_part_3.json", i, r["instruction"], r["input"], r["output"])
             for i, r in enumerate(data)]
    drills = json.loads((mirror / "alpaca_chinese/supplementary/整数加减法.json").read_text(encoding="utf-8"))
    rows += [make_record("alpaca_chinese", "supplementary/整数加减法.json", i, r["instruction"], r.get("input", ""), r["output"])
             for i, r in enumerate(drills)]
    df = TaskTypeTagger()(records_frame(rows)).kept
    by = diversity_by(df, "source")
    assert list(by) == ["alpaca_chinese", "trans_chinese_alpaca"]
    assert by["alpaca_chinese"]["rows"] == len(drills) and by["trans_chinese_alpaca"]["rows"] == len(data)
    # arithmetic drills: one task type, a handful of characters; translated Alpaca: many of both
    assert by["alpaca_chinese"]["task_type_entropy"] == 0.0
    assert by["trans_chinese_alpaca"]["task_type_entropy_norm"] > 0.7
    assert by["trans_chinese_alpaca"]["task_type_coverage"] >= 9 / len(TASK_TYPES)
    assert by["alpaca_chinese"]["distinct_1"] < 0.01 < by["trans_chinese_alpaca"]["distinct_1"]
    assert by["alpaca_chinese"]["distinct_2"] < by["trans_chinese_alpaca"]["distinct_2"]
    json.dumps(by, ensure_ascii=False)
    with pytest.raises(KeyError):
        diversity_by(df, "nope")
