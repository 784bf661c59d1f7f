"""The probe's rules: exact answer functions on Chinese inputs, their input generators and phrasings.

Every answer is computed by code from the input text (the answer functions parse what they are
given, so hand-made cases in tests check the same code the suite uses). A rule belongs to a
family; its ``kind`` says how the suite uses it: ``seen`` rules may be trained on, ``new`` rules
(of a seen family) and ``composition`` rules (two seen rules in a row) are never trained on.
Each rule has five Chinese phrasings (templates whose ``{c}``, ``{n}``, ``{table}``, ``{a}``,
``{b}`` slots are filled per item); for seen rules the first three may be trained on and the last
two are held out.
"""
from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass
from typing import Callable

# ---- alphabets ------------------------------------------------------------------------------------

CHARS = "天地人山水火木金土日月星云风雨花草鸟鱼马牛羊春夏秋冬东南西北"
WORDS = ("苹果", "香蕉", "西瓜", "葡萄", "橘子", "桃子", "草莓", "芒果", "柠檬", "菠萝", "老师", "学生",
         "医生", "工人", "农民", "飞机", "火车", "轮船", "汽车", "电脑", "手机", "书包", "铅笔", "桌子")
FIELDS = ("姓名", "城市", "职业", "爱好", "颜色", "动物")
VALUES = ("张三", "李四", "王五", "赵六", "北京", "上海", "广州", "成都", "画画", "唱歌", "游泳", "红色",
          "蓝色", "绿色", "熊猫", "老虎", "厨师", "司机", "律师", "护士")
LIST_SEPS = ("，", "、")

# ---- Chinese numerals -----------------------------------------------------------------------------

_DIGITS = "零一二三四五六七八九"
_UNITS = ((1000, "千"), (100, "百"), (10, "十"))


def cn_numeral(n: int) -> str:
    """0 ≤ n ≤ 9999 in Chinese numerals as commonly written: 10 十, 37 三十七, 105 一百零五, 110 一百一十."""
    if not 0 <= n <= 9999:
        raise ValueError(f"{n} out of range 0..9999")
    if n == 0:
        return "零"
    out, zero_pending, started = [], False, False
    for value, unit in _UNITS:
        d = n // value % 10
        if d:
            if zero_pending:
                out.append("零")
                zero_pending = False
            out.append(("" if (value == 10 and not started and d == 1) else _DIGITS[d]) + unit)
            started = True
        elif started:
            zero_pending = True
    d = n % 10
    if d:
        if zero_pending:
            out.append("零")
        out.append(_DIGITS[d])
    return "".join(out)


def parse_cn_numeral(s: str) -> int:
    """The value of a Chinese numeral 0..9999 (十 = 10, 一十 = 10, 两 = 2, 零 as a gap)."""
    s = s.strip().replace("两", "二")
    if not s or any(ch not in _DIGITS + "十百千" for ch in s):
        raise ValueError(f"not a Chinese numeral: {s!r}")
    if s == "零":
        return 0
    total, digit = 0, None
    for ch in s:
        if ch in _DIGITS:
            digit = _DIGITS.index(ch)
        else:
            unit = {"十": 10, "百": 100, "千": 1000}[ch]
            total += (1 if digit is None else digit) * unit
            digit = None
    return total + (digit or 0)


def cn_arith(expr: str) -> str:
    """``三十七加五`` → ``42``; ``三十七减五`` → ``32`` (Arabic digits)."""
    m = re.fullmatch(r"\s*([零一二两三四五六七八九十百千]+)\s*(加|减)\s*([零一二两三四五六七八九十百千]+)\s*", expr)
    if not m:
        raise ValueError(f"not a Chinese-numeral sum or difference: {expr!r}")
    a, b = parse_cn_numeral(m.group(1)), parse_cn_numeral(m.group(3))
    return str(a + b if m.group(2) == "加" else a - b)


# ---- answer functions -----------------------------------------------------------------------------


def reverse(s: str) -> str:
    return s[::-1]


def dedupe_chars(s: str) -> str:
    """Each character once, at its first occurrence."""
    return "".join(dict.fromkeys(s))


def count_char(s: str, c: str) -> str:
    return str(s.count(c))


def remove_char(s: str, c: str) -> str:
    return s.replace(c, "")


def double_chars(s: str) -> str:
    return "".join(ch * 2 for ch in s)


def sort_digits(s: str, descending: bool = False) -> str:
    return "".join(sorted(s, reverse=descending))


def digit_sum(s: str) -> str:
    return str(sum(int(ch) for ch in s))


def max_digit(s: str) -> str:
    return max(s)


def split_list(s: str) -> tuple[list[str], str]:
    """Items of a list separated by ``，`` or ``、`` (one separator per list), and that separator."""
    seps = [sep for sep in LIST_SEPS if sep in s]
    if len(seps) != 1:
        raise ValueError(f"expected a list separated by exactly one of {LIST_SEPS}: {s!r}")
    return s.split(seps[0]), seps[0]


def nth_item(s: str, n: int) -> str:
    """The n-th item, counting from 1."""
    return split_list(s)[0][n - 1]


def count_items(s: str) -> str:
    return str(len(split_list(s)[0]))


def last_item(s: str) -> str:
    return split_list(s)[0][-1]


def reverse_list(s: str) -> str:
    items, sep = split_list(s)
    return sep.join(reversed(items))


def cn_date_to_iso(s: str) -> str:
    """``2023年7月3日`` → ``2023-07-03`` (the date must exist)."""
    y, m, d = _cn_date(s)
    return f"{y:04d}-{m:02d}-{d:02d}"


def cn_date_to_slash(s: str) -> str:
    """``2023年7月3日`` → ``2023/07/03``."""
    y, m, d = _cn_date(s)
    return f"{y:04d}/{m:02d}/{d:02d}"


def iso_to_cn_date(s: str) -> str:
    """``2023-07-03`` → ``2023年7月3日``."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", s.strip())
    if not m:
        raise ValueError(f"not a YYYY-MM-DD date: {s!r}")
    d = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return f"{d.year}年{d.month}月{d.day}日"


def _cn_date(s: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"(\d{4})年(\d{1,2})月(\d{1,2})日", s.strip())
    if not m:
        raise ValueError(f"not a 年月日 date: {s!r}")
    d = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return d.year, d.month, d.day


def parse_table(table: str) -> dict[str, str]:
    """``天→山，地→水`` → ``{'天': '山', '地': '水'}``."""
    out = {}
    for pair in table.split("，"):
        src, dst = pair.split("→")
        out[src] = dst
    return out


def substitute(s: str, table: str) -> str:
    """Every character through the table (characters not in it stay)."""
    t = parse_table(table)
    return "".join(t.get(ch, ch) for ch in s)


def wrap_words(s: str, left: str = "【", right: str = "】") -> str:
    """Space-separated words, each wrapped, joined without spaces: ``苹果 香蕉`` → ``【苹果】【香蕉】``."""
    return "".join(f"{left}{w}{right}" for w in s.split())


def parse_record(s: str) -> list[tuple[str, str]]:
    """``姓名：张三；城市：北京`` → ``[('姓名', '张三'), ('城市', '北京')]``."""
    return [tuple(part.split("：", 1)) for part in s.split("；")]  # type: ignore[misc]


def swap_fields(s: str, a: str, b: str) -> str:
    rec = parse_record(s)
    vals = dict(rec)
    vals[a], vals[b] = vals[b], vals[a]
    return "；".join(f"{k}：{vals[k]}" for k, _ in rec)


def get_field(s: str, a: str) -> str:
    return dict(parse_record(s))[a]


# ---- input generators -----------------------------------------------------------------------------
# Each returns (input, params): params fill the phrasing's slots and feed the answer function.


def _chars(rng: random.Random, lo: int = 4, hi: int = 7, alphabet: str = CHARS) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def gen_chars(rng: random.Random) -> tuple[str, dict]:
    return _chars(rng), {}


def gen_chars_repeats(rng: random.Random) -> tuple[str, dict]:
    """A string with at least one repeated character (else removing repeats would be a copy)."""
    while True:
        s = _chars(rng, 5, 8, "".join(rng.sample(CHARS, 5)))
        if len(set(s)) < len(s):
            return s, {}


def gen_chars_with_c(rng: random.Random) -> tuple[str, dict]:
    s = _chars(rng, 5, 8, "".join(rng.sample(CHARS, 4)))
    return s, {"c": rng.choice(s)}


def gen_digits(rng: random.Random) -> tuple[str, dict]:
    while True:
        s = "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 8)))
        if sort_digits(s) != s and sort_digits(s, True) != s:
            return s, {}


def gen_list(rng: random.Random) -> tuple[str, dict]:
    items = rng.sample(WORDS, rng.randint(3, 6))
    return rng.choice(LIST_SEPS).join(items), {}


def gen_list_nth(rng: random.Random) -> tuple[str, dict]:
    s, _ = gen_list(rng)
    n = rng.randint(1, len(split_list(s)[0]))
    return s, {"n": cn_numeral(n)}


def gen_add(rng: random.Random) -> tuple[str, dict]:
    return f"{cn_numeral(rng.randint(0, 99))}加{cn_numeral(rng.randint(0, 99))}", {}


def gen_sub(rng: random.Random) -> tuple[str, dict]:
    a, b = sorted((rng.randint(0, 99), rng.randint(0, 99)), reverse=True)
    return f"{cn_numeral(a)}减{cn_numeral(b)}", {}


def gen_cn_number(rng: random.Random) -> tuple[str, dict]:
    return cn_numeral(rng.randint(1, 999)), {}


def gen_arabic_number(rng: random.Random) -> tuple[str, dict]:
    return str(rng.randint(1, 999)), {}


_DAY0 = dt.date(1950, 1, 1)


def _date(rng: random.Random) -> dt.date:
    return _DAY0 + dt.timedelta(days=rng.randint(0, 36524))


def gen_cn_date(rng: random.Random) -> tuple[str, dict]:
    d = _date(rng)
    return f"{d.year}年{d.month}月{d.day}日", {}


def gen_iso_date(rng: random.Random) -> tuple[str, dict]:
    return _date(rng).isoformat(), {}


def gen_table(rng: random.Random) -> tuple[str, dict]:
    letters = rng.sample(CHARS, 10)
    src, dst = letters[:5], letters[5:]
    table = "，".join(f"{a}→{b}" for a, b in zip(src, dst))
    return "".join(rng.choice(src) for _ in range(rng.randint(4, 7))), {"table": table}


def gen_words(rng: random.Random) -> tuple[str, dict]:
    return " ".join(rng.sample(WORDS, rng.randint(2, 4))), {}


def gen_record(rng: random.Random) -> tuple[str, dict]:
    fields = rng.sample(FIELDS, 3)
    vals = rng.sample(VALUES, 3)
    a, b = rng.sample(fields, 2)
    return "；".join(f"{f}：{v}" for f, v in zip(fields, vals)), {"a": a, "b": b}


# ---- the rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    family: str
    kind: str  # seen | new | composition
    gen: Callable[[random.Random], tuple[str, dict]]
    answer: Callable[..., str]  # answer(input, **params)
    phrasings: tuple[str, ...]


def _p(*ps: str) -> tuple[str, ...]:
    return ps


RULES: tuple[Rule, ...] = (
    # -- chars: strings of Chinese characters
    Rule("reverse", "chars", "seen", gen_chars, lambda s: reverse(s), _p(
        "把这串字倒过来写。", "反转下面的字符串。", "请把输入的每个字按从后到前的顺序重新排列后输出。",
        "倒序输出这些字。", "请仔细看下面这串汉字，把它们的顺序整个颠倒过来，只写出结果，不要解释。")),
    Rule("dedupe_chars", "chars", "seen", gen_chars_repeats, lambda s: dedupe_chars(s), _p(
        "去掉重复的字，每个字只保留第一次出现。", "删除重复字符。", "请把输入中重复出现的字去掉，保留每个字第一次出现的位置，其他顺序不变。",
        "每个字只留一个，输出结果。", "下面这串字里有些字出现了不止一次，请只保留它们第一次出现的那一个，把后面重复的都删掉。")),
    Rule("count_char", "chars", "seen", gen_chars_with_c, lambda s, c: count_char(s, c), _p(
        "“{c}”出现了几次？", "数一数输入里有几个“{c}”。", "请统计字符“{c}”在下面文字中出现的次数，只回答数字。",
        "{c}的个数是多少？", "请认真数一下，在给出的这串汉字当中，“{c}”这个字一共出现了多少次，用阿拉伯数字回答。")),
    Rule("remove_char", "chars", "seen", gen_chars_with_c, lambda s, c: remove_char(s, c), _p(
        "删掉所有的“{c}”。", "把输入里的“{c}”都去掉。", "请从下面的文字中移除每一个“{c}”字，其余的字保持原来的顺序。",
        "去除字符{c}后输出。", "请把这串汉字里出现的“{c}”全部删除，其他字不要改动，输出删除后的字符串。")),
    Rule("double_chars", "chars", "new", gen_chars, lambda s: double_chars(s), _p(
        "把每个字重复两遍。", "每个字写两次。", "请将输入中的每一个字都连续写两遍后输出。",
        "让每个字符出现两次。", "请把下面这串汉字中的每个字都重复一次，也就是每个字紧挨着写两遍。")),
    # -- digits: strings of digits
    Rule("sort_digits", "digits", "seen", gen_digits, lambda s: sort_digits(s), _p(
        "把数字从小到大排序。", "升序排列这些数字。", "请将下面这串数字中的每一位按从小到大的顺序重新排列后输出。",
        "数字升序。", "下面是一串数字，请把其中的每一个数字按照由小到大的顺序排好，直接输出排好的数字串。")),
    Rule("sort_digits_desc", "digits", "seen", gen_digits, lambda s: sort_digits(s, True), _p(
        "把数字从大到小排序。", "降序排列这些数字。", "请将下面这串数字中的每一位按从大到小的顺序重新排列后输出。",
        "数字降序。", "下面是一串数字，请把其中的每一个数字按照由大到小的顺序排好，直接输出排好的数字串。")),
    Rule("digit_sum", "digits", "seen", gen_digits, lambda s: digit_sum(s), _p(
        "各位数字相加等于多少？", "求这串数字的各位之和。", "请把下面这个数字串里的每一位数字加起来，回答它们的和。",
        "数位之和是？", "请计算：把给出的这串数字的所有位上的数字逐个相加，最后得到的总和是多少？只写数字。")),
    Rule("max_digit", "digits", "new", gen_digits, lambda s: max_digit(s), _p(
        "最大的数字是哪个？", "找出其中最大的一位数字。", "请从下面这串数字中找出数值最大的那一位并输出。",
        "输出最大的那个数字。", "下面这串数字里每一位都是零到九之间的数字，请告诉我其中最大的一位是几。")),
    # -- lists: words separated by ， or 、
    Rule("nth_item", "list", "seen", gen_list_nth, lambda s, n: nth_item(s, parse_cn_numeral(n)), _p(
        "第{n}项是什么？", "取出列表中的第{n}个。", "请输出下面列表里排在第{n}位的那一项。",
        "列表第{n}个元素是？", "下面给出一个用标点隔开的列表，请从左往右数，把第{n}个词原样写出来。")),
    Rule("count_items", "list", "seen", gen_list, lambda s: count_items(s), _p(
        "列表里有几项？", "数一数有多少个词。", "请统计下面列表中一共有多少个项目，只回答数字。",
        "项目个数是多少？", "下面是一个用逗号或顿号隔开的列表，请数一数它总共包含几个词语，用阿拉伯数字回答。")),
    Rule("last_item", "list", "seen", gen_list, lambda s: last_item(s), _p(
        "最后一项是什么？", "取出列表的最后一个。", "请输出下面列表中排在最后的那一项。",
        "列表末尾的词是？", "下面给出一个用标点隔开的列表，请找到最右边的那个词，并把它原样写出来。")),
    Rule("reverse_list", "list", "new", gen_list, lambda s: reverse_list(s), _p(
        "把列表倒过来排列。", "反转列表的顺序。", "请将下面列表中各项的顺序颠倒，分隔符保持不变。",
        "列表逆序输出。", "下面是一个用标点隔开的列表，请把各个词的先后顺序整个倒过来，每个词本身不变，仍用原来的标点隔开。")),
    # -- numerals: Chinese numerals
    Rule("cn_add", "numerals", "seen", gen_add, lambda s: cn_arith(s), _p(
        "计算这个加法，用阿拉伯数字回答。", "算一下和是多少。", "请计算下面用中文数字写的加法算式，答案写成阿拉伯数字。",
        "求和，写数字。", "下面是一道用汉字数字写成的加法题，请算出两个数相加的结果，只用阿拉伯数字写出答案。")),
    Rule("cn_sub", "numerals", "seen", gen_sub, lambda s: cn_arith(s), _p(
        "计算这个减法，用阿拉伯数字回答。", "算出差是多少。", "请计算下面用中文数字写的减法算式，答案写成阿拉伯数字。",
        "求差，写数字。", "下面是一道用汉字数字写成的减法题，请算出前一个数减去后一个数的结果，只用阿拉伯数字写出答案。")),
    Rule("cn_to_arabic", "numerals", "seen", gen_cn_number, lambda s: str(parse_cn_numeral(s)), _p(
        "把中文数字写成阿拉伯数字。", "转成阿拉伯数字。", "请将下面用汉字写的数改写为阿拉伯数字。",
        "汉字数字变阿拉伯数字。", "下面是一个用汉字写出的数（比如三十七），请把它换成我们平时用的阿拉伯数字形式。")),
    Rule("arabic_to_cn", "numerals", "new", gen_arabic_number, lambda s: cn_numeral(int(s)), _p(
        "把阿拉伯数字写成中文数字。", "转成中文数字。", "请将下面的阿拉伯数字改写为汉字数字。",
        "阿拉伯数字变汉字。", "下面是一个用阿拉伯数字写的数，请把它换成用汉字书写的形式，例如37写成三十七。")),
    # -- dates
    Rule("cn_date_to_iso", "dates", "seen", gen_cn_date, lambda s: cn_date_to_iso(s), _p(
        "把日期写成YYYY-MM-DD格式。", "转换成横线格式的日期。", "请将下面的中文日期改写为“年-月-日”的数字格式，月和日补足两位。",
        "日期改为ISO格式。", "下面是一个用年月日汉字写的日期，请把它改成四位年份、两位月份、两位日期，中间用短横线连接的形式。")),
    Rule("iso_to_cn_date", "dates", "seen", gen_iso_date, lambda s: iso_to_cn_date(s), _p(
        "把日期写成中文的年月日。", "转换成汉字年月日格式。", "请将下面“年-月-日”格式的日期改写为“某年某月某日”的写法，月和日不要补零。",
        "改成中文日期。", "下面是一个用短横线连接的数字日期，请把它改成带“年”“月”“日”字样的中文写法，去掉月份和日期前面的零。")),
    Rule("cn_date_to_slash", "dates", "new", gen_cn_date, lambda s: cn_date_to_slash(s), _p(
        "把日期写成YYYY/MM/DD格式。", "转换成斜线格式的日期。", "请将下面的中文日期改写为“年/月/日”的数字格式，月和日补足两位。",
        "日期用斜杠分隔。", "下面是一个用年月日汉字写的日期，请把它改成四位年份、两位月份、两位日期，中间用斜杠连接的形式。")),
    # -- format: tables, brackets, records
    Rule("substitute", "format", "seen", gen_table, lambda s, table: substitute(s, table), _p(
        "按照替换表把每个字换掉：{table}", "替换表：{table}。请转换输入。", "请根据下面的对照表，把输入中的每个字替换成对应的字后输出。对照表：{table}",
        "用这个表替换字符：{table}", "这里有一张字的对照表：{table}。请把给出的字符串里的每一个字都按表换成箭头右边的字，输出换完后的结果。")),
    Rule("bracket_words", "format", "seen", gen_words, lambda s: wrap_words(s), _p(
        "给每个词加上方括号。", "用【】把每个词括起来。", "请把下面每个词语都放进一对【】中，词与词之间不留空格。",
        "每个词套上【】。", "下面是一些用空格隔开的词，请给其中的每一个词都加上左右方括号【】，然后把它们连在一起输出。")),
    Rule("swap_fields", "format", "seen", gen_record, lambda s, a, b: swap_fields(s, a, b), _p(
        "交换“{a}”和“{b}”的值。", "把{a}和{b}两栏的内容互换。", "请将下面记录中“{a}”字段与“{b}”字段的值对调，其余保持不变。",
        "{a}与{b}的值对换。", "下面是一条用分号隔开的记录，每一项写成“字段：值”。请把“{a}”那一项的值和“{b}”那一项的值互相交换，其他内容原样保留。")),
    Rule("get_field", "format", "seen", gen_record, lambda s, a, b: get_field(s, a), _p(
        "“{a}”是什么？", "取出{a}字段的值。", "请从下面的记录中找出“{a}”对应的值并输出。",
        "{a}一栏写的是？", "下面是一条用分号隔开的记录，每一项写成“字段：值”。请找到“{a}”这一项，只输出它的值。")),
    Rule("quote_words", "format", "new", gen_words, lambda s: wrap_words(s, "《", "》"), _p(
        "给每个词加上书名号。", "用《》把每个词括起来。", "请把下面每个词语都放进一对《》中，词与词之间不留空格。",
        "每个词套上《》。", "下面是一些用空格隔开的词，请给其中的每一个词都加上书名号《》，然后把它们连在一起输出。")),
    # -- compositions of seen rules (never trained on)
    Rule("reverse_then_substitute", "composition", "composition", gen_table,
         lambda s, table: substitute(reverse(s), table), _p(
             "先把字符串倒过来，再按替换表换字：{table}", "先反转，再替换（{table}）。",
             "请先将输入的字顺序颠倒，然后根据对照表把每个字替换成对应的字。对照表：{table}",
             "倒序后按表替换：{table}",
             "这里有一张字的对照表：{table}。请先把给出的字符串从后往前倒过来，再把其中每一个字按表换成箭头右边的字，输出最终结果。")),
    Rule("dedupe_then_reverse", "composition", "composition", gen_chars_repeats,
         lambda s: reverse(dedupe_chars(s)), _p(
             "先去掉重复的字，再倒过来写。", "去重后反转。",
             "请先删除输入中重复出现的字（保留第一次出现的），然后把剩下的字顺序颠倒后输出。",
             "去除重复字再逆序输出。",
             "下面这串字里有些字出现了不止一次，请先只保留每个字第一次出现的那一个，再把得到的字符串整个倒过来。")),
    Rule("nth_item_then_reverse", "composition", "composition", gen_list_nth,
         lambda s, n: reverse(nth_item(s, parse_cn_numeral(n))), _p(
             "取出第{n}项，再把它倒过来写。", "第{n}个词反转后是什么？",
             "请找出下面列表中的第{n}项，然后把这个词的字顺序颠倒后输出。",
             "把列表第{n}个元素逆序输出。",
             "下面给出一个用标点隔开的列表，请从左往右数到第{n}个词，再把这个词的字从后往前写出来。")),
)

RULES_BY_NAME = {r.name: r for r in RULES}
SEEN_PHRASINGS = 3  # phrasings 0..2 of a seen rule may be trained on; the rest are held out

# Instructions that ask for something no model can know from the prompt: answering them is making
# something up. Their inputs are drawn from the seen families' inputs.
NO_RULE_PHRASINGS = (
    "这串字是谁在哪一年写下的？", "写出这个列表作者的电话号码。", "这个日期那天北京的降雨量是多少毫米？",
    "这串数字是谁家的门牌号？", "这条记录里的人明天中午吃了什么？", "这道算式是哪位老师出的？",
    "这些词是在哪本书的第几页出现的？", "把这段内容的原作者的生日告诉我。",
)
NO_RULE_INPUTS = (gen_chars, gen_digits, gen_list, gen_add, gen_cn_date, gen_words, gen_record)


def answer(rule: Rule, input: str, params: dict) -> str:
    """The exact answer of ``rule`` on ``input`` with the phrasing's slot values."""
    return rule.answer(input, **params)


def fill(phrasing: str, params: dict) -> str:
    return phrasing.format(**params)
