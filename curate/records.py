"""The one record type every stage reads and writes, and the ledger that proves no row is lost.

A record is a row of a pandas DataFrame with the columns in ``RECORD_COLUMNS``. Stages add
columns (``task_type``, ``cluster`` …) but never remove these. A dropped record keeps all its
columns and gains ``stage``, ``reason`` and ``detail``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

RECORD_COLUMNS = [
    "id",  # stable: hash of source, file, row and the record's content (see make_id)
    "source",  # registry name: trans_chinese_alpaca, alpaca_chinese, belle, traditional
    "file",  # path of the file inside the source's folder
    "row",  # position of the record in its file (0-based)
    "instruction",
    "input",
    "output",
    "history",  # JSON list of [query, response] pairs before this turn ("[]" when none)
    "extra",  # JSON object of whatever else the source had (en_* originals, seed-task name …)
]
DROP_COLUMNS = ["stage", "reason", "detail"]
TEXT_COLUMNS = ["instruction", "input", "output"]


def make_id(source: str, file: str, row: int, instruction: str, input: str, output: str) -> str:
    """Stable id: the same row of the same file with the same content always gets the same id."""
    key = "\x1f".join([source, file, str(row), instruction, input, output])
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest()


def content_hash(instruction: str, input: str, output: str) -> str:
    """Hash of the text alone (no location): equal for exact duplicates across files and sources."""
    key = "\x1f".join([instruction, input, output])
    return hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest()


def make_record(source: str, file: str, row: int, instruction: str, input: str = "", output: str = "",
                history: list | None = None, extra: dict | None = None) -> dict[str, Any]:
    return {
        "id": make_id(source, file, row, instruction, input, output),
        "source": source,
        "file": file,
        "row": int(row),
        "instruction": instruction,
        "input": input,
        "output": output,
        # most records have neither: their JSON spelled out (as json.dumps writes it) costs nothing
        "history": json.dumps(history, ensure_ascii=False) if history else "[]",
        "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else "{}",
    }


def history_pairs(value: Any, where: str = "record") -> list[list[str]]:
    """A record's history as [query, response] string pairs: from the JSON text ``make_record`` stores,
    the Arrow list pandas reads from Parquet (an array of arrays) or None. ValueError naming ``where``
    for anything else."""
    if isinstance(value, str):
        hist = json.loads(value) if value else []
    elif value is None:
        hist = []
    else:
        hist = [list(p) if hasattr(p, "__len__") and not isinstance(p, str) else p for p in value]
    if not isinstance(hist, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in hist):
        raise ValueError(f"{where}: history must be a list of [query, response] string pairs, got {str(value)[:120]!r}")
    return hist


def records_frame(rows: list[dict] | None = None, extra_columns: list[str] | None = None) -> pd.DataFrame:
    """A DataFrame with the record columns in order (empty when ``rows`` is empty)."""
    cols = RECORD_COLUMNS + [c for c in (extra_columns or []) if c not in RECORD_COLUMNS]
    df = pd.DataFrame(rows or [], columns=cols if not rows else None)
    for c in cols:
        if c not in df.columns:
            df[c] = pd.Series(dtype="object")
    ordered = cols + [c for c in df.columns if c not in cols]
    df = df[ordered]
    df["row"] = df["row"].astype("int64")
    return df


def drop_frame(df: pd.DataFrame, stage: str, reason: str | pd.Series, detail: str | pd.Series = "") -> pd.DataFrame:
    """Mark the rows of ``df`` as dropped by ``stage`` for ``reason`` (a constant or one per row)."""
    out = df.copy()
    out["stage"] = stage
    out["reason"] = reason
    out["detail"] = detail
    return out


def text_codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each value's number in ``keys``, the values' texts sorted; values with the same text (1 and
    "1") share one. Factorized, so millions of rows cost integer codes, not a Python string each."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    texts = [str(u) for u in uniques]
    keys = sorted(set(texts))
    number = {k: i for i, k in enumerate(keys)}
    return np.array([number[t] for t in texts], dtype=np.int64)[codes], keys


def empty_like(df: pd.DataFrame) -> pd.DataFrame:
    """An empty frame with ``df``'s columns and dtypes that holds none of its data. (``df.iloc[:0]``
    of Arrow-backed columns is a zero-length slice that keeps a whole Arrow chunk alive, so an empty
    head kept per part held that part's data.)"""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in df.dtypes.items()}, columns=df.columns)


def empty_drops(like: pd.DataFrame, stage: str) -> pd.DataFrame:
    return drop_frame(empty_like(like), stage, "", "")


class LedgerError(RuntimeError):
    """A stage lost or invented records: in != kept + dropped."""


@dataclass
class StageResult:
    """What one step returns: the records it kept, the ones it dropped (with reasons) and its figures."""

    kept: pd.DataFrame
    dropped: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)

    def check(self, n_in: int, stage: str) -> None:
        n_kept, n_dropped = len(self.kept), len(self.dropped)
        if n_in != n_kept + n_dropped:
            raise LedgerError(
                f"ledger broken at stage {stage!r}: {n_in} in != {n_kept} kept + {n_dropped} dropped"
            )


def ledger_row(stage: str, n_in: int, kept: pd.DataFrame, dropped: pd.DataFrame) -> dict[str, Any]:
    """One ledger line per stage: counts overall, by source and by drop reason."""
    reasons = dropped["reason"].value_counts().sort_index().to_dict() if len(dropped) else {}
    by_source: dict[str, dict[str, int]] = {}
    for name, part in (("kept", kept), ("dropped", dropped)):
        if len(part):
            for src, n in part["source"].value_counts().sort_index().items():
                by_source.setdefault(str(src), {"kept": 0, "dropped": 0})[name] = int(n)
    return {
        "stage": stage,
        "in": int(n_in),
        "kept": int(len(kept)),
        "dropped": int(len(dropped)),
        "reasons": {str(k): int(v) for k, v in reasons.items()},
        "by_source": dict(sorted(by_source.items())),
        "balanced": int(n_in) == len(kept) + len(dropped),
    }


def examples(df: pd.DataFrame, n: int = 3, columns: tuple[str, ...] = ("id", "source", "file", "row", "instruction", "input", "output")) -> list[dict]:
    """A few rows as small dicts for reports (texts cut to 200 characters)."""
    out = []
    for rec in df.head(n).to_dict("records"):
        item = {}
        for c in columns:
            if c in rec:
                v = rec[c]
                item[c] = v[:200] if isinstance(v, str) else (int(v) if hasattr(v, "__int__") and not isinstance(v, float) else v)
        out.append(item)
    return out
