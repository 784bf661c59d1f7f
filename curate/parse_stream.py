"""A large file read a part at a time, its rows handed out a piece at a time.

:func:`curate.parse.parse_file` reads a file whole: its bytes, its text and every row it holds are
in memory at once (BELLE's 3.5M-row file takes several GiB). Four kinds of file are read here a
part at a time instead, their rows leaving a piece at a time with the records, quarantine,
positions, repairs and stats ``parse_file`` gives (:func:`reader_for` picks the reader as
``parse_file`` tells the kinds apart):

* Parquet (``PAR1`` first): a batch of rows at a time (:class:`ParquetReader`);
* CSV/TSV (by name, ``.csv``/``.tsv``): a line at a time by the ``csv`` module, so a quoted
  field may span lines (:class:`CsvReader`);
* a well-formed JSON array (``[`` first): a value at a time from windows of bytes
  (:class:`JsonArrayReader`);
* JSON lines (anything else): a window of bytes at a time (:class:`JsonLinesReader`).

A JSON-lines window is cut after a line break (and decoded incrementally, so a character cut at
its end is held for the next). A value, or a broken fragment, that may go on past the window is
read again with the next window appended, so where a window ends never changes how a row is read:

* a value counts as read only when it ends before the window does (a number cut short still decodes);
* a syntax error counts only when it is found before the window's last characters and is not an
  unterminated string (the decoder reports those where the string starts);
* a broken fragment ends at the next line that starts with ``{``, found inside the window.

A JSON array (``[`` its first non-blank character) is read as ``parse_file`` reads a well-formed
one: decoded strictly, each row located by its ``item`` only. Its windows are decoded incrementally;
a value counts only once the ``,`` or ``]`` after it is inside the window, and a syntax error is
believed as above. An array with any defect (a value that does not decode
strictly: a raw control character in a string, a number too long for ``int`` …; a row that repeats
a key; a trailing comma; no ``]``; anything but blanks after it, NUL too; a row nested deeper than
``_DEEP``) is one ``parse_file`` reads value by value, with other locations and repairs: it raises
:class:`NotWellFormed`, after pieces were handed out too, and the caller reads it again with
:class:`TolerantArrayReader`, which reads it value by value as ``parse_file`` does, holding the
current item and a window (its positions kept by a locator that may start inside a line).

A gzip file is read the same way through ``gzip``: its kind told by its decompressed first bytes
and its name less ``.gz``, positions counting decompressed bytes, a ``decompressed_gzip`` repair,
as ``parse_file`` reads it. A JSON stream that turns out to hold a single document (SQuAD data) is
read as ``parse_file`` reads it, from the text held so far, which is then all of it.

Text is read as UTF-8 first. Text that is not (a byte-order mark or zero bytes of UTF-16/32 at the
start, or a byte that is not UTF-8 anywhere, found after pieces were handed out) raises
:class:`NotUtf8`: the caller discards the pieces, asks :func:`text_encoding` how ``parse_file`` would
decode the file (GB18030, UTF-16/32, UTF-8 with escaped bytes; decided in one pass a window at a
time, from counts that add up over windows) and reads it again with that ``encoding``: an
incremental decoder keeps undecodable bytes as escapes, so rows holding them are quarantined as
reading it whole quarantines them, and positions count the file's own bytes.

Anything else raises :class:`NotStreamable` (read it whole): Parquet inside gzip, a damaged gzip
file, a Parquet file pyarrow cannot read, text in no encoding ``parse_file`` reads (Latin-1).
"""
from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .encodings import (ESCAPE, GZIP_MAGIC, PARQUET_MAGIC, SNIFF_BYTES, container_kind, gb_counts, gb_verdict,
                        sniff_bom, sniff_utf16_32)
from .parse import (_DECODER, _ESCAPED_BYTE, _RESYNC_ARRAY, _RESYNC_LINE, _WS, MAX_DEPTH, ParseResult,
                    _cannot_decode, _depth_over, _FileParser, _Locator, _RepeatedKeys, decode_value)

# Bytes (JSON lines) or characters (CSV/TSV) read at a time; a piece is handed out once it holds
# this many rows (kept or quarantined).
WINDOW_BYTES = 16 << 20
PIECE_ROWS = 50_000
# A syntax error this close to the window's end may be the window's end: read on before believing it.
_EDGE_CHARS = 16
# Blanks between JSON tokens, as the strict decoder reads them (NUL is not one).
_JSON_WS = re.compile(r"[ \t\n\r]*")
# An array row nested deeper than this is left to the whole read: whether its decoder gives up on it
# (RecursionError, then reading value by value) depends on the stack it runs on.
_DEEP = 2 * MAX_DEPTH


class NotStreamable(Exception):
    """The file is not one this module reads (see above): read it whole (``parse.parse_file``)."""


class NotWellFormed(NotStreamable):
    """A JSON array with a defect: ``parse_file`` reads it value by value, with other locations and
    repairs; read it again with :class:`TolerantArrayReader`."""


class NotUtf8(NotStreamable):
    """The text is not UTF-8: find how ``parse_file`` would decode it (:func:`text_encoding`) and
    read it again with that encoding."""


@dataclass(frozen=True)
class TextEncoding:
    """How ``parse_file`` decodes a text file that is not plain UTF-8: ``label`` is the parse result's
    encoding ("gb18030+invalid", "utf-16-le" …), ``codec`` what decodes it (undecodable bytes kept as
    ``tiger-escape`` escapes), ``offset`` the byte-order mark's length, ``repair`` the (kind, byte)
    the file's repairs note."""

    label: str
    codec: str
    offset: int
    repair: tuple[str, int | None] | None


def _gzipped(path: str | Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def _chunks(path: str | Path, window: int, skip: int = 0) -> Iterator[bytes]:
    """The file's bytes (decompressed when gzip) from ``skip`` on, ``window`` at a time."""
    try:
        with (gzip.open(path, "rb") if _gzipped(path) else open(path, "rb")) as fh:
            fh.read(skip)
            while chunk := fh.read(window):
                yield chunk
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise NotStreamable(f"{path}: a damaged gzip file ({e})") from None


def _decoded(path: str | Path, codec: str, offset: int, window: int) -> Iterator[tuple[str, int]]:
    """(text, bytes before it after the mark) of each window, decoded as ``codec`` with escapes."""
    dec = codecs.getincrementaldecoder(codec)(ESCAPE)
    fed = 0
    for chunk in _chunks(path, window, offset):
        before = fed - len(dec.getstate()[0])
        fed += len(chunk)
        yield dec.decode(chunk), before
    before = fed - len(dec.getstate()[0])
    yield dec.decode(b"", final=True), before


def text_encoding(path: str | Path, window: int = WINDOW_BYTES) -> TextEncoding:
    """How ``parse.parse_file`` decodes the text file at ``path`` (``decode_bytes``, ``_decode_unicode``),
    decided from one pass over its bytes a window at a time instead of from all of them at once: the
    counts it decides by (bytes that are not UTF-8 against valid non-ASCII characters; ``gb_counts``)
    add up over windows. :class:`NotStreamable` when no encoding fits (read whole: its rows are
    quarantined there as ``undecodable_file``)."""
    chunks = _chunks(path, SNIFF_BYTES)
    head = next(chunks, b"")
    chunks.close()
    codec, offset = sniff_bom(head)
    codec = codec or sniff_utf16_32(head)
    if codec and codec != "utf-8":  # UTF-16/32: a damaged code unit is kept as an escape
        invalid = any(_ESCAPED_BYTE.search(t) for t, _ in _decoded(path, codec, offset, window))
        return TextEncoding(codec + "+invalid" if invalid else codec, codec, offset,
                            ("decoded_" + codec.replace("-", "_"), 0))
    bad = good = 0
    first: int | None = None
    for t, before in _decoded(path, "utf-8", offset, window):
        m = _ESCAPED_BYTE.search(t)
        if m is None:
            good += len(t) - len(t.encode("ascii", "ignore"))
            continue
        if first is None:
            first = offset + before + len(t[:m.start()].encode("utf-8"))
        esc = len(_ESCAPED_BYTE.findall(t))
        bad += esc
        good += len(t) - len(t.encode("ascii", "ignore")) - esc
    if first is None:
        return TextEncoding("utf-8", "utf-8", offset, None)
    if good > bad:
        return TextEncoding("utf-8+invalid", "utf-8", offset, ("invalid_utf8_bytes", first))
    pairs = high = gb_bad = 0
    invalid = False
    for t, _ in _decoded(path, "gb18030", offset, window):
        p, h, b = gb_counts(t)
        pairs, high, gb_bad = pairs + p, high + h, gb_bad + b
        invalid = invalid or bool(_ESCAPED_BYTE.search(t))
    if gb_verdict(pairs, high, gb_bad):
        return TextEncoding("gb18030+invalid" if invalid else "gb18030", "gb18030", offset, ("decoded_gb18030", first))
    raise NotStreamable(f"{path}: neither UTF-8 nor GB18030 text")


class _Decode:
    """A file's bytes to text a part at a time: strict UTF-8 (:class:`NotUtf8` at a byte that is not),
    or, with an ``encoding``, as ``parse_file`` decodes the file (undecodable bytes kept as escapes)."""

    def __init__(self, encoding: TextEncoding | None, name: str, byte0: int):
        self._dec = codecs.getincrementaldecoder("utf-8" if encoding is None else encoding.codec)(
            "strict" if encoding is None else ESCAPE)
        self.name, self.byte = name, byte0  # where the next bytes start in the file

    def __call__(self, chunk: bytes, final: bool = False) -> str:
        held = len(self._dec.getstate()[0])  # the start of a character cut at the last part's end
        try:
            text = self._dec.decode(chunk, final)
        except UnicodeDecodeError as e:
            raise NotUtf8(f"{self.name}: not UTF-8 near byte {self.byte - held + e.start}") from None
        self.byte += len(chunk)
        return text


@dataclass
class Piece:
    records: list[dict]
    quarantine: list[dict]


class _Reader:
    """Iterate to get the file's :class:`Piece` s in order; afterwards ``result`` holds the file's
    outcome (``n_in``, format, schemas, repairs, encoding, bytes) with no rows in it."""

    def __init__(self, path: str | Path, source: str, rel: str, columns: dict[str, str] | None = None,
                 expect: str | None = None, window: int = WINDOW_BYTES, piece_rows: int | None = None,
                 encoding: TextEncoding | None = None):
        piece_rows = PIECE_ROWS if piece_rows is None else piece_rows
        if window < 1 or piece_rows < 1:
            raise ValueError(f"{type(self).__name__}: window and piece_rows must be >= 1, got {window}, {piece_rows}")
        self.path, self.source, self.rel = Path(path), source, rel
        self.columns, self.expect = columns, expect
        self.window, self.piece_rows = int(window), int(piece_rows)
        self.result: ParseResult | None = None
        # None: UTF-8, or NotUtf8 is raised; else the file's text encoding (``text_encoding``)
        self.encoding = encoding
        self.gzipped = _gzipped(self.path)
        # the name the kind is told by: parse_file drops ".gz" from a gzip file's
        self.lower = rel.lower().removesuffix(".gz") if self.gzipped else rel.lower()

    def __iter__(self) -> Iterator[Piece]:
        try:
            yield from self._pieces()
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # a gzip file cut short or damaged
            raise NotStreamable(f"{self.source}/{self.rel}: a damaged gzip file ({e})") from None

    def _pieces(self) -> Iterator[Piece]:
        raise NotImplementedError

    def _open(self) -> Any:
        """The file's bytes, decompressed when it is gzip."""
        return gzip.open(self.path, "rb") if self.gzipped else open(self.path, "rb")

    def _head(self, fh: Any, refuse: Callable[[str, str], str]) -> tuple[bytes, int]:
        """The file's first window and the length of its byte-order mark; :class:`NotStreamable`
        when ``refuse`` (its first character after blanks, name) says why the file is not this
        reader's, or it is no text (:class:`NotUtf8` when it is text in another encoding)."""
        head = fh.read(max(self.window, SNIFF_BYTES))
        codec, offset = self._text_head(head)
        why = refuse(_first_char(head, offset, self.encoding), self.lower)
        if why:
            raise NotStreamable(f"{self.source}/{self.rel}: {why}")
        return head, offset

    def _text_head(self, head: bytes) -> tuple[str | None, int]:
        """(byte-order mark's codec, its length); :class:`NotStreamable` for a compressed or binary
        file, :class:`NotUtf8` for UTF-16/32 text read without its ``encoding``."""
        codec, offset = sniff_bom(head)
        why = _not_text(head)
        if why:
            raise NotStreamable(f"{self.source}/{self.rel}: {why}")
        if self.encoding is None and (codec not in (None, "utf-8") or (codec is None and sniff_utf16_32(head))):
            raise NotUtf8(f"{self.source}/{self.rel}: UTF-16/32 text")
        return codec, offset

    def _parser(self, label: str | None = None) -> _FileParser:
        """The file's parser; ``label`` for a table format, else a text file in ``encoding``, whose
        decoding is noted as ``parse_file`` notes it."""
        text = label is None
        label = label or (self.encoding.label if self.encoding else "utf-8")
        p = _FileParser(self.path, self.source, self.rel, label, self.columns, self.expect)
        if self.gzipped:
            p.repair("decompressed_gzip", {"byte": 0})  # first, as parse_file notes it
        if text and self.encoding is not None and self.encoding.repair is not None:
            kind, byte = self.encoding.repair
            p.repair(kind, {"byte": byte})
        return p

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
            if self.encoding is None and isinstance(e, UnicodeDecodeError):
                raise NotUtf8(f"{self.source}/{self.rel}: {what} ({e})") from e
            raise NotStreamable(f"{self.source}/{self.rel}: {what} ({type(e).__name__}: {str(e)[:160]})") from e


def _take(p: _FileParser) -> Piece:
    piece = Piece(p.records, p.quarantine)
    p.records, p.quarantine = [], []
    return piece


def reader_for(path: str | Path, source: str, rel: str, columns: dict[str, str] | None = None,
               expect: str | None = None, window: int = WINDOW_BYTES, piece_rows: int | None = None,
               encoding: TextEncoding | None = None, tolerant: bool = False) -> _Reader:
    """The reader for a file, told as ``parse_file`` tells it: Parquet by content, CSV/TSV by name, a
    JSON array by ``[`` first, anything else JSON lines (each reader raises :class:`NotStreamable`
    for what it cannot read). ``encoding``: the text's (``text_encoding``) when it is not UTF-8;
    ``tolerant``: a JSON array is one with a defect (:class:`TolerantArrayReader`)."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    lower = rel.lower()
    if head.startswith(GZIP_MAGIC):  # told by what it holds, and its name less ".gz"
        lower = lower.removesuffix(".gz")
        try:
            with gzip.open(path, "rb") as fh:
                head = fh.read(SNIFF_BYTES)
        except (OSError, EOFError, zlib.error) as e:
            raise NotStreamable(f"{source}/{rel}: a damaged gzip file ({e})") from None
    if head.startswith(PARQUET_MAGIC):
        kind: type[_Reader] = ParquetReader
    elif lower.endswith((".csv", ".tsv")):
        kind = CsvReader
    elif _first_char(head, sniff_bom(head)[1], encoding) == "[":
        kind = TolerantArrayReader if tolerant else JsonArrayReader
    else:
        kind = JsonLinesReader
    return kind(path, source, rel, columns, expect, window, piece_rows, encoding)


class ParquetReader(_Reader):
    """A Parquet file, a batch of rows at a time (``window`` is not used)."""

    def _pieces(self) -> Iterator[Piece]:
        from .tabular import parquet_rows

        with open(self.path, "rb") as fh:
            if not fh.read(len(PARQUET_MAGIC)).startswith(PARQUET_MAGIC):  # gzip of Parquet too: read whole
                raise NotStreamable(f"{self.source}/{self.rel}: not a Parquet file")
        p = self._parser("parquet")
        p.format = "parquet"
        yield from self._table(p, self._refuse(parquet_rows(self.path), "a Parquet file that cannot be read"))
        self._finish(p)


class CsvReader(_Reader):
    """A UTF-8 CSV/TSV file (by name), a line at a time; ``window`` characters are decoded at a time."""

    def _pieces(self) -> Iterator[Piece]:
        from .tabular import csv_rows

        lower = self.lower
        if not lower.endswith((".csv", ".tsv")):
            raise NotStreamable(f"{self.source}/{self.rel}: not named .csv or .tsv")
        with self._open() as fh:
            head = fh.read(SNIFF_BYTES)
            _, offset = self._text_head(head)
            p = self._parser()
            p.format = lower[-3:]
            fh.seek(offset)  # past a byte-order mark, which parse_file strips too
            enc = self.encoding
            with io.TextIOWrapper(fh, encoding=enc.codec if enc else "utf-8", errors=ESCAPE if enc else "strict",
                                  newline="") as text:
                text._CHUNK_SIZE = self.window  # how much is decoded at a time
                rows = csv_rows(text, "\t" if lower.endswith(".tsv") else ",")
                yield from self._table(p, self._refuse(rows, "not UTF-8, or unreadable"))
        self._finish(p)


class JsonLinesReader(_Reader):
    """A JSON-lines file, a window of bytes at a time (see above)."""

    def _pieces(self) -> Iterator[Piece]:
        p = self._parser()
        with self._open() as fh:
            head, offset = self._head(fh, _not_lines)
            yield from self._read(p, fh, head[offset:], offset)
        self._finish(p)

    def _read(self, p: _FileParser, fh: Any, pending: bytes, byte0: int) -> Iterator[Piece]:
        text, line0, eof, pos = "", 1, False, 0
        held: list[tuple[str, Any, int]] | None = []  # the first two events, until the stream is known to be lines
        decode = _Decode(self.encoding, f"{self.source}/{self.rel}", byte0)
        label = self.encoding.label if self.encoding else "utf-8"

        def more() -> None:  # append the next window's text, cut after its last line break
            nonlocal pending, text, eof
            while True:
                chunk = fh.read(self.window)
                pending += chunk
                eof = not chunk
                cut = len(pending) if eof else pending.rfind(b"\n") + 1
                if cut or eof:
                    break
            text += decode(pending[:cut], eof)
            pending = pending[cut:]

        more()
        where = _Locator(text, byte0, label, line0)
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
                where = _Locator(text, byte0, label, line0) if held is None else where
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


class _Windows:
    """The text of a file from ``pos`` on, a window of its bytes decoded at a time (``_Decode``, which
    holds a character cut at a window's end for the next, so a window's end never changes the text)."""

    def __init__(self, fh: Any, first: bytes, byte0: int, window: int, name: str, encoding: TextEncoding | None = None):
        """``first``: the file's first bytes after ``byte0`` (a byte-order mark), already read."""
        self.fh, self.window, self.name = fh, window, name
        self.text, self.pos, self.eof = "", 0, False
        self._first: bytes | None = first
        self._decode = _Decode(encoding, name, byte0)

    def more(self) -> None:
        """Drop the text before ``pos`` and append the next window's."""
        chunk = self._first if self._first is not None else self.fh.read(self.window)
        self._first = None
        self.eof = not chunk
        self.text, self.pos = self.text[self.pos:] + self._decode(chunk, self.eof), 0

    def skip(self) -> bool:
        """Move ``pos`` past blanks, reading on; False at the end of the file."""
        while True:
            self.pos = _JSON_WS.match(self.text, self.pos).end()
            if self.pos < len(self.text):
                return True
            if self.eof:
                return False
            self.more()


class JsonArrayReader(_Reader):
    """A well-formed JSON array, a value at a time from windows of bytes (see above)."""

    def _pieces(self) -> Iterator[Piece]:
        p = self._parser()
        p.format = "json_array"
        with self._open() as fh:
            head, offset = self._head(fh, _not_array)
            yield from self._read(p, _Windows(fh, head[offset:], offset, self.window, f"{self.source}/{self.rel}",
                                              self.encoding))
        self._finish(p)

    def _read(self, p: _FileParser, w: _Windows) -> Iterator[Piece]:
        w.more()
        if not w.skip() or w.text[w.pos] != "[":
            raise self._defect("no '[' first, or NUL before it")
        w.pos += 1
        if not w.skip():
            raise self._defect("no closing ']'")
        item, sep = 0, w.text[w.pos]
        if sep == "]":
            w.pos += 1
        while sep != "]":
            value, sep = self._value(w, item)
            p.guarded(value, {"item": item})
            item += 1
            piece = self._full(p)
            if piece:
                yield piece
            if sep == "," and not w.skip():
                raise self._defect("no closing ']'")
        if w.skip():
            raise self._defect("text after the closing ']'")
        if p.records or p.quarantine:
            yield _take(p)

    def _value(self, w: _Windows, item: int) -> tuple[Any, str]:
        """The value at ``w.pos`` and the ``,`` or ``]`` after it, ``pos`` moved past that; read on
        while the window's end could change either."""
        while True:
            text, pos = w.text, w.pos
            try:
                value, end = _DECODER.raw_decode(text, pos)
            except (ValueError, RecursionError, MemoryError) as e:  # a big int's ValueError too
                if not w.eof and isinstance(e, json.JSONDecodeError) and (
                        e.msg.startswith("Unterminated string") or e.pos >= len(text) - _EDGE_CHARS):
                    w.more()
                    continue
                why = e.msg if isinstance(e, json.JSONDecodeError) else str(e)[:120]  # its place is the window's
                raise self._defect(f"item {item} does not decode strictly ({type(e).__name__}: {why})")
            after = _JSON_WS.match(text, end).end()
            sep = text[after:after + 1]
            if sep not in (",", "]"):
                if not w.eof and after >= len(text) - _EDGE_CHARS:  # a number cut short, or no separator yet
                    w.more()
                    continue
                raise self._defect(f"item {item} is followed by {sep or 'the end of the file'!r}, not ',' or ']'")
            if isinstance(value, _RepeatedKeys):
                raise self._defect(f"item {item} repeats a key")
            if text.count("[", pos, end) + text.count("{", pos, end) > _DEEP and _depth_over(value, _DEEP):
                raise self._defect(f"item {item} is nested more than {_DEEP} levels deep")
            w.pos = after + 1
            return value, sep

    def _defect(self, what: str) -> NotStreamable:
        return NotWellFormed(f"{self.source}/{self.rel}: not a well-formed JSON array: {what}")


class _Text:
    """A file's text from a point on, a window of its bytes at a time, with a locator for it; ``more``
    drops the text before a position (the locator starting there, mid-line too) and appends the next
    window's."""

    def __init__(self, fh: Any, first: bytes, byte0: int, window: int, decode: "_Decode", label: str):
        self.fh, self.window, self.decode, self.label = fh, window, decode, label
        self._first: bytes | None = first
        self.text, self.eof = "", False
        self.where = _Locator("", byte0, label)

    def more(self, keep: int) -> int:
        """Drop the text before ``keep``, read the next window; the positions' shift (``keep``)."""
        chunk = self._first if self._first is not None else self.fh.read(self.window)
        self._first = None
        self.eof = not chunk
        new = self.decode(chunk, self.eof)
        if keep:
            at = self.where.at(keep)
            self.text = self.text[keep:] + new
            self.where = _Locator(self.text, at["byte"], self.label, at["line"], at["col"])
        else:
            self.text += new
            self.where.text = self.text
        return keep


class TolerantArrayReader(_Reader):
    """A JSON array with a defect, value by value as ``parse_file`` reads one (``tolerant_array``):
    broken items quarantined with their item, line, column and byte, the array resumed at the next
    ``{"`` that starts an item, repairs for a trailing comma or a missing ``]``, text after the
    ``]`` quarantined. Only the current item and a window are held. Raises :class:`NotStreamable`
    where ``parse_file`` gives up on the whole file (a number too long for ``int``), or for an item
    nested deeper than ``_DEEP`` (whether a decoder gives up on it depends on its stack)."""

    def _pieces(self) -> Iterator[Piece]:
        p = self._parser()
        p.format = "json_array"
        with self._open() as fh:
            head, offset = self._head(fh, _not_array)
            label = self.encoding.label if self.encoding else "utf-8"
            t = _Text(fh, head[offset:], offset, self.window, _Decode(self.encoding, f"{self.source}/{self.rel}", offset),
                      label)
            yield from self._read(p, t)
        self._finish(p)

    def _read(self, p: _FileParser, t: _Text) -> Iterator[Piece]:
        t.more(0)
        pos = _WS.match(t.text).end()
        while pos >= len(t.text) and not t.eof:  # a head of blanks
            pos -= t.more(pos)
            pos = _WS.match(t.text, pos).end()
        pos, item = pos + 1, 0  # past the "["
        while True:
            text, n = t.text, len(t.text)
            pos = _WS.match(text, pos).end()
            if pos >= n:
                if not t.eof:
                    pos -= t.more(pos)
                    continue
                p.repair("missing_close_bracket", t.where.at(pos))
                break
            c = text[pos]
            if c in ",]":
                after = _WS.match(text, pos + 1).end()
                if after >= n and not t.eof:  # what follows decides
                    pos -= t.more(pos)
                    continue
                if c == ",":  # separators are skipped; one right before "]" is the trailing-comma defect
                    if after < n and text[after] == "]":
                        p.repair("trailing_comma", t.where.at(pos))
                    pos += 1
                    continue
                if after < n:  # text after the closing "]": all of it, one quarantined fragment
                    while not t.eof:
                        pos -= t.more(pos)
                    after = _WS.match(t.text, pos + 1).end()
                    p.drop("junk_after_array", "text after the closing ']' of the array",
                           t.text[after:], {"item": item, **t.where.at(after)}, fragment=True)
                break
            step = self._item(p, t, pos, item)
            if step is None:  # the window ends inside the item: read on
                pos -= t.more(pos)
                continue
            pos, more_items = step
            item += 1
            piece = self._full(p)
            if piece:
                yield piece
            if not more_items:
                break
        if p.records or p.quarantine:
            yield _take(p)

    def _item(self, p: _FileParser, t: _Text, pos: int, item: int) -> tuple[int, bool] | None:
        """Read the item at ``pos`` into ``p`` as ``tolerant_array`` does: (where the array goes on,
        whether it does), or None when the rest of the file could change the item."""
        text, n, eof, where = t.text, len(t.text), t.eof, t.where
        try:
            value, end, ctrl = decode_value(text, pos)
        except (RecursionError, MemoryError) as e:
            m = _RESYNC_ARRAY.search(text, pos + 1)
            if m is None and not eof:
                return None
            stop = m.start(1) if m else n
            p.drop(*_cannot_decode(e), text[pos:stop].rstrip().removesuffix(","),
                   {"item": item, **where.at(pos)}, fragment=True)
            return stop, m is not None
        except json.JSONDecodeError as e:
            if not eof and (e.msg.startswith("Unterminated string") or e.pos >= n - _EDGE_CHARS):
                return None
            m = _RESYNC_ARRAY.search(text, pos + 1)
            if m is None and not eof:
                return None
            p.broken_item(text, pos, m.start(1) if m else n, m is None, e, item, where)
            return (m.start(1) if m else n), m is not None
        except ValueError as e:  # e.g. a number too long for int: parse_file gives up on the file
            raise NotStreamable(f"{self.source}/{self.rel}: item {item} cannot be read ({str(e)[:120]})") from None
        if end >= n and not eof:  # a number cut short by the window still decodes
            return None
        if text.count("[", pos, end) + text.count("{", pos, end) > _DEEP and _depth_over(value, _DEEP):
            raise NotStreamable(f"{self.source}/{self.rel}: item {item} is nested more than {_DEEP} levels deep")
        if ctrl is not None:
            p.repair("control_character_in_string", where.at(ctrl))
        p.span = text[pos:end]
        p.guarded(value, {"item": item, **where.at(pos)})
        p.span = None
        return end, True


def _first_char(head: bytes, offset: int, encoding: TextEncoding | None) -> str:
    """The first character of the text ``head`` starts (after its byte-order mark of ``offset``
    bytes) that is not blank or NUL, as ``parse_file`` reads it; "" when none is in ``head``."""
    dec = codecs.getincrementaldecoder(encoding.codec if encoding else "utf-8")(ESCAPE)
    text = dec.decode(head[offset:offset + SNIFF_BYTES])
    return text[_WS.match(text).end():][:1]


def _not_text(head: bytes) -> str:
    """Why a file starting with ``head`` is not text at all ("" when it may be)."""
    if head.startswith(GZIP_MAGIC) or container_kind(head) or head.startswith(PARQUET_MAGIC):
        return "a compressed or binary file"
    return ""


def _not_lines(first: str, rel: str) -> str:
    """Why a file whose text starts with ``first`` is not read as JSON lines ("" when it is)."""
    if rel.lower().endswith((".csv", ".tsv")):
        return "a table"
    return "a JSON array" if first == "[" else ""


def _not_array(first: str, rel: str) -> str:
    """Why a file whose text starts with ``first`` is not read as a JSON array ("" when it is)."""
    if rel.lower().endswith((".csv", ".tsv")):
        return "a table"
    return "" if first == "[" else "not a JSON array"
