"""Writes ``curate/char_freq.tsv``: the share of the mirror's instructions that hold each character
(the 3,000 commonest, lower-cased), which the task-type rules' prefilters read to test for the
rarest characters a pattern needs (``curate.tasktype._required_chars``). Which characters a prefilter
tests changes its speed only, never a label.

    python benchmarks/char_freq.py [MIRROR]
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOP = 3000


def main() -> None:
    from curate.io import atomic_path
    from curate.parse import parse_file

    mirror = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TIGER_MIRROR", ROOT.parent / "shared" / "corpora"))
    docs, n = Counter(), 0
    for source in ("trans_chinese_alpaca", "alpaca_chinese", "belle"):
        for path in sorted(p for p in (mirror / source).rglob("*") if p.is_file()):
            for rec in parse_file(path, source, path.relative_to(mirror / source).as_posix()).records:
                docs.update(set((rec.get("instruction") or "").lower()))
                n += 1
    out = ROOT / "curate" / "char_freq.tsv"
    top = [(ch, c) for ch, c in sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP] if ch.isprintable()]
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(f"{ord(ch)}\t{c / n:.5f}\n" for ch, c in top)
    print(f"{out}: {len(top)} characters of {n:,} instructions")


if __name__ == "__main__":
    main()
