"""What the near-duplicate search compares: characters folded (width, case, traditional → simplified),
punctuation and spaces dropped, then character n-grams (Chinese has no word spaces), hashed.

The pure-Python functions here are the reference; the numpy path in ``signatures`` must agree."""
from __future__ import annotations

import threading
import unicodedata
from functools import lru_cache

import numpy as np

from .config import DEFAULT_NGRAM

_DROP_CATEGORIES = ("P", "Z", "C")  # punctuation, separators (spaces), control/format/unassigned


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def fold_char(ch: str) -> str:
    """The cleaned form of one character: ``""`` when it is dropped, else one character.

    A character is NFKC-normalised when that gives one character (full-width → half-width),
    lower-cased when that gives one character, folded from traditional to simplified Chinese
    (OpenCC ``t2s`` of the character alone: 們 → 们, 後 → 后; phrase-level wording such as
    軟體/软件 is not folded), and dropped when the result is punctuation, whitespace/separator or
    a control/format character (Unicode categories P*, Z*, C*). Symbols (``+ = < > $ ¥`` …),
    digits and letters of every script are kept.
    """
    c = unicodedata.normalize("NFKC", ch)
    if len(c) != 1:
        c = ch
    low = c.lower()
    if len(low) == 1:
        c = low
    if unicodedata.category(c)[0] in _DROP_CATEGORIES:
        return ""
    if c >= "\u3400" and not ("\ud800" <= c <= "\udfff"):  # Han and later planes only: cheap for the rest
        s = _t2s().convert(c)
        if len(s) == 1:
            c = s
    return c


def clean_text(text: str) -> str:
    """Text as it is shingled: every character through :func:`fold_char` (per character, no context)."""
    return "".join(fold_char(ch) for ch in text)


def shingles(text: str, ngram: int = DEFAULT_NGRAM) -> list[str]:
    """Character n-grams of the cleaned text, in order (with repeats).

    A cleaned text shorter than ``ngram`` is one shingle, the whole cleaned text (so two different
    short texts get different signatures; identical ones are exact duplicates anyway). An empty
    cleaned text has no shingles: its signature is the empty MinHash and it is never a duplicate.
    """
    c = clean_text(text)
    if not c:
        return []
    if len(c) < ngram:
        return [c]
    return [c[i:i + ngram] for i in range(len(c) - ngram + 1)]


# 64-bit polynomial hash of the code points, finalised with MurmurHash3's fmix64, low 32 bits.
# A polynomial hash can be computed for all n-grams of a big array with n multiply-adds, which is
# what makes the vectorised path fast; the odd 64-bit multiplier and the final avalanche keep
# collisions at the level of a random 32-bit hash. The shingle length is mixed into the start
# value so a short text's single shingle cannot equal an n-gram by construction.
M64 = (1 << 64) - 1
POLY = 0x9E3779B97F4A7C15
H0 = 0x243F6A8885A308D3
_F1, _F2 = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * _F1) & M64
    h ^= h >> 33
    h = (h * _F2) & M64
    return h ^ (h >> 33)


def shingle_hash(shingle: str) -> int:
    """32-bit hash of one shingle; give it to ``datasketch.MinHash(hashfunc=shingle_hash)``."""
    h = H0 ^ len(shingle)
    for ch in shingle:
        h = (h * POLY + ord(ch)) & M64
    return _fmix64_int(h) & 0xFFFFFFFF


def fmix64_np(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(_F1)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(_F2)
    return h ^ (h >> np.uint64(33))


def fmix32_np(h: np.ndarray) -> np.ndarray:
    # datasketch's affine schemes pre-mix the hashfunc output with MurmurHash3's fmix32.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


# Lookup tables over all code points, filled lazily for the characters actually seen (calling
# unicodedata on 1.1 M code points up front would cost about a second at import).
NCP = 0x110000
FOLD = np.arange(NCP, dtype=np.uint32)
DROP = np.zeros(NCP, dtype=bool)
KNOWN = np.zeros(NCP, dtype=bool)


_TABLE_LOCK = threading.Lock()


def fill_tables(cps: np.ndarray) -> None:
    present = np.zeros(NCP, dtype=bool)
    present[cps] = True
    if not (present & ~KNOWN).any():
        return
    with _TABLE_LOCK:  # batches run in threads
        todo = np.flatnonzero(present & ~KNOWN)
        for cp in todo.tolist():
            f = fold_char(chr(cp))
            if f:
                FOLD[cp] = ord(f)
            else:
                DROP[cp] = True
        KNOWN[todo] = True
