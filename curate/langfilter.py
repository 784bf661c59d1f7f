"""Filters run after normalisation: empty texts, and rows whose prompt is not Chinese.

``chinese_language_filter`` judges the *prompt* (instruction, then input), never the output: an
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

import pandas as pd
from tqdm import tqdm

from .ops import register
from .records import StageResult, drop_frame, examples

# ----------------------------------------------------------------------------- empty texts


@register("empty_text_filter")
class EmptyTextFilter:
    """Drop rows with an empty output (``empty_output``) or an empty prompt (``empty_instruction``:
    instruction and input both empty). Whitespace-only counts as empty."""

    def __call__(self, df: pd.DataFrame) -> StageResult:
        out_empty = df["output"].str.strip().eq("").to_numpy()
        prompt_empty = (df["instruction"].str.strip().eq("") & df["input"].str.strip().eq("")).to_numpy()
        reason = pd.Series(["empty_output" if o else ("empty_instruction" if p else "") for o, p in
                            zip(out_empty, prompt_empty)], index=df.index)
        mask = (reason != "").to_numpy()
        dropped = drop_frame(df[mask], self.name, reason[mask],
                             pd.Series(["output is empty" if r == "empty_output" else "instruction and input are empty"
                                        for r in reason[mask]], index=df.index[mask], dtype=object))
        counts = {r: int(n) for r, n in sorted(Counter(reason[mask]).items())}
        stats = {"reasons": counts,
                 "examples": {r: examples(dropped[dropped["reason"] == r]) for r in counts}}
        return StageResult(df[~mask], dropped, stats)


# ------------------------------------------------------------------------------- language

_HAN = "\u3007\u3400-\u9fff\uf900-\ufaff\U00020000-\U000323af"
_CUT = re.compile(
    # The look-behind and the opening quote kept out of each body keep this linear: without them a
    # long unbroken run of letters (or many unclosed quotes) made it quadratic (1 MB took hours).
    r"(?:https?://|www\.)\S+|(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+|`[^`\n]*`"
    r"|“[^“”\n]*”|\"[^\"\n]*\"|「[^「」\n]*」|『[^『』\n]*』|《[^《》\n]*》|‘[^‘’\n]*’"
)
# Units: one Han character, one Latin word, one word of another script; kana and hangul apart.
_UNIT = re.compile(rf"(?P<han>[{_HAN}])|(?P<kana>[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f])"
                   r"|(?P<hangul>[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f])"
                   r"|(?P<latin>[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]+)"
                   r"|(?P<other>[^\W\d_]+)")


def _units(s: str) -> Counter:
    c: Counter = Counter()
    for m in _UNIT.finditer(s):
        c[m.lastgroup] += 1
    return c


def _judge_text(s: str) -> tuple[str, Counter]:
    """The text with quoted material, URLs and code spans cut out (uncut if nothing would be left)."""
    cut = _CUT.sub(" ", s)
    c = _units(cut)
    if sum(c.values()):
        return cut, c
    return s, _units(s)


# The lead of a prompt ends at its first colon or line break: "翻译：<English passage>".
_LEAD_END = re.compile(r"：|:(?=\s|$)|\n")
# A prompt that opens or closes with Chinese words frames the foreign text between as material.
_HAN_FRAME = re.compile(rf"^[\W\d_]*[{_HAN}]{{2}}|[{_HAN}]{{2}}[\W\d_]*$")


def _lead(text: str) -> str:
    m = _LEAD_END.search(text)
    return text[:m.start()] if m else ""


PATHS = ("fast_path:cjk", "fast_path:latin", "fast_path:frame", "langdetect", "no_signal")


@register("chinese_language_filter")
class ChineseLanguageFilter:
    """Keep rows whose prompt is Chinese (rules in the module docstring); drop the rest as ``not_chinese``.

    Params: ``min_cjk_ratio`` (0.3) Han share of units that decides "Chinese" on the fast path;
    ``max_cjk_ratio_for_fast_reject`` (0.0) Han share at or below which a Latin prompt of at least
    ``min_latin_words`` (3) words is rejected without langdetect; ``seed`` (0) for langdetect.
    """

    def __init__(self, min_cjk_ratio: float = 0.3, max_cjk_ratio_for_fast_reject: float = 0.0,
                 min_latin_words: int = 3, seed: int = 0):
        if not 0.0 <= max_cjk_ratio_for_fast_reject < min_cjk_ratio <= 1.0:
            raise ValueError("chinese_language_filter: need 0 <= max_cjk_ratio_for_fast_reject < min_cjk_ratio <= 1, "
                             f"got {max_cjk_ratio_for_fast_reject} and {min_cjk_ratio}")
        self.min_cjk_ratio = float(min_cjk_ratio)
        self.max_reject = float(max_cjk_ratio_for_fast_reject)
        self.min_latin_words = int(min_latin_words)
        self.seed = int(seed)

    def _fast(self, c: Counter) -> str | None:
        total = sum(c.values())
        if not total:
            return None
        han_share = c["han"] / total
        # A few kana/hangul in a Chinese sentence are quoted material ("韩语短语 - 장보기");
        # Japanese has far more kana than that.
        if han_share >= self.min_cjk_ratio and c["kana"] + c["hangul"] <= 0.25 * c["han"]:
            return "cjk"
        if (han_share <= self.max_reject and c["latin"] >= self.min_latin_words
                and not (c["kana"] or c["hangul"] or c["other"])):
            return "latin"
        return None

    def judge(self, instruction: str, input: str) -> tuple[bool, str, str | None]:
        """(keep, path, language): path is fast_path:cjk, fast_path:latin, fast_path:frame,
        langdetect or no_signal; language is langdetect's answer (None on the other paths)."""
        ins_text, ci = _judge_text(instruction)
        inp_text, cn = _judge_text(input)
        weak = not ci["han"] and ci["latin"] < self.min_latin_words and not (ci["kana"] or ci["hangul"] or ci["other"])
        if sum(ci.values()) and not (weak and sum(cn.values())):
            text, c = ins_text, ci
        elif sum(cn.values()):
            # No instruction, or one of a few Latin words ("Summarize:"): the input tells more.
            # (Not the two joined: langdetect weighs Latin letters far above Han characters.)
            text, c = inp_text, cn
        else:
            return True, "no_signal", None
        lead = _lead(text)
        # A Chinese lead keeps the row ("翻译：<English passage>"); a Latin lead does not reject it:
        # "Go to X: () Y: ()块的作用是什么？" is Chinese.
        if lead and self._fast(_units(lead)) == "cjk":
            return True, "fast_path:cjk", None
        fast = self._fast(c)
        if fast:
            return fast == "cjk", f"fast_path:{fast}", None
        if _HAN_FRAME.search(text.strip()):
            return True, "fast_path:frame", None
        lang = self._detect(text)
        if lang is None:
            return True, "no_signal", None
        return lang.startswith("zh"), "langdetect", lang

    def _detect(self, text: str) -> str | None:
        from langdetect import DetectorFactory, detect
        from langdetect.lang_detect_exception import LangDetectException

        DetectorFactory.seed = self.seed  # set before every call: another user may have changed it
        try:
            return detect(text)
        except LangDetectException:
            return None

    def __call__(self, df: pd.DataFrame) -> StageResult:
        keep, paths, details = [], [], []
        langs: Counter = Counter()
        ins, inp = df["instruction"].tolist(), df["input"].tolist()
        for a, b in tqdm(zip(ins, inp), total=len(df), desc=self.name, disable=None, leave=False, mininterval=1.0):
            k, path, lang = self.judge(a, b)
            keep.append(k)
            paths.append(path)
            details.append(path if lang is None else f"{path}:{lang}")
            if lang is not None:
                langs[lang] += 1
        keep_mask = pd.Series(keep, index=df.index, dtype=bool).to_numpy()
        drop_mask = ~keep_mask
        detail = pd.Series(details, index=df.index, dtype=object)
        dropped = drop_frame(df[drop_mask], self.name, "not_chinese", detail[drop_mask])
        decided = Counter(paths)
        dropped_by = Counter(d for d, k in zip(details, keep) if not k)
        stats = {
            "decided_by": {p: int(decided.get(p, 0)) for p in PATHS},
            "kept_by": {p: int(sum(1 for q, k in zip(paths, keep) if k and q == p)) for p in PATHS},
            "detected_languages": {k: int(v) for k, v in sorted(langs.items())},
            "dropped_detail": {k: int(v) for k, v in sorted(dropped_by.items())},
            "reasons": {"not_chinese": int(drop_mask.sum())} if drop_mask.any() else {},
            "examples": {"not_chinese": [dict(e, detail=d) for e, d in
                                         zip(examples(dropped), dropped["detail"].head(3).tolist())]}
            if drop_mask.any() else {},
            "params": {"min_cjk_ratio": self.min_cjk_ratio, "max_cjk_ratio_for_fast_reject": self.max_reject,
                       "min_latin_words": self.min_latin_words, "seed": self.seed},
        }
        return StageResult(df[keep_mask], dropped, stats)
