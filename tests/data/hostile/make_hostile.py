"""Writes the hostile-input corpus (run it to regenerate; the bytes are committed, except the 5 MB row).

Hostile but realistic: what a user's folder or a damaged download really holds. Every file is
synthetic (hand-written Chinese rows, no mirror data). ``EXPECTED`` says, per file, what the parse
stage must make of it (format, rows kept, rows quarantined by reason) and what the filter stage
then drops; ``tests/test_hostile.py`` asserts all of it, and ``expected.json`` holds the same for
people. ``build(dest, big=True)`` also writes the 5 MB row (``huge_row.json``), which is not
committed: tests build it in a temporary folder.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEPTH = 100_000  # the nesting depth that ended whole runs with a RecursionError

ROWS = [
    {"instruction": "解释什么是光合作用。", "input": "", "output": "光合作用是植物利用光能合成有机物的过程。"},
    {"instruction": "把下面的句子翻译成英文。", "input": "今天天气很好。", "output": "The weather is nice today."},
    {"instruction": "列出三种常见的水果。", "input": "", "output": "苹果、香蕉、橙子。"},
]


def drill(i: int) -> dict:
    return {"instruction": f"第{i}题：计算{i}加{i + 1}等于多少？", "input": "", "output": f"{i}加{i + 1}等于{2 * i + 1}。"}


def line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def lines(rows: list[dict]) -> str:
    return "".join(line(r) + "\n" for r in rows)


# file -> (parse format, rows kept by parse, {reason: rows quarantined by parse}, {reason: rows the filter drops})
EXPECTED: dict[str, tuple[str, int, dict[str, int], dict[str, int]]] = {
    "deep_array.json": ("json_array", 0, {"too_deeply_nested": 1}, {}),
    "deep_row.jsonl": ("json_lines", 2, {"too_deeply_nested": 1}, {}),
    "deep_extra.jsonl": ("json_lines", 1, {"too_deeply_nested": 1}, {}),
    "utf16_bom.json": ("json_array", 3, {}, {}),
    "utf16be_bom.jsonl": ("json_lines", 3, {}, {}),
    "utf16_no_bom.jsonl": ("json_lines", 3, {}, {}),
    "utf32_bom.json": ("json_array", 3, {}, {}),
    "gbk_stray_byte.jsonl": ("json_lines", 199, {"invalid_gbk": 1}, {}),
    "latin1.jsonl": ("undecodable", 0, {"undecodable_file": 3}, {}),
    "rows.csv": ("csv", 3, {}, {}),
    "rows.tsv": ("tsv", 3, {}, {}),
    "prompt_response.csv": ("csv", 0, {"missing_instruction_and_output": 2}, {}),
    "rows.parquet": ("parquet", 3, {}, {}),
    "rows.json.gz": ("json_array", 3, {}, {}),
    "archive.zip": ("unreadable", 0, {"unsupported_format": 1}, {}),
    "corrupt.parquet": ("unreadable", 0, {"unreadable_file": 1}, {}),
    "nul_between_rows.jsonl": ("json_lines", 3, {}, {}),
    "emoji_zwj.jsonl": ("json_lines", 1, {}, {}),
    "repeated_key.jsonl": ("json_lines", 2, {"repeated_key": 1}, {}),
    "empty.jsonl": ("empty", 0, {}, {}),
    "only_nul.json": ("empty", 0, {}, {}),
}
BIG = {"huge_row.json": ("json_array", 3, {}, {"field_too_long": 1})}
EMOJI = "一家人👨\u200d👩\u200d👧和彩虹旗🏳\ufe0f\u200d🌈"


def files(big: bool = False) -> dict[str, bytes]:
    out: dict[str, str | bytes] = {}
    # nesting: a whole file, one row's value, and a row whose extra fields nest past the row limit
    out["deep_array.json"] = "[" * DEPTH + "]" * DEPTH + "\n"
    out["deep_row.jsonl"] = (line(ROWS[0]) + "\n" + '{"instruction": "深", "output": ' + "[" * 5000 + "]" * 5000
                             + "}\n" + line(ROWS[1]) + "\n")
    out["deep_extra.jsonl"] = (line({**ROWS[0], "meta": json.loads("[" * 500 + "]" * 500)}) + "\n"
                               + line(ROWS[2]) + "\n")
    # encodings: UTF-16/32 with a byte-order mark, UTF-16 without one, GBK with one stray byte, Latin-1
    out["utf16_bom.json"] = b"\xff\xfe" + json.dumps(ROWS, ensure_ascii=False).encode("utf-16-le")
    out["utf16be_bom.jsonl"] = b"\xfe\xff" + lines(ROWS).encode("utf-16-be")
    out["utf16_no_bom.jsonl"] = lines(ROWS).encode("utf-16-le")
    out["utf32_bom.json"] = b"\xff\xfe\x00\x00" + json.dumps(ROWS, ensure_ascii=False).encode("utf-32-le")
    gbk = lines([drill(i) for i in range(200)]).encode("gbk")
    at = gbk.index("第57题".encode("gbk"))
    out["gbk_stray_byte.jsonl"] = gbk[:at] + b"\x80" + gbk[at:]  # one byte no GBK character starts with
    out["latin1.jsonl"] = lines([{"instruction": "Qu'est-ce qu'un café ?", "output": "Une boisson."},
                                 {"instruction": "Où est la gare ?", "output": "Tout droit."},
                                 {"instruction": "Traduire « été ».", "output": "summer"}]).encode("latin-1")
    # tables and containers users keep data in
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["instruction", "input", "output"])
    w.writerow(["解释什么是光合作用。", "", "光合作用是植物利用光能合成有机物的过程。"])
    w.writerow(["把下面的句子翻译成英文。", "今天天气很好。", "The weather is nice today."])
    w.writerow(["写一首关于秋天的短诗，要有逗号,和换行。", "", "秋风起，\n落叶黄。"])
    out["rows.csv"] = buf.getvalue()
    out["rows.tsv"] = "instruction\tinput\toutput\n" + "".join(
        f"{r['instruction']}\t{r['input']}\t{r['output']}\n" for r in ROWS)
    out["prompt_response.csv"] = "prompt,response\n另一种格式的问题,另一种格式的回答\n第二个问题,第二个回答\n"
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table({"instruction": [r["instruction"] for r in ROWS], "input": [r["input"] for r in ROWS],
                             "output": [r["output"] for r in ROWS],
                             "history": [[["你好", "你好！"]], [], []]}), sink)
    out["rows.parquet"] = sink.getvalue()
    out["rows.json.gz"] = gzip.compress(json.dumps(ROWS, ensure_ascii=False).encode("utf-8"), mtime=0)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr(zipfile.ZipInfo("rows.json", date_time=(2020, 1, 1, 0, 0, 0)), json.dumps(ROWS, ensure_ascii=False))
    out["archive.zip"] = zbuf.getvalue()
    out["corrupt.parquet"] = b"PAR1" + b"\x15\x00\x15\x1c\x2c" * 8 + b"not really parquet"
    # NUL padding between rows (a crash-padded file) is blank, not a row; a file of NULs is empty
    out["nul_between_rows.jsonl"] = (lines(ROWS[:2]) + "\x00" * 64 + "\n" + line(ROWS[2]) + "\n" + "\x00" * 16)
    out["emoji_zwj.jsonl"] = line({"instruction": f"描述这个表情：{EMOJI}", "input": "", "output": "这是一家三口。"}) + "\n"
    # a repeated text key would silently lose its first value; a repeated other key is harmless
    out["repeated_key.jsonl"] = ('{"instruction": "第一个问题", "output": "第一个回答", "instruction": "第二个问题"}\n'
                                 + line({**ROWS[0]})[:-1] + ', "tag": 1, "tag": 2}\n' + line(ROWS[1]) + "\n")
    out["empty.jsonl"] = ""
    out["only_nul.json"] = "\x00" * 32
    if big:
        para = "这是一篇很长很长的文章，它被整本粘贴进了输入字段。"
        huge = {"instruction": "请总结下面这篇文章。", "input": para * (5_000_000 // len(para)), "output": "太长了。"}
        out["huge_row.json"] = json.dumps([ROWS[0], huge, ROWS[2]], ensure_ascii=False)
    return {k: v.encode("utf-8") if isinstance(v, str) else v for k, v in out.items()}


def build(dest: Path, big: bool = False) -> dict[str, tuple]:
    """Write the corpus into ``dest``; returns the expectations of the files written."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in files(big).items():
        (dest / name).write_bytes(data)
    return {**EXPECTED, **(BIG if big else {})}


if __name__ == "__main__":
    for name, data in files().items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data):,} bytes")
    expected = {name: {"format": f, "parse_kept": k, "parse_quarantined": q, "filter_dropped": d}
                for name, (f, k, q, d) in {**EXPECTED, **BIG}.items()}
    (HERE / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
