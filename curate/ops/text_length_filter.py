"""``text_length_filter``: an upper bound on characters per field and per record.

Without one, a single pathological row (a whole book pasted into ``input``) goes through every
stage and into the mixtures, where it costs memory and time everywhere and teaches nothing a
trainer with a token cutoff can use. The defaults are far above any row of the real corpora (the
mirror's longest field and record are a few thousand characters), so only such outliers go.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ..records import StageResult, drop_frame, examples
from .base import Filter, register

FIELDS = ("instruction", "input", "output", "history")


@register("text_length_filter")
class TextLengthFilter(Filter):
    """Drop a row with a field longer than ``max_field_chars`` (``field_too_long``, the detail names
    the field and its length) or whose fields together exceed ``max_record_chars``
    (``record_too_long``). ``history`` counts as its stored JSON text. Lengths are in characters."""

    def __init__(self, max_field_chars: int = 100_000, max_record_chars: int = 200_000):
        for name, v in (("max_field_chars", max_field_chars), ("max_record_chars", max_record_chars)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"text_length_filter: {name} must be a positive integer, got {v!r}")
        self.max_field_chars, self.max_record_chars = max_field_chars, max_record_chars

    def __call__(self, df: pd.DataFrame) -> StageResult:
        fields = [f for f in FIELDS if f in df.columns]
        lengths = np.column_stack([df[f].str.len().fillna(0).to_numpy(dtype=np.int64) for f in fields]) \
            if len(df) else np.zeros((0, len(fields)), dtype=np.int64)
        longest = lengths.argmax(axis=1) if len(df) else np.zeros(0, dtype=np.int64)
        field_max = lengths.max(axis=1) if len(df) else np.zeros(0, dtype=np.int64)
        total = lengths.sum(axis=1)
        reasons, details = [], []
        for k, (m, t) in enumerate(zip(field_max, total)):
            if m > self.max_field_chars:
                reasons.append("field_too_long")
                details.append(f"{fields[longest[k]]} has {int(m):,} characters > max_field_chars "
                               f"{self.max_field_chars:,}")
            elif t > self.max_record_chars:
                reasons.append("record_too_long")
                details.append(f"the fields hold {int(t):,} characters > max_record_chars {self.max_record_chars:,}")
            else:
                reasons.append("")
                details.append("")
        reason = pd.Series(reasons, index=df.index, dtype=object)
        mask = (reason != "").to_numpy()
        dropped = drop_frame(df[mask], self.name, reason[mask],
                             pd.Series(details, index=df.index, dtype=object)[mask])
        counts = {r: int(n) for r, n in sorted(Counter(reason[mask]).items())}
        stats = {"reasons": counts,
                 "examples": {r: examples(dropped[dropped["reason"] == r]) for r in counts}}
        return StageResult(df[~mask], dropped, stats)
