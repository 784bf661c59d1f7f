"""Parse stage: real mirror files of every schema, the broken real file, and small synthetic bad files."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from curate.parse import ParseError, parse_file, parse_files
from curate.records import RECORD_COLUMNS

BROKEN = "translated/alpaca_data-9407-12345-中文-未完成.json"


def mirror_files(mirror: Path) -> list[dict]:
    """Every data file of the mirror, as the download stage lists them: source folder, path inside it."""
    out = []
    for src in sorted(d for d in mirror.iterdir() if d.is_dir()):
        for p in sorted(src.rglob("*")):
            if p.is_file():
                out.append({"source": src.name, "file": p.relative_to(src).as_posix(), "path": str(p)})
    return out


@pytest.fixture(scope="module")
def parsed(mirror):
    return parse_files(mirror_files(mirror))


def parse(mirror: Path, source: str, rel: str):
    return parse_file(mirror / source / rel, source, rel)


def extra(rec: dict) -> dict:
    return json.loads(rec["extra"])


def history(rec: dict) -> list:
    return json.loads(rec["history"])


def balanced(res) -> bool:
    return res.n_in == len(res.records) + len(res.quarantine)


# ---- real files, one per schema ------------------------------------------------------------------

def test_alpaca_with_english_originals_in_extra(mirror):
    res = parse(mirror, "trans_chinese_alpaca", "alpaca_chinese_part_0.json")
    assert res.format == "json_array" and res.n_in == len(res.records) == 1000 and not res.quarantine
    first = res.records[0]
    assert (first["source"], first["file"], first["row"]) == ("trans_chinese_alpaca", "alpaca_chinese_part_0.json", 0)
    assert first["instruction"] == "给出保持健康的三个建议。"
    assert first["input"] == ""
    assert first["output"].startswith("1.均衡饮食，确保多吃水果和蔬菜。\n2.定期锻炼")
    ex = extra(first)
    assert set(ex) == {"en_instruction", "en_input", "en_output"}
    assert ex["en_instruction"] == "Give three tips for staying healthy."
    assert ex["en_output"].startswith("1.Eat a balanced diet")
    assert res.schemas == {"alpaca+en": 1000}


def test_rows_without_input_and_string_history(mirror):
    res = parse(mirror, "alpaca_chinese", "supplementary/代码问题.json")
    assert len(res.records) == 9057 and not res.quarantine
    row0, row1 = res.records[0], res.records[1]
    # row 0 carries "history": "" -> no history, nothing left over in extra
    assert row0["instruction"] == "Scratch 3.0中的默认编辑模式是什么？" and row0["output"] == "默认编辑模式是矢量图。"
    assert history(row0) == [] and extra(row0) == {}
    # row 1 has no "input" key at all
    assert row1["instruction"] == "Scratch 3.0中的位图调色板被什么替代了？" and row1["input"] == ""
    assert res.schemas == {"alpaca+history": 973, "alpaca+no_input": 8084}


def test_single_row_without_input_in_translated_chunk(mirror):
    res = parse(mirror, "alpaca_chinese", "translated/alpaca_data-6382-9407-（jlh）中文-已完成.json")
    rec = res.records[1836]
    assert rec["instruction"] == "创建一个匹配美国和加拿大电话号码的正则表达式示例。"
    assert rec["input"] == ""
    # text exactly as in the file: the regex's backslashes are kept as they were decoded
    assert rec["output"].startswith("\\+?[1][\\s-]?")
    assert res.schemas == {"alpaca": 3021, "alpaca+no_input": 1}


def test_json_lines_named_json_is_detected_by_content(mirror):
    res = parse(mirror, "belle", "dev1K.json")
    assert res.format == "json_lines" and len(res.records) == 1000 and not res.quarantine
    assert res.records[0]["instruction"].startswith("题目：小明每天早上花费10分钟时间走到学校")
    assert res.records[0]["output"].endswith("答案：小明每分钟走3.3米。")
    assert [r["row"] for r in res.records] == list(range(1000))


def test_belle_seed_tasks_one_record_per_instance(mirror):
    res = parse(mirror, "belle", "zh_seed_tasks.json")
    assert res.format == "json_lines" and len(res.records) == 175 and not res.quarantine
    first = res.records[0]
    assert first["row"] == 0
    assert first["instruction"] == "请以下面词语为主题写一首诗"
    assert first["input"] == "夏天"
    assert first["output"] == "不但春妍夏亦佳，随缘花草是生涯。\n鹿葱解插纤长柄，金凤仍开最小花。"
    assert extra(first) == {"seed_id": "seed_task_8", "seed_name": "english_haiku_generation",
                            "is_classification": False, "instance": 0, "line": 1}
    second = res.records[1]
    assert extra(second)["seed_id"] == "seed_task_38" and extra(second)["line"] == 2
    assert second["input"] == "惊人地"
    assert len({r["row"] for r in res.records}) == 175


def test_list_valued_turns_become_history(mirror):
    res = parse(mirror, "traditional", "chinese_vicuna_chat_sample.jsonl")
    assert len(res.records) == 3 and res.schemas == {"turns": 3}
    first = res.records[0]
    assert first["instruction"].startswith("希望來參加招待會的媒體朋友")
    assert first["output"].startswith("非常好的想法！以下是修改後的「來彰化跑步」")
    assert first["input"] == ""
    h = history(first)
    assert len(h) == 1 and h[0][0].startswith("提供一個媒體招待會的流程表") and h[0][1].startswith("以下是「來彰化跑步」")
    assert res.records[2]["instruction"] == "繼續"
    assert [len(history(r)) for r in res.records] == [1, 1, 1]


def test_squad_one_record_per_question(mirror):
    res = parse(mirror, "traditional", "DRCD_dev.json")
    assert res.format == "squad" and len(res.records) == 3524 and not res.quarantine
    first = res.records[0]
    assert first["instruction"] == "陸特和漢斯雷頓開創了哪一地區對梵語的學術研究？"
    assert first["input"].startswith("在歐洲，梵語的學術研究，由德國學者陸特和漢斯雷頓開創。")
    assert first["output"] == "歐洲"
    ex = extra(first)
    assert ex["qa_id"] == "1147-5-1" and ex["title"] == "梵文" and ex["answer_start"] == 1
    assert "other_answers" not in ex  # DRCD's second answer is the same text


def test_broken_real_file_is_recovered_row_by_row(mirror):
    path = mirror / "alpaca_chinese" / BROKEN
    text = path.read_text(encoding="utf-8")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # the defect is real
    res = parse(mirror, "alpaca_chinese", BROKEN)
    assert len(res.records) >= 2790
    assert balanced(res)
    for q in res.quarantine:
        assert BROKEN in q["detail"] and re.search(r"byte \d+", q["detail"])
    assert any(r["kind"] == "trailing_comma" and r["line"] > 1 for r in res.repairs)
    # independent check: fixing the trailing comma by hand gives exactly the recovered rows
    fixed = json.loads(re.sub(r",\s*\]\s*$", "]", text))
    assert [(r["instruction"], r["input"], r["output"]) for r in res.records] == \
        [(d["instruction"], d["input"], d["output"]) for d in fixed]


# ---- the whole mirror ------------------------------------------------------------------------------

def test_whole_mirror_ledger_and_unique_ids(parsed, mirror):
    kept, dropped, stats = parsed.kept, parsed.dropped, parsed.stats
    assert list(kept.columns) == RECORD_COLUMNS
    assert stats["in"] == len(kept) + len(dropped)
    for name, f in stats["files"].items():
        assert f["in"] == f["kept"] + f["quarantined"], name
    assert len(stats["files"]) == len(mirror_files(mirror))
    ids = pd.concat([kept["id"], dropped["id"]])
    assert ids.is_unique
    assert not kept[["source", "file", "row"]].duplicated().any()
    for c in ("instruction", "input", "output", "history", "extra"):
        assert kept[c].map(type).eq(str).all(), c
    # README figures: 52,002 + 48 + 27,497 + 2,801 + 10,282 + 1,000 + 175 + 3,524 + 3 units
    assert stats["in"] == 97332
    assert set(dropped["stage"]) <= {"parse"}
    assert stats["schemas"]["seed_task"] == 175 and stats["schemas"]["squad"] == 3524
    assert stats["files"]["belle/dev1K.json"]["format"] == "json_lines"


def test_whole_mirror_quarantine_is_explained(parsed):
    dropped = parsed.dropped
    # the one real row with nothing in it: {"instruction": "", "input": "", "output": ""}
    assert dropped["reason"].tolist() == ["missing_instruction_and_output"]
    row = dropped.iloc[0]
    assert row["file"] == "supplementary/名词解释类问题.json" and row["row"] == 151
    assert "supplementary/名词解释类问题.json row 151" in row["detail"]
    assert parsed.stats["reasons"] == {"missing_instruction_and_output": 1}
    assert parsed.stats["examples"]["missing_instruction_and_output"][0]["row"] == 151


def test_order_follows_file_list_and_is_deterministic(mirror):
    files = [f for f in mirror_files(mirror) if f["source"] in ("belle", "traditional")]
    a = parse_files(files)
    b = parse_files(list(files))
    pd.testing.assert_frame_equal(a.kept, b.kept)
    assert a.kept["file"].drop_duplicates().tolist() == [f["file"] for f in files]
    rev = parse_files(files[::-1])
    assert rev.kept["file"].drop_duplicates().tolist() == [f["file"] for f in files[::-1]]


# ---- synthetic bad files ---------------------------------------------------------------------------

def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return p


def run(tmp_path: Path, name: str, content: str | bytes):
    res = parse_file(write(tmp_path, name, content), "syn", name)
    assert balanced(res)
    return res


ROW = '{"instruction": "问%d", "input": "", "output": "答%d"}'


def rows(*ns: int) -> list[str]:
    return [ROW % (n, n) for n in ns]


def test_trailing_comma(tmp_path):
    res = run(tmp_path, "tc.json", "[\n" + ",\n".join(rows(1, 2)) + ",\n]\n")
    assert [r["instruction"] for r in res.records] == ["问1", "问2"] and not res.quarantine
    assert [r["kind"] for r in res.repairs] == ["trailing_comma"]
    assert res.repairs[0]["line"] == 3


def test_junk_after_closing_bracket(tmp_path):
    res = run(tmp_path, "junk.json", "[" + ",".join(rows(1, 2)) + "]\n<<garbage>>\n")
    assert len(res.records) == 2 and len(res.quarantine) == 1
    q = res.quarantine[0]
    assert q["reason"] == "junk_after_array"
    assert "syn/junk.json row 2" in q["detail"] and "line 2" in q["detail"] and "<<garbage>>" in q["detail"]
    assert extra(q)["raw"] == "<<garbage>>\n"


def test_truncated_file(tmp_path):
    text = "[\n" + ",\n".join(rows(1, 2)) + ',\n{"instruction": "问3", "outp'
    res = run(tmp_path, "trunc.json", text)
    assert [r["instruction"] for r in res.records] == ["问1", "问2"]
    (q,) = res.quarantine
    assert q["reason"] == "invalid_json" and q["row"] == 2
    assert q["detail"].startswith("syn/trunc.json row 2 (item 2, line 4, col 1, byte ")
    raw = extra(q)["raw"]
    assert raw == '{"instruction": "问3", "outp'
    assert extra(q)["byte"] == len(text.encode("utf-8")) - len(raw.encode("utf-8"))  # byte offset is exact
    assert any(r["kind"] == "missing_close_bracket" for r in res.repairs)


def test_broken_object_in_the_middle_resyncs_at_next_object(tmp_path):
    bad = '{"instruction": "坏"行", "input": "", "output": "x"}'
    res = run(tmp_path, "mid.json", "[\n" + ",\n".join([*rows(1), bad, *rows(3, 4)]) + "\n]")
    assert [r["instruction"] for r in res.records] == ["问1", "问3", "问4"]
    (q,) = res.quarantine
    assert q["reason"] == "invalid_json" and q["row"] == 1 and "line 3" in q["detail"]
    assert extra(q)["raw"].startswith(bad)
    assert [r["row"] for r in res.records] == [0, 2, 3]


def test_bom_is_stripped(tmp_path):
    res = run(tmp_path, "bom.json", b"\xef\xbb\xbf" + ("[" + ",".join(rows(1)) + "]").encode())
    assert [r["instruction"] for r in res.records] == ["问1"]
    res = run(tmp_path, "bom.jsonl", b"\xef\xbb\xbf" + "\n".join(rows(1, 2)).encode())
    assert res.format == "json_lines" and [r["output"] for r in res.records] == ["答1", "答2"]


def test_wrong_types(tmp_path):
    items = [
        {"instruction": ["a", "b"], "output": "x"},  # list where text is expected
        {"instruction": "数字", "input": None, "output": 42},  # None -> "", number -> "42"
        {"instruction": "浮点", "output": 1.5, "input": True},
        "just a string",
        {"instruction": "对象", "output": {"k": 1}},
        {"input": "only input"},
        {"instruction": "有历史", "output": "y", "history": '[["q", "a"]]'},
        {"instruction": "坏历史", "output": "y", "history": "not json"},
    ]
    res = run(tmp_path, "types.json", json.dumps(items, ensure_ascii=False))
    recs = {r["instruction"]: r for r in res.records}
    assert recs["数字"]["input"] == "" and recs["数字"]["output"] == "42"
    assert recs["浮点"]["output"] == "1.5" and recs["浮点"]["input"] == "true"
    assert history(recs["有历史"]) == [["q", "a"]] and "history_raw" not in extra(recs["有历史"])
    assert history(recs["坏历史"]) == [] and extra(recs["坏历史"])["history_raw"] == "not json"
    reasons = {q["row"]: q["reason"] for q in res.quarantine}
    assert reasons == {0: "wrong_type", 3: "not_an_object", 4: "wrong_type", 5: "missing_instruction_and_output"}
    for q in res.quarantine:
        assert f"syn/types.json row {q['row']} (item {q['row']})" in q["detail"]
    assert "'instruction' is a list" in res.quarantine[0]["detail"]
    assert json.loads(extra(res.quarantine[0])["raw"]) == items[0]


def test_empty_file_and_empty_array(tmp_path):
    for name, content in [("empty.json", ""), ("blank.json", " \n\n"), ("bomonly.json", b"\xef\xbb\xbf"),
                          ("arr.json", "[]"), ("arr2.json", "[ \n ]\n")]:
        res = run(tmp_path, name, content)
        assert res.n_in == 0 and not res.records and not res.quarantine, name
    st = parse_files([{"source": "syn", "file": "empty.json", "path": str(tmp_path / "empty.json")}])
    assert len(st.kept) == 0 and len(st.dropped) == 0 and list(st.kept.columns) == RECORD_COLUMNS


def test_top_level_object_not_squad(tmp_path):
    res = run(tmp_path, "obj.json", json.dumps({"version": 1, "items": [{"q": "a"}]}))
    assert res.format == "json_object" and not res.records
    (q,) = res.quarantine
    assert q["reason"] == "unknown_top_level_object"
    assert q["detail"].startswith("syn/obj.json row 0 (line 1, col 1, byte 0)") and "items, version" in q["detail"]
    # but a single row object is simply one row
    res = run(tmp_path, "one.json", ROW % (7, 7))
    assert [r["instruction"] for r in res.records] == ["问7"]


def test_json_lines_with_a_bad_line(tmp_path):
    lines = [*rows(1), '{"instruction": "断', *rows(3), "[1, 2]", *rows(5)]
    res = run(tmp_path, "bad.jsonl", "\n".join(lines) + "\n")
    assert [r["instruction"] for r in res.records] == ["问1", "问3", "问5"]
    got = [(q["row"], q["reason"]) for q in res.quarantine]
    assert got == [(1, "invalid_json"), (3, "not_an_object")]
    assert "syn/bad.jsonl row 1 (line 2, col 1, byte " in res.quarantine[0]["detail"]
    assert extra(res.quarantine[0])["raw"] == '{"instruction": "断'
    assert "line 4" in res.quarantine[1]["detail"]


def test_seed_and_turn_edge_cases(tmp_path):
    lines = [
        {"id": "s1", "name": "n", "instruction": "做", "instances": [{"input": "a", "output": "b"},
                                                                 {"input": "c", "output": "d"}]},
        {"id": "s2", "name": "m", "instruction": "空", "instances": []},
        {"input": ["q1", "q2"], "output": ["a1"]},
        {"input": ["q1", "q2"], "output": ["a1", "a2"]},
    ]
    res = run(tmp_path, "mix.jsonl", "\n".join(json.dumps(x, ensure_ascii=False) for x in lines))
    assert [(r["row"], r["input"], r["output"]) for r in res.records] == [(0, "a", "b"), (1, "c", "d"), (4, "", "a2")]
    assert [extra(r)["instance"] for r in res.records[:2]] == [0, 1]
    assert history(res.records[2]) == [["q1", "a1"]]
    assert [(q["row"], q["reason"]) for q in res.quarantine] == [(2, "no_instances"), (3, "unpaired_turns")]


def test_squad_with_bad_parts(tmp_path):
    doc = {"data": [
        {"title": "T", "paragraphs": [
            {"context": "上下文", "qas": [
                {"id": "q1", "question": "问？", "answers": [{"text": "答", "answer_start": 0}, {"text": "另答"}]},
                {"id": "q2", "question": ["bad"], "answers": [{"text": "x"}]},
                "not a qa",
            ]},
            "not a paragraph",
        ]},
    ]}
    res = run(tmp_path, "sq.json", json.dumps(doc, ensure_ascii=False))
    assert res.format == "squad"
    (rec,) = res.records
    assert (rec["instruction"], rec["input"], rec["output"]) == ("问？", "上下文", "答")
    assert extra(rec)["other_answers"] == ["另答"] and extra(rec)["qa_id"] == "q1"
    assert [q["reason"] for q in res.quarantine] == ["wrong_type", "not_an_object", "wrong_type"]
    assert "syn/sq.json row 1 (article 0, paragraph 0, question 1)" in res.quarantine[0]["detail"]


def test_whole_file_failures_raise_naming_the_file(tmp_path):
    p = write(tmp_path, "latin1.json", '[{"instruction": "caf\xe9"}]'.encode("latin-1"))
    with pytest.raises(ParseError, match=r"syn/latin1\.json: not valid UTF-8 at byte 21"):
        parse_file(p, "syn", "latin1.json")
    with pytest.raises(ParseError, match="syn/missing.json"):
        parse_file(tmp_path / "missing.json", "syn", "missing.json")


def test_parse_files_drop_frame_and_stats(tmp_path):
    write(tmp_path, "a.json", "[" + ",".join(rows(1, 2)) + ',"x",]')
    write(tmp_path, "b.jsonl", "\n".join(rows(3)))
    files = [{"source": "syn", "file": "a.json", "path": str(tmp_path / "a.json")},
             {"source": "syn", "file": "b.jsonl", "path": tmp_path / "b.jsonl"}]
    res = parse_files(files)
    assert res.kept["instruction"].tolist() == ["问1", "问2", "问3"]
    assert list(res.dropped.columns) == RECORD_COLUMNS + ["stage", "reason", "detail"]
    d = res.dropped.iloc[0]
    assert (d["stage"], d["reason"], d["file"], d["row"]) == ("parse", "not_an_object", "a.json", 2)
    assert res.stats["files"]["syn/a.json"] == {
        "in": 3, "kept": 2, "quarantined": 1, "format": "json_array", "schema": "alpaca",
        "bytes": (tmp_path / "a.json").stat().st_size, "encoding": "utf-8",
        "repairs": [{"kind": "trailing_comma", "line": 1, "col": len(",".join(rows(1, 2))) + 6,
                     "byte": len(("[" + ",".join(rows(1, 2)) + ',"x"').encode())}]}
    assert res.stats["files"]["syn/b.jsonl"]["format"] == "json_lines"
    assert res.stats["reasons"] == {"not_an_object": 1}
    json.dumps(res.stats)  # JSON-serialisable


def test_parse_stage_in_groups_of_files_writes_the_same_bytes(tmp_path, mirror, monkeypatch):
    """The parse stage parses groups of files side by side and writes them a group at a time: any
    grouping gives the bytes of one pass over all files (quarantined rows and empty groups included),
    and a run stopped after some groups parses only the others when rerun."""
    import curate.parse
    import curate.parse_stream
    from curate import pipeline

    bad = Path(__file__).parent / "data" / "bad"
    files = [f for f in mirror_files(mirror) if Path(f["path"]).stat().st_size < 3_000_000][:5] + [
        {"source": "bad", "file": p.name, "path": str(p)} for p in sorted(bad.iterdir()) if p.is_file()][:12]
    empty = tmp_path / "empty.json"
    empty.write_text("")
    files.insert(3, {"source": "own", "file": "empty.json", "path": str(empty)})

    def outputs(d: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.name != "_SUCCESS.json"}

    whole = pipeline.plan_parse(files, tmp_path / "whole", group_bytes=1 << 40)
    assert whole.groups == ((0, len(files)),)
    pipeline.run_parse_group(whole, 0, len(files))
    ledger = pipeline.finish_parse(whole)
    res = parse_files(files)  # one pass, in memory: what the stage writes
    assert ledger["in"] == res.stats["in"] and ledger["dropped"] == len(res.dropped) > 0
    assert pd.read_parquet(tmp_path / "whole" / "kept.parquet")["id"].tolist() == res.kept["id"].tolist()
    assert json.loads((tmp_path / "whole" / "stats.json").read_text()) == json.loads(
        json.dumps(res.stats, ensure_ascii=False))

    small = pipeline.plan_parse(files, tmp_path / "small", group_bytes=1)  # a file per group
    assert len(small.groups) == len(files)
    for a, b in small.groups[:4]:
        pipeline.run_parse_group(small, a, b)
    with pytest.raises(RuntimeError, match="parse every group"):
        pipeline.finish_parse(small)
    parsed: list[str] = []  # files read whole, or in pieces (a file larger than its group)
    real = curate.parse.read_file
    monkeypatch.setattr(curate.parse, "read_file", lambda f: parsed.append(f["file"]) or real(f))
    for kind in (curate.parse_stream.JsonLinesReader, curate.parse_stream.JsonArrayReader,
                 curate.parse_stream.CsvReader, curate.parse_stream.ParquetReader):
        monkeypatch.setattr(kind, "__iter__", lambda self, it=kind.__iter__: parsed.append(self.rel) or it(self))
    pipeline.PARSE_GROUP_BYTES, old = 1, pipeline.PARSE_GROUP_BYTES
    try:
        assert pipeline.parse_stage(files, tmp_path / "small") == ledger  # resumed: only the other groups
    finally:
        pipeline.PARSE_GROUP_BYTES = old
    assert list(dict.fromkeys(parsed)) == [f["file"] for f in files[4:]]
    assert outputs(tmp_path / "small") == outputs(tmp_path / "whole")
    assert not (tmp_path / "small" / "_shards").exists()

    mid = pipeline.plan_parse(files, tmp_path / "mid", group_bytes=200_000)
    assert 1 < len(mid.groups) < len(files)
    for a, b in mid.groups:
        pipeline.run_parse_group(mid, a, b)
    assert pipeline.finish_parse(mid) == ledger
    assert outputs(tmp_path / "mid") == outputs(tmp_path / "whole")
