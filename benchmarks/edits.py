"""Realistic edits of real rows, for the labelled near-duplicate benchmark and the scale generator.

Every edit takes a record dict (``instruction``, ``input``, ``output``) and a seeded
``random.Random`` and returns a new dict, or ``None`` when the edit does not apply to that row
(a list re-order needs a list; a character edit needs a row long enough that one typo leaves it
the same row). Edits never touch ``id``/``source``/``file``/``row``: the caller names the copy.

Kinds (what a near-duplicate looks like in pooled instruction data):

``char_1pct`` … ``char_10pct``  insert / delete / substitute characters at that rate of the
    row's cleaned characters (at least one edit; substitutes and inserts are drawn from the
    corpus's own character frequencies; only rows with ≥ ``MIN_CHARS_FOR_TYPOS`` cleaned chars)
``punct``        full-width ↔ half-width punctuation swaps, some punctuation dropped, an ending added
``width``        ASCII letters and digits ↔ full-width forms (Ａ１ ↔ A1), only rows with ≥ 3 such
``trad``         simplified → traditional characters (OpenCC s2t)
``trad_tw``      simplified → Taiwan traditional with Taiwan phrases (OpenCC s2twp: 软件 → 軟體)
``whitespace``   spaces inside the text, line breaks doubled / removed, stray tabs and padding
``sentence_add`` one sentence (from another row) appended to the output, at most a fifth of the row
``sentence_del`` one sentence of the output removed, at most a fifth of the row
``list_order``   the items of a list (≥ 3 items) in the output re-ordered, numbering kept in place
"""
from __future__ import annotations

import random
import re
import unicodedata
from functools import lru_cache
from typing import Callable, Sequence

FIELDS = ("instruction", "input", "output")
MIN_CHARS_FOR_TYPOS = 20
MAX_SENTENCE_SHARE = 0.2

_PUNCT_PAIRS = [("，", ","), ("。", "."), ("！", "!"), ("？", "?"), ("：", ":"), ("；", ";"),
                ("（", "("), ("）", ")"), ("“", '"'), ("”", '"')]
_FULL2HALF = dict(_PUNCT_PAIRS)
_HALF2FULL = {h: f for f, h in _PUNCT_PAIRS if h != '"'}


def _is_content(ch: str) -> bool:
    """A character that survives the dedupe cleaning (letters, digits, symbols)."""
    return unicodedata.category(ch)[0] not in "PZC"


def cleaned_len(rec: dict) -> int:
    return sum(_is_content(ch) for f in FIELDS for ch in rec[f])


class CharPool:
    """Characters drawn with the corpus's frequencies (Han for Han, letters for letters …)."""

    def __init__(self, texts: Sequence[str], sample: int = 2_000_000, seed: int = 0):
        rng = random.Random(seed)
        joined = "".join(texts)
        idx = [rng.randrange(len(joined)) for _ in range(min(sample, len(joined)))] if joined else []
        chars = [joined[i] for i in idx]
        self.han = [c for c in chars if "\u4e00" <= c <= "\u9fff"] or list("的一是在不了有和人这")
        self.latin = list("abcdefghijklmnopqrstuvwxyz")
        self.digit = list("0123456789")

    def like(self, ch: str, rng: random.Random) -> str:
        if ch.isascii() and ch.isdigit():
            return rng.choice(self.digit)
        if ch.isascii() and ch.isalpha():
            return rng.choice(self.latin)
        return rng.choice(self.han)


def _split_fields(rec: dict) -> str:
    return "\x00".join(rec[f] for f in FIELDS)


def _join_fields(rec: dict, text: str) -> dict:
    parts = text.split("\x00")
    assert len(parts) == 3, "an edit crossed a field boundary"
    return dict(rec, **dict(zip(FIELDS, parts)))


def char_edit(rate: float, pool: CharPool) -> Callable[[dict, random.Random], dict | None]:
    def edit(rec: dict, rng: random.Random) -> dict | None:
        n = cleaned_len(rec)
        if n < MIN_CHARS_FOR_TYPOS:
            return None
        k = max(1, round(rate * n))
        chars = list(_split_fields(rec))
        for _ in range(k):
            pos = [p for p, ch in enumerate(chars) if ch != "\x00" and _is_content(ch)]
            p = rng.choice(pos)
            op = rng.choice(("insert", "delete", "substitute"))
            if op == "insert":
                chars.insert(p, pool.like(chars[p], rng))
            elif op == "delete":
                del chars[p]
            else:
                new = pool.like(chars[p], rng)
                while new == chars[p]:
                    new = pool.like(chars[p], rng)
                chars[p] = new
        return _join_fields(rec, "".join(chars))

    return edit


def punct(rec: dict, rng: random.Random) -> dict | None:
    def one(s: str) -> str:
        out = []
        for ch in s:
            if ch in _FULL2HALF and rng.random() < 0.6:
                out.append(_FULL2HALF[ch])
            elif ch in _HALF2FULL and rng.random() < 0.6:
                out.append(_HALF2FULL[ch])
            elif ch in "，。、,." and rng.random() < 0.15:
                continue  # dropped
            else:
                out.append(ch)
        return "".join(out)

    new = {f: one(rec[f]) for f in FIELDS}
    ending = new["output"].rstrip()
    if ending and ending[-1] in "。.！!？?":
        new["output"] = ending[:-1]
    else:
        new["output"] = ending + rng.choice(["。", "！", "."])
    out = dict(rec, **new)
    return out if any(out[f] != rec[f] for f in FIELDS) else None


def _to_full(ch: str) -> str:
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


def width(rec: dict, rng: random.Random) -> dict | None:
    asc = sum(ch.isascii() and ch.isalnum() for f in FIELDS for ch in rec[f])
    full = sum("\uff01" <= ch <= "\uff5e" for f in FIELDS for ch in rec[f])
    if asc + full < 3:
        return None
    if asc >= full:  # half → full width (letters and digits; a few of the ASCII punctuation)
        new = {f: "".join(_to_full(ch) if ch.isascii() and (ch.isalnum() or rng.random() < 0.5) and ch.strip() else ch
                          for ch in rec[f]) for f in FIELDS}
    else:  # full → half width
        new = {f: unicodedata.normalize("NFKC", rec[f]) for f in FIELDS}
    return dict(rec, **new)


@lru_cache(maxsize=4)
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


def _convert(config: str) -> Callable[[dict, random.Random], dict | None]:
    def edit(rec: dict, rng: random.Random) -> dict | None:
        cc = _opencc(config)
        new = {f: cc.convert(rec[f]) for f in FIELDS}
        if all(new[f] == rec[f] for f in FIELDS):
            return None
        return dict(rec, **new)

    return edit


def whitespace(rec: dict, rng: random.Random) -> dict | None:
    def one(s: str) -> str:
        if not s:
            return s
        s = s.replace("\n", rng.choice(["\n\n", " ", "\r\n", ""]))
        chars = list(s)
        for _ in range(max(1, len(chars) // 25)):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice([" ", " ", "\u3000", "\t", "\n"]))
        return rng.choice(["", " ", "\n"]) + "".join(chars) + rng.choice(["", " ", "\n", "  "])

    return dict(rec, **{f: one(rec[f]) for f in FIELDS})


_SENT = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*\n?")


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` (each keeps its ending punctuation); ``"".join`` gives the text back."""
    out = _SENT.findall(text)
    return out if "".join(out) == text else [text]


def sentence_add(extra_sentences: Sequence[str]) -> Callable[[dict, random.Random], dict | None]:
    def edit(rec: dict, rng: random.Random) -> dict | None:
        budget = MAX_SENTENCE_SHARE * cleaned_len(rec)
        for _ in range(20):
            s = rng.choice(extra_sentences)
            n = sum(_is_content(ch) for ch in s)
            if 4 <= n <= budget:
                out = rec["output"]
                sep = "" if not out or out.endswith(("\n", "。", "！", "？")) else "。"
                return dict(rec, output=out + sep + s.strip())
        return None

    return edit


def sentence_del(rec: dict, rng: random.Random) -> dict | None:
    sents = sentences(rec["output"])
    if len(sents) < 2:
        return None
    budget = MAX_SENTENCE_SHARE * cleaned_len(rec)
    ok = [k for k, s in enumerate(sents) if 1 <= sum(_is_content(ch) for ch in s) <= budget]
    if not ok:
        return None
    k = rng.choice(ok)
    return dict(rec, output="".join(sents[:k] + sents[k + 1:]))


_ITEM = re.compile(r"^(\s*(?:\d+[.、)）]|[-*•·])\s*)(.*)$")


def list_order(rec: dict, rng: random.Random) -> dict | None:
    lines = rec["output"].split("\n")
    # the longest run of consecutive list lines
    best, start = (0, 0), None
    for k, line in enumerate(lines + [""]):
        if k < len(lines) and _ITEM.match(line) and _ITEM.match(line).group(2).strip():
            start = k if start is None else start
        elif start is not None:
            if k - start > best[1] - best[0]:
                best = (start, k)
            start = None
    a, b = best
    if b - a < 3:
        return None
    items = [_ITEM.match(line).groups() for line in lines[a:b]]
    bodies = [body for _, body in items]
    order = list(range(len(bodies)))
    while order == sorted(order):
        rng.shuffle(order)
    new = [marker + bodies[o] for (marker, _), o in zip(items, order)]
    return dict(rec, output="\n".join(lines[:a] + new + lines[b:]))


def edit_kinds(pool: CharPool, extra_sentences: Sequence[str]) -> dict[str, Callable[[dict, random.Random], dict | None]]:
    """Every edit kind by name (the order is the order of the report's tables)."""
    return {
        "char_1pct": char_edit(0.01, pool),
        "char_3pct": char_edit(0.03, pool),
        "char_5pct": char_edit(0.05, pool),
        "char_10pct": char_edit(0.10, pool),
        "punct": punct,
        "width": width,
        "trad": _convert("s2t"),
        "trad_tw": _convert("s2twp"),
        "whitespace": whitespace,
        "sentence_add": sentence_add(extra_sentences),
        "sentence_del": sentence_del,
        "list_order": list_order,
    }
