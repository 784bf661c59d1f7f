"""Hostile input: no file stops a run, and no loss hides in a count of one.

The corpus in tests/data/hostile (``make_hostile.py``: nesting 100,000 deep, UTF-16/32, GBK with a
stray byte, Latin-1, CSV/TSV/Parquet/.json.gz, zip, a corrupt Parquet, NUL padding, emoji ZWJ
sequences, empty files, and a 5 MB row built at test time) goes through parse → normalize →
filter with the default recipe, and every file's expected outcome is asserted; a hypothesis
property feeds the parser generated JSON of any depth in mixed encodings with random bytes; a real
`tiger run` on a mirror slice plus the corpus finishes with the lost rows in its ledger.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from curate.parse import parse_files
from curate.pipeline import run_steps
from curate.recipe import DEFAULT_RECIPE, load_recipe

HOSTILE = Path(__file__).resolve().parent / "data" / "hostile"
sys.path.insert(0, str(HOSTILE))
from make_hostile import EMOJI, EXPECTED, build, files

# the real-run helpers and the shared Prefect server (cli_env is a fixture)
from test_resume import BIN, cli_env, run_dir_of, run_tiger, small_recipe, tiger_cmd  # noqa: F401


def corpus(folder: Path, names) -> list[dict]:
    return [{"source": "hostile", "file": n, "path": str(folder / n)} for n in sorted(names)]


def test_the_committed_corpus_is_what_the_script_writes():
    written = files()
    assert sorted(written) == sorted(EXPECTED)
    for name, data in written.items():
        assert (HOSTILE / name).read_bytes() == data, name
    on_disk = {p.name for p in HOSTILE.iterdir()} - {"make_hostile.py", "expected.json", "README.md", "__pycache__"}
    assert on_disk == set(EXPECTED)


@pytest.fixture(scope="module")
def through_filter(tmp_path_factory):
    """The corpus and the 5 MB row through parse, then the default recipe's normalize and filter."""
    d = tmp_path_factory.mktemp("hostile")
    expected = build(d, big=True)
    parsed = parse_files(corpus(d, expected))
    recipe = load_recipe(DEFAULT_RECIPE)
    norm = run_steps(parsed.kept, recipe.stage("02_normalize").steps, "02_normalize")
    filt = run_steps(norm.kept, recipe.stage("03_filter").steps, "03_filter")
    return expected, parsed, norm, filt


def test_every_file_meets_its_expectation_through_parse_and_filter(through_filter):
    expected, parsed, norm, filt = through_filter
    q = parsed.dropped
    for name, (fmt, kept, quarantined, filter_drops) in expected.items():
        st_ = parsed.stats["files"][f"hostile/{name}"]
        assert (st_["format"], st_["kept"]) == (fmt, kept), name
        assert dict(Counter(q[q["file"] == name]["reason"])) == quarantined, name
        fd = filt.dropped[filt.dropped["file"] == name]
        assert dict(Counter(fd["reason"])) == filter_drops, name
        # every row that entered is accounted for: kept after the filter, or dropped with a reason
        assert st_["in"] == kept + sum(quarantined.values())
        assert (filt.kept["file"] == name).sum() == kept - sum(filter_drops.values()), name
    assert parsed.stats["in"] == len(parsed.kept) + len(parsed.dropped)
    assert len(parsed.kept) == len(norm.kept) == len(filt.kept) + len(filt.dropped)


def test_quarantine_details_name_the_file_and_say_what_to_do(through_filter):
    _, parsed, _, filt = through_filter
    details = dict(zip(parsed.dropped["file"] + ":" + parsed.dropped["reason"], parsed.dropped["detail"]))
    assert details["deep_array.json:too_deeply_nested"].startswith("hostile/deep_array.json row 0 (item 0")
    assert "RecursionError" in details["deep_array.json:too_deeply_nested"]
    assert "convert it to UTF-8" in details["latin1.jsonl:undecodable_file"]
    assert "unzip it" in details["archive.zip:unsupported_format"]
    assert "\\x80" in details["gbk_stray_byte.jsonl:invalid_gbk"] and "第57题" in details["gbk_stray_byte.jsonl:invalid_gbk"]
    assert "estimated row 1 of 1" in details["corrupt.parquet:unreadable_file"]
    assert "第一个问题" in details["repeated_key.jsonl:repeated_key"]  # both values shown, none lost
    huge = filt.dropped[filt.dropped["file"] == "huge_row.json"]
    assert re.fullmatch(r"input has [45],\d{3},\d{3} characters > max_field_chars 100,000", huge["detail"].iloc[0])
    # files that could not be read say how many bytes and rows they held
    f = parsed.stats["files"]
    assert f["hostile/corrupt.parquet"]["estimated_rows"] == 1 and f["hostile/corrupt.parquet"]["bytes"] > 0
    assert f["hostile/latin1.jsonl"]["in"] == 3 and f["hostile/latin1.jsonl"]["bytes"] > 0


def test_decoded_text_is_exact(through_filter):
    _, parsed, _, filt = through_filter
    k = parsed.kept
    for name in ("utf16_bom.json", "utf16be_bom.jsonl", "utf16_no_bom.jsonl", "utf32_bom.json", "rows.json.gz",
                 "rows.tsv", "nul_between_rows.jsonl", "rows.parquet"):
        assert k[k["file"] == name]["instruction"].tolist() == [
            "解释什么是光合作用。", "把下面的句子翻译成英文。", "列出三种常见的水果。"], name
    assert json.loads(k[k["file"] == "rows.parquet"]["history"].iloc[0]) == [["你好", "你好！"]]
    csv_rows = k[k["file"] == "rows.csv"]["output"].tolist()
    assert csv_rows[2] == "秋风起，\n落叶黄。"  # a quoted field with a line break is one field
    gbk = k[k["file"] == "gbk_stray_byte.jsonl"]
    assert len(gbk) == 199 and "第58题：计算58加59等于多少？" in set(gbk["instruction"])
    # the emoji ZWJ sequences survive the unicode clean-up whole
    emoji = filt.kept[filt.kept["file"] == "emoji_zwj.jsonl"]["instruction"].iloc[0]
    assert EMOJI in emoji


# ------------------------------------------------------------------------------------ property

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "gbk", "gb18030", "latin-1"]
ROW = {"instruction": "解释什么是光合作用。", "input": "", "output": "植物利用光能合成有机物。"}


@st.composite
def hostile_files(draw) -> bytes:
    """JSON lines or an array mixing good rows with values nested up to 10⁵ deep, in one of several
    encodings, with random bytes spliced in."""
    parts = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["row", "deep", "deep_field", "junk"]))
        depth = draw(st.integers(1, 100_000))
        opener = draw(st.sampled_from(["[", '{"a":']))
        closer = "]" if opener == "[" else "}"
        if kind == "row":
            parts.append(json.dumps(ROW, ensure_ascii=False))
        elif kind == "deep":
            parts.append(opener * depth + "1" + closer * depth)
        elif kind == "deep_field":
            parts.append('{"instruction": "深", "output": "x", "meta": ' + opener * depth + "1" + closer * depth + "}")
        else:
            parts.append(draw(st.text(max_size=20)))
    text = ("[" + ",".join(parts) + "]") if draw(st.booleans()) else "\n".join(parts)
    data = text.encode(draw(st.sampled_from(ENCODINGS)), "replace")
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile_prop")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_files())
# found by this test in CI: a key holding bytes that are not UTF-8, quoted in the drop's message
@example(data=b'{"\x80\x81\x80instruction": "??????????", "input": "", "\x00output": "????????????"}')
def test_property_parsing_never_raises_and_every_row_is_accounted_for(scratch, data):
    p = scratch / "h.json"
    p.write_bytes(data)
    res = parse_files([{"source": "prop", "file": "h.json", "path": str(p)}])  # never raises
    f = res.stats["files"]["prop/h.json"]
    assert res.stats["in"] == f["in"] == len(res.kept) + len(res.dropped)
    assert sorted(list(res.kept["row"]) + list(res.dropped["row"])) == list(range(f["in"]))
    for df in (res.kept, res.dropped):  # all of it can be written as UTF-8 Parquet
        for col in ("instruction", "input", "output", "history", "extra"):
            for v in df[col]:
                v.encode("utf-8")
    assert all(d.startswith("prop/h.json row ") and d.encode("utf-8") for d in res.dropped["detail"])


# ------------------------------------------------------------------------------ through the flow

@pytest.mark.slow
def test_a_real_run_on_a_mirror_slice_plus_the_corpus_shows_the_lost_rows(tmp_path, link_slice, cli_env):
    """`tiger run` with the corpus as the optional source: it finishes, every stage balances, and the
    ledger (and `tiger ledger`) shows the rows lost per reason, the empty files and the files lost whole."""
    import subprocess

    from curate.pipeline import check_chain

    m = link_slice(tmp_path / "mirror", {"belle": ["dev1K.json"]})
    expected = build(m / "traditional", big=True)
    recipe = small_recipe(tmp_path / "recipe.yaml", clusters=4, sources=["belle", "traditional"], mixtures=["random-100"])
    r = run_tiger(tiger_cmd(m, tmp_path / "data", recipe), cli_env, tmp_path)
    assert r.returncode == 0, r.stdout[-3000:]
    run_dir = run_dir_of(r)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    check_chain(manifest["ledger"])
    parse, _, filt = manifest["ledger"][:3]
    lost = Counter()
    for name, (_, _, quarantined, _) in expected.items():
        if name != "archive.zip":  # by its name an archive is not read at all: listed as skipped
            lost.update(quarantined)
    assert {k: parse["reasons"].get(k, 0) for k in lost} == dict(lost)  # rows, not files counted as one
    assert parse["reasons"]["undecodable_file"] == 3 and parse["reasons"]["invalid_gbk"] == 1
    assert filt["reasons"]["field_too_long"] == 1
    files = parse["files"]
    assert sorted(files["empty"]) == ["traditional/empty.jsonl", "traditional/only_nul.json"]
    assert files["lost_whole"]["traditional/latin1.jsonl"] == {"rows": 3, "bytes": files["lost_whole"][
        "traditional/latin1.jsonl"]["bytes"], "estimated": False}
    assert files["lost_whole"]["traditional/corrupt.parquet"]["estimated"] is True
    assert files["skipped"] == ["traditional/archive.zip (archive)"]
    out = subprocess.run([str(BIN / "tiger"), "ledger", str(run_dir)], env=cli_env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "undecodable_file=3" in out.stdout and "2 empty" in out.stdout and "lost whole" in out.stdout
    pool = pd.read_parquet(run_dir / "05_diversity" / "kept.parquet")
    assert pool["input"].str.len().max() < 100_000  # the 5 MB row stopped at the filter


def test_label_and_diversity_on_a_deep_file_give_one_line_not_a_crash(tmp_path):
    """`tiger label` / `tiger diversity` read through the same contained parser: a file nested 100,000
    deep is an error naming the row and why, not a RecursionError."""
    from flows.cli import main

    for cmd in (["label", str(HOSTILE / "deep_array.json"), "--out", str(tmp_path / "x.json")],
                ["diversity", str(HOSTILE / "deep_array.json"), "--out", str(tmp_path / "rep")]):
        with pytest.raises(SystemExit) as e:
            main(cmd)
        assert "too_deeply_nested" in str(e.value.code) and "deep_array.json" in str(e.value.code)


def test_two_damaged_rows_that_merge_into_one_object_lose_no_text(tmp_path):
    """Found by the no-row-lost property: one row lost its closing brace and the next its opening one,
    so together they read as one valid object that repeats every key; JSON keeps the last values and
    the first row's text vanished. Now the merged object is quarantined with its raw text."""
    first = '{\n "instruction": "第一行",\n "input": "",\n "output": "答"\n'
    second = '\n "instruction": "",\n "input": "",\n "output": ""\n}'
    p = tmp_path / "merged.json"
    p.write_text("[\n" + first + ",\n" + second + "\n]\n", encoding="utf-8")
    res = parse_files([{"source": "s", "file": "merged.json", "path": str(p)}])
    (d,) = res.dropped.to_dict("records")
    assert d["reason"] == "repeated_key" and "第一行" in json.loads(d["extra"])["raw"]
