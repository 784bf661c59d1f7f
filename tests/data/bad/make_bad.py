"""Writes the bad-input corpus in this folder (run it to regenerate; the bytes are committed).

Every file is small and synthetic (hand-written rows, no mirror data). What each one holds and how
the parser must handle it is in README.md and asserted in tests/test_bad_input.py. The 10 MB row is
not here: the test builds it in a temporary folder.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

ROWS = [
    {"instruction": "解释什么是光合作用。", "input": "", "output": "光合作用是植物利用光能把二氧化碳和水合成有机物并释放氧气的过程。"},
    {"instruction": "把下面的句子翻译成英文。", "input": "今天天气很好。", "output": "The weather is nice today."},
    {"instruction": "列出三种常见的水果。", "input": "", "output": "苹果、香蕉、橙子。"},
    {"instruction": "计算12乘以8等于多少？", "input": "", "output": "12乘以8等于96。"},
]


def line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False)


def array(rows: list[dict]) -> str:
    return "[\n" + ",\n".join("  " + line(r) for r in rows) + "\n]\n"


def files() -> dict[str, bytes]:
    r0, r1, r2, r3 = ROWS
    out: dict[str, str | bytes] = {}
    # invalid JSON
    out["trailing_comma.json"] = "[\n" + ",\n".join("  " + line(r) for r in ROWS[:3]) + ",\n]\n"
    out["junk_after_end.json"] = array(ROWS[:2]) + "}\n<!-- 导出结束 -->\n"
    whole = array(ROWS[:3])
    out["truncated.json"] = whole[: whole.index("苹果") + 1]  # cut inside the third row's output
    # encodings
    out["gbk.json"] = array(ROWS[:3]).encode("gbk")
    gb_rows = [{"instruction": "“𠀀”和“㐀”是什么字？", "input": "", "output": "它们是扩展区的汉字。"}, r3]
    out["gb18030.jsonl"] = "\n".join(line(r) for r in gb_rows).encode("gb18030") + b"\n"
    gbk_lines = [line(r) for r in ROWS]
    gbk_lines[1] = gbk_lines[1][:-12]  # a GBK file with a line cut short: positions count GBK bytes
    out["gbk_cut_line.jsonl"] = ("\n".join(gbk_lines) + "\n").encode("gbk")
    out["latin1.json"] = '[{"instruction": "Qu\'est-ce qu\'un café ?", "output": "Une boisson."}]\n'.encode("latin-1")
    stray = "\n".join(line(r) for r in ROWS).encode("utf-8")
    bad_at = stray.index("香蕉".encode())
    out["stray_byte.jsonl"] = stray[:bad_at] + b"\xff" + stray[bad_at:] + b"\n"  # one byte that is not UTF-8
    out["bom.json"] = b"\xef\xbb\xbf" + array(ROWS[:2]).encode("utf-8")
    out["bom.jsonl"] = b"\xef\xbb\xbf" + "\n".join(line(r) for r in ROWS[:2]).encode("utf-8") + b"\n"
    # NUL bytes and control characters
    out["control_chars.jsonl"] = "\n".join([
        line(r0),
        '{"instruction": "第一列\t第二列", "input": "", "output": "表格用制表符分隔。"}',  # raw TAB in a string
        '{"instruction": "空字符\x00在这里", "input": "", "output": "NUL 写在了字符串里。"}',  # raw NUL in a string
        '{"instruction": "转义的\\u0000空字符", "input": "", "output": "这是合法的 JSON 转义。"}',  # escaped NUL: valid
        "\x00\x00\x00\x00",  # a run of NUL bytes between rows (a crash-padded file)
        '{"instruction": "响铃\x07和退格\x08", "input": "", "output": "其他控制字符。"}',
        line(r3),
    ]) + "\n"
    # wrong types and missing keys
    out["wrong_types.json"] = json.dumps([
        {"instruction": 42, "input": None, "output": 3.5},  # numbers and null: kept as text
        {"instruction": ["列表", "不是文本"], "input": "", "output": "x"},
        {"instruction": "对象", "input": "", "output": {"text": "嵌套"}},
        {"instruction": "布尔", "input": True, "output": "真"},
        None,
        r2,
    ], ensure_ascii=False, indent=1)
    out["missing_keys.jsonl"] = "\n".join([
        '{"instruction": "只有指令没有输出"}',
        '{"output": "只有输出没有指令"}',
        "{}",
        '{"instruction": "", "input": "只有输入", "output": ""}',
        line(r1),
    ]) + "\n"
    # empty and shapes
    out["empty.json"] = ""
    out["empty_array.json"] = "[]\n"
    out["top_level_object.json"] = json.dumps({"version": 2, "rows": ROWS[:2]}, ensure_ascii=False, indent=1)
    out["mixed_schemas.jsonl"] = "\n".join([
        line(r0),
        line({**r1, "history": [["你好", "你好！有什么可以帮你？"]]}),
        line({"id": "seed_task_1", "name": "antonym", "instruction": "写出反义词。", "is_classification": False,
              "instances": [{"input": "高", "output": "低"}, {"input": "快", "output": "慢"}]}),
        line({"input": ["你好", "讲个笑话"], "output": ["你好！", "从前有座山……"]}),
        line({"prompt": "另一种格式的问题", "response": "另一种格式的回答"}),
        "[1, 2, 3]",
        '"只是一个字符串"',
        line(r3),
    ]) + "\n"
    return {k: v.encode("utf-8") if isinstance(v, str) else v for k, v in out.items()}


if __name__ == "__main__":
    for name, data in files().items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")
