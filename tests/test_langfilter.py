"""Empty-text and Chinese-language filters on real mirror rows (files read directly with json)."""
import json
import re

import pytest

from curate.ops.chinese_language_filter import ChineseLanguageFilter
from curate.ops.empty_text_filter import EmptyTextFilter
from curate.normalize import normalize_text
from curate.records import make_record, records_frame

TRANSLATED = "alpaca_chinese/translated/"
HAN = re.compile(r"[\u3400-\u9fff]")


def rows_of(mirror, rel):
    return json.loads((mirror / rel).read_text(encoding="utf-8"))


def record(rel, i, o):
    return make_record(rel.split("/")[0], rel, i, normalize_text(o.get("instruction") or "", tags=False),
                       normalize_text(o.get("input") or "", tags=False), normalize_text(o.get("output") or ""))


def frame_of(mirror, picks):
    return records_frame([record(rel, i, rows_of(mirror, rel)[i]) for rel, i in picks])


def run(op, df):
    res = op(df)
    res.check(len(df), op.name)  # ledger: kept + dropped == in
    assert set(res.kept["id"]).isdisjoint(res.dropped["id"])
    assert res.kept["id"].tolist() == [i for i in df["id"] if i in set(res.kept["id"])]  # order kept
    json.dumps(res.stats)
    return res


def test_untranslated_english_rows_of_the_hikariming_chunk_are_dropped(mirror):
    rel = TRANSLATED + "alpaca_data-18280-21320-中文-wys未完成.json"
    rows = rows_of(mirror, rel)
    df = records_frame([record(rel, i, o) for i, o in enumerate(rows)])
    res = run(ChineseLanguageFilter(seed=0), df)
    english = [i for i, o in enumerate(rows) if not HAN.search(o["instruction"] + o.get("input", ""))]
    assert len(english) > 800  # the chunk is a third untranslated
    dropped_rows = set(res.dropped["row"])
    assert dropped_rows == set(english)
    assert set(res.dropped["reason"]) == {"not_chinese"}
    assert res.dropped["detail"].str.match(r"^(fast_path:latin|langdetect:[a-z-]+)$").all()
    assert (res.dropped["detail"] == "fast_path:latin").sum() > 800
    # e.g. the first English row and a translated row around it
    first = rows[english[0]]
    assert not HAN.search(first["instruction"]) and english[0] in dropped_rows
    kept_rows = set(res.kept["row"])
    assert all(HAN.search(rows[i]["instruction"]) for i in kept_rows)
    s = res.stats
    assert s["reasons"] == {"not_chinese": len(english)}
    assert s["decided_by"]["fast_path:cjk"] == len(kept_rows)
    assert sum(s["decided_by"].values()) == len(df)
    assert s["examples"]["not_chinese"][0]["detail"] == res.dropped["detail"].iloc[0]


def test_translation_prompts_with_foreign_input_are_kept(mirror):
    picks = [(TRANSLATED + "alpaca_data-6382-9407-（jlh）中文-已完成.json", 646),  # + English input
             ("trans_chinese_alpaca/alpaca_chinese_part_0.json", 225),  # + French input
             ("alpaca_chinese/supplementary/翻译问题.json", 1),  # 帮我翻译一下：<English passage>
             ("alpaca_chinese/supplementary/翻译问题.json", 9),  # <English passage> 翻译成中文
             ("trans_chinese_alpaca/alpaca_chinese_part_20.json", 460),  # 将“Ich bin ein Berliner”翻译成英文。
             ("alpaca_chinese/supplementary/代码问题.json", 20)]  # 什么是BlocksEngine？
    df = frame_of(mirror, picks)
    assert df["input"][0] == "He was amused by the situation."
    res = run(ChineseLanguageFilter(), df)
    assert len(res.kept) == len(df), res.dropped[["instruction", "detail"]].to_dict("records")
    assert res.stats["decided_by"]["langdetect"] == 0


def test_english_prompt_with_chinese_words_goes_to_langdetect():
    df = records_frame([make_record("x", "f", 0, "What does 爱 mean in English?", "", "Love."),
                        make_record("x", "f", 1, "Summarize:", "今天天气很好，我们去公园散步吧。", "出去散步。"),
                        make_record("x", "f", 2, "Summarize:", "The weather is nice today, let us walk in the park.",
                                    "A walk.")])
    res = run(ChineseLanguageFilter(seed=0), df)
    assert res.kept["row"].tolist() == [1]
    # one word of instruction says little: the input decides
    assert res.dropped["detail"].tolist() == ["langdetect:en", "fast_path:latin"]
    assert res.stats["decided_by"] == {"fast_path:cjk": 1, "fast_path:latin": 1, "fast_path:frame": 0,
                                       "langdetect": 1, "no_signal": 0}


def test_no_signal_prompts_are_kept_and_do_not_crash(mirror):
    arith = rows_of(mirror, "alpaca_chinese/supplementary/整数加减法.json")[:20]
    recs = [record("alpaca_chinese/supplementary/整数加减法.json", i, o) for i, o in enumerate(arith)]
    recs.append(make_record("x", "f", 99, "1+1=?", "", "等于2。"))
    recs.append(make_record("x", "f", 100, "", "", ""))
    df = records_frame(recs)
    res = run(ChineseLanguageFilter(), df)
    assert len(res.kept) == len(df)
    assert res.stats["decided_by"]["no_signal"] == len(df)


def test_language_filter_is_deterministic(mirror):
    rel = TRANSLATED + "alpaca_data-12345-15323-中文.json"
    df = records_frame([record(rel, i, o) for i, o in enumerate(rows_of(mirror, rel))])
    a, b = ChineseLanguageFilter(seed=0)(df), ChineseLanguageFilter(seed=0)(df)
    assert a.kept.equals(b.kept) and a.dropped.equals(b.dropped)
    assert json.dumps(a.stats, sort_keys=True) == json.dumps(b.stats, sort_keys=True)
    assert len(a.dropped) > 2000  # this chunk is mostly untranslated


def test_bad_thresholds_are_refused():
    with pytest.raises(ValueError):
        ChineseLanguageFilter(min_cjk_ratio=0.2, max_cjk_ratio_for_fast_reject=0.3)


def test_empty_text_filter_on_real_rows(mirror):
    picks = [("alpaca_chinese/supplementary/名词解释类问题.json", 151),  # everything empty
             (TRANSLATED + "alpaca_data-6382-9407-（jlh）中文-已完成.json", 441),  # empty instruction, input set
             ("trans_chinese_alpaca/alpaca_chinese_part_0.json", 1)]
    df = frame_of(mirror, picks)
    df = records_frame(df.to_dict("records") + [make_record("x", "f", 5, "  ", " \n", "有回答"),
                                                make_record("x", "f", 6, "问题", "", " \u3000 ")])
    df["output"] = [normalize_text(v) for v in df["output"]]
    res = run(EmptyTextFilter(), df)
    assert res.kept["row"].tolist() == [441, 1]
    assert dict(zip(res.dropped["row"], res.dropped["reason"])) == {151: "empty_output", 5: "empty_instruction",
                                                                    6: "empty_output"}
    assert res.stats["reasons"] == {"empty_instruction": 1, "empty_output": 2}
    assert set(res.stats["examples"]) == {"empty_instruction", "empty_output"}


def test_units_of_han_only_text_match_the_general_count(mirror):
    """``units`` counts a prompt of Han and punctuation in one scan: the same Counter as one match per
    unit, on every prompt of real files and on text mixing scripts, digits and marks."""
    from collections import Counter

    from curate.language import _UNIT, units

    def general(s: str) -> Counter:
        c: Counter = Counter()
        for m in _UNIT.finditer(s):
            c[m.lastgroup] += 1
        return c

    texts = ["", "１２３。", "〇一二三", "什么是BlocksEngine？", "韩语短语 - 장보기", "カタカナ・ひらがな漢字",
             "αβγ中文", "中文αβγ", "𠀀𠀁汉字", "Ünïcödé 中文", "中_文", "中\u0301文", "中ｶ文"]
    for rel in ["trans_chinese_alpaca/alpaca_chinese_part_0.json", "alpaca_chinese/supplementary/翻译问题.json"]:
        for r in json.loads((mirror / rel).read_text(encoding="utf-8")):
            texts += [r.get("instruction") or "", r.get("input") or ""]
    texts += [json.loads(line)["instruction"] for line in (mirror / "belle/dev1K.json").read_text(encoding="utf-8").splitlines()]
    assert len(texts) > 3000
    for t in texts:
        assert units(t) == general(t), t
