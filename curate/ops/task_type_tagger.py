from __future__ import annotations

import pandas as pd
from tqdm.auto import tqdm

from ..records import StageResult, empty_drops
from ..tasktype import TASK_TYPES, match_rule
from .base import Tagger, register


def _sample_examples(df: pd.DataFrame, labels: list[str], per_label: int = 2) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rid, ins, lab in zip(df["id"], df["instruction"], labels):
        bucket = out.setdefault(lab, [])
        if len(bucket) < per_label:
            bucket.append({"id": str(rid), "instruction": str(ins)[:120]})
    return dict(sorted(out.items()))


@register("task_type_tagger")
class TaskTypeTagger(Tagger):
    """Adds ``task_type`` (one of ``TASK_TYPES``) with the ordered rules of ``label_task_type``.

    Drops nothing. stats: ``counts`` per label (all 11, zeros included), ``rules`` (how often each
    rule decided), ``examples`` (two rows per label).
    """

    row_local = True

    def __init__(self, column: str = "task_type"):
        self.column = column

    def __call__(self, df: pd.DataFrame) -> StageResult:
        labels, rules = [], []
        it = zip(df["instruction"], df["input"], df["output"])
        for ins, inp, out in tqdm(it, total=len(df), desc=self.name, disable=None, leave=False):
            lab, rule = match_rule(ins, inp, out)
            labels.append(lab)
            rules.append(rule)
        kept = df.copy()
        kept[self.column] = pd.Series(labels, index=df.index, dtype="str")
        counts = {t: 0 for t in TASK_TYPES}
        for lab in labels:
            counts[lab] += 1
        rule_counts: dict[str, int] = {}
        for r in rules:
            rule_counts[r] = rule_counts.get(r, 0) + 1
        stats = {
            "changed": 0,
            "counts": counts,
            "rules": dict(sorted(rule_counts.items())),
            "examples": _sample_examples(df, labels),
        }
        return StageResult(kept, empty_drops(df, self.name), stats)
