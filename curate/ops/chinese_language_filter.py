from __future__ import annotations

from collections import Counter

import pandas as pd
from tqdm import tqdm

from ..language import HAN_FRAME, PATHS, judge_text, prompt_lead, units
from ..records import StageResult, drop_frame, examples
from .base import Filter, register


@register("chinese_language_filter")
class ChineseLanguageFilter(Filter):
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
        ins_text, ci = judge_text(instruction)
        inp_text, cn = judge_text(input)
        weak = not ci["han"] and ci["latin"] < self.min_latin_words and not (ci["kana"] or ci["hangul"] or ci["other"])
        if sum(ci.values()) and not (weak and sum(cn.values())):
            text, c = ins_text, ci
        elif sum(cn.values()):
            # No instruction, or one of a few Latin words ("Summarize:"): the input tells more.
            # (Not the two joined: langdetect weighs Latin letters far above Han characters.)
            text, c = inp_text, cn
        else:
            return True, "no_signal", None
        lead = prompt_lead(text)
        # A Chinese lead keeps the row ("翻译：<English passage>"); a Latin lead does not reject it:
        # "Go to X: () Y: ()块的作用是什么？" is Chinese.
        if lead and self._fast(units(lead)) == "cjk":
            return True, "fast_path:cjk", None
        fast = self._fast(c)
        if fast:
            return fast == "cjk", f"fast_path:{fast}", None
        if HAN_FRAME.search(text.strip()):
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
