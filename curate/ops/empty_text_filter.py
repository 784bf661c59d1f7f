from __future__ import annotations

from collections import Counter

import pandas as pd

from ..records import StageResult, drop_frame, examples
from .base import Filter, register


@register("empty_text_filter")
class EmptyTextFilter(Filter):
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
