"""Text normalisation rules, one function per rule, and ``normalize_text`` that applies them all.

The five mappers of ``curate/ops`` apply one rule each. Every mapper works on ``instruction``, ``input``, ``output`` and on every string inside ``history``
(a JSON list of [query, response] pairs). Rows keep their ``id``: it names the raw row, not its text.
Stats of each mapper: ``{"rows", "changed", "by_field", "examples"}`` (≤3 examples, each a window
around the first difference) plus a few rule-specific counts.

The exact rules
---------------
``unicode_clean_mapper`` — ``clean_unicode``, in this order:
  1. a lone surrogate (from a broken ``\\ud83d`` escape) → U+FFFD;
  2. form feed / backspace directly before an ASCII letter → ``\\f`` / ``\\b`` + letter: JSON read
     ``\\frac`` as form feed + ``rac`` (a real row: ``$y = \\frac{2x-1}{3}$``);
  3. the other line-break controls (VT, FF, NEL U+0085, U+2028, U+2029) → ``\\n``;
  4. removed: other C0/C1 controls (``\\n``, ``\\t``, ``\\r`` are kept; ``\\r`` is the whitespace
     rule's job), DEL, zero-width and invisible characters U+200B–U+200D, U+2060, U+FEFF, U+00AD (a joiner inside an emoji ZWJ sequence stays);
  5. odd spaces → ASCII space: U+00A0, U+1680, U+2000–U+200A, U+202F, U+205F and the ideographic
     space U+3000;
  6. full-width ASCII letters and digits (Ａ–Ｚ, ａ–ｚ, ０–９) → half-width;
  7. NFC. Not NFKC: NFKC would also turn the full-width punctuation of Chinese (，。！？：；（）…)
     into ASCII, and it is kept as it is, like every other full-width symbol (＃％＜).

``html_tag_mapper`` — ``clean_html(text, context)``:
  * HTML entities with a closing ``;`` (``&lt;`` ``&#39;`` ``&quot;`` …) are unescaped in every
    field, repeatedly (``&amp;lt;`` → ``<``): in the mirror they are escaping left by a translation
    tool, in prose and in code alike. Not when the row talks about escaping (转义, escape, entity).
  * Tags are removed only from outputs (and history responses), only when the answer is prose:
    the instruction/input do not talk about markup or code (html, 网页, 标签, 粗体, 代码 …) nor contain
    a tag, and the output is not code and contains no document tag (html, body, form, table, img,
    script …). Otherwise the markup *is* the answer (``<span style=…>`` asked for by "用红色大字输出").
  * Only known formatting tags with well-formed attributes are tags: ``vector<int>``, ``a < b``,
    ``<noinput>`` and Scratch's ``<button (v) pressed?>`` are text. ``<br>``/``<hr>``/block tags →
    line break, ``<li>`` → ``- `` item, ``<sup>2</sup>`` → ``²``, ``<sub>2</sub>`` → ``₂``,
    other inline tags (span, font, b, a …) vanish and keep their content.

``chinese_convert_mapper`` — OpenCC, traditional → simplified (``t2s``; ``tw2sp`` also changes
Taiwan wording: 軟體 → 软件). Applied to runs of Han characters, and only to a run that holds at
least one character OpenCC changes on its own: simplified text is left byte-for-byte alone (t2s on
simplified text is not the identity: it turns 破坏土壤 into 破坯土壤 and, with tw2sp, 程序 into 进程).
Runs touching kana are Japanese and left alone. A run is converted until stable (OpenCC's longest
match can hold a character back once: 集合於 → 集合於, then 集合于), so conversion is idempotent.

``literal_newline_mapper`` — ``fix_literal_newlines``: a backslash followed by ``n`` (two
characters; ``\\r\\n`` too) becomes a line break only when the text uses it as one: it occurs at
least twice, no occurrence sits against a quote or backtick (``“\\n”`` talks *about* the escape),
and the text does not look like code or LaTeX (``printf("%d\\n")`` stays). A ``\\n`` preceded by
another backslash is an escaped backslash and stays.

``whitespace_normalization_mapper`` — ``normalize_whitespace``: ``\\r\\n`` and lone ``\\r`` →
``\\n``; trailing spaces/tabs of every line removed; leading indentation and inner runs of spaces
kept (code and aligned tables need them); more than two blank lines in a row → two; the field
stripped.

``normalize_text`` applies them in the order unicode → html → chinese → literal newline →
whitespace, and is idempotent: ``normalize_text(normalize_text(s)) == normalize_text(s)``.
"""
from __future__ import annotations

import html as _html
import re
import unicodedata
from functools import lru_cache

# --------------------------------------------------------------------------------------- unicode

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# JSON ate the backslash of a LaTeX command: "\frac" was read as form feed + "rac".
_LATEX_CONTROL = re.compile(r"([\x08\x0c])(?=[A-Za-z])")
_LATEX_FIX = {"\x08": "\\b", "\x0c": "\\f"}


def _unicode_table() -> dict[int, str | None]:
    t: dict[int, str | None] = {}
    for c in list(range(0x00, 0x20)) + [0x7F] + list(range(0x80, 0xA0)):
        if chr(c) not in "\n\t\r":
            t[c] = None
    for c in (0x0B, 0x0C, 0x85, 0x2028, 0x2029):  # line-break controls
        t[c] = "\n"
    for c in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD):  # invisible
        t[c] = None
    for c in [0x00A0, 0x1680, 0x202F, 0x205F, 0x3000] + list(range(0x2000, 0x200B)):
        t[c] = " "
    for a, b in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A)):  # full-width letters/digits
        for c in range(a, b + 1):
            t[c] = chr(c - 0xFEE0)
    return t


_UNICODE_TABLE = _unicode_table()
# A zero-width joiner between two pictographs (an emoji ZWJ sequence such as 👨‍👩‍👧 or 🏳️‍🌈) is part
# of one emoji, not an invisible stray: it is kept. The pictograph ranges approximate Unicode's
# Extended_Pictographic; a variation selector or skin-tone modifier may stand before the joiner.
_PICTO = "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2\u25aa-\u27bf\u2934\u2935" \
         "\u2b05-\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff"
_EMOJI_ZWJ = re.compile(f"(?:(?<=[{_PICTO}])|(?<=[{_PICTO}][\ufe0f\U0001f3fb-\U0001f3ff]))\u200d(?=[{_PICTO}])")
_UNICODE_TOUCHED = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(_UNICODE_TABLE)) + "\ud800-\udfff]")


def clean_unicode(s: str) -> str:
    """The unicode rules above; full-width Chinese punctuation is kept."""
    if "\u200d" in s and _EMOJI_ZWJ.search(s):  # the joiners of emoji sequences stay
        return "\u200d".join(clean_unicode(part) for part in _EMOJI_ZWJ.split(s))
    if _UNICODE_TOUCHED.search(s):
        if "\x08" in s or "\x0c" in s:
            s = _LATEX_CONTROL.sub(lambda m: _LATEX_FIX[m.group(1)], s)
        s = _SURROGATE.sub("\ufffd", s)
        s = s.translate(_UNICODE_TABLE)
    if not s.isascii() and not unicodedata.is_normalized("NFC", s):
        s = unicodedata.normalize("NFC", s)
    return s


# ---------------------------------------------------------------------------------- whitespace

_TRAILING_WS = re.compile(r"[ \t]+(?=\n)")
_MANY_BLANK_LINES = re.compile(r"\n{4,}")


def normalize_whitespace(s: str) -> str:
    if "\r" in s:
        s = s.replace("\r\n", "\n").replace("\r", "\n")
    if " \n" in s or "\t\n" in s:
        s = _TRAILING_WS.sub("", s)
    if "\n\n\n\n" in s:
        s = _MANY_BLANK_LINES.sub("\n\n\n", s)
    return s.strip()


# -------------------------------------------------------------------------- code-looking text

# Strong signs of program text or LaTeX; prose in the mirror has none of them. Used to leave
# literal "\n" and HTML in code alone.
_CODE_HINTS = re.compile(
    r"```|#include|<\?php|\b(?:printf|sprintf|fprintf|println|puts|console\.log|System\.out|cout|cin|cerr)\b"
    r"|std::|std：：|\b(?:print|def|if|for|while|switch|return|function)\s*[(（]"
    r"|^[ \t]*(?:import|from|def|class|public|private|static|return|var|let|const|int|void|#define)\b"
    r"|;[ \t]*(?:$|\\n)|[{}]|==|!=|&&|\|\||\+\+|=>|%[sdifc]\b|\\[0\"'\\]"
    r"|\$[^$\r\n]*\\[A-Za-z]|\\(?:frac|sqrt|sum|int|neq|nabla|nu|newline|left|right|begin|end|cdot|times"
    r"|alpha|beta|gamma|delta|theta|lambda|mu|pi|sigma|infty|leq|geq|text|mathrm|mathbf)\b"
    r"|\b[A-Za-z]:\\",
    re.M,
)


def looks_like_code(s: str) -> bool:
    """True when ``s`` has a clear sign of program text, a Windows path or LaTeX."""
    return bool(_CODE_HINTS.search(s))


# ----------------------------------------------------------------------------- literal "\n"

_LITERAL_NL = re.compile(r"(?<!\\)(?:\\r)?\\n")
_QUOTED_NL = re.compile(r"""[`"'“”‘’「」『』]\\n|\\n[`"'“”‘’「」『』]""")


def fix_literal_newlines(s: str, min_count: int = 2) -> str:
    """Turn written-out ``\\n`` into line breaks where the text means line breaks (rules above)."""
    if "\\n" not in s:
        return s
    if len(_LITERAL_NL.findall(s)) < min_count or _QUOTED_NL.search(s) or looks_like_code(s):
        return s
    return _LITERAL_NL.sub("\n", s)


# ------------------------------------------------------------------------------------- HTML

_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_ESCAPE_TOPIC = re.compile(r"转义|轉義|实体|實體|字符引用|(?<![A-Za-z])(?:escap|entit)", re.I)

_INLINE_TAGS = ("a abbr b big center cite code del dfn em font i ins kbd mark q s samp small span "
                "strike strong tt u var").split()
_BLOCK_TAGS = "p div blockquote pre h1 h2 h3 h4 h5 h6 ul ol dl dt dd section article header footer".split()
_STRIP_TAGS = _INLINE_TAGS + _BLOCK_TAGS + ["br", "hr", "li", "sup", "sub"]
# Tags that make a text a piece of markup (a page, a form, an embed): never stripped.
_DOC_TAGS = ("html head body title meta link script style form input button select option textarea "
             "label table thead tbody tfoot tr td th img audio video source iframe canvas svg template "
             "noscript object embed nav main aside figure figcaption").split()
_ATTR = r"""(?:\s+[A-Za-z_:][-A-Za-z0-9_:.]*(?:\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|“[^”<>]*”|[^\s"'=<>`]+))?)"""


def _tag_re(names: list[str]) -> re.Pattern:
    alt = "|".join(sorted(names, key=lambda n: (-len(n), n)))
    return re.compile(rf"<(/?)({alt})\b({_ATTR}*)\s*(/?)>", re.I)


_STRIP_TAG = _tag_re(_STRIP_TAGS)
_DOC_TAG = _tag_re(_DOC_TAGS)
_ANY_KNOWN_TAG = _tag_re(_STRIP_TAGS + _DOC_TAGS)
_DOC_MARK = re.compile(r"<!DOCTYPE|<!--|<\?xml", re.I)
# Instructions that ask for markup, formatting or code: the tags in the answer are the answer.
_MARKUP_TOPIC = re.compile(
    r"网页|網頁|网站|網站|页面|頁面|标签|標籤|标记|標記|代码|代碼|程序|程式|脚本|腳本|字体|字體|粗体|粗體|加粗"
    r"|斜体|斜體|下划线|下劃線|划线|高亮|突出显示|突出顯示|颜色|顏色|样式|樣式|格式|排版|嵌入|模板|表单|表單|元素"
    r"|链接|鏈接|邮件|郵件|富文本"
    r"|(?<![A-Za-z])(?:html|css|xml|svg|markdown|latex|web|page|site|tag|code|script|program|style|format"
    r"|font|bold|italic|underline|highlight|embed|template|form|element|link|e-?mail|markup|javascript|php)",
    re.I,
)
_SUP = str.maketrans("0123456789+-=()n", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿ")
_SUB = str.maketrans("0123456789+-=()", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎")
_SUPSUB = re.compile(r"<(sup|sub)>([0-9+\-=()n]{1,8})</\1>", re.I)


def unescape_entities(s: str) -> str:
    """Unescape ``&name;`` / ``&#n;`` entities until none is left (``&amp;lt;`` → ``<``)."""
    while "&" in s:
        t = _ENTITY.sub(lambda m: _html.unescape(m.group()), s)
        if t == s:
            break
        s = t
    return s


def is_markup_answer(text: str, context: str = "") -> bool:
    """True when the tags in ``text`` are meant: markup/code asked for, or the text is markup/code."""
    return bool(_MARKUP_TOPIC.search(context) or _ANY_KNOWN_TAG.search(context)
                or _DOC_TAG.search(text) or _DOC_MARK.search(text) or looks_like_code(text))


def _tag_repl(m: re.Match) -> str:
    closing, name = m.group(1), m.group(2).lower()
    s, a, b = m.string, m.start(), m.end()
    if name in ("br", "hr") or name in _BLOCK_TAGS:
        # A line break, unless one is already there.
        return "" if (b < len(s) and s[b] == "\n") or (a > 0 and s[a - 1] == "\n") or a == 0 else "\n"
    if name == "li":
        return "" if closing else ("- " if a == 0 or s[a - 1] == "\n" else "\n- ")
    if name == "sup":
        return "" if closing else "^"
    return ""


def strip_tags(s: str) -> str:
    """Remove known formatting tags (no questions asked: callers check ``is_markup_answer``)."""
    s = _SUPSUB.sub(lambda m: m.group(2).translate(_SUP if m.group(1).lower() == "sup" else _SUB), s)
    while True:  # removing a tag can join the pieces of another ("<<b>b>"); each round is shorter
        t = _STRIP_TAG.sub(_tag_repl, s)
        if t == s:
            return s
        s = t


def clean_html(s: str, context: str = "", tags: bool = True) -> str:
    """Entities unescaped (unless the row is about escaping); tags stripped when ``tags`` and prose."""
    if "&" not in s and "<" not in s:
        return s
    unescape = not _ESCAPE_TOPIC.search(context) and not _ESCAPE_TOPIC.search(s)
    while True:  # unescaping can reveal a tag, stripping can join an entity: repeat until stable
        t = s
        if unescape and "&" in t:
            t = unescape_entities(t)
        if tags and "<" in t and _STRIP_TAG.search(t) and not is_markup_answer(t, context):
            t = strip_tags(t)
        if t == s:
            return s
        # "&#160;" gives a character the unicode rules replace; removing "<b>" from "a<b>\u0301"
        # leaves a sequence NFC composes.
        s = clean_unicode(t)


# -------------------------------------------------------------------------- Chinese convert

SIMPLIFIED_CONFIGS = ("t2s", "tw2s", "tw2sp", "hk2s", "hk2sp")
_HAN = "\u3007\u3400-\u9fff\uf900-\ufaff\U00020000-\U000323af"
_HAN_RUN = re.compile(f"[{_HAN}]+")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")


class ChineseConverter:
    """OpenCC to simplified Chinese, run by run, only where a character changes (rules above)."""

    def __init__(self, config: str = "t2s"):
        if config not in SIMPLIFIED_CONFIGS:
            raise ValueError(f"chinese_convert: config {config!r} is not a traditional→simplified "
                             f"OpenCC config; use one of {', '.join(SIMPLIFIED_CONFIGS)}")
        import opencc

        self.config = config
        # No tofu-risk dictionaries: they map to characters most fonts cannot show (鑀 → 𰾭).
        self._cc = opencc.OpenCC(config, include_tofu_risk_dictionaries=False)
        self.triggers = frozenset(
            chr(c) for a, b in ((0x3400, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))
            for c in range(a, b + 1) if self._cc.convert(chr(c)) != chr(c))

    def _run(self, m: re.Match) -> str:
        r, s = m.group(), m.string
        if self.triggers.isdisjoint(r):
            return r
        a, b = m.start(), m.end()
        if (a > 0 and _KANA.match(s, a - 1)) or (b < len(s) and _KANA.match(s, b)):
            return r  # Japanese: 長い, 苦難は
        for _ in range(8):
            out = self._cc.convert(r)
            if out == r:
                break
            r = out
        return r

    def convert(self, s: str) -> str:
        if self.triggers.isdisjoint(s):  # the common case: nothing to convert
            return s
        return _HAN_RUN.sub(self._run, s)


@lru_cache(maxsize=None)
def get_converter(config: str = "t2s") -> ChineseConverter:
    return ChineseConverter(config)


def convert_chinese(s: str, config: str = "t2s") -> str:
    return get_converter(config).convert(s)


# ------------------------------------------------------------------------------ all of them

def normalize_text(s: str, config: str = "t2s", context: str = "", tags: bool = True) -> str:
    """All rules on one string: unicode → html → chinese → literal newline → whitespace.

    ``context`` is the instruction and input of the row when ``s`` is an output (the HTML rule
    looks at it); ``tags=False`` keeps tags (as the mapper does for instructions and inputs).
    """
    s = clean_unicode(s)
    s = clean_html(s, context, tags=tags)
    s = convert_chinese(s, config)
    s = fix_literal_newlines(s)
    return normalize_whitespace(s)


# -------------------------------------------------------------------------------- operators
