"""Exact-duplicate keys: the fields after Unicode NFKC (full-width ASCII → half-width, ``①`` → ``1``,
the ideographic space → a space; ``。、“”`` stay) and whitespace folding, hashed. Only the key is
normalised; the text itself is not changed. With the default three fields the key equals the
record's content hash whenever the text needs no normalisation."""
from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .records import content_hash

NCP = 0x110000

def exact_key(values: Iterable[str]) -> str:
    """Dedupe key of one row's field values (normalised as the module docstring says)."""
    return _key_hash([" ".join(unicodedata.normalize("NFKC", v).split()) for v in values])


def _key_hash(vals: list[str]) -> str:
    if len(vals) == 3:
        return content_hash(*vals)
    return hashlib.blake2b("\x1f".join(vals).encode("utf-8"), digest_size=8).hexdigest()


# NFKC of many strings, fast: CPython's normalize costs ~150 ns a character on text that needs
# it (most Chinese text: full-width commas), so characters are mapped one by one through a table
# of the few that change (a regex finds them), and a string still not NFKC-normal afterwards
# (combining sequences) gets the full normalisation. The result equals unicodedata's NFKC.
_NFKC_SEEN = np.zeros(NCP, dtype=bool)
_NFKC_MAP: dict[str, str] = {}
_NFKC_RE: list = [None]


def _nfkc_many(values: list[str]) -> list[str]:
    if not values:
        return []
    cps = np.frombuffer("".join(values).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    present = np.zeros(NCP, dtype=bool)
    present[cps] = True
    new = np.flatnonzero(present & ~_NFKC_SEEN)
    for cp in new.tolist():
        ch = chr(cp)
        nf = unicodedata.normalize("NFKC", ch)
        if nf != ch:
            _NFKC_MAP[ch] = nf
    _NFKC_SEEN[new] = True
    if len(new) or _NFKC_RE[0] is None:
        chars = "".join(re.escape(c) for c in sorted(_NFKC_MAP))
        _NFKC_RE[0] = re.compile(f"[{chars}]") if chars else None
    pat, mp = _NFKC_RE[0], _NFKC_MAP
    isnorm, norm = unicodedata.is_normalized, unicodedata.normalize

    def one(v: str) -> str:
        if isnorm("NFKC", v):  # fast C check; true for most values
            return v
        if pat is not None:
            v = pat.sub(lambda m: mp[m.group()], v)
        return v if isnorm("NFKC", v) else norm("NFKC", v)

    return [one(v) for v in values]


def exact_keys(df: pd.DataFrame, fields: Sequence[str], rows_per_part: int = 200_000) -> np.ndarray:
    """:func:`exact_key` of every row of ``df`` (vectorised over rows, a part at a time so the
    normalised copies of the texts never hold the whole column)."""
    out = []
    for s in range(0, len(df), rows_per_part):
        part = df.iloc[s:s + rows_per_part]
        cols = [[" ".join(v.split()) for v in _nfkc_many(part[f].tolist())] for f in fields]
        out.append(np.array([_key_hash(list(v)) for v in zip(*cols)], dtype="U16"))
    return np.concatenate(out) if out else np.empty(0, dtype="U16")
