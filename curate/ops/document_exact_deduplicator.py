from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..duplicates import check_frame, dedupe_result, empty_stats, group_stats, survivors
from ..exact import exact_keys
from ..minhash.config import DEFAULT_FIELDS
from ..records import StageResult, drop_frame
from .base import Deduplicator, register


@register("document_exact_deduplicator")
class DocumentExactDeduplicator(Deduplicator):
    """Drop exact duplicates (after key normalisation) of the selected fields; keep one per group.

    Params: ``fields`` (columns compared, default instruction/input/output), ``source_priority``
    (sources preferred as survivors, in order; default none). Dropped: ``exact_duplicate``,
    detail = survivor id.
    """

    def __init__(self, fields: Sequence[str] = DEFAULT_FIELDS, source_priority: Sequence[str] = ()):
        self.fields = tuple(fields)
        self.source_priority = tuple(source_priority)
        if not self.fields:
            raise ValueError("fields must name at least one column")

    def __call__(self, df: pd.DataFrame) -> StageResult:
        check_frame(df, self.fields, self.name)
        n = len(df)
        if n == 0:
            return StageResult(df, drop_frame(df, self.name, "exact_duplicate", ""), empty_stats())
        keys = exact_keys(df, self.fields)
        _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        labels = first[inv]
        surv = survivors(df, labels, self.source_priority)
        details = df["id"].astype(str).to_numpy()[surv]
        stats = group_stats(df, labels, surv, "exact_duplicate", details)
        stats["params"] = {"fields": list(self.fields), "source_priority": list(self.source_priority)}
        return dedupe_result(df, self.name, surv, "exact_duplicate", details, stats)
