"""How a file's bytes become text: byte-order marks, UTF-16/32 without one, and whether a non-UTF-8
file is really GBK/GB18030 Chinese or some other legacy encoding (Latin-1, Windows-1252 …).

The parse stage (``curate.parse.decode_bytes``) uses these; they only look at bytes and decide, so
they can be tested on their own.
"""
from __future__ import annotations

import codecs
import re

# Longest first: the UTF-32-LE mark starts with the UTF-16-LE one.
BOMS = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
SNIFF_BYTES = 4096
# Magic numbers of binary containers a source folder may hold by mistake, with what to do about them.
CONTAINERS = ((b"PK\x03\x04", "zip", "unzip it and put the JSON/JSONL/CSV/Parquet files in the folder"),
              (b"\xfd7zXZ\x00", "xz", "decompress it (xz -d) into JSON/JSONL"),
              (b"BZh", "bzip2", "decompress it (bunzip2) into JSON/JSONL"),
              (b"\x28\xb5\x2f\xfd", "zstd", "decompress it (zstd -d) into JSON/JSONL"),
              (b"7z\xbc\xaf\x27\x1c", "7z", "extract it and put the JSON/JSONL files in the folder"),
              (b"SQLite format 3\x00", "sqlite", "export the table to JSONL or Parquet"))
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
_OBJECT_START = re.compile(rb"(?:^|\n)[ \t\r\x00]*\{")


def sniff_bom(data: bytes) -> tuple[str | None, int]:
    """(codec, length of the mark) when ``data`` starts with a byte-order mark, else (None, 0)."""
    for mark, codec in BOMS:
        if data.startswith(mark):
            return codec, len(mark)
    return None, 0


def sniff_utf16_32(data: bytes) -> str | None:
    """UTF-16/32 without a byte-order mark, told by where the zero bytes fall.

    JSON's syntax (quotes, braces, keys) is ASCII, which UTF-16 writes with one zero byte per
    character, always at the same parity; UTF-8 text, even with NUL padding between rows, has its
    zeros at both parities. UTF-32 has three zeros in every four bytes of ASCII."""
    head = data[:SNIFF_BYTES]
    n = len(head) - len(head) % 4
    if n < 8:
        return None
    head = head[:n]
    quads = [head[k::4].count(0) / (n // 4) for k in range(4)]
    # the top byte of every code point is zero, the next one too outside the astral planes
    if quads[3] > 0.95 and quads[2] > 0.9 and quads[0] < 0.5:
        return "utf-32-le"
    if quads[0] > 0.95 and quads[1] > 0.9 and quads[3] < 0.5:
        return "utf-32-be"
    even, odd = head[0::2].count(0) / (n // 2), head[1::2].count(0) / (n // 2)
    if odd > 0.25 and even < 0.25 * odd:
        return "utf-16-le"
    if even > 0.25 and odd < 0.25 * even:
        return "utf-16-be"
    return None


def container_kind(data: bytes) -> tuple[str, str] | None:
    """(kind, advice) when ``data`` is a compressed or binary container this stage does not open."""
    for magic, kind, advice in CONTAINERS:
        if data.startswith(magic):
            return kind, advice
    return None


def gb_counts(text: str) -> tuple[int, int, int]:
    """``gb_plausible``'s evidence in ``text``: (two-byte characters, those whose second byte is
    ≥ 0x80, bytes that decoded to nothing). Counts add up, so a file can be judged a part at a time."""
    pairs = high = bad = 0
    for ch in text:
        o = ord(ch)
        if o < 0x80:
            continue
        if 0xDC00 <= o <= 0xDCFF:  # a byte that decoded to nothing (ASCII ones too: a cut 4-byte character)
            bad += 1
            continue
        b = ch.encode("gb18030")
        if len(b) == 2:
            pairs += 1
            high += b[1] >= 0x80
    return pairs, high, bad


def gb_verdict(pairs: int, high: int, bad: int) -> bool:
    """``gb_plausible`` from the summed ``gb_counts``."""
    return pairs > 0 and high >= 0.5 * pairs and bad <= max(2, 0.05 * pairs)


def gb_plausible(text: str) -> bool:
    """Is ``text`` (bytes decoded as GB18030 with ``surrogateescape``) really GBK/GB18030 Chinese?

    Decoding never proves it: Latin-1 or Windows-1252 text decodes as GBK too, because an accented
    letter followed by an ASCII letter is a valid GBK pair (``é`` + ``t`` → one rare ideograph). In
    Chinese GBK text the second byte of a pair is nearly always ≥ 0x80 (GB2312 puts both bytes in
    0xA1–0xFE), and bytes that decode to nothing are rare; in Latin-1 text neither holds."""
    return gb_verdict(*gb_counts(text))


def legacy_guess(data: bytes) -> str:
    """A short guess of what a file that is neither UTF-8/16/32 nor GBK holds, for the advice."""
    if data.startswith(PARQUET_MAGIC):
        return "Parquet"
    high = sum(b >= 0x80 for b in data[:SNIFF_BYTES])
    if not high:
        return "ASCII with control bytes"
    return "a single-byte legacy encoding such as Latin-1 / Windows-1252"


def estimate_rows(data: bytes) -> int:
    """How many rows a file that cannot be parsed probably held: objects that start a line (JSON
    lines, or a JSON array written one row per line), else non-blank lines; at least 1."""
    n = len(_OBJECT_START.findall(data))
    if n:
        return n
    return max(1, sum(1 for line in data.split(b"\n") if line.strip(b" \t\r\x00")))


ESCAPE = "tiger-escape"


def _escape(e: UnicodeError) -> tuple[str | bytes, int]:
    """Codec error handler: an undecodable byte becomes U+DC00 + byte (``surrogateescape`` for any
    byte and any codec), and back again when encoding, so positions count the file's own bytes."""
    if isinstance(e, UnicodeDecodeError):
        return "".join(chr(0xDC00 + b) for b in e.object[e.start:e.end]), e.end
    if isinstance(e, UnicodeEncodeError):
        s = e.object[e.start:e.end]
        if all(0xDC00 <= ord(c) <= 0xDCFF for c in s):
            return bytes(ord(c) - 0xDC00 for c in s), e.end
    raise e


codecs.register_error(ESCAPE, _escape)
