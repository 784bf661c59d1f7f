"""Alpaca-format files that users bring: read them like the pipeline does, label their task types.

Reading goes through the parse stage's reader (``curate.parse.parse_file``), so any JSON array or
JSON-lines file of ``{instruction, input, output[, history]}`` rows works (BELLE seed tasks, chat
turns and SQuAD files too), broken arrays are recovered row by row, and a row that cannot be read is
reported with its file and position instead of being dropped silently.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from .records import records_frame
from .tasktype import TASK_TYPES, match_rule


class InputError(ValueError):
    """A user file that cannot be used as it is (missing, unreadable rows, no rows)."""


def read_alpaca(path: str | Path, name: str | None = None, allow_bad_rows: bool = False) -> pd.DataFrame:
    """Records (``curate.records`` columns) of an alpaca-format JSON or JSONL file.

    ``source`` is ``name`` (default: the file's stem), ``file`` the file name, ``row`` the 0-based row.
    Rows the reader cannot use raise :class:`InputError` naming file, row and reason (first five),
    unless ``allow_bad_rows`` (then they are left out and listed in ``df.attrs["bad_rows"]``).
    """
    from .parse import ParseError, parse_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        res = parse_file(path, name or path.stem, path.name)
    except ParseError as e:
        raise InputError(str(e)) from None
    bad = [{"row": int(q["row"]), "reason": q["reason"], "detail": q["detail"]} for q in res.quarantine]
    if bad and not allow_bad_rows:
        lines = "\n".join(f"  row {b['row']}: {b['reason']}: {b['detail']}" for b in bad[:5])
        more = f"\n  … and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise InputError(f"{path}: {len(bad)} row(s) cannot be read:\n{lines}{more}")
    if not res.records:
        raise InputError(f"{path}: no rows (expected a JSON array or JSON lines of {{instruction, input, output}})")
    df = records_frame(res.records)
    df.attrs["bad_rows"] = bad
    df.attrs["format"] = res.format
    return df


def label_frame(df: pd.DataFrame, normalize: bool = True) -> pd.DataFrame:
    """``df`` plus ``task_type`` and ``task_rule`` (the rule that decided), labelled on the text as the
    pipeline normalises it (Unicode, traditional → simplified …); the text columns are kept as they were."""
    from .pipeline import normalize_frame

    seen = normalize_frame(df) if normalize and len(df) else df
    hist = seen["history"] if "history" in seen.columns else [None] * len(seen)
    got = [match_rule(i, x, o, h) for i, x, o, h in zip(seen["instruction"], seen["input"], seen["output"], hist)]
    out = df.copy()
    out["task_type"] = pd.Series([g[0] for g in got], index=df.index, dtype="str")
    out["task_rule"] = pd.Series([g[1] for g in got], index=df.index, dtype="str")
    return out


def _row_dict(rec: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"instruction": rec["instruction"], "input": rec["input"], "output": rec["output"]}
    hist = json.loads(rec["history"]) if rec.get("history") not in (None, "", "[]") else []
    if hist:
        item["history"] = hist
    item["task_type"] = rec["task_type"]
    item["task_rule"] = rec["task_rule"]
    return item


def write_labelled(df: pd.DataFrame, out: str | Path) -> Path:
    """Write labelled rows as JSON lines (``.jsonl``) or a JSON array (anything else), atomically."""
    from .io import write_text

    out = Path(out)
    rows = [_row_dict(r) for r in df.to_dict("records")]
    if out.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        text = json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    return write_text(out, text)


def default_label_path(path: str | Path) -> Path:
    path = Path(path)
    ext = ".jsonl" if path.suffix.lower() == ".jsonl" else ".json"
    return path.with_name(f"{path.stem}.labelled{ext}")


def label_file(path: str | Path, out: str | Path | None = None) -> tuple[Path, dict[str, int]]:
    """Label every row of an alpaca-format file; returns the output path and the counts per type."""
    df = label_frame(read_alpaca(path))
    target = Path(out) if out else default_label_path(path)
    write_labelled(df, target)
    counts = Counter(df["task_type"])
    return target, {t: int(counts.get(t, 0)) for t in TASK_TYPES}
