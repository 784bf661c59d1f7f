from __future__ import annotations

import pandas as pd
from tqdm.auto import tqdm

from ..records import StageResult, empty_drops
from ..tasktype import TASK_TYPES
from .base import Tagger, register


def _sample_examples(df: pd.DataFrame, labels: list[str], per_label: int = 2) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rid, ins, lab in zip(df["id"].tolist(), df["instruction"].tolist(), labels):
        bucket = out.setdefault(lab, [])
        if len(bucket) < per_label:
            bucket.append({"id": str(rid), "instruction": str(ins)[:120]})
    return dict(sorted(out.items()))


@register("task_type_tagger")
class TaskTypeTagger(Tagger):
    """Adds ``task_type`` (one of ``TASK_TYPES``) with the ordered rules of ``label_task_type``, and
    ``task_confidence`` (``curate.tasktype_model``: the deciding rule's measured precision, or the
    model's probability). With ``model=True`` the learned model decides the rows only a generic rule
    decided (off by default: it helps single-field prompts, not alpaca-shaped rows).

    Drops nothing. stats: ``counts`` per label (all 11, zeros included), ``rules`` (how often each
    rule decided; ``model`` for the model), ``low_confidence`` (rows under ``min_confidence``),
    ``examples`` (two rows per label).
    """

    row_local = True

    def __init__(self, column: str = "task_type", model: bool = False, confidence_column: str = "task_confidence",
                 min_confidence: float | None = None):
        from ..tasktype_model import MIN_CONFIDENCE

        self.column = column
        self.model = bool(model)
        self.confidence_column = confidence_column
        self.min_confidence = MIN_CONFIDENCE if min_confidence is None else float(min_confidence)

    def __call__(self, df: pd.DataFrame) -> StageResult:
        from ..tasktype_model import label_rows

        # lists: iterating an Arrow-backed column costs more per value than the conversion
        hist = df["history"].tolist() if "history" in df.columns else None
        it = tqdm(df["instruction"].tolist(), total=len(df), desc=self.name, disable=None, leave=False)
        labels, decided, conf = label_rows(it, df["input"].tolist(), df["output"].tolist(), hist, model=self.model)
        rules = [d.removeprefix("rule:") for d in decided]
        kept = df.copy()
        kept[self.column] = pd.Series(labels, index=df.index, dtype="str")
        kept[self.confidence_column] = pd.Series(conf, index=df.index, dtype="float64")
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
            "low_confidence": int(sum(c < self.min_confidence for c in conf)),
            "min_confidence": self.min_confidence,
            "examples": _sample_examples(df, labels),
        }
        return StageResult(kept, empty_drops(df, self.name), stats)
