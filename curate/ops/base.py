"""What every operator is, and the registry a recipe names them from.

An operator is a small class named by what it does (Data-Juicer style: ``chinese_convert_mapper``,
``document_minhash_deduplicator``), registered under that name with :func:`register`, built from
the recipe's parameters (checked in its ``__init__``) and called as ``op(df) -> StageResult``.
Its base class tells the pipeline what it may do with it:

* :class:`Mapper` changes text and drops nothing; :class:`Filter` drops rows with a reason;
  both are row-local (each output row depends on that input row alone, and stats add up over
  parts of the input), so the pipeline may run them on shards.
* :class:`Deduplicator` compares rows with each other: it needs all of them at once.
* :class:`Tagger` adds columns; ``row_local`` says whether a row's tag depends on the others.
"""
from __future__ import annotations

import json
from typing import Callable

import pandas as pd
from tqdm import tqdm

from ..records import TEXT_COLUMNS, StageResult, empty_drops
from ..registry import Registry

OPS = Registry("operator")


def register(name: str) -> Callable[[type], type]:
    """Class decorator: the operator is known to recipes as ``name``."""
    def deco(cls: type) -> type:
        cls.name = name
        return OPS.add(name, cls)

    return deco


class Operator:
    """``op(df) -> StageResult``: kept + dropped (with reasons) = the input, and the op's stats."""

    name = "operator"
    kind = "operator"
    row_local = False  # True: may run on any split of the rows, outputs and counts concatenated

    def __call__(self, df: pd.DataFrame) -> StageResult:
        raise NotImplementedError


class Filter(Operator):
    kind = "filter"
    row_local = True


class Deduplicator(Operator):
    kind = "deduplicator"
    row_local = False


class Tagger(Operator):
    kind = "tagger"


# every text field of a record, and the history turns
FIELDS = TEXT_COLUMNS + ["history"]


def _diff_window(before: str, after: str, pad: int = 30, cap: int = 160) -> tuple[str, str]:
    """The part of two strings around their difference (examples stay short and telling)."""
    n = min(len(before), len(after))
    i = next((k for k in range(n) if before[k] != after[k]), n)
    j = 0  # common suffix, not reaching into the common prefix
    while j < n - i and before[-1 - j] == after[-1 - j]:
        j += 1
    a = max(0, i - pad)
    return before[a:len(before) - j + pad][:cap], after[a:len(after) - j + pad][:cap]


class MapperLists:
    """A frame's text fields as Python lists, converted once and shared by consecutive mappers
    (each changes them in place); ``frame()`` is the frame with the changed fields put back."""

    def __init__(self, df: pd.DataFrame):
        self.df = df
        self.cols = {f: df[f].tolist() for f in FIELDS}
        self.ids, self.files, self.rows = df["id"].tolist(), df["file"].tolist(), df["row"].tolist()
        self.changed: set[str] = set()

    def frame(self) -> pd.DataFrame:
        kept = self.df.copy()
        for f in FIELDS:
            if f in self.changed:
                kept[f] = pd.Series(self.cols[f], index=self.df.index, dtype=self.df[f].dtype)
        return kept


class Mapper(Operator):
    """Changes text, drops nothing: ``transform(text, field, context)`` on every text field of every
    row (history turns included); counts the rows and fields it changed, with examples. The pipeline
    runs consecutive mappers on one :class:`MapperLists` (``map_lists``), as calling them in turn."""

    kind = "mapper"
    row_local = True

    def transform(self, text: str, field: str, context: str) -> str:
        raise NotImplementedError

    def extra_stats(self) -> dict:
        return {}

    def __call__(self, df: pd.DataFrame) -> StageResult:
        lists = MapperLists(df)
        stats = self.map_lists(lists)
        return StageResult(lists.frame(), empty_drops(df, self.name), stats)

    def map_lists(self, lists: MapperLists) -> dict:
        """Maps ``lists`` in place; returns the stats."""
        cols, ids, files, rows = lists.cols, lists.ids, lists.files, lists.rows
        n = len(lists.ids)
        by_field = {f: 0 for f in FIELDS}
        changed_rows = 0
        examples: list[dict] = []
        fn = self.transform
        for k in tqdm(range(n), desc=self.name, disable=None, leave=False, mininterval=1.0):
            ins, inp = cols["instruction"][k], cols["input"][k]
            context = ins + "\n" + inp
            row_changed = False
            for f in TEXT_COLUMNS:
                v = cols[f][k]
                if not isinstance(v, str):
                    raise TypeError(f"{self.name}: {files[k]} row {rows[k]}: field {f!r} is "
                                    f"{type(v).__name__}, not str")
                out = fn(v, f, context)
                if out != v:
                    cols[f][k] = out
                    by_field[f] += 1
                    row_changed = True
                    if len(examples) < 3:
                        b, a = _diff_window(v, out)
                        examples.append({"id": ids[k], "field": f, "before": b, "after": a})
            h = cols["history"][k]
            if h not in ("[]", "", None):
                out_h, before, after = self._history(h, files[k], rows[k])
                if out_h != h:
                    cols["history"][k] = out_h
                    by_field["history"] += 1
                    row_changed = True
                    if len(examples) < 3:
                        b, a = _diff_window(before, after)
                        examples.append({"id": ids[k], "field": "history", "before": b, "after": a})
            changed_rows += row_changed
        lists.changed.update(f for f in FIELDS if by_field[f])
        return {"rows": n, "changed": int(changed_rows), "by_field": by_field, "examples": examples,
                **self.extra_stats()}

    def _history(self, h: str, file: str, row: int) -> tuple[str, str, str]:
        try:
            turns = json.loads(h)
        except (TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"{self.name}: {file} row {row}: history is not JSON ({e}): {str(h)[:80]!r}") from None
        if not isinstance(turns, list) or not all(isinstance(t, list) and all(isinstance(x, str) for x in t)
                                                  for t in turns):
            raise ValueError(f"{self.name}: {file} row {row}: history must be a list of [query, response] "
                             f"string pairs, got {str(h)[:80]!r}")
        out, first = [], None
        for t in turns:
            q = t[0] if t else ""
            new_t = [self.transform(x, "output" if i == 1 else "instruction", q if i == 1 else "")
                     for i, x in enumerate(t)]
            if first is None and new_t != t:
                first = (next(x for x, y in zip(t, new_t) if x != y), next(y for x, y in zip(t, new_t) if x != y))
            out.append(new_t)
        if first is None:
            return h, "", ""
        return json.dumps(out, ensure_ascii=False), first[0], first[1]
