"""Bad input: the corpus in tests/data/bad (invalid JSON, GBK/GB18030, stray bytes, BOM, NUL and control
characters, wrong types, missing keys, empty files, wrong shapes, mixed schemas) and a 10 MB row.

Each bad unit is quarantined with a reason and a detail naming the file and its position; the good
rows around it are kept; the ledger balances. Checked on ``parse_file``/``parse_files``, with
hypothesis on random input, and through a real `tiger run` whose mirror holds a bad source, with the
quarantine read back through `tiger dropped`.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.normalize import clean_unicode
from curate.parse import UndecodableFile, parse_file, parse_files
from curate.pipeline import check_chain
from curate.recipe import STAGES
from curate.records import RECORD_COLUMNS

# the real-run helpers and the shared Prefect server (cli_env is a fixture)
from test_resume import BIN, cli_env, run_dir_of, run_tiger, slice_mirror, small_recipe, tiger_cmd  # noqa: F401

BAD = Path(__file__).resolve().parent / "data" / "bad"
# the rows the corpus is made of (tests/data/bad/make_bad.py)
R0, R1, R2, R3 = (("解释什么是光合作用。", "", "光合作用是植物利用光能把二氧化碳和水合成有机物并释放氧气的过程。"),
                  ("把下面的句子翻译成英文。", "今天天气很好。", "The weather is nice today."),
                  ("列出三种常见的水果。", "", "苹果、香蕉、橙子。"),
                  ("计算12乘以8等于多少？", "", "12乘以8等于96。"))

# file -> (format, kept rows as (instruction, input, output) or a count, quarantine [(row, reason)], repair kinds)
EXPECTED = {
    "trailing_comma.json": ("json_array", [R0, R1, R2], [], ["trailing_comma"]),
    "junk_after_end.json": ("json_array", [R0, R1], [(2, "junk_after_array")], []),
    "truncated.json": ("json_array", [R0, R1], [(2, "invalid_json")], ["missing_close_bracket"]),
    "gbk.json": ("json_array", [R0, R1, R2], [], ["decoded_gb18030"]),
    "gbk_cut_line.jsonl": ("json_lines", [R0, R2, R3], [(1, "invalid_json")], ["decoded_gb18030"]),
    "gb18030.jsonl": ("json_lines", [("“𠀀”和“㐀”是什么字？", "", "它们是扩展区的汉字。"), R3], [], ["decoded_gb18030"]),
    "stray_byte.jsonl": ("json_lines", [R0, R1, R3], [(2, "invalid_utf8")], ["invalid_utf8_bytes"]),
    "bom.json": ("json_array", [R0, R1], [], []),
    "bom.jsonl": ("json_lines", [R0, R1], [], []),
    "control_chars.jsonl": ("json_lines", [R0, ("第一列\t第二列", "", "表格用制表符分隔。"),
                                           ("空字符\x00在这里", "", "NUL 写在了字符串里。"),
                                           ("转义的\x00空字符", "", "这是合法的 JSON 转义。"),
                                           ("响铃\x07和退格\x08", "", "其他控制字符。"), R3],
                            [], ["control_character_in_string"] * 3),  # the NUL run between rows is blank
    "wrong_types.json": ("json_array", [("42", "", "3.5"), ("布尔", "true", "真"), R2],
                         [(1, "wrong_type"), (2, "wrong_type"), (4, "not_an_object")], []),
    "missing_keys.jsonl": ("json_lines", [("只有指令没有输出", "", ""), ("", "", "只有输出没有指令"), R1],
                           [(2, "missing_instruction_and_output"), (3, "missing_instruction_and_output")], []),
    "empty.json": ("empty", [], [], []),
    "empty_array.json": ("json_array", [], [], []),
    "top_level_object.json": ("json_object", [], [(0, "unknown_top_level_object")], []),
    "mixed_schemas.jsonl": ("json_lines", 6, [(5, "missing_instruction_and_output"), (6, "not_an_object"),
                                              (7, "not_an_object")], []),
}
UNDECODABLE = "latin1.json"


def corpus_files() -> list[dict]:
    return [{"source": "bad", "file": p.name, "path": str(p)} for p in sorted(BAD.iterdir())
            if p.suffix in (".json", ".jsonl")]


def texts(rec: dict) -> tuple[str, str, str]:
    return rec["instruction"], rec["input"], rec["output"]


def test_the_corpus_is_complete():
    assert sorted(f["file"] for f in corpus_files()) == sorted([*EXPECTED, UNDECODABLE])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_file(name):
    fmt, kept, quarantined, repairs = EXPECTED[name]
    data = (BAD / name).read_bytes()
    res = parse_file(BAD / name, "bad", name)
    assert res.n_in == len(res.records) + len(res.quarantine)
    assert res.format == fmt
    if isinstance(kept, int):
        assert len(res.records) == kept
    else:
        assert [texts(r) for r in res.records] == kept
    assert [(q["row"], q["reason"]) for q in res.quarantine] == quarantined
    assert [r["kind"] for r in res.repairs] == repairs
    # rows are numbered in file order, kept and quarantined alike: nothing skipped
    assert sorted(r["row"] for r in res.records + res.quarantine) == list(range(res.n_in))
    for q in res.quarantine:
        # the detail names the file, the row and where it is; the raw text is kept for inspection
        assert q["detail"].startswith(f"bad/{name} row {q['row']} (")
        assert any(w in q["detail"] for w in ("line ", "item ")), q["detail"]
        extra = json.loads(q["extra"])
        assert extra["raw"]
        if "byte" in extra:  # the byte offset points at the unit in the file as stored (any encoding)
            head = extra["raw"][:1].encode(res.encoding.split("+")[0], "backslashreplace")
            assert data[extra["byte"]:].startswith(head), (extra["byte"], head)
    for r in res.records:
        assert all(isinstance(r[c], str) for c in ("instruction", "input", "output", "history", "extra"))


def test_encodings_are_detected_and_positions_count_file_bytes():
    gbk = parse_file(BAD / "gbk.json", "bad", "gbk.json")
    data = (BAD / "gbk.json").read_bytes()
    assert gbk.encoding == "gb18030" and gbk.repairs[0]["byte"] == data.index("解".encode("gbk"))
    cut = parse_file(BAD / "gbk_cut_line.jsonl", "bad", "gbk_cut_line.jsonl")
    (q,) = cut.quarantine
    line2 = (BAD / "gbk_cut_line.jsonl").read_bytes().split(b"\n")[1]
    assert json.loads(q["extra"])["byte"] == (BAD / "gbk_cut_line.jsonl").read_bytes().index(line2)
    assert "line 2, col 1" in q["detail"]
    stray = parse_file(BAD / "stray_byte.jsonl", "bad", "stray_byte.jsonl")
    assert stray.encoding == "utf-8+invalid"
    assert stray.repairs[0]["byte"] == (BAD / "stray_byte.jsonl").read_bytes().index(b"\xff")
    (q,) = stray.quarantine
    assert "\\xff" in json.loads(q["extra"])["raw"] and "not UTF-8" in q["detail"]


def test_undecodable_file_is_rejected_clearly_and_its_rows_quarantined():
    with pytest.raises(UndecodableFile, match=r"bad/latin1\.json: not valid UTF-8 at byte 37, nor GB18030"):
        parse_file(BAD / UNDECODABLE, "bad", UNDECODABLE)
    res = parse_files([{"source": "bad", "file": UNDECODABLE, "path": str(BAD / UNDECODABLE)}])
    (d,) = res.dropped.to_dict("records")
    assert (d["reason"], d["file"], d["row"]) == ("undecodable_file", UNDECODABLE, 0)
    # one unit per row (the file holds one), located, with the advice
    assert d["detail"].startswith("bad/latin1.json row 0 (item 0): not valid UTF-8 at byte 37")
    assert "Latin-1" in d["detail"] and "convert it to UTF-8" in d["detail"]
    assert "café" in json.loads(d["extra"])["raw"]  # the bytes shown as Latin-1 reads them
    assert res.stats["files"]["bad/latin1.json"]["format"] == "undecodable"


def test_control_characters_are_kept_for_the_normalizer_to_clean():
    res = parse_file(BAD / "control_chars.jsonl", "bad", "control_chars.jsonl")
    assert [clean_unicode(r["instruction"]) for r in res.records[1:5]] == [
        "第一列\t第二列", "空字符在这里", "转义的空字符", "响铃和退格"]


def test_whole_corpus_through_parse_files():
    res = parse_files(corpus_files())
    assert res.stats["in"] == len(res.kept) + len(res.dropped)
    assert list(res.kept.columns) == RECORD_COLUMNS
    assert res.kept["id"].is_unique and not res.kept[RECORD_COLUMNS].isna().any().any()
    assert (res.dropped["stage"] == "parse").all() and res.dropped["reason"].str.len().gt(0).all()
    for name, (_, kept, quarantined, _) in EXPECTED.items():
        f = res.stats["files"][f"bad/{name}"]
        assert f["in"] == f["kept"] + f["quarantined"]
        assert f["quarantined"] == len(quarantined) and f["kept"] == (kept if isinstance(kept, int) else len(kept))
    assert res.stats["reasons"]["undecodable_file"] == 1
    # everything written downstream is valid UTF-8 (Parquet would refuse a lone surrogate)
    for df in (res.kept, res.dropped):
        for col in ("instruction", "input", "output", "history", "extra", *(["detail"] if "detail" in df else [])):
            for v in df[col]:
                v.encode("utf-8")


# ---------------------------------------------------------------------------------- a 10 MB row

def big_text(mirror: Path, size: int = 10_000_000) -> str:
    """About ``size`` bytes of real Chinese prose: mirror answers joined."""
    rows = [json.loads(x) for x in (mirror / "belle" / "dev1K.json").read_text(encoding="utf-8").splitlines()]
    parts, n, i = [], 0, 0
    while n < size:
        t = rows[i % len(rows)]["output"]
        parts.append(t)
        n += len(t.encode("utf-8")) + 1
        i += 1
    return "\n".join(parts)


@pytest.fixture(scope="module")
def big_row(mirror) -> dict:
    return {"instruction": "请总结下面这篇很长的文章。", "input": big_text(mirror), "output": "这是一篇很长的文章。"}


def test_a_10mb_row_is_kept_whole_or_quarantined_with_a_short_detail(tmp_path, big_row):
    good = [dict(zip(("instruction", "input", "output"), r)) for r in (R0, R1)]
    body = json.dumps(big_row, ensure_ascii=False)
    assert len(body.encode("utf-8")) >= 10_000_000
    ok = tmp_path / "big.json"
    ok.write_text(json.dumps([good[0], big_row, good[1]], ensure_ascii=False), encoding="utf-8")
    res = parse_file(ok, "bad", "big.json")
    assert [texts(r) for r in res.records] == [R0, tuple(big_row.values()), R1]

    # the same row broken half-way (a quote lost) in JSON lines: its neighbours are kept
    half = len(body) // 2
    broken = body[:half] + body[half:].replace('"', "", 1)
    bad = tmp_path / "big_broken.jsonl"
    bad.write_text("\n".join([json.dumps(good[0], ensure_ascii=False), broken,
                              json.dumps(good[1], ensure_ascii=False)]) + "\n", encoding="utf-8")
    res = parse_file(bad, "bad", "big_broken.jsonl")
    assert [texts(r) for r in res.records] == [R0, R1]
    (q,) = res.quarantine
    assert q["reason"] == "invalid_json" and q["row"] == 1 and len(q["detail"]) < 400
    assert q["detail"].startswith("bad/big_broken.jsonl row 1 (line 2, col 1, byte ")
    assert json.loads(q["extra"])["raw"] == broken  # kept whole for inspection


# ------------------------------------------------------------------------------------ properties

@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prop")


def check_ledger(path: Path, name: str):
    """parse_files on one file: never raises on content, balances, writes only valid UTF-8 text."""
    res = parse_files([{"source": "prop", "file": name, "path": str(path)}])
    n_in = res.stats["in"]
    assert n_in == len(res.kept) + len(res.dropped) == res.stats["files"][f"prop/{name}"]["in"]
    assert sorted(list(res.kept["row"]) + list(res.dropped["row"])) == list(range(n_in))
    for df in (res.kept, res.dropped):
        for col in ("instruction", "input", "output", "history", "extra"):
            assert all(isinstance(v, str) and v.encode("utf-8") is not None for v in df[col])
    assert all(d.startswith(f"prop/{name} row ") for d in res.dropped["detail"])
    return res


TOKENS = ['[', ']', '{', '}', ',', ':', '"', '\\', '\n', ' ', '\t', '\x00', '\ufeff', '"instruction"', '"input"',
          '"output"', '"history"', '"instances"', '"data"', '"paragraphs"', '"qas"', '"问题"', '"答案"', '"\\ud83d"',
          '1', '-2.5e3', 'true', 'null', 'nul', '[]', '{}', '"a\tb"', '“', '，', '\x1b', '\udc80', 'é']


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map("".join),
       st.sampled_from(["utf-8", "gb18030", "utf-8-sig"]))
def test_property_json_ish_text_never_crashes_and_balances(scratch, text, encoding):
    p = scratch / "soup.json"
    p.write_bytes(text.encode(encoding, "surrogateescape" if encoding == "utf-8" else "replace"))
    check_ledger(p, "soup.json")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_property_random_bytes_never_crash_and_balance(scratch, data):
    p = scratch / "bytes.jsonl"
    p.write_bytes(data)
    check_ledger(p, "bytes.jsonl")


ROW_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12) | \
    st.sampled_from(["你好", "引号\"和反斜杠\\", "{\"假的\": 1}", "换行\n", "], [", "“中文引号”"])
ROWS = st.lists(st.fixed_dictionaries({"instruction": ROW_TEXT, "input": ROW_TEXT, "output": ROW_TEXT}),
                min_size=1, max_size=8)


def _nows(s: str) -> str:
    return re.sub(r"\s", "", s)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ROWS, st.sampled_from(["array", "lines", "pretty"]), st.data())
def test_property_no_row_is_lost_silently(scratch, rows, layout, data):
    """Rows written out, some damaged (one character lost): an undamaged row with an instruction or an
    output is kept with its exact text; any other row is kept as it now reads, or its text, as written,
    is in the raw text of the quarantine (a damaged row may be split over several quarantined units)."""
    dumps = [json.dumps(r, ensure_ascii=False, indent=1 if layout == "pretty" else None) for r in rows]
    damaged = set()
    for i, s in enumerate(dumps):
        if data.draw(st.booleans(), label=f"damage row {i}"):
            k = data.draw(st.integers(0, len(s) - 1), label=f"cut at {i}")
            dumps[i] = s[:k] + s[k + 1:]
            damaged.add(i)
    text = ("[\n" + ",\n".join(dumps) + "\n]\n") if layout != "lines" else "\n".join(dumps) + "\n"
    p = scratch / "rows.json"
    p.write_text(text, encoding="utf-8")
    res = check_ledger(p, "rows.json")
    kept = [tuple(r) for r in res.kept[["instruction", "input", "output"]].itertuples(index=False)]
    quarantined = _nows("".join(json.loads(e)["raw"] for e in res.dropped["extra"]))
    for i, (r, s) in enumerate(zip(rows, dumps)):
        t = (r["instruction"], r["input"], r["output"])
        if i not in damaged and (t[0] or t[2]):
            assert t in kept, f"undamaged row {i} not kept"
            continue
        try:  # as the row now reads, if it still is a JSON object
            v = json.loads(s)
            now = tuple(v.get(k, "") for k in ("instruction", "input", "output")) if isinstance(v, dict) else None
        except ValueError:
            now = None
        assert now in kept or _nows(s) in quarantined, f"row {i} neither kept nor in the quarantine: {s!r}"


# ------------------------------------------------------------------------------ through the flow

@pytest.mark.slow
def test_a_bad_source_through_the_whole_flow(tmp_path, mirror, cli_env, big_row):
    """A mirror whose optional source holds the whole bad corpus and the 10 MB row: the run completes,
    every stage balances per source, good rows go on, and `tiger dropped` shows the quarantine."""
    m = slice_mirror(tmp_path / "mirror", mirror, {"belle": ["dev1K.json"]})
    (m / "traditional").mkdir()
    for f in corpus_files():
        shutil.copy(f["path"], m / "traditional" / f["file"])
    (m / "traditional" / "big_row.json").write_text(json.dumps([big_row], ensure_ascii=False), encoding="utf-8")
    recipe = small_recipe(tmp_path / "recipe.yaml", clusters=5, sources=["belle", "traditional"],
                          mixtures=["random-200", "per_source-200"])
    r = run_tiger(tiger_cmd(m, tmp_path / "data", recipe), cli_env, tmp_path)
    assert r.returncode == 0, r.stdout[-3000:]
    run_dir = run_dir_of(r)

    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    check_chain(manifest["ledger"])
    for row in manifest["ledger"]:  # per stage and per source: in = kept + dropped
        assert sum(v["kept"] + v["dropped"] for v in row["by_source"].values()) == row["in"]
    parse_stats = json.loads((run_dir / "01_parse" / "stats.json").read_text(encoding="utf-8"))
    for name, (_, kept, quarantined, _) in EXPECTED.items():
        f = parse_stats["files"][f"traditional/{name}"]
        assert (f["kept"], f["quarantined"]) == (kept if isinstance(kept, int) else len(kept), len(quarantined))
    quarantine = pd.read_parquet(run_dir / "01_parse" / "dropped.parquet")
    bad_q = quarantine[quarantine["source"] == "traditional"]
    expected_q = sorted((name, row, reason) for name, (_, _, q, _) in EXPECTED.items() for row, reason in q)
    assert sorted(bad_q[["file", "row", "reason"]].itertuples(index=False, name=None)) == sorted(
        expected_q + [(UNDECODABLE, 0, "undecodable_file")])

    filtered = pd.read_parquet(run_dir / "03_filter" / "kept.parquet")
    gbk = filtered[filtered["file"] == "gbk.json"]  # decoded, normalized, judged Chinese
    assert [tuple(r) for r in gbk[["instruction", "input", "output"]].itertuples(index=False)] == [R0, R1, R2]
    pool = pd.read_parquet(run_dir / "05_diversity" / "kept.parquet")
    assert "“𠀀”和“㐀”是什么字？" in set(pool["instruction"])  # (the corpus repeats R0-R3: dedupe keeps one each)
    assert not (pool["file"] == "big_row.json").any()  # parsed whole, then over text_length_filter's bound
    fdrop = pd.read_parquet(run_dir / "03_filter" / "dropped.parquet")
    big = fdrop[fdrop["file"] == "big_row.json"]
    assert big["reason"].tolist() == ["field_too_long"] and len(big["input"].iloc[0]) > 3_000_000
    assert not pool["instruction"].str.contains("\x00").any()  # the normalizer removed the NUL

    # the quarantine is inspectable from the CLI, by stage and by reason
    def tiger(*args: str) -> str:
        out = subprocess.run([str(BIN / "tiger"), *args], env=cli_env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    shown = tiger("dropped", str(run_dir), "--stage", "01_parse", "-n", "50")
    for reason in ("invalid_json", "junk_after_array", "wrong_type", "undecodable_file", "invalid_utf8",
                   "unknown_top_level_object", "not_an_object", "missing_instruction_and_output"):
        assert reason in shown
    assert "truncated.json" in shown and "byte " in shown
    one = tiger("dropped", str(run_dir), "--stage", "01_parse", "--reason", "undecodable_file")
    assert "latin1.json" in one and "not valid UTF-8 at byte 37" in one
    ledger = tiger("ledger", str(run_dir))
    assert all(s in ledger for s in STAGES)
