"""A large file read a part at a time, its rows handed out a piece at a time.

:func:`curate.parse.parse_file` reads a file whole: its bytes, its text and every row it holds are
in memory at once (BELLE's 3.5M-row file takes several GiB). Three kinds of file are read here a
part at a time instead, their rows leaving a piece at a time with the records, quarantine,
positions, repairs and stats ``parse_file`` gives (:func:`reader_for` picks the reader as
``parse_file`` tells the kinds apart):

* Parquet (``PAR1`` first): a batch of rows at a time (:class:`ParquetReader`);
* UTF-8 CSV/TSV (by name, ``.csv``/``.tsv``): a line at a time by the ``csv`` module, so a quoted
  field may span lines (:class:`CsvReader`);
* UTF-8 JSON lines (anything else): a window of bytes at a time (:class:`JsonLinesReader`).

A JSON-lines window is cut after a line break (a UTF-8 character never spans one). A value, or a
broken fragment, that may go on past the window is read again with the next window appended, so
where a window ends never changes how a row is read:

* a value counts as read only when it ends before the window does (a number cut short still decodes);
* a syntax error counts only when it is found before the window's last characters and is not an
  unterminated string (the decoder reports those where the string starts);
* a broken fragment ends at the next line that starts with ``{``, found inside the window.

Anything else raises :class:`NotStreamable`: a JSON array (``[`` first), gzip, another encoding, a
Parquet file pyarrow cannot read, or bytes that are not UTF-8 (found in a later part, after pieces
were handed out: the caller discards them and reads the file whole). A JSON stream that turns out to
hold a single document (SQuAD data) is read as ``parse_file`` reads it, from the text held so far,
which is then all of it.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from .encodings import GZIP_MAGIC, PARQUET_MAGIC, SNIFF_BYTES, container_kind, sniff_bom, sniff_utf16_32
from .parse import (_RESYNC_LINE, _WS, ParseResult, _FileParser, _Locator, _RepeatedKeys, decode_value)

# Bytes (JSON lines) or characters (CSV/TSV) read at a time; a piece is handed out once it holds
# this many rows (kept or quarantined).
WINDOW_BYTES = 16 << 20
PIECE_ROWS = 50_000
# A syntax error this close to the window's end may be the window's end: read on before believing it.
_EDGE_CHARS = 16


class NotStreamable(Exception):
    """The file is not one this module reads (see above): read it whole (``parse.parse_file``)."""


@dataclass
class Piece:
    records: list[dict]
    quarantine: list[dict]


class _Reader:
    """Iterate to get the file's :class:`Piece` s in order; afterwards ``result`` holds the file's
    outcome (``n_in``, format, schemas, repairs, encoding, bytes) with no rows in it."""

    def __init__(self, path: str | Path, source: str, rel: str, columns: dict[str, str] | None = None,
                 expect: str | None = None, window: int = WINDOW_BYTES, piece_rows: int | None = None):
        piece_rows = PIECE_ROWS if piece_rows is None else piece_rows
        if window < 1 or piece_rows < 1:
            raise ValueError(f"{type(self).__name__}: window and piece_rows must be >= 1, got {window}, {piece_rows}")
        self.path, self.source, self.rel = Path(path), source, rel
        self.columns, self.expect = columns, expect
        self.window, self.piece_rows = int(window), int(piece_rows)
        self.result: ParseResult | None = None

    def __iter__(self) -> Iterator[Piece]:
        raise NotImplementedError

    def _parser(self, encoding: str) -> _FileParser:
        return _FileParser(self.path, self.source, self.rel, encoding, self.columns, self.expect)

    def _full(self, p: _FileParser) -> Piece | None:
        """The rows ``p`` holds, taken from it as a piece, once there are ``piece_rows`` of them."""
        return _take(p) if len(p.records) + len(p.quarantine) >= self.piece_rows else None

    def _table(self, p: _FileParser, rows: Iterable[tuple[dict, Any]]) -> Iterator[Piece]:
        """Pieces of the rows of a table (``curate.tabular``), read into ``p`` as ``parse_file`` reads them."""
        for loc, row in rows:
            p.table_row(row, loc)
            piece = self._full(p)
            if piece:
                yield piece
        if p.records or p.quarantine:
            yield _take(p)

    def _finish(self, p: _FileParser) -> None:
        self.result = ParseResult([], [], p.n, p.format, dict(sorted(p.schemas.items())), p.repairs, p.encoding)
        self.result.bytes = self.path.stat().st_size

    def _refuse(self, rows: Iterable[tuple[dict, Any]], what: str) -> Iterator[tuple[dict, Any]]:
        """``rows``, a failure to read them raised as :class:`NotStreamable` (the whole read says why)."""
        try:
            yield from rows
        except Exception as e:  # noqa: BLE001  (parse_file reads the file whole and contains it)
            raise NotStreamable(f"{self.source}/{self.rel}: {what} ({type(e).__name__}: {str(e)[:160]})") from e


def _take(p: _FileParser) -> Piece:
    piece = Piece(p.records, p.quarantine)
    p.records, p.quarantine = [], []
    return piece


def reader_for(path: str | Path, source: str, rel: str, columns: dict[str, str] | None = None,
               expect: str | None = None, window: int = WINDOW_BYTES, piece_rows: int | None = None) -> _Reader:
    """The reader for a file, told as ``parse_file`` tells it: Parquet by content, CSV/TSV by name,
    anything else JSON lines (each reader raises :class:`NotStreamable` for what it cannot read)."""
    with open(path, "rb") as fh:
        head = fh.read(len(PARQUET_MAGIC))
    if head.startswith(PARQUET_MAGIC):
        kind: type[_Reader] = ParquetReader
    elif rel.lower().endswith((".csv", ".tsv")):
        kind = CsvReader
    else:
        kind = JsonLinesReader
    return kind(path, source, rel, columns, expect, window, piece_rows)


class ParquetReader(_Reader):
    """A Parquet file, a batch of rows at a time (``window`` is not used)."""

    def __iter__(self) -> Iterator[Piece]:
        from .tabular import parquet_rows

        with open(self.path, "rb") as fh:
            if not fh.read(len(PARQUET_MAGIC)).startswith(PARQUET_MAGIC):
                raise NotStreamable(f"{self.source}/{self.rel}: not a Parquet file")
        p = self._parser("parquet")
        p.format = "parquet"
        yield from self._table(p, self._refuse(parquet_rows(self.path), "a Parquet file that cannot be read"))
        self._finish(p)


class CsvReader(_Reader):
    """A UTF-8 CSV/TSV file (by name), a line at a time; ``window`` characters are decoded at a time."""

    def __iter__(self) -> Iterator[Piece]:
        from .tabular import csv_rows

        lower = self.rel.lower()
        if not lower.endswith((".csv", ".tsv")):
            raise NotStreamable(f"{self.source}/{self.rel}: not named .csv or .tsv")
        p = self._parser("utf-8")
        p.format = lower[-3:]
        with open(self.path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
            codec, offset = sniff_bom(head)
            why = _not_utf8(head, codec)
            if why:
                raise NotStreamable(f"{self.source}/{self.rel}: {why}")
            fh.seek(offset)  # past a UTF-8 byte-order mark, which parse_file strips too
            with io.TextIOWrapper(fh, encoding="utf-8", newline="") as text:
                text._CHUNK_SIZE = self.window  # how much is decoded at a time
                rows = csv_rows(text, "\t" if lower.endswith(".tsv") else ",")
                yield from self._table(p, self._refuse(rows, "not UTF-8, or unreadable"))
        self._finish(p)


class JsonLinesReader(_Reader):
    """A UTF-8 JSON-lines file, a window of bytes at a time (see above)."""

    def __iter__(self) -> Iterator[Piece]:
        p = self._parser("utf-8")
        with open(self.path, "rb") as fh:
            head = fh.read(max(self.window, SNIFF_BYTES))
            codec, offset = sniff_bom(head)
            why = _not_lines(head, self.rel, codec)
            if why:
                raise NotStreamable(f"{self.source}/{self.rel}: {why}")
            yield from self._read(p, fh, head[offset:], offset)
        self._finish(p)

    def _read(self, p: _FileParser, fh: Any, pending: bytes, byte0: int) -> Iterator[Piece]:
        text, line0, eof, pos = "", 1, False, 0
        held: list[tuple[str, Any, int]] | None = []  # the first two events, until the stream is known to be lines

        def more() -> None:  # append the next window's text, cut after its last line break
            nonlocal pending, text, eof
            while True:
                chunk = fh.read(self.window)
                pending += chunk
                eof = not chunk
                cut = len(pending) if eof else pending.rfind(b"\n") + 1
                if cut or eof:
                    break
            try:
                text += pending[:cut].decode("utf-8")
            except UnicodeDecodeError as e:
                raise NotStreamable(f"{self.source}/{self.rel}: not UTF-8 near byte {byte0 + e.start}") from None
            pending = pending[cut:]

        more()
        where = _Locator(text, byte0, "utf-8", line0)
        while True:
            pos = _WS.match(text, pos).end()
            if pos >= len(text):
                if eof:
                    break
                event = None
            elif held == [] and text[pos] == "[":  # past a blank head: an array after all
                raise NotStreamable(f"{self.source}/{self.rel}: a JSON array")
            else:
                event = self._event(text, pos, eof)
            if event is None:  # the window ends inside what is being read: drop what is done, read on
                if held is None:
                    start = text.rfind("\n", 0, pos) + 1
                    at = where.at(start)
                    text, pos, byte0, line0 = text[start:], pos - start, at["byte"], at["line"]
                more()
                where = _Locator(text, byte0, "utf-8", line0) if held is None else where
                where.text = text
                continue
            (kind, payload, at), end, ctrl = event
            if ctrl is not None:
                p.repair("control_character_in_string", where.at(ctrl))
            pos = end
            if held is not None:
                held.append((kind, payload, at))
                if len(held) < 2:
                    continue
                p.format = "json_lines"
                events, held = held, None
            else:
                events = [(kind, payload, at)]
            for ev in events:
                p.stream_event(ev, where)
                piece = self._full(p)
                if piece:
                    yield piece
        if held is not None:  # at most one value: as parse_file reads such a stream
            if not held:
                p.format = "empty"
            elif not p.single_document(held, where):
                p.format = "json_lines"
                p.stream_event(held[0], where)
        if p.records or p.quarantine:
            yield _take(p)

    @staticmethod
    def _event(text: str, pos: int, eof: bool) -> tuple[tuple[str, Any, int], int, int | None] | None:
        """((kind, payload, pos), end, control-character position) of what starts at ``pos``, as
        ``_FileParser.stream`` reads it; None when the rest of the file could change it."""
        try:
            value, end, ctrl = decode_value(text, pos)
        except (json.JSONDecodeError, RecursionError, MemoryError) as e:
            if not eof and isinstance(e, json.JSONDecodeError) and (
                    e.msg.startswith("Unterminated string") or e.pos >= len(text) - _EDGE_CHARS):
                return None
            m = _RESYNC_LINE.search(text, pos + 1)
            if m is None and not eof:
                return None
            stop = m.start(1) if m else len(text)
            return ("fragment", (text[pos:stop].rstrip(), e), pos), stop, None
        if end >= len(text) and not eof:
            return None
        payload = (value, text[pos:end]) if isinstance(value, _RepeatedKeys) else value
        return ("value", payload, pos), end, ctrl


def _not_utf8(head: bytes, codec: str | None) -> str:
    """Why a file starting with ``head`` is not UTF-8 text ("" when it may be), as ``parse_file``
    tells the kinds apart; bytes that are not UTF-8 are found while reading."""
    if head.startswith(GZIP_MAGIC) or container_kind(head) or head.startswith(PARQUET_MAGIC):
        return "a compressed or binary file"
    if codec not in (None, "utf-8") or (codec is None and sniff_utf16_32(head)):
        return "UTF-16/32 text"
    return ""


def _not_lines(head: bytes, rel: str, codec: str | None) -> str:
    """Why a file starting with ``head`` is not read as JSON lines ("" when it is)."""
    if rel.lower().endswith((".csv", ".tsv")):
        return "a table"
    why = _not_utf8(head, codec)
    if why:
        return why
    rest = head[len(b"\xef\xbb\xbf") if codec else 0:]
    first = rest.lstrip(b" \t\n\r\x00")[:1]
    if first == b"[":
        return "a JSON array"
    return ""
