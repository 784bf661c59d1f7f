"""Task types: one of ``TASK_TYPES`` per record, the axis the diversity metrics and mixtures balance.

``label_task_type`` is a transparent, ordered list of keyword/regex rules (no model): the first
rule that fires gives the label, so a reader can see exactly why a row got its type
(``match_rule`` also returns the rule's name). The taxonomy follows Dolly's categories plus
``math``, ``code``, ``rewrite`` (translation included) and ``other``.

Order matters, and is chosen so that the most specific signal wins:

0. ``other``          chit-chat only ("我爱你", "晚安", "谢谢，我没有其他问题了"), or an instruction that is itself an answer
                      ("可以使用…块来获取机器人与目标的距离。": malformed rows of 代码问题.json).
1. ``code``           programming words (代码, 编程, Python, SQL, 正则表达式, ```…) or code in the input;
                      Scratch/visual-programming wording (blocks, sprites as "角色" doing stage actions,
                      Paint/Sound Editor). First, because "把这段 Python 代码翻译成 Java" is code.
2. ``math``           numbers to order, an arithmetic expression (``43*38=``), day-of-week reckoning,
                      strong words (方程, 数学题, 最小公倍数…), or a quantity question (多少/几个/一共/还剩…,
                      or BELLE's "题目：…") with numbers. Before rewrite, so "将85华氏度转换为摄氏度" is math.
3. ``closed qa``      reasoning over facts stated in the question, no numbers ("…推断：小明现在是中午了吗？",
                      a "题目：…" puzzle without numbers).
4. ``rewrite``        翻译/译成/改写/重写/润色/转述… (strong rewrite verbs); finding errors to correct them.
5. ``summarization``  总结/概括/摘要/归纳… applied to a given text; the title of a given text.
6. ``classification`` 分类/属于哪/情感分析/判断…是否/是…还是…/选择题/"输出是或否"/“A”或“B”
                      (not in how-to or list questions: "如何判断…是否…", "X类别有哪些…").
7. ``extract``        提取/抽取/命名实体, or 找出/列出/识别…中的… (word classes, figures of speech,
                      typos) in a given text; never without one, nor a question about a context.
8. ``rewrite``        weaker edit verbs (改成/转换/修改/纠正/合并/删除…) acting on a given text.
9. ``brainstorming``  advice to the asker ("怎样才能…", "孩子不爱吃蔬菜怎么办？", "有什么办法…"); 列出/列举/想出/
                      建议/推荐/点子/例子/给出几个…/有哪些方法…
10. ``generation``    写/撰写/创作/生成/编写/续写/造句/设计/创建…, or a story/poem/letter asked for.
11. ``closed qa``     a question whose input is a context (≥ ``CONTEXT_MIN_CHARS`` characters).
12. ``open qa``       a question or knowledge request (？, 什么/为什么/如何/解释/介绍/提供/确定…,
                      what/why/how…) without such context; rows no rule decides ("other" is kept
                      for the two kinds of row of step 0).

Rules read the *request* and its *context* (``request_and_context``): the ``input`` when there is
one; else a passage, list, dialogue or code written inside the instruction (``curate.passage``: after
a colon, in quotes, on lines of its own), so "阅读下面这段话…\n<passage>\n问题：…？" is a question about
a given text like its alpaca-shaped twin; else, for a short follow-up turn of a chat, the text the
user pasted in an earlier turn. A greeting that opens a chat turn is dropped. The request is
lower-cased, so English remnants match too. Known limits: keywords, not meaning — e.g. "如何修改密码" is rewrite-shaped but asks a
question; rules use context conditions to avoid the commonest of these, not all.

Figures (``tests/test_label_devset.py``, ``benchmarks/bench_labeller.py``; details and confusion
matrices in ``tests/data/README.md``).

Why rules first: every label names its rule, and models trained on the rules' own labels did not beat
them (``tests/data/README.md``). A model trained on hand labels may decide the rows only a generic
rule decided (``curate.tasktype_model``, opt-in), and every label gets a confidence there.

Speed: each rule pattern is split (``_SplitRx``) into the branches that can only match text holding a
Latin letter and the rest; most instructions are all Chinese and skip the English alternatives,
whose ASCII word-boundary look-arounds are tried at every position. A part of many branches is
first screened by one scan for the characters every match of it holds (``_required_chars``): most
rows hold none of them and skip it. Same answers, tested; figures in ``benchmarks/README.md``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable


from .passage import history_context, split_inline_context, strip_greeting

TASK_TYPES = ["generation", "rewrite", "brainstorming", "open qa", "closed qa", "classification",
              "extract", "summarization", "math", "code", "other"]

# An input at least this long is a context to answer from (closed qa); a shorter one is a subject
# ("律师", "万人空巷") and the row stays open qa.
CONTEXT_MIN_CHARS = 15


# ``\b`` between a Chinese character and a Latin letter is no boundary (both are word characters),
# so "使用SQL命令" would not match ``\bsql\b``: rules use an ASCII word boundary instead.
_ASCII_B = r"(?:(?<![a-z0-9_])(?=[a-z0-9_])|(?<=[a-z0-9_])(?![a-z0-9_]))"


_FLAGS = re.IGNORECASE | re.DOTALL
# Characters a Latin letter of a pattern can match under IGNORECASE (ſ → s, K (Kelvin) → k, İ ı → i).
_LATIN = re.compile(r"[A-Za-z\u0130\u0131\u017f\u212a]")


def _top_level_branches(pattern: str) -> list[str]:
    """``a|b(c|d)|e`` → ``["a", "b(c|d)", "e"]``: split on ``|`` outside groups, classes and escapes."""
    out, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1:i + 2] == "]":  # "[]…]": a literal ] first
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    out.append(pattern[start:])
    return out


def _needs_latin(branch: str) -> bool:
    """True when every match of ``branch`` must contain a Latin letter: the branch has a literal
    Latin letter and nothing that could make it optional (no nested alternation, ``?``, ``*``, ``{0``)."""
    if "|" in branch or "?" in branch or "*" in branch or "{0" in branch:
        return False
    plain = re.sub(r"\\.|\[[^\]]*\]", "", branch)  # escapes (\b \s \d …) and classes say nothing
    return bool(re.search(r"[A-Za-z]", plain))


# A pattern of at least this many top-level branches gets a prefilter (``_required_chars``); a
# shorter one costs about as much as the prefilter's scan.
_PREFILTER_MIN_BRANCHES = 4
_CHAR_FREQ: dict[str, float] | None = None


def _char_freq() -> dict[str, float]:
    """Share of instructions holding each common character (``char_freq.tsv``, written by
    ``benchmarks/char_freq.py``); it guides which characters a prefilter tests, never a label."""
    global _CHAR_FREQ
    if _CHAR_FREQ is None:
        from pathlib import Path

        freq: dict[str, float] = {}
        path = Path(__file__).resolve().parent / "char_freq.tsv"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                code, share = line.split("\t")
                freq[chr(int(code))] = float(share)
        _CHAR_FREQ = freq
    return _CHAR_FREQ


def _required_chars(pattern: str, flags: int = _FLAGS) -> frozenset[str] | None:
    """Characters of which every match of ``pattern`` holds at least one (None: no such set known).

    Read off the parsed pattern: a literal needs itself, a small class its members, a group or a
    repeat of at least once what its body needs, an alternation the union of what each branch
    needs, a sequence what its rarest needing element needs (by ``_char_freq``). Optional parts,
    look-arounds, anchors and wide classes (``.``, ``\\d``) need nothing. So a text holding none of the
    characters cannot match: the regex is skipped for it, with the same answer."""
    try:
        import re._constants as C
        import re._parser as P
    except ImportError:  # before Python 3.11
        import sre_constants as C  # type: ignore[no-redef]
        import sre_parse as P  # type: ignore[no-redef]
    freq = _char_freq()

    def cost(s: frozenset[str]) -> float:
        return sum(freq.get(c, 0.0) + 1e-6 for c in s)

    def seq(items) -> frozenset[str] | None:
        best = None
        for op, av in items:
            s = node(op, av)
            if s is not None and (best is None or cost(s) < cost(best)):
                best = s
        return best

    def node(op, av) -> frozenset[str] | None:
        if op is C.LITERAL:
            return frozenset(chr(av))
        if op is C.IN:
            out: set[str] = set()
            for o, a in av:
                if o is C.LITERAL:
                    out.add(chr(a))
                elif o is C.RANGE and a[1] - a[0] < 64:
                    out.update(chr(c) for c in range(a[0], a[1] + 1))
                else:  # a negated class, a category (\\d, \\w), a wide range
                    return None
            return frozenset(out)
        if op is C.SUBPATTERN:
            if av[1] & re.IGNORECASE and not flags & re.IGNORECASE:  # (?i:…): the class would not fold
                return None
            return seq(av[3])
        if op is getattr(C, "ATOMIC_GROUP", None):
            return seq(av)
        if op is C.BRANCH:
            alts = [seq(alt) for alt in av[1]]
            return None if any(a is None for a in alts) else frozenset().union(*alts)
        if op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)):
            return seq(av[2]) if av[0] >= 1 else None
        return None

    try:
        return seq(P.parse(pattern, flags))
    except Exception:  # an unparsable pattern gets no prefilter (the regex alone decides)
        return None


def _prefilter(pattern: str, flags: int = _FLAGS) -> re.Pattern | None:
    """A character class of ``_required_chars(pattern)`` (same flags, so case folds as the pattern's
    letters do), or None when there is none."""
    need = _required_chars(pattern, flags)
    if not need:
        return None
    return re.compile("[" + "".join(re.escape(c) for c in sorted(need)) + "]", flags)


class _SplitRx:
    """A rule pattern split in two: the branches that can only match text holding a Latin letter, and
    the rest. Most instructions are all Chinese (87 % of the pool), so the long English alternatives
    (and their ASCII word-boundary look-arounds, which are tried at every position) are skipped for
    them; the answer (does it match?) is the same as the whole pattern's, which tests check."""

    __slots__ = ("pattern", "_always", "_latin", "_need_always", "_need_latin", "search", "match")

    def __init__(self, pattern: str):
        self.pattern = pattern
        branches = _top_level_branches(pattern)
        latin = [b for b in branches if _needs_latin(b)]
        always = [b for b in branches if not _needs_latin(b)]
        comp = lambda bs: re.compile("|".join(bs).replace(r"\b", _ASCII_B), _FLAGS) if bs else None  # noqa: E731
        # A pattern anchored with ^ in one branch keeps its meaning: each branch is compiled as it stood.
        self._always, self._latin = comp(always), comp(latin)
        # A long alternation tries every branch at every position; a text without any character the
        # part needs is turned away by one scan of a character class first (``_required_chars``).
        pre = lambda rx, bs: _prefilter(rx.pattern) if rx is not None and len(bs) >= _PREFILTER_MIN_BRANCHES else None  # noqa: E731
        self._need_always, self._need_latin = pre(self._always, always), pre(self._latin, latin)
        # ``search`` and ``match`` are made per pattern with only the steps it has: they run tens of
        # times a row, so a layer of Python calls or attribute look-ups costs as much as a regex.
        self.search, self.match = self._make("search"), self._make("match")

    def _make(self, how: str):
        def bound(rx):
            return getattr(rx, how) if rx is not None else None

        a, need_a = bound(self._always), (self._need_always.search if self._need_always is not None else None)
        lat, need_l = bound(self._latin), (self._need_latin.search if self._need_latin is not None else None)
        has_latin = _LATIN.search
        if lat is None:
            if a is None:
                return lambda text: None
            if need_a is None:
                return a
            return lambda text: a(text) if need_a(text) else None

        def both(text: str):
            m = a(text) if a is not None and (need_a is None or need_a(text)) else None
            if m is None and has_latin(text) and (need_l is None or need_l(text)):
                m = lat(text)
            return m
        return both


def _rx(pattern: str) -> _SplitRx:
    return _SplitRx(pattern)


# ---- code ---------------------------------------------------------------------------------------
_CODE = _rx(
    r"代码|编程|源码|条件语句|循环语句|字符串|数组|布尔值|数据类型|指针|面向对象|编程语言|程序(代码|设计|语言|实现)|(写|编写|编|实现|设计|生成).{0,8}(程序|(?<!视频)(?<!广告)(?<!直播)(?<!短剧)(?<!节目)(?<!拍摄)脚本)|计算机程序|"
    r"python|javascript|\bjava\b|\bjs\b|c\+\+|c#|c语言|\bsql\b|\bhtml|\bcss\b|\bphp\b|golang|go语言|"
    r"\bruby\b|\brust\b|\bswift\b|kotlin|matlab|\bbash\b|shell(脚本|命令)|linux命令|正则表达式|"
    r"leetcode|\bapi\b|\bjson\b|```|\bdef\s|\bclass\s+\w+|linux|mysql|postgresql|sqlite|mongodb|redis|\bgit\b|\bvue\b|\breact\b|vlookup|excel.{0,30}(函数|公式)|"
    r"(写|编写|实现|创建|定义|设计)(一个|一段)?.{0,20}函数|函数.{0,6}(实现|代码)|hello,? world|"
    r"\bcode\b|\bprogram\b|\bfunction\b|\bscript\b|编译|调试|debug"
)
# "算法" is code when one is asked to make one ("设计算法来解决…"), not when asked about one
# ("描述一种常见的机器学习算法" is open qa).
_CODE_ALGORITHM = _rx(r"(设计|创建|编写|写|实现|开发|构建|生成|给出|提出)(一个|一种|一段)?.{0,12}(算法|\balgorithm)")
# Visual programming (Scratch and its relatives: blocks, sprites, scripts): a tenth of the mirror is
# questions from the Scratch wiki ("Change Pen Color by ()块的作用是什么？").
_CODE_BLOCKS = _rx(
    r"scratch|[a-z?]\s*\(\s*\)|\(\s*\)\s*(块|[a-z])|[a-z)?]\s*块|\bblocks?\b|(帽子|报告|布尔|堆叠|堆积|自定义|运动|外观|声音|事件|控制|侦测|运算|变量|列表|画笔|扩展|c|hat)块|"
    r"\bsprites?\b|(全局|局部|云|普通)变量|变量(块|名)|编辑器|"
    r"costume|backdrop|\bpen\b|extension|raspberry|\blego\b|wedo|micro:?bit|\bev3\b|sense hat|sensing|turbowarp|矢量编辑|"
    r"paint editor|sound editor|(该|此|哪个|哪些|某个|这个|这两个)块|报告器|变量或列表|\btoggle\b|scroller|platformer|(项目|作品)(图标|id|页面|的用户名)"
)
# Everyday words that are Scratch terms in the Scratch wiki's translation (sprites are "角色"/"精灵", costumes
# "造型", the stage "舞台", the pen "画笔"): read off the pool's 代码问题.json rows. Outside it they are a
# fairy, a hairstyle, a theatre stage, a paintbrush, toy bricks, a video script; so they are code only
# when the row also speaks of Scratch elsewhere (``_SCRATCH_CUE`` in its answer).
_CODE_BLOCKS_WORDS = _rx(
    r"积木|精灵|造型(?!师|设计)|(?<!的)舞台(?!剧|表演|艺术|上|下)|画笔|克隆(?!羊|人|技术|动物)|(?<!视频|广告|直播|剧本|拍摄)脚本(?!的写作)|"
    r"角色的?(位置|坐标|造型|方向|大小)|角色(移动|跟随|跳跃|旋转|隐藏|显示|滑行|转向|左右|上下)|"
    r"(让|使)(一个|某个|多个)?角色(移动|跟随|跳|旋转|隐藏|显示|滑行|转向|左右|上下|说|碰到|面向|朝)|"
    r"多个角色|触碰到|碰到.{0,6}(角色|边缘|颜色)"
)
_SCRATCH_CUE = _rx(r"scratch|块|角色|积木|精灵|舞台|造型|脚本|变量|广播|绿旗|编辑器|位图|矢量|\bsprites?\b|\bblocks?\b|```")
# Code in the answer: a fenced block or a line that starts like a program.
_CODE_OUTPUT = re.compile(r"```|^\s*(def |class \w+[:(]|import \w+|from \w+ import|#include|public (static )?\w+|function \w+\(|"
                          r"SELECT .+ FROM|<html|<!DOCTYPE)", re.MULTILINE | re.IGNORECASE)
_CODE_INPUT = _rx(
    r"```|\bdef \w+\(|#include|^\s*import \w+|\bfunction\s*\w*\s*\(|public static|console\.log|"
    r"\bprint\(|\bselect\b.+\bfrom\b|<html|<div|<\w+>.*</\w+>|;\s*\n.*;\s*$"
)

# ---- math ---------------------------------------------------------------------------------------
# An instruction that is only an arithmetic expression ("43*38=", "6/5=").
_ARITH_ONLY = _rx(r"^[\s\d.+\-*/×÷xX()（）=＝^%？?]*\d\s*[+\-*/×÷^]\s*[\d(（][\s\d.+\-*/×÷xX()（）=＝^%？?]*$")
# An operation between numbers (a bare "-" or "/" only with "=", so "700-1000卡路里" and dates pass).
_ARITH_EXPR = _rx(r"\d\s*[+*×÷^]\s*\d|\d\s*[-/]\s*\d+\s*[=＝]")
_MATH_STRONG = _rx(
    r"数学题|数学问题|应用题|算术|方程|算式|因式分解|化简|导数|积分(?!制|卡|兑)|微分|平方根|立方根|开方|"
    r"最大公约数|最小公倍数|公因数|公倍数|质数|素数|阶乘|等差数列|等比数列|数列|百分之几|概率|"
    r"[a-z](\s*和\s*[a-z])?\s*的值|[a-z]\s*[+\-]\s*[a-z]\s*=|填什么数|几分之几|未知数|表达式|偶数|奇数(?!词|的词)|(?<![云子缘行能地])计算(?!机|能力|背景|科学|领域|资源|平台)|算出|单位.{0,4}(转换|换算)|度量单位|换算|"
    r"\bequation|solve for|arithmetic|\bmath\b|probability|\bfactorial|\bprime numbers?\b"
)
_MATH_WEAK = _rx(
    r"算一算|算一下|帮我算|算算|多少|平分|平均分|几(个|只|天|元|岁|人|本|次|倍|块|颗|支|条|张|件|辆|碗|米|克|分钟|小时|公里|种)|"
    r"面积|周长|体积|平均|中位数|众数|最大值|最小值|最高值|最低值|最大的|最小的|百分比|乘以|除以|加上|减去|相加|相减|"
    r"相乘|相除|之和|之差|之积|之商|总和|总共|一共|剩下|还剩|剩余|速度|加在一起|加起来|合计|多远|多长时间|多久|"
    r"转换为.{0,4}(摄氏|华氏|公里|英里|千克|公斤|磅|厘米|英寸)|"
    r"\bcalculate|\bcompute|how many|how much|\bsum\b|\baverage|percent|"
    r"\bconvert\b.{0,30}\b(celsius|fahrenheit|miles|kilometers|pounds|kg)\b"
)
# BELLE's school-math rows start "题目：…"; with numbers in them they are word problems.
_PROBLEM = re.compile(r"^\s*题目\s*[:：]")
_NUMBER = re.compile(r"\d")
_YEAR = re.compile(r"\d{4}\s*年")
_CN_QUANTITY = re.compile(r"(?<!第)[一二两三四五六七八九十百千万半]+\s*(个|只|天|元|岁|人|本|次|倍|块|颗|支|条|张|件|辆|碗|米|克|千米|公里|分钟|小时)")

# ---- rewrite ------------------------------------------------------------------------------------
_REWRITE_STRONG = _rx(
    r"(其他|替代|不同)的?(方式|说法).{0,6}(表达|表述|说)|翻译(?!遗传|密码|mrna|rna|蛋白)|(英文|英语|中文|日语|日文|法语|德语|韩语|西班牙语)(是什么|怎么说|怎么讲|怎么写)|用(英文|英语|日语|法语|德语|韩语|西班牙语)(怎么|来)?(说|表达|写)|(相似|相同|同样)的?(含义|意思)的?句子|译成|译为|翻成|译文|英译|中译|改写|重写|重新写|重新表述|重新措辞|重新排列|重述|转述|复述|润色|颠倒|倒序|"
    r"paraphrase|translat|rewrite|rephrase|reword"
)
# Edit verbs: rewrite only when they act on a given text ("修改以下句子", not "如何修改密码").
_REWRITE_WEAK = _rx(
    r"改成|改为|改得|改一下|拆成|更改|变位|排列成|合二为一|转换|转化|转变为|变成|换成|替换|修改|修正|纠正|更正|校对|改正|精简|精炼|删掉|啰嗦|语序|调整.{0,4}(顺序|结构)|(把|将)[^，。]{0,20}写成|简化|扩写|缩写(?!是)|"
    r"同义句|换一种(说法|方式)|语气|口吻|时态|语态|正式|被动(语态|句)|格式|合并|拆分|删除|删去|添加|插入|附加|"
    r"标点|大写|小写|编辑|字母顺序|简洁|拼写|(纠正|修正|改正|更正|检查并|提高|改进|改善).{0,6}语法|对齐|分开|分隔|"
    r"\bedit\b|\bconvert\b|\bcorrect\b|\bchange\b|\bsimplify\b|\bshorten\b|\breformat|\breplace\b|\bremove\b|\bfix\b|passive voice|active voice"
)

# Words that point at a given text (so an edit verb acts on it, a summary summarises it …).
_GIVEN_TEXT = _rx(
    r"以下|下面|下列|下述|给定|所给|给出的|这段|这句|这篇|这个(句子|段落|文本|故事|文章)|该(句|段|文|篇)|"
    r"句子|短语|段落|文本|文章|原文|上文|文中|对话|新闻|报告|论文|电子邮件|邮件|故事|内容|小说|这本书|电影|《|“|「|：|"
    r"following|given|this (sentence|text|paragraph|passage|article)|the sentence|the text|the passage"
)

# ---- summarization ------------------------------------------------------------------------------
_SUMMARY = _rx(r"总结|概括|摘要|归纳|概述|提炼|(?<!以下)(?<!根据)(?<!按照)(?<!这些)要点|主旨|中心思想|大意|summar|tl;?dr|\bgist\b")
# Said of a given text, these ask for its gist ("这段话讲了什么？", "整理成简要纪要", "用一句话说明这段文字的重点").
_GIST = _rx(r"(讲|说|写)了(什么|啥|些什么)|在(讲|说)(什么|啥)|想(要)?(说|表达)(什么|啥)|主要(内容|讲|说|在讲|意思)|重点|纪要|提要|梗概|"
            r"主题句|一句话(说明|告诉|介绍|讲|说出|写出)|(精简|浓缩|压缩|缩写|缩短|缩)(成|为|到)")

# ---- classification -----------------------------------------------------------------------------
_CLASSIFY = _rx(
    r"(?<!垃圾)分类|归类|归为|类别|不同类(?!型|别)|不属于同一类|哪一类|哪类|哪个类|什么类型|哪种类型|哪一种类型|属于哪|是否属于|"
    r"情感(分析|倾向|极性|类别|色彩|态度)|积极.{0,8}消极|正面.{0,8}负面|褒义.{0,6}贬义|"
    r"是[”\"']?\s*(或|还是)\s*[“\"']?否|对还是错|真还是假|真假|对错|正确或错误|正确还是错误|正确、错误|"
    r"(判断|确定|告诉我|检测|识别|检查|鉴定|预测).{0,40}(是否|是不是|能否|有没有|还是|对不对|正确与否)|"
    r"属于[^？?。]{1,30}还是|像不像|算不算|(称赞|夸奖?|表扬|赞美|讽刺|批评|抱怨|支持|反对|肯定|否定|正面|负面|好评|差评)还是|判断.{0,40}哪.{0,4}更|"
    r"(说法|观点|结论|推理|论断)(是否)?(对|正确|成立|合理|准确)(吗|不|与否)|判断.{0,12}(文体|体裁|语气|态度|立场|类型|种类)|是否(存在|属于|符合|违反|构成|涉及|合理|合法|正确)|语法(功能|成分)|句子成分|词性|修辞|(识别|标记|标注|判定|归类)为|(评估|判断|检查|评价)[^纠修改更]{0,10}(语法|句法)(?![^。]*(纠正|修改|改正|更正|修正|改写))|"
    r"[“\"][^”\"]{1,10}[”\"]\s*(或|还是)\s*[“\"]|评分|打分|评级|选择题|单选|多选|选择.{0,6}(正确|最佳|最合适|主题|类别|一个选项)|"
    r"输出.{0,16}(true|false|yes|no|是|否|[01])\b|"
    r"\bclassif|categori[sz]|sentiment|true or false|yes or no|\bis (it|this|the following) (a|an)\b"
)
# Questions that only mention categories or checks ("如何判断按钮是否被按下？", "Colors类别有哪些块？")
# ask how or what, they do not ask to classify.
_HOWTO_OR_LIST = _rx(r"^(如何|怎么|怎样|如果|为什么)|有哪些|哪些类别|分成哪些|类别中|类别的")
# "将以下颜色分为暖色和冷色": splitting given items into named groups.
_SPLIT_INTO = _rx(r"(分为|分成|划分为|归入)")
# "X是A还是B？" asked of short alternatives.
_EITHER_OR = _rx(r"(是|算).{1,12}还是[^？?，,。]{1,12}([？?]|$)")
_ENDS_AS_QUESTION = re.compile(r"[？?]\s*$")
_SENTIMENT_WITH_INPUT = _rx(r"情感|情绪|态度|语气")
# "将以下句子的语气从正式改为非正式" changes the tone, it does not ask for it.
_EDIT_TONE = _rx(r"改|换|转换|变为|变成|重写|使.{0,6}(更|听起来)")

# ---- extract ------------------------------------------------------------------------------------
_EXTRACT_STRONG = _rx(r"提取(?!的)|抽取|撷取|摘取|命名实体|^\s*extract|\bextract (all|the|every|key)")
# "找出/列出…中的…": extraction only from a given text ("列出所有富含维生素C的蔬菜" is brainstorming).
_EXTRACT_FROM = _rx(
    r"检测.{0,6}实体|实体|"
    r"(识别|找出|找到|指出|标出|挑出|列出).{0,8}(夸张|比喻|拟人|排比|形容词|副词|名词|动词|代词|介词|错别字|拼写错误)|"
    r"(找出|找到|列出|识别|标出|标注|挑出|选出|指出).{0,20}(文中|句中|段落中|文本中|句子中|文章中|其中|中的|里的|所有)|"
    r"(文中|文章中|段落中|句子中|文本中|上文|给定.{0,8}中|以下.{0,8}中|下面.{0,8}中).{0,12}(找出|找到|列出|识别|挑出|选出|提到|出现)|"
    r"\bidentify (all|the)\b|\bfind (all|the) .{0,30}\bin the\b"
)

# Spans pulled out of a given text, also when asked as a question ("下面的句子中有哪些成语？", "把这段话中的
# 动词全部找出来", "面试时间、地点…分别是什么"): extract, not closed qa.
_EXTRACT_ITEMS = _rx(
    r"(找出|找到|列出|挑出|摘出|标出|圈出|划出|撷取|整理出).{0,16}(所有|全部|都|原文)|(找|列|挑|摘|标|圈|划|抄)出来|(摘抄|摘录|抄)下来|摘抄|摘录|"
    r"分别是(什么|哪些)|逐(条|一|项)列出|(提到|出现|涉及)了?(哪些|哪几(个|种|条|点))|把[^，。]{0,12}(词|词语|句子|短语)(写|抄)(下来|出来)|(有|用了?)哪些(成语|人名|地名|名词|动词|形容词|比喻|词)|的(主语|谓语|宾语)|情感词"
)
# "关键词" asks to pull keywords out of a text only when there is one in the input ("给我几个关键词"
# for a paper to be written is brainstorming).
_KEYWORDS = _rx(r"关键词|关键字|keywords?")
# "找出以下句子中的错误并更正": finding the errors is the way to correct the text, which is rewriting.
_CORRECT = _rx(r"更正|纠正|改正|修正|修改|改写|correct|fix")

# ---- brainstorming ------------------------------------------------------------------------------
# Ideas, advice and open-ended items are brainstorming; a factual enumeration ("列出人类的五种感官",
# "说出三位来自俄罗斯的政治领导人") has one right answer and is open qa (it falls through to the
# question rule). So a list request is brainstorming only with an idea word or an idea noun.
_IDEA_NOUN = (r"(方法|办法|方式(?!是)|途径|技巧|窍门|诀窍|建议|提示|策略|方案|措施|想法|主意|点子|理由|原因|因素|好处|"
              r"益处|优势|优点|缺点|劣势|弊端|积极影响|消极影响|负面影响|活动|问题|口号|关键词|习惯|原则|"
              r"最佳实践|注意事项|事项|技能|目标|挑战|风险|例子|示例|实例|创意|礼物|游戏|节目|选题)")
_BRAINSTORM = _rx(
    r"想出(?!一(个|种|句|段|首))|想一些|想几个|提(出)?(几|一些|多)(个|条|点|种)?|头脑风暴|集思广益|建议|推荐(?!信|系统|算法|引擎)|点子|主意|创意|提议|想想|"
    r"例子|实例|举例|示例|(提供|输出|生成|创建|制作|给出|写出|编制|编写|列出).{0,20}(列表|清单)|清单|"
    rf"(列出|列举|例举|举出|说出|给出|提供|给我|写出|写下|提出|想|生成|输出|分享|添加).{{0,24}}{_IDEA_NOUN}|"
    r"(几个|几种|几条|一些|多个|[\d两三四五六七八九十]+\s*(个|种|条))[^，。？?]{0,12}(方法|办法|技巧|建议|点子|主意|创意|游戏|节目|选题|活动|礼物)|"
    r"列(几|一些|些|[\d两三四五六七八九十])|"
    r"起.{0,3}名|(取|起).{0,12}名字|^name\b|"
    r"brainstorm|suggest|\bideas?\b|come up with|"
    r"give (me )?(some|a few|\d|two|three|four|five|several) (ways|tips|ideas|reasons|examples|suggestions)|\brecommend|examples? of"
)
# A sentence, metaphor or pun asked for "as an example" is a piece of writing, not a list of ideas.
_GENERATE_SENTENCE = _rx(
    r"(例子|举|想出|想|创造|创作|生成|造|编|写|提供|给出|产生|组合|组成|连成|构造|构建|创建).{0,24}(句子|一句话|比喻|隐喻|明喻|双关|谚语|俳句|押韵|韵脚|类比)|"
    r"(句子|一句话|比喻|隐喻|明喻|双关|类比).{0,10}(例子|示例)|在句子中使用"
)
# How-to content ("描述粉刷房间的基本步骤", "生成一组指令以…", a recipe): knowledge, asked as steps.
_HOW_TO = _rx(r"步骤|操作指南|分步指南|食谱|菜谱|教程|指令(?!集合)|(?<!详细)说明(?!文|书|以下|下面|原因|为什么|理由)")
# "给我一些故事创意", "几个标题": several ideas, not one piece.
_PLURAL_IDEAS = _rx(r"(一些|几个|几种|几条|多个|[\d两三四五六七八九十]+\s*(个|种|条))")
# Continue the conversation or the text.
_CONTINUE = _rx(r"^\s*(继续|接着(说|写|讲)?|请继续|continue)\s*[。.!！]?\s*$")

# ---- generation ---------------------------------------------------------------------------------
_GENERATE_VERB = _rx(
    r"(?<![缩改重简书填描拼抄大小听默])写(?!了|的|着|道|完|过)|配(一段|一句|上)?(文字|文案|诗|解说)|撰写|创作|生成|编写|编造|编一|起草|续写|仿写|造句|作一首|作首|作诗|"
    r"描写|描绘|描述(一次|一下你|你|一个场景|一个人物|一段经历)|想象|(?<![的和与及])设计|创建|(想出|想)一(个|种|句|段|首)|创造|构建|构造|构思|产生一|发表|"
    r"制作|制定|规划|策划|形容|比喻|比作|打个比方|类比|_{3,}|完成.{0,6}(句|话|段落|故事|类比|诗|对话)|填空|填入|补全|补充完整|完成(这个|以下|下面|下列|给定的?)?句子|"
    r"讲(一个|个).{0,10}(故事|笑话)|(描述|讲述|告诉我们?|分享|谈谈|说说)(一下)?(你|您).{0,20}(经历|体验|经验|时候|时间|时刻)|"
    r"\bwrite\b|\bcompose\b|\bgenerate\b|\bcreate\b|\bdraft\b|\bdesign\b|\bimagine\b|\binvent\b|\bconstruct\b"
)
# Asked-for creative pieces (only when the instruction is not a question about one).
_GENERATE_NOUN = _rx(
    r"故事|笑话|段子|诗|歌词|对联|口号|标语|广告语|广告词|文案|演讲稿|致辞|祝福语|贺词|申请书|推荐信|"
    r"求职信|感谢信|日记|周记|游记|随笔|独白|建议书|倡议书|计划书|策划书|稿子|讲话稿|发言稿|一封|作文|剧本|台词|寓言|童话|散文|小说|短文|文章|评论|博客|帖子|推文|新闻稿|报道|演讲|"
    r"\bstory\b|\bpoem\b|\bhaiku\b|\bslogan\b|\btweet\b|\bessay\b|\bletter\b"
)

# A question about a piece ("这首诗的作者是谁"), not a request for one.
_ASKS_ABOUT = _rx(r"[？?]|什么|为什么|如何|怎么|哪|谁|吗|呢|是否|解释|分析|赏析|评价|意思|含义|作者|主题|\b(what|why|how|who|which|explain)\b")

# ---- questions ----------------------------------------------------------------------------------
# Questions and knowledge requests ("提供从A到B的路线", "确定这部小说的作者", "describe …").
_QUESTION = _rx(
    r"[？?]|^求|求出|什么|为什么|为何|如何|怎么|怎样|哪|谁|吗|呢|多少|几|是否|何时|何地|何处|何种|何为|"
    r"解释|说明|描述|介绍|阐述|论述|讨论|分析|比较|对比|区别|异同|定义|含义|意思|意义|作用|影响|原因|优缺点|"
    r"优势|劣势|利弊|告诉我|列出|列举|说出|命名|排名|排序|顺序|知识|你认为|你觉得|回答|讲讲|谈谈|说说|评价|赏析|简述|解读|"
    r"提供|给出|说出|给我|寻找|指定|陈述|查找|找出|找到|确定|估计|估算|预测|识别|辨别|评估|推断|猜|检索|总结|概括|概述|"
    r"^(what|why|how|who|whom|whose|which|when|where|is|are|does|do|did|can|could|should|would|will)\b|"
    r"\b(explain|describe|define|compare|contrast|discuss|analy[sz]e|evaluate|tell me|answer|identify|"
    r"find|determine|provide|give|state|estimate|predict)\b"
)


@dataclass(frozen=True)
class Rule:
    label: str
    name: str
    test: Callable[[str, str, str], bool]  # (instruction lower-cased, input, output) -> fires?


# A question phrased as a request ("能帮我改得活泼一点吗？"): it asks for the edit, not about the text.
_REQUEST_ASK = _rx(r"帮我|帮忙|请你|你能|能帮|能否|能不能|可以帮|麻烦")
# The request points at a text to read ("阅读短文…", "以下是一则通知…"): a figure asked for is read off it …
_READ_CUE = _rx(r"阅读|根据|文中|材料|短文|上文|下文|短信|通知|说明|新闻|报告|这段|这则|这条|以下是|下面是|上面")
# … unless the request asks to compute with it.
_COMPUTE = _rx(r"一共|总共|合计|总和|之和|平均|相差|还剩|剩下|剩余|计算|算")
_PICK_ITEMS = _rx(r"挑出|选出|找出|哪些|哪几个|哪几种")
# Multiple choice laid out as "A. … B. …" in the context.
_MC_OPTIONS = re.compile(r"(?:^|\s|[)）])[A-Da-d]\s*[.．、:：)）]")
# Advice to the asker ("怎样才能更快地适应新工作？", "孩子不爱吃蔬菜怎么办？", "送什么好？"): several open-ended
# suggestions, brainstorming under the guideline. An impersonal "how can X do Y" ("企业如何减少碳足迹？",
# "如何建立自信") is explained, open qa, as is a procedure with one accepted way ("如何办理居住证？").
_ADVICE = _rx(
    r"(如何|怎样|怎么|怎么样)才(能|可以)|(如何|怎样|怎么).{0,10}?(更好|更快|更有效|能更|更加)|"
    r"(^想|我|我们|咱们|自己|孩子|宝宝|家里|家人|老人|男朋友|女朋友|老公|老婆|父母|室友|同事|朋友)[^？?。]{0,16}(如何|怎样|怎么)(?!回事|样的|会|是)|"
    r"(怎么办|该怎么做|如何是好)[？?]?$|(有什么|有哪些|有没有)[^？?。，]{0,6}(方法|办法|技巧|窍门|诀窍|建议|点子|主意|措施|妙招|秘诀|推荐)|"
    r"(可以|能|应该|该)(做|玩|组织|搞|举办|采取|准备|带|送|买|设置|尝试)(些|点)?(哪些|什么)|(送|带|买|准备)什么.{0,6}(好|合适)|"
    r"哪些.{0,8}(值得|适合)|有哪些.{0,6}注意|(带来|造成)(哪些|什么)(后果|问题)|(干|做|玩|吃|买|送|带|去|看)(点|些)?(什么|啥|哪儿|哪里)(比较)?(好|合适)|"
    r"(可以|能|应该|该)(讨论|看|读|学|参观)(些|点)?(哪些|什么)|有什么(适合|值得|好玩)|(好去处|好地方)|(如何|怎样|怎么)(让|使|帮)(我|我们|自己|孩子)|(会|可能会|可能)问(哪些|什么)(问题)?"
)
# Every branch of ``_ADVICE`` holds one of these: a substring test first skips the regex for most rows.
_ADVICE_HINTS = ("如何", "怎样", "怎么", "什么", "哪", "啥", "有没有", "好去处", "好地方")


def _asks_advice(ins: str) -> bool:
    return any(h in ins for h in _ADVICE_HINTS) and bool(_ADVICE.search(ins))


# "如何制作一杯拿铁咖啡？", "如何办理居住证？": how-to, knowledge asked as steps.
_HOW_QUESTION = _rx(r"^(请问)?(如何|怎样|怎么|怎么样)")
# Chat turns that ask for nothing ("你好你好！", "谢谢，我没有其他问题了。", "哈哈，我刚才是开玩笑的"): ``other``.
_SMALL_TALK = _rx(
    r"^(你好|您好|嗨|哈喽)+[\s!！~～。.，,]*$|谢谢|多谢|感谢你|开玩笑|没有?(其他|别的)问题|随便(说|聊|讲)|聊聊天?|^在(吗|不在|忙)|^(好的|好吧|行|ok|嗯嗯?)[，,]?(我)?(知道|明白|了解)了|^测试[一二三123]*$|"
    r"你(好|真|太)?(笨|傻|聪明|厉害|可爱|有意思|有趣)|哈哈|嘿嘿|呵呵|^嗯+|^哦+|耶[！!～~]*$"
)
_HOW_ARE_YOU = _rx(r"^你(今天|最近|这几天)?(过得(怎么样|好吗|如何)|还好吗|好吗|心情怎么样)[？?！!。~～]*$")
_WANTS = _rx(r"你是|写|翻译|解释|介绍|告诉我|帮我|帮忙|请|如何|怎么|为什么|哪|多少|列出|总结|给我|能不能|可以")


_ANSWER_CUE = _rx(r"回答|问题|阅读|\banswer\b")


def _asks_about_context(ins: str, inp: str) -> bool:
    """A question (or "回答…", "阅读…") put to a given text."""
    return _has_context(inp) and bool(_ENDS_AS_QUESTION.search(ins) or _ANSWER_CUE.search(ins))


def _has_numbers(ins: str, inp: str) -> bool:
    text = _YEAR.sub("", ins + " " + inp)
    return bool(_NUMBER.search(text)) or len(_CN_QUANTITY.findall(text)) >= 2


def _given_text(ins: str, inp: str) -> bool:
    return bool(inp.strip()) or bool(_GIVEN_TEXT.search(ins))


# An input that is itself one short question ("什么动物会是最好的游泳运动员？") is the question, not a
# context to answer from.
_LONE_QUESTION = re.compile(r"^[^。！!\n]{0,60}[？?]\s*$")


def _has_context(inp: str) -> bool:
    inp = inp.strip()
    return len(inp) >= CONTEXT_MIN_CHARS and not _LONE_QUESTION.match(inp)


# "根据以下数据做出假设": a task on the given text, answered from it.
_BASED_ON = _rx(r"^(请)?(根据|基于|依据|阅读|参考|利用|使用)(以下|下面|下列|给定|所给|提供|上述|这些|这段|该|此|给出)")
# "其中哪一个是欧洲最大的山脉？" with the candidates in the input: picking one of given options.
_CHOOSE = _rx(r"哪一个|哪个|哪一种|哪种|哪一项|哪项|哪位|选出|选择|挑出|which (one|of)")
_OPTION_SPLIT = re.compile(r"[、，,;；/\n]|或者|或|\bor\b")


def _given_items(inp: str) -> bool:
    """An enumeration of short items ("宫保鸡丁、麻婆豆腐、清炒时蔬…"), a closing full stop allowed."""
    body = inp.strip().rstrip("。")
    parts = [p.strip() for p in _OPTION_SPLIT.split(body) if p.strip()]
    return "、" in body and "。" not in body and 2 <= len(parts) <= 20 and all(len(p) <= 12 for p in parts)


def _given_options(inp: str) -> bool:
    if "。" in inp:  # sentences are a text, not a list of options
        return False
    parts = [p.strip() for p in _OPTION_SPLIT.split(inp.strip()) if p.strip()]
    return 2 <= len(parts) <= 12 and all(len(p) <= 20 for p in parts)


# "选择完成句子的最佳选项" with a blank: filling it is writing.
_BLANK = re.compile(r"_{2,}|＿{2,}|【\s*】|<mask>", re.IGNORECASE)
_FILL = _rx(r"填|完成|补全|补充|缺少|缺失|选择|替换|complete|fill")
# Word knowledge (synonyms, antonyms, euphemisms) is asked like a list but has right answers.
_WORD_KNOWLEDGE = _rx(r"同义词|近义词|反义词|委婉(说法|语|词)|同音词|synonym|antonym")
# Explaining a concept ("解释前瞻性规划的概念") is a question, whatever verbs the concept contains.
_EXPLAIN = _rx(r"^(请|你能|你会如何|如何)?(向.{0,16})?(简要|简单|简短|详细|清楚)?(地)?(解释|阐述|阐释|定义|说明|介绍)|的(概念|含义|定义)[。.？?]?$")
# Ordering numbers: comparing quantities.
_ORDER = _rx(r"排序|排列|从小到大|从大到小|从最小到最大|从最大到最小|升序|降序|最大的|最小的")
_NUMBERS = re.compile(r"-?\d+(\.\d+)?")  # (was r"\\d", a literal backslash: the rule never fired)
# A factual enumeration ("列出制作巧克力慕斯所需的成分") is open qa, even when its subject has a verb.
_LIST_FACTS = _rx(r"^(请)?(列出|列举|说出|命名|识别|确定)")

# A bare subject with nothing asked ("官渡之战", "特朗普"): the rows' answers describe it.
_TOPIC_MAX_CHARS = 20

# Chit-chat, not a task ("我爱你", "晚安"): the guideline's ``other``.
_CHIT_CHAT = _rx(r"^(我爱你|我喜欢你|我想你|你好|您好|你好呀|嗨|哈喽|hello|hi|谢谢|谢谢你|多谢|再见|拜拜|晚安|早安|早上好|晚上好|"
                 r"哈哈+|嘿嘿+|呵呵+|好的|嗯+|哦+)[\s!！。.~～?？]*$")
# A row whose instruction is an answer, not a request (代码问题.json has a handful:
# "可以使用Reporter Blocks中的(distance :: wedo)块来获取机器人与目标的距离。"): malformed, ``other``.
_STATEMENT = _rx(r"^(可以|你可以|我们可以)(使用|用|通过)[^？?]*。$")
_ASKING = _rx(r"哪|什么|如何|怎么|怎样|为什么|吗|呢|请|\b(what|how|which|why)\b")
# Day-of-week and calendar reckoning is counting ("今天是星期六，那么明天是星期几？").
_CALENDAR = _rx(r"(星期|周|礼拜)(几|[一二三四五六日天])[^。]{0,40}(星期|周|礼拜)几|(星期|周|礼拜)几[^。]{0,40}(星期|周|礼拜)[一二三四五六日天]")
# Reasoning over facts stated in the question itself, no arithmetic ("…推断：小明现在是中午了吗？",
# BELLE's "题目：…" puzzles without numbers): closed qa under the guideline.
_INFER = _rx(r"推断[:：]|请推断|推断(出|一下)|由此可(知|见|得)|据此|可以推出|能否推出|可以得出|能否得出|一定.{0,10}吗")
# The title or headline of a given text is its shortest summary (not a title the text mentions:
# "文中提到的小说标题是什么？" is closed qa).
_TITLE = _rx(r"标题|headline|\btitle")
_MENTIONED = _rx(r"提到|提及|中的|\bmentioned")
# Finding errors in order to correct them is rewriting ("找出以下句子中的错误并更正").
_ERRORS = _rx(r"错误|错别字|拼写|语法|病句|typo|error|mistake|grammar")
_WORDY = re.compile(r"[\u4e00-\u9fffA-Za-z]{2,}")


RULES: list[Rule] = [
    Rule("other", "chit_chat", lambda i, x, o: not x.strip() and bool(_CHIT_CHAT.match(i))),
    Rule("other", "small_talk", lambda i, x, o: not x.strip() and len(i) <= 24 and bool(_SMALL_TALK.search(i)) and not _WANTS.search(i)),
    Rule("other", "how_are_you", lambda i, x, o: not x.strip() and bool(_HOW_ARE_YOU.match(i))),
    Rule("other", "statement_not_a_request", lambda i, x, o: not x.strip() and bool(_STATEMENT.match(i)) and not _ASKING.search(i)),
    Rule("code", "code_words", lambda i, x, o: bool(_CODE.search(i))),
    Rule("code", "code_in_input", lambda i, x, o: bool(x) and bool(_CODE_INPUT.search(x))),
    Rule("code", "make_an_algorithm", lambda i, x, o: bool(_CODE_ALGORITHM.search(i))),
    Rule("code", "visual_programming", lambda i, x, o: bool(_CODE_BLOCKS.search(i))
         or (bool(_CODE_BLOCKS_WORDS.search(i)) and bool(_SCRATCH_CUE.search(o[:300])))),
    # Numbers to order are in the instruction or a short input (a long context's figures are read, not sorted).
    Rule("math", "order_numbers", lambda i, x, o: bool(_ORDER.search(i)) and len(_NUMBERS.findall(i + " " + (x if len(x) < 60 else ""))) >= 3),
    Rule("math", "arithmetic_only", lambda i, x, o: bool(_ARITH_ONLY.match(i))),
    Rule("math", "arithmetic_expression", lambda i, x, o: bool(_ARITH_EXPR.search(i)) or bool(x and _ARITH_EXPR.search(x) and _MATH_WEAK.search(i + x))),
    Rule("math", "calendar_reckoning", lambda i, x, o: bool(_CALENDAR.search(i))),
    Rule("math", "math_words", lambda i, x, o: bool(_MATH_STRONG.search(i))),
    # A quantity question over a long context ("森林覆盖率高达百分之多少?" + a paragraph) is reading
    # comprehension: the numbers must be in the question or in a short input.
    # A figure asked of a text to read ("阅读短文…比例是多少？") is read off it, not computed.
    Rule("math", "quantity_question", lambda i, x, o: bool(_MATH_WEAK.search(i) or _PROBLEM.match(i))
         and _has_numbers(i, x if len(x) < 60 and (not _READ_CUE.search(i) or _COMPUTE.search(i)) else "")),
    Rule("closed qa", "reasoning_over_stated_facts", lambda i, x, o: not x.strip() and len(i) >= 25 and not _has_numbers(i, "")
         and bool(_INFER.search(i) or _PROBLEM.match(i))),
    Rule("rewrite", "rewrite_words", lambda i, x, o: bool(_REWRITE_STRONG.search(i))),
    Rule("rewrite", "find_and_correct_errors", lambda i, x, o: bool(_ERRORS.search(i)) and bool(_CORRECT.search(i)) and _given_text(i, x)),
    Rule("generation", "fill_the_blank", lambda i, x, o: bool(_BLANK.search(i + " " + x)) and bool(_FILL.search(i))),
    Rule("summarization", "summarise_given_text", lambda i, x, o: bool(_SUMMARY.search(i)) and _given_text(i, x)),
    Rule("summarization", "gist_of_given_text", lambda i, x, o: bool(_GIST.search(i)) and _has_context(x)),
    Rule("summarization", "title_of_given_text", lambda i, x, o: bool(_TITLE.search(i)) and _has_context(x) and not _MENTIONED.search(i)
         and not _CLASSIFY.search(i)),
    Rule("classification", "classify_words", lambda i, x, o: bool(_CLASSIFY.search(i)) and not _HOWTO_OR_LIST.search(i)),
    Rule("classification", "split_given_items", lambda i, x, o: bool(_SPLIT_INTO.search(i)) and _given_text(i, x)),
    Rule("classification", "sentiment_of_input", lambda i, x, o: bool(x.strip()) and bool(_SENTIMENT_WITH_INPUT.search(i))
         and not _EDIT_TONE.search(i)),
    Rule("classification", "either_or_question", lambda i, x, o: len(i) <= 40 and bool(_EITHER_OR.search(i))),
    # Extraction needs a text to extract from ("描述从油井中提取石油的过程" is a question) …
    # Which items of a given list are X ("从下面这份菜单中挑出所有素菜：…", "里面有哪些是水果？").
    Rule("classification", "pick_from_given_items", lambda i, x, o: bool(_PICK_ITEMS.search(i)) and (_given_options(x) or _given_items(x))),
    Rule("extract", "items_from_given_text", lambda i, x, o: bool(_EXTRACT_ITEMS.search(i)) and _has_context(x)),
    Rule("extract", "extract_words", lambda i, x, o: bool(_EXTRACT_STRONG.search(i)) and _given_text(i, x)),
    # … and a question about a given context is answered from it ("文中提到的小说的标题是什么？").
    Rule("extract", "find_in_given_text", lambda i, x, o: bool(_EXTRACT_FROM.search(i) or (x.strip() and _KEYWORDS.search(i)))
         and _given_text(i, x) and not (_ENDS_AS_QUESTION.search(i) and _has_context(x))),
    # …unless the instruction is a question about a given context ("哪一时期…由佛教改为儒教？").
    # "请以你的口吻写一篇…文章" names the piece to write, not a text to edit.
    Rule("rewrite", "edit_given_text", lambda i, x, o: bool(_REWRITE_WEAK.search(i)) and _given_text(i, x)
         and not (not x.strip() and _GENERATE_VERB.search(i) and _GENERATE_NOUN.search(i))
         and not (_ENDS_AS_QUESTION.search(i) and not _REQUEST_ASK.search(i))),
    Rule("generation", "continue", lambda i, x, o: bool(_CONTINUE.match(i))),
    Rule("generation", "sentence_or_figure", lambda i, x, o: bool(_GENERATE_SENTENCE.search(i))),
    Rule("open qa", "word_knowledge", lambda i, x, o: bool(_WORD_KNOWLEDGE.search(i))),
    Rule("brainstorming", "advice_question", lambda i, x, o: not _has_context(x) and _asks_advice(i)),
    # A question about a given text is answered from it (below), even when it says "说明" or "解释".
    Rule("open qa", "explain_a_concept", lambda i, x, o: bool(_EXPLAIN.search(i)) and not _GENERATE_NOUN.search(i)
         and not _asks_about_context(i, x)),
    Rule("open qa", "how_to_steps", lambda i, x, o: (bool(_HOW_TO.search(i)) or (bool(_HOW_QUESTION.search(i)) and not x.strip()
                                                                                  and not _CODE_OUTPUT.search(o or "")))
         and not _GENERATE_NOUN.search(i) and not _asks_about_context(i, x)),
    # A creative piece asked for ("生成一个以“友谊”为主题的创意故事") even when "创意" is in the request.
    Rule("generation", "creative_piece", lambda i, x, o: bool(_GENERATE_VERB.search(i)) and bool(_GENERATE_NOUN.search(i))
         and not _ASKS_ABOUT.search(i) and not _PLURAL_IDEAS.search(i)),
    Rule("brainstorming", "ideas_or_list", lambda i, x, o: bool(_BRAINSTORM.search(i))),
    Rule("open qa", "list_facts", lambda i, x, o: bool(_LIST_FACTS.search(i))),
    Rule("generation", "write_verb", lambda i, x, o: bool(_GENERATE_VERB.search(i))),
    Rule("generation", "creative_noun", lambda i, x, o: bool(_GENERATE_NOUN.search(i)) and not _ASKS_ABOUT.search(i)),
    Rule("code", "code_in_output", lambda i, x, o: bool(_CODE_OUTPUT.search(o or ""))),
    Rule("classification", "choose_from_given_options", lambda i, x, o: bool(_CHOOSE.search(i)) and (_given_options(x) or len(_MC_OPTIONS.findall(x)) >= 2)),
    Rule("closed qa", "question_with_context", lambda i, x, o: _has_context(x) and bool(_QUESTION.search(i) or _QUESTION.search(x[:200]))),
    Rule("closed qa", "task_on_given_text", lambda i, x, o: _has_context(x) and bool(_BASED_ON.search(i))),
    Rule("open qa", "question", lambda i, x, o: bool(_QUESTION.search(i)) or (bool(x.strip()) and not _has_context(x) and bool(_QUESTION.search(x)))),
    Rule("open qa", "bare_topic", lambda i, x, o: not x.strip() and 0 < len(i.strip()) <= _TOPIC_MAX_CHARS),
    # Nothing else fired: most such rows are requests for knowledge phrased without a question word
    # ("诊断以下医学症状。"); "other" is left for rows with no words at all.
    Rule("open qa", "fallback", lambda i, x, o: bool(_WORDY.search(i))),
]


def request_and_context(instruction: str, input: str = "", history: str | list | None = None) -> tuple[str, str, str]:
    """``(request, context, where)``: what the rules read. The context is the ``input``; without one, a
    text written inside the instruction (``curate.passage.split_inline_context``), else one a user
    pasted in an earlier chat turn; ``where`` is ``"input"``, ``"inline"``, ``"history"`` or ``""``."""
    ins = (instruction or "").strip()
    inp = (input or "").strip()
    if not ins:  # all of the task sits in the input: read it as the instruction
        ins, inp = inp, ""
    ins = strip_greeting(ins)
    if inp:
        return ins, inp, "input"
    req, ctx = split_inline_context(ins)
    if ctx:
        return req, ctx, "inline"
    ctx = history_context(history, ins)
    return ins, ctx, "history" if ctx else ""


def match_rule(instruction: str, input: str = "", output: str = "", history: str | list | None = None) -> tuple[str, str]:
    """``(task_type, rule_name)`` of the first rule that fires; ``("other", "no_rule")`` if none.
    The rules read the request and its context (``request_and_context``), not the raw fields."""
    return match_rule_and_context(instruction, input, output, history)[:2]


def match_rule_and_context(instruction: str, input: str = "", output: str = "",
                           history: str | list | None = None) -> tuple[str, str, str, str]:
    """``(task_type, rule_name, request, context)``: ``match_rule`` and what its rules read."""
    if not (instruction or "").strip() and not (input or "").strip():
        return "other", "empty", "", ""
    req, inp, _ = request_and_context(instruction, input, history)
    ins = req.lower()
    for rule in RULES:
        if rule.test(ins, inp, output or ""):
            return rule.label, rule.name, req, inp
    return "other", "no_rule", req, inp


def label_task_type(instruction: str, input: str = "", output: str = "", history: str | list | None = None) -> str:
    """One of ``TASK_TYPES`` for a record (see the module docstring for the ordered rules)."""
    return match_rule(instruction, input, output, history)[0]
