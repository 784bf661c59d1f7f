"""A large file read a part at a time (curate/parse_stream.py): JSON lines, JSON arrays, tables. The
rows, quarantine, positions, repairs and stats of reading it whole, whatever the window, and the
parse stage's bytes."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.parse import parse_file, parse_files
from curate.parse_stream import (CsvReader, JsonArrayReader, JsonLinesReader, NotStreamable, NotUtf8, NotWellFormed,
                                  ParquetReader, TolerantArrayReader, reader_for, text_encoding)

DATA = Path(__file__).parent / "data"


def _hostile_lines(mirror: Path, dest: Path) -> Path:
    """BELLE's dev set (real JSON lines) with every defect the stream reader must place exactly:
    control characters, repeated keys, deep rows, NUL padding, stray lines, a row split over lines,
    a broken row, a bare number and a final row with no line break."""
    parts = [(mirror / "belle" / "dev1K.json").read_bytes()]
    for name in ("control_chars.jsonl", "mixed_schemas.jsonl", "missing_keys.jsonl"):
        parts.append((DATA / "bad" / name).read_bytes())
    for name in ("repeated_key.jsonl", "deep_row.jsonl", "nul_between_rows.jsonl", "emoji_zwj.jsonl"):
        parts.append((DATA / "hostile" / name).read_bytes())
    parts.append('{"instruction": "跨行的\\n行",\n "input": "",\n\n "output": "好"}\n'.encode())
    parts.append('{"instruction": "坏的, "output": "x"}\nnot json at all\n  42\n'.encode())
    parts.append('{"instruction": "最后一行", "input": "", "output": "没有换行"}'.encode())
    path = dest / "big.jsonl"
    path.write_bytes(b"\n".join(p.rstrip(b"\n") for p in parts))
    return path


def _as_read_whole(reader, path: Path) -> list:
    """The reader's pieces, checked to hold the rows, quarantine and outcome ``parse_file`` gives."""
    whole = parse_file(path, "s", path.name)
    pieces = list(reader)
    assert [r for p in pieces for r in p.records] == whole.records
    assert [q for p in pieces for q in p.quarantine] == whole.quarantine
    res = reader.result
    assert (res.n_in, res.format, res.schemas, res.repairs, res.encoding, res.bytes) == (
        whole.n_in, whole.format, whole.schemas, whole.repairs, whole.encoding, whole.bytes)
    return pieces


def _same(path: Path, window: int, piece_rows: int = 7) -> int:
    reader = JsonLinesReader(path, "s", path.name, window=window, piece_rows=piece_rows)
    pieces = _as_read_whole(reader, path)
    assert all(len(p.records) + len(p.quarantine) <= piece_rows for p in pieces[:-1]) or piece_rows == 1
    return len(pieces)


def test_any_window_reads_a_stream_as_reading_it_whole(mirror, tmp_path):
    """Rows, quarantine (with line, column and byte), repairs, schemas and counts equal parse_file's
    for windows down to one byte, which cut every value, string, escape and fragment somewhere."""
    big = _hostile_lines(mirror, tmp_path)
    whole = parse_file(big, "s", big.name)
    assert whole.format == "json_lines" and len(whole.records) > 1000
    assert {q["reason"] for q in whole.quarantine} >= {"invalid_json", "not_an_object", "repeated_key"}
    assert any(r["kind"] == "control_character_in_string" for r in whole.repairs)
    for window in (65_536, 4096, 333):
        assert _same(big, window) > 100
    small = [p for d in ("bad", "hostile", "own") for p in sorted((DATA / d).iterdir())
             if p.suffix in (".json", ".jsonl") and p.stat().st_size < 30_000]
    small += [mirror / "traditional" / "chinese_vicuna_chat_sample.jsonl", mirror / "belle" / "zh_seed_tasks.json"]
    read = 0
    for path in small:
        try:
            whole = parse_file(path, "s", path.name)
        except ValueError:  # undecodable, or not JSON: not streamed either
            whole = None
        if whole is None or whole.format == "json_array" or whole.encoding != "utf-8":
            with pytest.raises(NotStreamable):
                list(JsonLinesReader(path, "s", path.name, window=7))
            continue
        for window in (1, 7, 4096):
            _same(path, window)
        read += 1
    assert read >= 12


def test_files_that_are_not_utf8_json_lines_are_not_streamed(mirror, tmp_path):
    """Arrays (gzip of one too), other encodings, tables: NotStreamable, naming the file (the stage
    reads them whole); bytes that are not UTF-8 after the first window too."""
    for path in [mirror / "trans_chinese_alpaca" / "alpaca_chinese_part_0.json", DATA / "bad" / "gbk.json",
                 DATA / "hostile" / "utf16_no_bom.jsonl", DATA / "hostile" / "rows.json.gz",
                 DATA / "hostile" / "rows.csv"]:
        with pytest.raises(NotStreamable, match=path.name):
            list(JsonLinesReader(path, "s", path.name, window=4096))
    late = tmp_path / "late.jsonl"
    late.write_bytes((mirror / "belle" / "dev1K.json").read_bytes() + b'{"instruction": "\xff"}\n')
    with pytest.raises(NotStreamable, match="not UTF-8 near byte"):
        list(JsonLinesReader(late, "s", late.name, window=4096))
    with pytest.raises(ValueError, match="must be >= 1"):
        JsonLinesReader(late, "s", late.name, window=0)


def _stage_whole_and_in_groups(files: list[dict], tmp_path: Path, group_bytes: int):
    """The parse stage over ``files`` read whole (its ledger) and planned in groups of
    ``group_bytes`` with every group run (the plan, not yet merged)."""
    from curate import pipeline

    whole = pipeline.plan_parse(files, tmp_path / "whole", group_bytes=1 << 40)
    pipeline.run_parse_group(whole, 0, len(files))
    ledger = pipeline.finish_parse(whole)
    plan = pipeline.plan_parse(files, tmp_path / "pieces", group_bytes=group_bytes)
    for a, b in plan.groups:
        pipeline.run_parse_group(plan, a, b)
    return ledger, plan


def _merged_as_whole(plan, ledger: dict, tmp_path: Path) -> None:
    """The plan's merge gives the ledger and the very bytes of the stage read whole."""
    from curate import pipeline

    assert pipeline.finish_parse(plan) == ledger
    for name in ("kept.parquet", "dropped.parquet", "stats.json", "ledger.json"):
        assert (tmp_path / "pieces" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name


def test_the_parse_stage_reads_a_large_json_lines_file_in_pieces(mirror, tmp_path, monkeypatch):
    """A JSON-lines file larger than its group is read a window at a time and saved a piece of rows
    at a time; the stage writes the bytes of one pass over the files read whole. A file that turns
    out not to be UTF-8 (late bad bytes) is read again in its encoding, its first pieces discarded."""
    import curate.parse_stream

    monkeypatch.setattr(curate.parse_stream, "PIECE_ROWS", 97)
    big = _hostile_lines(mirror, tmp_path)
    late = tmp_path / "late.jsonl"
    late.write_bytes((mirror / "belle" / "dev1K.json").read_bytes() + b'{"instruction": "\xff", "output": "x"}\n')
    files = [{"source": "belle", "file": "big.jsonl", "path": str(big)},
             {"source": "bad", "file": "control_chars.jsonl", "path": str(DATA / "bad" / "control_chars.jsonl")},
             {"source": "belle", "file": "late.jsonl", "path": str(late)},
             {"source": "trans", "file": "part_0.json",
              "path": str(mirror / "trans_chinese_alpaca" / "alpaca_chinese_part_0.json")}]
    ledger, plan = _stage_whole_and_in_groups(files, tmp_path, 200_000)
    assert plan.groups[0] == (0, 1)  # the large file alone
    gdir = plan.group_dir(0, 1)
    pieces = json.loads((gdir / "pieces.json").read_text())
    assert len(pieces) > 10 and all(p["kept"] + p["quarantined"] == 97 for p in pieces[:-1])
    late_dir = plan.group_dir(*next(g for g in plan.groups if g[0] == 2))
    late_pieces = json.loads((late_dir / "pieces.json").read_text())
    assert len(late_pieces) > 5 and len(list(late_dir.glob("piece-*"))) == len(late_pieces)
    assert json.loads((late_dir / "stats.json").read_text())["files"]["belle/late.jsonl"]["encoding"] == "utf-8+invalid"
    _merged_as_whole(plan, ledger, tmp_path)
    res = parse_files(files)
    assert ledger["in"] == res.stats["in"] and len(pd.read_parquet(tmp_path / "pieces" / "kept.parquet")) == len(res.kept)


# ---- Parquet and CSV/TSV ------------------------------------------------------------------------

def _belle_frame(mirror: Path) -> pd.DataFrame:
    """BELLE's dev set (real rows) as a table: instruction, input, output."""
    res = parse_files([{"source": "belle", "file": "dev1K.json", "path": str(mirror / "belle" / "dev1K.json")}])
    return res.kept[["instruction", "input", "output"]].astype(object).reset_index(drop=True)


def _csv_text(df: pd.DataFrame, sep: str, eol: str) -> str:
    """The rows as CSV/TSV (quoted fields span lines), then rows the reader must place exactly: extra
    fields, a short row, an empty row, blank lines, stray quotes, a history cell, and a last field
    whose quote never closes (it runs to the end of the file)."""
    df = df.assign(history="")
    df.loc[3, "history"] = '[["你好", "你好！"]]'
    df.loc[4, "history"] = "not a history"
    defects = [["多出来的字段", "", "答案", "", "多余一", "多余二"], ["只有一列"], ["", "", "", ""], [],
               ['引号"在中间"', "输入", "输出"], ["普通的一行", "", "好"]]
    text = df.to_csv(index=False, sep=sep, lineterminator=eol)
    text += eol.join(sep.join(row) for row in defects) + eol + eol
    return text + f'"坏{sep}"引号"后面{sep}还有{eol}最后的字段{sep}"没有闭合{eol}到文件末尾'


def _tables(mirror: Path, dest: Path) -> dict[str, Path]:
    """A CSV (UTF-8 with a byte-order mark, LF), a TSV (CRLF) and a Parquet file of several row groups
    with numbers, nulls, bytes (some not UTF-8), lists and nested lists, all from BELLE's rows."""
    df = _belle_frame(mirror)
    out = {"big.csv": dest / "big.csv", "big.tsv": dest / "big.tsv", "big.parquet": dest / "big.parquet"}
    out["big.csv"].write_bytes(b"\xef\xbb\xbf" + _csv_text(df, ",", "\n").encode())
    out["big.tsv"].write_bytes(_csv_text(df, "\t", "\r\n").encode())
    n = len(df)
    pq_df = df.assign(
        score=range(n),
        weight=[float("nan") if i % 4 == 0 else i / 3 for i in range(n)],
        blob=[None if i % 7 == 0 else bytes([0xFF, 0xFE, i % 256]) if i % 5 == 0 else df["instruction"][i].encode()
              for i in range(n)],
        tags=[[] if i % 3 else ["标签", str(i)] for i in range(n)],
        history=[[["问", "答"]] if i % 11 == 0 else None for i in range(n)])
    pq_df.loc[::50, "output"] = None
    pq_df.loc[::100, "instruction"] = None  # with no output either: quarantined
    pq.write_table(pa.Table.from_pandas(pq_df, preserve_index=False), out["big.parquet"], row_group_size=97)
    return out


def _same_table(path: Path, window: int, piece_rows: int) -> list:
    """The pieces of ``reader_for(path)``, checked against ``parse_file`` on the whole file."""
    reader = reader_for(path, "s", path.name, window=window, piece_rows=piece_rows)
    pieces = _as_read_whole(reader, path)
    assert all(len(p.records) + len(p.quarantine) == piece_rows for p in pieces[:-1])
    return pieces


def test_any_piece_size_reads_a_table_as_reading_it_whole(mirror, tmp_path):
    """Parquet, CSV and TSV files give parse_file's rows, quarantine (with item or line), repairs,
    schemas and counts for any piece size, and any number of characters decoded at a time."""
    tables = _tables(mirror, tmp_path)
    kinds = {"big.csv": CsvReader, "big.tsv": CsvReader, "big.parquet": ParquetReader}
    for name, path in tables.items():
        whole = parse_file(path, "s", name)
        assert type(reader_for(path, "s", name)) is kinds[name]
        assert whole.n_in >= 1000 and whole.quarantine and whole.encoding in ("utf-8", "parquet")
        for window, piece_rows in ((333, 1), (4096, 7), (1 << 20, 1000), (1 << 20, 1 << 20)):
            pieces = _same_table(path, window, piece_rows)
            assert len(pieces) == -(-whole.n_in // piece_rows)
    csv_whole = parse_file(tables["big.csv"], "s", "big.csv")
    extra = [json.loads(r["extra"]) for r in csv_whole.records]
    assert any(e.get("_extra_fields") == ["多余一", "多余二"] for e in extra)
    assert any("\n" in r["output"] for r in csv_whole.records)  # quoted fields that span lines
    assert csv_whole.records[-1]["input"].endswith("没有闭合\n到文件末尾")
    assert {q["reason"] for q in csv_whole.quarantine} == {"missing_instruction_and_output"}
    pq_whole = parse_file(tables["big.parquet"], "s", "big.parquet")
    pq_extra = [json.loads(r["extra"]) for r in pq_whole.records]
    assert pq_extra[0]["weight"] == 1 / 3 and pq_extra[0]["score"] == 1 and pq_whole.quarantine[0]["row"] == 0
    assert None in {e["weight"] for e in pq_extra} and "fffe05" in {e["blob"] for e in pq_extra}
    assert pq.ParquetFile(tables["big.parquet"]).num_row_groups > 5
    for path in (DATA / "hostile" / "rows.csv", DATA / "hostile" / "rows.tsv", DATA / "hostile" / "rows.parquet",
                 DATA / "hostile" / "prompt_response.csv"):
        for window in (1, 7, 4096):
            _same_table(path, window, 2)


def _not_utf8_tables(mirror: Path, dest: Path) -> dict[str, Path]:
    """BELLE's rows as a GB18030 CSV, and as a UTF-8 CSV with a byte that is not UTF-8 near its end."""
    text = _csv_text(_belle_frame(mirror), ",", "\n")
    out = {"gb.csv": dest / "gb.csv", "late.csv": dest / "late.csv"}
    out["gb.csv"].write_bytes(text.encode("gb18030"))
    out["late.csv"].write_bytes(text.encode() + b'\n"\xff",,"x"\n')
    return out


def test_a_csv_that_is_not_utf8_is_read_in_its_encoding(mirror, tmp_path):
    """A GB18030 CSV is found not UTF-8 at its start; a CSV with a byte that is not UTF-8 far into it
    after pieces were handed out: both raise NotUtf8, naming the file. Read again in the encoding
    ``text_encoding`` finds, they give parse_file's rows, quarantine and repairs for any window."""
    files = _not_utf8_tables(mirror, tmp_path)
    assert parse_file(files["gb.csv"], "s", "gb.csv").encoding == "gb18030"
    assert parse_file(files["late.csv"], "s", "late.csv").encoding == "utf-8+invalid"
    with pytest.raises(NotUtf8, match="gb.csv"):
        next(iter(reader_for(files["gb.csv"], "s", "gb.csv", window=4096)))
    pieces = []
    with pytest.raises(NotUtf8, match="late.csv"):
        for piece in reader_for(files["late.csv"], "s", "late.csv", window=4096, piece_rows=50):
            pieces.append(piece)
    assert len(pieces) > 10
    for name, path in files.items():
        for window in (333, 4096):
            encoding = text_encoding(path, window)
            reader = reader_for(path, "s", name, window=window, piece_rows=50, encoding=encoding)
            assert type(reader) is CsvReader
            _as_read_whole(reader, path)
    with pytest.raises(NotStreamable, match="corrupt.parquet"):
        list(reader_for(DATA / "hostile" / "corrupt.parquet", "s", "corrupt.parquet"))


def test_the_parse_stage_reads_large_tables_in_pieces(mirror, tmp_path, monkeypatch):
    """Parquet, CSV and TSV files larger than their group are read and saved a piece of rows at a
    time; the stage writes the bytes of one pass over the files read whole. CSV files that turn out
    not to be UTF-8 (at the start, or far in) are read again in their encoding, in pieces too."""
    import curate.parse_stream

    monkeypatch.setattr(curate.parse_stream, "PIECE_ROWS", 97)
    paths = {**_tables(mirror, tmp_path), **_not_utf8_tables(mirror, tmp_path)}
    files = [{"source": "user", "file": name, "path": str(path)} for name, path in paths.items()]
    files.insert(2, {"source": "hostile", "file": "rows.csv", "path": str(DATA / "hostile" / "rows.csv")})
    ledger, plan = _stage_whole_and_in_groups(files, tmp_path, 100_000)
    for i, f in enumerate(files):
        if Path(f["path"]).stat().st_size < 100_000:
            continue
        gdir = plan.group_dir(i, i + 1)
        assert (i, i + 1) in plan.groups
        pieces = json.loads((gdir / "pieces.json").read_text())
        assert len(pieces) > 10 and all(p["kept"] + p["quarantined"] == 97 for p in pieces[:-1]), f["file"]
    _merged_as_whole(plan, ledger, tmp_path)
    stats = json.loads((tmp_path / "pieces" / "stats.json").read_text())
    assert stats["formats"] == {"csv": 4, "parquet": 1, "tsv": 1}
    assert {stats["files"][f"user/{n}"]["encoding"] for n in ("gb.csv", "late.csv")} == {"gb18030", "utf-8+invalid"}


# ---- JSON arrays --------------------------------------------------------------------------------

def _lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _array_items(mirror: Path) -> list[str]:
    """The items of an array, as JSON text: BELLE's dev rows (pretty-printed, multi-line), seed
    tasks, chats, translated Alpaca rows with English originals (escaped to ASCII), and rows to
    place exactly: history lists, escapes, numbers, lone surrogates, a key repeated below the row,
    a deep row, rows quarantined for their shape, and items that are not objects."""
    dev = _lines(mirror / "belle" / "dev1K.json")
    alpaca = json.loads((mirror / "trans_chinese_alpaca" / "alpaca_chinese_part_0.json").read_text(encoding="utf-8"))
    items = [json.dumps(r, ensure_ascii=False, indent=2) for r in dev]
    items += [json.dumps(r, ensure_ascii=False) for r in _lines(mirror / "belle" / "zh_seed_tasks.json")[:20]]
    items += [json.dumps(r, ensure_ascii=False, indent=2)
              for r in _lines(mirror / "traditional" / "chinese_vicuna_chat_sample.jsonl")]
    items += [json.dumps(r) for r in alpaca[:50]]  # \uXXXX escapes
    odd = [{**dev[0], "history": [["你好", "你好！"], [dev[1]["instruction"], dev[1]["output"]]]},
           {**dev[2], "history": json.dumps([["问", "答"]], ensure_ascii=False)},
           {"instruction": '引号"、反斜杠\\、换行\n、制表\t', "input": "\u2028👩‍👩‍👧", "output": "好"},
           {"instruction": "数字", "input": 1.5, "output": 42}, {"instruction": "大数", "output": 10 ** 30},
           {"instruction": "指数", "output": -1.25e-7},
           {"instruction": "非数", "output": float("nan"), "x": float("-inf")},
           {"input": dev[3]["input"]}, {"instruction": "", "output": ""}, {"instruction": "错", "output": {"a": 1}},
           {"instruction": "深", "output": "x", "extra": json.loads("[" * 150 + "]" * 150)},
           42, "一个字符串", None, [1, 2], True]
    items += [json.dumps(r, ensure_ascii=False, indent=2) for r in odd]
    items += ['{"instruction": "孤立的\\ud83d代理", "output": "好"}',
              '{"instruction": "下面重复", "output": "好", "meta": {"k": 1, "k": 2}}']
    items += [json.dumps(r, ensure_ascii=False) for r in dev[:40]]
    return items


def _arrays(mirror: Path, dest: Path) -> dict[str, Path]:
    """The items as a pretty-printed array (LF), on one line with a UTF-8 byte-order mark, with CRLF
    and blank lines around the brackets; the mirror's alpaca files are real arrays as upstream."""
    items = _array_items(mirror)
    out = {"big.json": dest / "big.json", "one_line.json": dest / "one_line.json", "crlf.json": dest / "crlf.json"}
    out["big.json"].write_text("[\n" + ",\n".join(items) + "\n]\n", encoding="utf-8")
    one_line = "[" + ",".join(i.replace("\n", "") for i in items) + "]"  # strings hold no raw line breaks
    out["one_line.json"].write_bytes(b"\xef\xbb\xbf" + one_line.encode())
    crlf = "\r\n \t[\r\n\r\n" + " ,\r\n".join(items).replace("\n", "\r\n") + "\r\n]\r\n\r\n"
    out["crlf.json"].write_bytes(crlf.encode())
    return out


def _same_array(path: Path, window: int, piece_rows: int) -> list:
    """The pieces of ``reader_for(path)`` (a JSON array reader), checked against ``parse_file``."""
    reader = reader_for(path, "s", path.name, window=window, piece_rows=piece_rows)
    assert type(reader) is JsonArrayReader
    pieces = _as_read_whole(reader, path)
    assert all(len(p.records) + len(p.quarantine) >= piece_rows for p in pieces[:-1])
    return pieces


def test_any_window_reads_a_json_array_as_reading_it_whole(mirror, tmp_path):
    """A well-formed array gives parse_file's rows, quarantine (located by item), schemas and counts
    for windows down to one byte, which cut every value, string, escape, number and UTF-8 character
    somewhere, and any piece size."""
    arrays = _arrays(mirror, tmp_path)
    whole = parse_file(arrays["big.json"], "s", "big.json")
    assert whole.format == "json_array" and whole.n_in > 1100 and not whole.repairs
    assert {q["reason"] for q in whole.quarantine} >= {
        "missing_instruction_and_output", "wrong_type", "not_an_object", "invalid_unicode", "too_deeply_nested"}
    assert all(set(json.loads(q["extra"])) == {"raw", "item"} for q in whole.quarantine)  # as read strictly
    assert {"seed_task", "turns", "alpaca+en", "alpaca+history"} <= set(whole.schemas)
    for name, path in arrays.items():
        assert parse_file(path, "s", "big.json").records == whole.records  # the same rows, however written
        for window, piece_rows in ((7, 7), (333, 1), (4096, 97), (1 << 24, 1 << 20)):
            pieces = _same_array(path, window, piece_rows)
            assert len(pieces) >= whole.n_in // (piece_rows + 10)
    for path in [mirror / "trans_chinese_alpaca" / "alpaca_chinese_part_0.json",
                 *sorted((mirror / "alpaca_chinese" / "supplementary").glob("*.json"))[:3]]:
        _same_array(path, 4096, 97)
    for name in ("bom.json", "empty_array.json", "wrong_types.json"):  # well-formed: streamed
        for window in (1, 7, 4096):
            _same_array(DATA / "bad" / name, window, 2)
    for path in (tmp_path / "blank_array.json", tmp_path / "numbers.json"):
        numbers = [i / 7 for i in range(-150, 150)] + [1e300, -2.5e-7, 10 ** 20, 1, 10]  # cut after "." or "e"
        path.write_text("  \n[ \n\n ]\n" if path.name == "blank_array.json" else json.dumps(numbers))
        for window in (1, 7, 4096):
            _same_array(path, window, 7)
    assert type(reader_for(mirror / "belle" / "dev1K.json", "s", "dev1K.json")) is JsonLinesReader


def _defective_arrays(mirror: Path, dest: Path) -> dict[str, Path]:
    """The items as arrays parse_file cannot decode strictly (it reads them value by value, with
    repairs, byte/line/col locations or both): each defect where at least some pieces come first."""
    items = _array_items(mirror)
    late = len(items) - 5

    def at(k: int, item: str) -> bytes:
        return ("[\n" + ",\n".join(items[:k] + [item] + items[k + 1:]) + "\n]\n").encode()

    good = at(0, items[0])
    defects = {
        "trailing_comma.json": good.replace(b"\n]\n", b",\n]\n"),
        "no_close.json": good.removesuffix(b"]\n"),
        "junk_after.json": good + b'{"instruction": "\xe5\xa4\x9a", "output": "x"}\n',
        "nul_after.json": good + b"\x00",
        "nul_before.json": b"\x00" + good,
        "broken_middle.json": at(len(items) // 2, items[len(items) // 2].replace('"output":', '"output"', 1)),
        "broken_late.json": at(late, items[late].replace('"output":', '"output"', 1)),
        "no_comma.json": at(late, items[late] + "\n" + items[late]),
        "repeated_key.json": at(late, '{"instruction": "一", "instruction": "二", "output": "三"}'),
        "control_char.json": at(late, '{"instruction": "制表\t符", "output": "好"}'),
        "too_deep.json": at(late, '{"instruction": "深", "output": ' + "[" * 5000 + "]" * 5000 + "}"),
        "huge_int.json": at(late, '{"instruction": "大", "output": ' + "9" * 5000 + "}"),
        "bad_utf8.json": at(late, '{"instruction": "坏", "output": "x"}').replace("坏".encode(), b"\xe5\xa4"),
    }
    out = {}
    for name, data in defects.items():
        out[name] = dest / name
        out[name].write_bytes(data)
    return out


def _same_tolerant(path: Path, window: int, encoding=None) -> list:
    reader = reader_for(path, "s", path.name, window=window, piece_rows=97, encoding=encoding, tolerant=True)
    assert type(reader) is TolerantArrayReader
    return _as_read_whole(reader, path)


def test_a_json_array_with_any_defect_is_read_value_by_value(mirror, tmp_path):
    """An array parse_file reads value by value raises NotWellFormed, naming the file, even after
    pieces were handed out (its locations and repairs differ). Read again by TolerantArrayReader, it
    gives parse_file's rows, quarantine (broken items with item, line, column, byte; text after the
    ``]``), repairs (trailing comma, missing ``]``, control characters) and counts for any window,
    one byte included. A number too long for ``int`` (parse_file gives up on the file): NotStreamable."""
    for name, path in _defective_arrays(mirror, tmp_path).items():
        if name == "huge_int.json":  # the value-by-value read gives up on the whole file (read_file contains it)
            with pytest.raises(ValueError, match="4300 digits"):
                parse_file(path, "s", name)
        else:
            whole = parse_file(path, "s", name)
            assert whole.format == "json_array", name
            strict = all(set(json.loads(q["extra"])) <= {"raw", "item"} for q in whole.quarantine)
            assert whole.repairs or whole.encoding != "utf-8" or not strict or name == "nul_after.json", name
        for window in (7, 4096):
            pieces = []
            with pytest.raises(NotUtf8 if name == "bad_utf8.json" else NotWellFormed, match=name):
                for piece in reader_for(path, "s", name, window=window, piece_rows=97):
                    pieces.append(piece)
            assert len(pieces) > (5 if name.endswith(("_late.json", "_after.json")) or name == "too_deep.json" else -1)
        if name == "bad_utf8.json":  # well-formed in its encoding (above: text in other encodings)
            continue
        for window in (333, 65_536):
            if name == "huge_int.json":
                with pytest.raises(NotStreamable, match="digits"):
                    list(reader_for(path, "s", name, window=window, tolerant=True))
            else:
                _same_tolerant(path, window)
    for path in (DATA / "bad" / "trailing_comma.json", DATA / "bad" / "truncated.json",
                 DATA / "bad" / "junk_after_end.json", DATA / "hostile" / "deep_array.json",
                 mirror / "alpaca_chinese" / "translated" / "alpaca_data-9407-12345-中文-未完成.json"):
        with pytest.raises(NotWellFormed, match=path.name):
            list(JsonArrayReader(path, "s", path.name, window=4096))
        for window in ((1, 7, 4096) if path.stat().st_size < 10_000 else (4096, 65_536)):
            _same_tolerant(path, window)
    for path in (DATA / "bad" / "gbk.json", DATA / "hostile" / "utf16_bom.json"):
        with pytest.raises(NotUtf8, match=path.name):
            list(JsonArrayReader(path, "s", path.name, window=4096))
    with pytest.raises(NotStreamable, match="not a JSON array"):
        list(JsonArrayReader(mirror / "belle" / "dev1K.json", "s", "dev1K.json"))


def test_the_parse_stage_reads_a_large_json_array_in_pieces(mirror, tmp_path, monkeypatch):
    """Well-formed arrays larger than their group (of rows, of non-objects, empty) are read and saved
    a piece of rows at a time; defective ones too, read again value by value (the first pieces
    discarded), except one parse_file gives up on (read whole); the stage writes the bytes of one
    pass over the files read whole."""
    import curate.parse_stream

    monkeypatch.setattr(curate.parse_stream, "PIECE_ROWS", 97)
    good = _arrays(mirror, tmp_path)
    bad = _defective_arrays(mirror, tmp_path)
    (tmp_path / "numbers.json").write_text(json.dumps(list(range(30_000))))
    (tmp_path / "empty.json").write_text("[" + " " * 200_000 + "]")
    names = ["big.json", "broken_late.json", "one_line.json", "numbers.json", "repeated_key.json", "empty.json",
             "bad_utf8.json", "huge_int.json"]
    paths = {**good, **bad, "numbers.json": tmp_path / "numbers.json", "empty.json": tmp_path / "empty.json"}
    files = [{"source": "user", "file": n, "path": str(paths[n])} for n in names]
    files.insert(2, {"source": "bad", "file": "wrong_types.json", "path": str(DATA / "bad" / "wrong_types.json")})
    ledger, plan = _stage_whole_and_in_groups(files, tmp_path, 100_000)
    for i, f in enumerate(files):
        if f["source"] == "bad":
            continue
        gdir = plan.group_dir(i, i + 1)
        assert (i, i + 1) in plan.groups
        if f["file"] == "huge_int.json":
            assert not (gdir / "pieces.json").exists() and not list(gdir.glob("piece-*")), f["file"]
        elif f["file"] == "empty.json":
            empty = [{"dir": "piece-00000", "kept": 0, "quarantined": 0}]
            assert json.loads((gdir / "pieces.json").read_text()) == empty
        else:
            pieces = json.loads((gdir / "pieces.json").read_text())
            assert len(pieces) > 10 and all(p["kept"] + p["quarantined"] >= 97 for p in pieces[:-1]), f["file"]
            assert len(list(gdir.glob("piece-*"))) == len(pieces), f["file"]
    _merged_as_whole(plan, ledger, tmp_path)
    stats = json.loads((tmp_path / "pieces" / "stats.json").read_text())
    assert stats["formats"] == {"json_array": 8, "unreadable": 1}
    assert any("line" in json.loads(q) for q in pd.read_parquet(tmp_path / "pieces" / "dropped.parquet")["extra"])
    assert stats["files"]["user/bad_utf8.json"]["encoding"] == "utf-8+invalid"
    assert stats["files"]["user/numbers.json"]["quarantined"] == 30_000


# ---- gzip ---------------------------------------------------------------------------------------

def _gzipped(paths: list[Path], dest: Path) -> dict[str, Path]:
    """Each file gzip-compressed, named as it was plus ``.gz``."""
    import gzip

    out = {}
    for path in paths:
        out[path.name + ".gz"] = dest / (path.name + ".gz")
        out[path.name + ".gz"].write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    return out


def test_gzip_files_are_read_in_pieces_as_reading_them_whole(mirror, tmp_path):
    """gzip of JSON lines, a JSON array, a CSV and a TSV: read through gzip by the reader their
    decompressed start and their name less ``.gz`` call for, with parse_file's rows, positions (in
    decompressed bytes), repairs (``decompressed_gzip`` first) and counts for any window. gzip of
    Parquet, of a defective array, or cut short: NotStreamable, read whole; of GB18030 text:
    NotUtf8 (read again in its encoding, below)."""
    import gzip

    src = tmp_path / "src"
    src.mkdir()
    plain = [_hostile_lines(mirror, src), _arrays(mirror, src)["big.json"], *list(_tables(mirror, src).values())[:2]]
    kinds = {"big.jsonl.gz": JsonLinesReader, "big.json.gz": JsonArrayReader, "big.csv.gz": CsvReader,
             "big.tsv.gz": CsvReader}
    for name, path in _gzipped(plain, tmp_path).items():
        whole = parse_file(path, "s", name)
        assert whole.repairs[0] == {"kind": "decompressed_gzip", "byte": 0} and whole.n_in > 1000
        assert type(reader_for(path, "s", name)) is kinds[name]
        for window in (333, 65_536):
            _as_read_whole(reader_for(path, "s", name, window=window, piece_rows=50), path)
    lines = parse_file(tmp_path / "big.jsonl.gz", "s", "big.jsonl.gz")
    assert max(r.get("byte", 0) for r in lines.repairs) > 2 * lines.bytes  # positions in decompressed bytes
    refused = _gzipped([_tables(mirror, src)["big.parquet"], _defective_arrays(mirror, src)["broken_late.json"],
                        DATA / "bad" / "gbk.json"], tmp_path)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress((mirror / "belle" / "dev1K.json").read_bytes())[:-2000])
    for name, path in {**refused, "cut.jsonl.gz": cut}.items():
        with pytest.raises(NotStreamable, match=name):
            list(reader_for(path, "s", name, window=4096))
    with pytest.raises(NotStreamable, match="a damaged gzip file"):
        list(JsonLinesReader(cut, "s", "cut.jsonl.gz", window=4096))


def test_the_parse_stage_reads_a_large_gzip_file_in_pieces(mirror, tmp_path, monkeypatch):
    """gzip files larger than their group are read and saved a piece of rows at a time, a damaged
    one is read whole (and fails as it does read whole); the stage writes the bytes of one pass
    over the files read whole."""
    import gzip

    import curate.parse_stream

    monkeypatch.setattr(curate.parse_stream, "PIECE_ROWS", 97)
    src = tmp_path / "src"
    src.mkdir()
    paths = _gzipped([_hostile_lines(mirror, src), _arrays(mirror, src)["big.json"]], tmp_path)
    (tmp_path / "cut.jsonl.gz").write_bytes(gzip.compress((mirror / "belle" / "dev1K.json").read_bytes() * 60)[:-9000])
    paths["cut.jsonl.gz"] = tmp_path / "cut.jsonl.gz"
    files = [{"source": "user", "file": n, "path": str(p)} for n, p in paths.items()]
    assert all(p.stat().st_size > 50_000 for p in paths.values())
    ledger, plan = _stage_whole_and_in_groups(files, tmp_path, 50_000)
    for i, f in enumerate(files):
        gdir = plan.group_dir(i, i + 1)
        if f["file"] == "cut.jsonl.gz":
            assert not (gdir / "pieces.json").exists() and not list(gdir.glob("piece-*"))
        else:
            pieces = json.loads((gdir / "pieces.json").read_text())
            assert len(pieces) > 10 and all(p["kept"] + p["quarantined"] >= 97 for p in pieces[:-1]), f["file"]
    _merged_as_whole(plan, ledger, tmp_path)
    stats = json.loads((tmp_path / "pieces" / "stats.json").read_text())
    assert stats["files"]["user/cut.jsonl.gz"]["format"] == "unreadable"
    assert stats["formats"]["json_lines"] == 1 and stats["formats"]["json_array"] == 1


# ---- text that is not UTF-8 -----------------------------------------------------------------------

def _other_encodings(mirror: Path, dest: Path) -> dict[str, Path]:
    """Real rows in the encodings parse_file reads besides UTF-8: BELLE's dev set (with the hostile
    lines) as GB18030 JSON lines, with a byte that is not GB18030 and a four-byte sequence cut by a
    line break; the array items as GB18030; UTF-16-LE lines without a byte-order mark; a UTF-16-BE
    array with one; UTF-8 with stray bytes far in; gzip of the GB18030 lines; a Latin-1 file (no
    encoding fits: read whole); a GB18030 array with a broken item, a trailing comma and no ``]``."""
    import gzip

    lines = _hostile_lines(mirror, dest).read_text(encoding="utf-8")
    # characters GB18030 cannot write (lone surrogates) are left out of the GB18030 copies
    gb = lines.encode("gb18030", "replace")
    gb = gb.replace(b"\n{", b'\n{"instruction": "\xff\xfe", "output": "x"}\n{', 1)
    gb += b'\n{"instruction": "\x81\x30\n", "output": "x"}\n'
    items = _array_items(mirror)
    out = {n: dest / n for n in ("gb.jsonl", "gb_array.json", "utf16.jsonl", "utf16be.json", "stray.jsonl",
                                 "gb.jsonl.gz", "latin1.jsonl", "gb_broken.json")}
    out["gb.jsonl"].write_bytes(gb)
    out["gb_array.json"].write_bytes(("[\n" + ",\n".join(items) + "\n]\n").encode("gb18030", "replace"))
    broken = items[:200] + [items[200].replace('"output":', '"output"', 1)] + items[201:]
    out["gb_broken.json"].write_bytes(("[\n" + ",\n".join(broken) + ",\n").encode("gb18030", "replace"))
    out["utf16.jsonl"].write_bytes((mirror / "belle" / "dev1K.json").read_text(encoding="utf-8").encode("utf-16-le"))
    out["utf16be.json"].write_bytes(b"\xfe\xff" + ("[" + ",".join(items[:300]) + "]").encode("utf-16-be", "replace"))
    raw = (mirror / "belle" / "dev1K.json").read_bytes()
    out["stray.jsonl"].write_bytes(raw + raw.replace("。".encode(), b"\xe3\x80", 3))
    out["gb.jsonl.gz"].write_bytes(gzip.compress(gb, mtime=0))
    out["latin1.jsonl"].write_bytes((DATA / "hostile" / "latin1.jsonl").read_bytes() * 400)
    return out


def test_text_in_other_encodings_is_read_in_pieces_as_reading_it_whole(mirror, tmp_path):
    """Every file parse_file decodes as GB18030, UTF-16 or UTF-8 with bad bytes: the UTF-8 reader
    raises NotUtf8; ``text_encoding``, deciding a window at a time, finds parse_file's encoding, and
    the reader with it gives parse_file's rows, quarantine (``invalid_gbk``, ``invalid_utf8``, with
    their bytes), repairs and counts for any window. No encoding fits Latin-1: NotStreamable."""
    files = _other_encodings(mirror, tmp_path)
    kinds = {"gb_array.json": JsonArrayReader, "utf16be.json": JsonArrayReader, "gb_broken.json": TolerantArrayReader}
    labels = set()
    for name, path in files.items():
        whole = parse_file(path, "s", name) if name != "latin1.jsonl" else None
        with pytest.raises(NotUtf8 if whole else NotStreamable, match=name):
            list(reader_for(path, "s", name, window=4096))
        if whole is None:
            with pytest.raises(NotStreamable, match="neither UTF-8 nor GB18030"):
                text_encoding(path, 4096)
            continue
        assert whole.n_in > 200 and whole.encoding != "utf-8"
        labels.add(whole.encoding)
        for window in (333, 65_536):
            encoding = text_encoding(path, window)
            assert encoding.label == whole.encoding
            tolerant = name == "gb_broken.json"
            if tolerant:
                with pytest.raises(NotWellFormed, match=name):
                    list(reader_for(path, "s", name, window=window, encoding=encoding))
            reader = reader_for(path, "s", name, window=window, piece_rows=50, encoding=encoding, tolerant=tolerant)
            assert type(reader) is kinds.get(name, JsonLinesReader)
            _as_read_whole(reader, path)
    assert labels == {"gb18030+invalid", "gb18030", "utf-16-le", "utf-16-be", "utf-8+invalid"}
    gb = parse_file(files["gb.jsonl"], "s", "gb.jsonl")
    assert [q["reason"] for q in gb.quarantine].count("invalid_gbk") == 2
    assert any(q["reason"] == "invalid_utf8" for q in parse_file(files["stray.jsonl"], "s", "x").quarantine)


def test_a_gbk_file_cut_inside_a_four_byte_character_is_read(tmp_path):
    """A GB18030 file that ends inside a four-byte character (a download cut short) decodes its last
    bytes as escapes of ASCII bytes too; deciding the encoding must not fail on them (it raised
    UnicodeEncodeError): the file is GB18030, and only the cut row is quarantined, read in pieces
    or whole."""
    rows = "".join(f'{{"instruction": "第{i}个问题是什么", "output": "这是中文的回答"}}\n' for i in range(30))
    path = tmp_path / "cut.jsonl"
    path.write_bytes(rows.encode("gb18030") + '{"instruction": "问题'.encode("gb18030") + b"\x81\x30")
    res = parse_file(path, "s", path.name)
    assert res.encoding == "gb18030+invalid" and len(res.records) == 30 and len(res.quarantine) == 1
    assert {"kind": "decoded_gb18030", "byte": 17} in res.repairs  # "第", the first byte that is not UTF-8
    for window in (1, 5, 4096):
        _as_read_whole(reader_for(path, "s", path.name, window=window, encoding=text_encoding(path, window)), path)
    # UTF-8 cut inside a character: the first bad byte is in the decoder's last flush
    path.write_bytes(rows.encode() + b'{"instruction": "\xe9\x97')
    res = parse_file(path, "s", path.name)
    assert res.encoding == "utf-8+invalid" and {"kind": "invalid_utf8_bytes", "byte": len(rows.encode()) + 17} in res.repairs
    for window in (1, 5, 4096):
        _as_read_whole(reader_for(path, "s", path.name, window=window, encoding=text_encoding(path, window)), path)


def test_the_parse_stage_reads_large_files_in_other_encodings_in_pieces(mirror, tmp_path, monkeypatch):
    """Large GB18030, UTF-16 and damaged UTF-8 files are read in pieces in their encoding (the
    UTF-8 attempt's pieces discarded), a Latin-1 one whole; the stage writes the bytes of one pass
    over the files read whole."""
    import curate.parse_stream

    monkeypatch.setattr(curate.parse_stream, "PIECE_ROWS", 97)
    paths = _other_encodings(mirror, tmp_path)
    files = [{"source": "user", "file": n, "path": str(p)} for n, p in paths.items()]
    assert all(p.stat().st_size > 50_000 for p in paths.values())
    ledger, plan = _stage_whole_and_in_groups(files, tmp_path, 50_000)
    for i, f in enumerate(files):
        gdir = plan.group_dir(i, i + 1)
        if f["file"] == "latin1.jsonl":
            assert not (gdir / "pieces.json").exists() and not list(gdir.glob("piece-*"))
        else:
            pieces = json.loads((gdir / "pieces.json").read_text())
            assert len(pieces) > 3 and all(p["kept"] + p["quarantined"] >= 97 for p in pieces[:-1]), f["file"]
            assert len(list(gdir.glob("piece-*"))) == len(pieces)
    _merged_as_whole(plan, ledger, tmp_path)
    stats = json.loads((tmp_path / "pieces" / "stats.json").read_text())
    assert stats["files"]["user/latin1.jsonl"]["format"] == "undecodable"
    assert stats["files"]["user/gb.jsonl.gz"]["encoding"] == "gb18030+invalid"
