"""`tiger label` and `tiger diversity` on alpaca-format files a user brings (real rows of the mirror)."""
import json
import shutil

import pytest

from curate.tasktype import TASK_TYPES
from curate.userfiles import InputError, read_alpaca
from flows.cli import main


def test_label_a_json_array(mirror, tmp_path, capsys, monkeypatch):
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "part.json"
    shutil.copy(mirror / "trans_chinese_alpaca/alpaca_chinese_part_2.json", src)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    main(["label", str(src)])
    out = tmp_path / "work" / "part.labelled.json"  # the current folder, not beside the input
    assert not (tmp_path / "in" / "part.labelled.json").exists()
    rows = json.loads(out.read_text(encoding="utf-8"))
    original = json.loads(src.read_text(encoding="utf-8"))
    assert len(rows) == len(original)
    assert [r["instruction"] for r in rows] == [o["instruction"] for o in original]  # text kept as it was
    assert {r["task_type"] for r in rows} <= set(TASK_TYPES) and len({r["task_type"] for r in rows}) >= 8
    assert all(r["task_rule"] for r in rows)
    printed = capsys.readouterr().out
    assert f"{len(rows):,} rows labelled" in printed and "open qa" in printed


def test_label_jsonl_with_traditional_text_and_history(mirror, tmp_path):
    out = tmp_path / "chat.jsonl"
    main(["label", str(mirror / "traditional/chinese_vicuna_chat_sample.jsonl"), "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3 and all(r["history"] for r in rows)
    # labelled on the normalised text, written as it came (traditional characters kept)
    assert "來" in rows[0]["instruction"] or "這" in rows[0]["instruction"] or "彰化" in rows[0]["instruction"]
    assert rows[2]["instruction"] == "繼續" and rows[2]["task_type"] == "generation"


def test_label_rejects_bad_rows_naming_file_and_row(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "翻译成英文", "input": "你好", "output": "Hello"}\n'
                   '{"instruction": ["不是", "文本"], "output": "x"}\n', encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        main(["label", str(bad)])
    msg = str(e.value)
    assert "bad.jsonl" in msg and "row 1" in msg and "wrong_type" in msg
    with pytest.raises(InputError, match="no such file"):
        read_alpaca(tmp_path / "missing.json")
    empty = tmp_path / "empty.json"
    empty.write_text("[]", encoding="utf-8")
    with pytest.raises(InputError, match="no rows"):
        read_alpaca(empty)


def test_diversity_report_of_files_side_by_side(mirror, tmp_path, capsys):
    a = mirror / "alpaca_chinese/supplementary/整数加减法.json"
    b = mirror / "trans_chinese_alpaca/alpaca_chinese_part_9.json"
    main(["diversity", str(a), str(b), "--out", str(tmp_path / "rep"), "--names", "drills", "alpaca"])
    html = (tmp_path / "rep" / "diversity.html").read_text(encoding="utf-8")
    figs = json.loads((tmp_path / "rep" / "diversity.json").read_text(encoding="utf-8"))
    assert set(figs["metrics"]) == {"drills", "alpaca"}
    d, p = figs["metrics"]["drills"], figs["metrics"]["alpaca"]
    assert d["rows"] == 500 and p["rows"] == len(json.loads(b.read_text(encoding="utf-8")))
    # arithmetic drills against translated Alpaca: narrower on every axis the report shows
    for k in ("task_type_entropy", "vendi", "mean_cosine_distance", "distinct_2", "verb_entropy"):
        assert d[k] < p[k], k
    assert figs["task_types"]["drills"]["math"] == 500
    assert figs["verb_noun"]["alpaca"]["verbs"] and len(figs["verb_noun"]["alpaca"]["verbs"]) == 20
    for section in ("summary", "metrics", "task_types", "clusters", "verb_noun", "novelty", "method"):
        assert f"id='{section}'" in html
    # charts the browser draws (tests/test_browser.py); drills has no root verb: a note, not an empty chart
    assert html.count("<figure class='chart'") >= 5 and "no verbs found" in html
    assert "drills" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="names"):
        main(["diversity", str(a), str(b), "--out", str(tmp_path / "x"), "--names", "only-one"])


def test_label_and_diversity_never_write_into_a_mirror(mirror, tmp_path, monkeypatch):
    """Run from inside a mirror folder, the default output would land beside the data, where the next
    run reads it as data: refused with the fix. An explicit --out inside TIGER_MIRROR is refused too."""
    src = mirror / "belle" / "dev1K.json"
    monkeypatch.chdir(src.parent)
    with pytest.raises(SystemExit, match="pass --out somewhere else"):
        main(["label", str(src)])
    with pytest.raises(SystemExit, match="pass --out somewhere else"):
        main(["diversity", str(src)])
    monkeypatch.setenv("TIGER_MIRROR", str(mirror))
    with pytest.raises(SystemExit, match="inside the mirror"):
        main(["label", str(src), "--out", str(mirror / "x.labelled.json")])
    assert not list(mirror.rglob("*labelled*")) and not (mirror / "belle" / "diversity-report").exists()
