"""A large JSON-lines file read a window at a time (curate/parse_stream.py): the rows, quarantine,
positions, repairs and stats of reading it whole, whatever the window, and the parse stage's bytes."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from curate.parse import parse_file, parse_files
from curate.parse_stream import JsonLinesReader, NotStreamable

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


def _same(path: Path, window: int, piece_rows: int = 7) -> int:
    whole = parse_file(path, "s", path.name)
    reader = JsonLinesReader(path, "s", path.name, window=window, piece_rows=piece_rows)
    pieces = list(reader)
    assert [r for p in pieces for r in p.records] == whole.records
    assert [q for p in pieces for q in p.quarantine] == whole.quarantine
    res = reader.result
    assert (res.n_in, res.format, res.schemas, res.repairs, res.encoding, res.bytes) == (
        whole.n_in, whole.format, whole.schemas, whole.repairs, whole.encoding, whole.bytes)
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
    """Arrays, other encodings, gzip, tables: NotStreamable, naming the file (the stage reads them
    whole); bytes that are not UTF-8 after the first window too."""
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


def test_the_parse_stage_reads_a_large_json_lines_file_in_pieces(mirror, tmp_path, monkeypatch):
    """A JSON-lines file larger than its group is read a window at a time and saved a piece of rows
    at a time; the stage writes the bytes of one pass over the files read whole. A file that turns
    out not to be UTF-8 JSON lines (late bad bytes) is read whole, nothing of its pieces left."""
    import curate.parse_stream
    from curate import pipeline

    monkeypatch.setattr(curate.parse_stream, "PIECE_ROWS", 97)
    big = _hostile_lines(mirror, tmp_path)
    late = tmp_path / "late.jsonl"
    late.write_bytes((mirror / "belle" / "dev1K.json").read_bytes() + b'{"instruction": "\xff", "output": "x"}\n')
    files = [{"source": "belle", "file": "big.jsonl", "path": str(big)},
             {"source": "bad", "file": "control_chars.jsonl", "path": str(DATA / "bad" / "control_chars.jsonl")},
             {"source": "belle", "file": "late.jsonl", "path": str(late)},
             {"source": "trans", "file": "part_0.json",
              "path": str(mirror / "trans_chinese_alpaca" / "alpaca_chinese_part_0.json")}]
    whole = pipeline.plan_parse(files, tmp_path / "whole", group_bytes=1 << 40)
    pipeline.run_parse_group(whole, 0, len(files))
    ledger = pipeline.finish_parse(whole)

    plan = pipeline.plan_parse(files, tmp_path / "pieces", group_bytes=200_000)
    assert plan.groups[0] == (0, 1)  # the large file alone
    for a, b in plan.groups:
        pipeline.run_parse_group(plan, a, b)
    gdir = plan.group_dir(0, 1)
    pieces = json.loads((gdir / "pieces.json").read_text())
    assert len(pieces) > 10 and all(p["kept"] + p["quarantined"] == 97 for p in pieces[:-1])
    late_dir = plan.group_dir(*next(g for g in plan.groups if g[0] == 2))
    assert not (late_dir / "pieces.json").exists() and not list(late_dir.glob("piece-*"))
    assert pipeline.finish_parse(plan) == ledger
    for name in ("kept.parquet", "dropped.parquet", "stats.json", "ledger.json"):
        assert (tmp_path / "pieces" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    res = parse_files(files)
    assert ledger["in"] == res.stats["in"] and len(pd.read_parquet(tmp_path / "pieces" / "kept.parquet")) == len(res.kept)
