"""Rows of CSV/TSV and Parquet files, for the parse stage.

Users keep instruction data in spreadsheets and dataframes as often as in JSON; a source folder
holding such a file is read row by row (each row a dict, as a JSON object would be), so its rows
go through the same schema checks and quarantine as JSON rows. Columns are used by name
(``instruction``, ``input``, ``output``, ``history`` …); any other column lands in ``extra``.
"""
from __future__ import annotations

import csv
import datetime
import decimal
import io
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO


def csv_rows(source: str | TextIO, delimiter: str) -> Iterator[tuple[dict, Any]]:
    """(location, row) per data row of ``source`` (the text, or a text file opened with ``newline=""``,
    read a line at a time): a dict by header name, or the ``csv.Error`` that row raised.

    The location is the row's first line (1-based, header included). A row with more fields than
    the header keeps the surplus under ``_extra_fields``; a missing field reads as empty text."""
    lines = io.StringIO(source, newline="") if isinstance(source, str) else source
    old = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # a long field is a length question (text_length_filter), not a syntax one
    try:
        reader = csv.DictReader(lines, delimiter=delimiter, restkey="_extra_fields", restval="")
        try:
            reader.fieldnames  # noqa: B018  (reads the header)
        except csv.Error as e:
            yield {"line": 1}, e
            return
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield {"line": start}, e
                continue
            yield {"line": start}, row
    finally:
        csv.field_size_limit(old)


def jsonable(value: Any) -> Any:
    """A Parquet cell as JSON would hold it: bytes as UTF-8 text (or hex), dates and decimals as text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value).hex()
    if isinstance(value, float) and math.isnan(value):  # a missing value
        return None
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal)):
        return str(value)
    return value


def parquet_rows(source: bytes | str | Path, batch_rows: int = 4096) -> Iterator[tuple[dict, Any]]:
    """(location, row dict) per row of a Parquet file held in ``source`` (bytes) or stored at it (a
    path, read a batch of rows at a time); location ``{"item": i}``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    held = isinstance(source, (bytes, bytearray, memoryview))
    with pq.ParquetFile(pa.BufferReader(source) if held else str(source), pre_buffer=False) as pf:
        i = 0
        for batch in pf.iter_batches(batch_size=batch_rows):
            for row in batch.to_pylist():
                yield {"item": i}, jsonable(row)
                i += 1
