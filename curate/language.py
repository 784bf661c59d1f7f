"""Is a prompt Chinese? The judgement ``chinese_language_filter`` (curate/ops) applies.

It judges the *prompt* (instruction, then input), never the output: an
answer that is code, a number or an English translation is fine. How a row is judged:

1. Clean the text for judging: URLs, e-mail addresses, `code` spans and quoted spans (“…”, "…",
   「…」, 《…》, ‘…’) are cut out — they are material the prompt talks about, not its language
   (“将“Ich bin ein Berliner”翻译成英文。” is a Chinese prompt). If nothing with letters is left,
   the uncut text is used.
2. Pick the text: the instruction when it has any letter, unless it is only a few Latin words
   ("Summarize:") and the input has letters — then the input. When neither has a letter
   (``1+1=?``, ``91-33=``) the row is kept as ``no_signal``: arithmetic and symbols have no
   language, and the Chinese sets in the mirror hold 500 such rows with correct answers.
3. Fast path, on units: every Han character is one unit, every run of Latin letters (a word) is
   one unit, every word of another script (Cyrillic, Greek …) is one unit, kana and hangul count
   apart. Counting words, not letters, matters: “什么是BlocksEngine？” is 3 Han + 1 word (0.75), but
   3 Han + 12 letters by letters (0.2), and langdetect calls it English.
   * the lead of the text (before its first colon or line break) or the whole text has a Han share
     ≥ ``min_cjk_ratio`` with kana+hangul ≤ a quarter of the Han → Chinese (``fast_path:cjk``):
     “翻译：<English passage>” is a Chinese prompt;
   * Han share ≤ ``max_cjk_ratio_for_fast_reject``, at least ``min_latin_words`` Latin words and
     no other script → not Chinese (``fast_path:latin``);
   * the text opens or closes with two Han characters → Chinese (``fast_path:frame``):
     “<English passage> 翻译成中文”, “翻译An important paradigm …”.
4. Otherwise langdetect (seeded, ``DetectorFactory.seed = seed``; it is random otherwise) on the
   judged text. ``zh-cn``/``zh-tw`` keep the row; any other language drops it with detail
   ``langdetect:<lang>``. When langdetect finds no features (``LangDetectException``) the row is
   kept as ``no_signal``. langdetect is used as little as possible: on mixed Chinese/English text
   it weighs Latin letters far above Han characters (it calls “什么是Variable？” Catalan).

The instruction is weighed over the input: “将以下句子翻译成英文” with an English input is judged on
its instruction alone and kept.
"""
from __future__ import annotations

import re
from collections import Counter

# ------------------------------------------------------------------------------- language

_HAN = "\u3007\u3400-\u9fff\uf900-\ufaff\U00020000-\U000323af"
_CUT = re.compile(
    # The look-behind and the opening quote kept out of each body keep this linear: without them a
    # long unbroken run of letters (or many unclosed quotes) made it quadratic (1 MB took hours).
    r"(?:https?://|www\.)\S+|(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+|`[^`\n]*`"
    r"|“[^“”\n]*”|\"[^\"\n]*\"|「[^「」\n]*」|『[^『』\n]*』|《[^《》\n]*》|‘[^‘’\n]*’"
)
# Units: one Han character, one Latin word, one word of another script; kana and hangul apart.
_KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HANGUL = "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
_UNIT = re.compile(rf"(?P<han>[{_HAN}])|(?P<kana>[{_KANA}])"
                   rf"|(?P<hangul>[{_HANGUL}])"
                   r"|(?P<latin>[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]+)"
                   r"|(?P<other>[^\W\d_]+)")


# A character that is a unit but not Han (or starts one): text without any is Han units only.
_NOT_HAN_UNIT = re.compile(rf"(?![{_HAN}])[^\W\d_]|[{_KANA}{_HANGUL}]")
_HAN_CHAR = re.compile(f"[{_HAN}]")


def units(s: str) -> Counter:
    # Most prompts are Han and punctuation only: their units are their Han characters, counted in
    # one scan instead of a match object per character (the same Counter).
    if _NOT_HAN_UNIT.search(s) is None:
        n = len(_HAN_CHAR.findall(s))
        return Counter({"han": n}) if n else Counter()
    c: Counter = Counter()
    for m in _UNIT.finditer(s):
        c[m.lastgroup] += 1
    return c


def judge_text(s: str) -> tuple[str, Counter]:
    """The text with quoted material, URLs and code spans cut out (uncut if nothing would be left)."""
    cut = _CUT.sub(" ", s)
    c = units(cut)
    if sum(c.values()):
        return cut, c
    return s, units(s)


# The lead of a prompt ends at its first colon or line break: "翻译：<English passage>".
_LEAD_END = re.compile(r"：|:(?=\s|$)|\n")
# A prompt that opens or closes with Chinese words frames the foreign text between as material.
HAN_FRAME = re.compile(rf"^[\W\d_]*[{_HAN}]{{2}}|[{_HAN}]{{2}}[\W\d_]*$")


def prompt_lead(text: str) -> str:
    m = _LEAD_END.search(text)
    return text[:m.start()] if m else ""


PATHS = ("fast_path:cjk", "fast_path:latin", "fast_path:frame", "langdetect", "no_signal")
