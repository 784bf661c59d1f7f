"""Labelled near-duplicate benchmark built from real mirror rows, and what it measures.

    .venv/bin/python benchmarks/neardup_bench.py [--mirror ../shared/corpora] [--per-kind 300]
        [--parts quality,shingles,sweep,tools] [--dj-python /tmp/djvenv/bin/python]

The benchmark is a set of labelled pairs of rows; no row is in two pairs, so any deduplicator can
be run over all the rows at once and judged by which rows it keeps:

* positives: a real row and an edited copy of it, one kind of edit per pair (``benchmarks/edits.py``:
  character typos at 1/3/5/10 %, punctuation, full/half width, simplified → traditional (plain
  and with Taiwan phrases), whitespace and line breaks, a sentence appended or removed, list
  items re-ordered);
* negatives: two different rows, from four families — ``distinct`` (real rows of the same source
  and similar length), ``template`` (real sentences behind one shared instruction template:
  "请将下面的句子翻译成英文：…" with the row's English original as output, a sentiment template
  with one-word answers …), ``same_instruction`` (real rows of the mirror that ask the same thing
  and answer differently), ``numbers`` (a real arithmetic row and the same sum with another
  operand). Each edit kind has as many negatives as positives, and its edit is applied to one
  side of each of its negatives too (an edit must not make different rows look alike), so
  precision, recall and F1 are meaningful per kind.

Base rows are real rows with no similar row anywhere in the mirror (character 3-gram MinHash at
estimated Jaccard ≥ 0.4, a wider net than the deduplicator's), so a row is a duplicate only of
what the benchmark made it a duplicate of. A pair's *stratum* is the cleaned length of its first
row: short (< 40 characters), medium (< 150), long.

Prediction for a pair: the two rows are in one cluster (``labels``), or — for tools that only
say which rows they keep — at least one of the two was dropped (``kept``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from curate.dedupe import (  # noqa: E402
    _components,
    clean_text,
    minhash_signatures,
    near_duplicate_clusters,
    near_duplicate_pairs,
    row_texts,
)
from curate.records import make_record, records_frame  # noqa: E402

import edits as E  # noqa: E402

FIELDS = ("instruction", "input", "output")
FAMILIES = ("distinct", "template", "same_instruction", "numbers")  # template pairs are "template" or "template_short"
FAMILY_SHARE = {"distinct": 0.4, "template": 0.3, "same_instruction": 0.15, "numbers": 0.15}
STRATA = ((0, 40, "short"), (40, 150, "medium"), (150, 1 << 30, "long"))


def stratum(n: int) -> str:
    return next(name for lo, hi, name in STRATA if lo <= n < hi)


def _text(r: dict) -> str:
    return "\n".join(r[f] for f in FIELDS)


# ---------------------------------------------------------------------------------------------
# Building the benchmark
# ---------------------------------------------------------------------------------------------


def _jaccard3(x: str, y: str) -> float:
    sx, sy = (set(_grams(clean_text(t), 3)) for t in (x, y))
    return len(sx & sy) / len(sx | sy) if sx | sy else 1.0


def _grams(c: str, n: int) -> list[str]:
    return [c] if 0 < len(c) < n else [c[i:i + n] for i in range(len(c) - n + 1)]


def similar_neighbours(rows: Sequence[dict], threshold: float = 0.4, ngram: int = 3) -> list[set[int]]:
    """For each row, the rows whose estimated character-``ngram`` Jaccard with it is ≥ threshold."""
    sig = minhash_signatures([_text(r) for r in rows], ngram=ngram, num_perm=128, progress=False)
    i, j, _ = near_duplicate_pairs(sig, threshold, window=32)
    nb: list[set[int]] = [set() for _ in rows]
    for a, b in zip(i.tolist(), j.tolist()):
        nb[a].add(b)
        nb[b].add(a)
    return nb


# Instruction templates for the "template" negatives: (instruction, input, output) from a real
# row. Half of the template pairs use short fills (a clause of 4-12 characters): there the shared
# template is most of the row, the hardest case for any set-of-shingles similarity.
_SENTIMENT = "请判断下面这句话的情感是积极还是消极：{s}"
_CLAUSE = re.compile(r"[^，。！？；：,.!?;:\n]+")


def _clause(r: dict, lo: int, hi: int) -> str | None:
    """The first clause of the row's output with ``lo``..``hi`` cleaned characters."""
    for c in _CLAUSE.findall(r["output"])[:3]:
        c = c.strip()
        if lo <= len(clean_text(c)) <= hi:
            return c
    return None


def _templates() -> list[Callable[[dict, random.Random, bool], dict | None]]:
    def _zh_en(r, short):
        en = json.loads(r["extra"]).get("en_instruction", "").strip()
        zh = r["instruction"].strip()
        n = len(clean_text(zh))
        if not en or not ((4 <= n <= 12) if short else (13 <= n <= 60)):
            return None
        return zh, en

    def zh2en(r, rng, short):
        got = _zh_en(r, short)
        return got and {"instruction": "请将下面的句子翻译成英文：" + got[0], "input": "", "output": got[1]}

    def zh2en_input(r, rng, short):
        got = _zh_en(r, short)
        return got and {"instruction": "请把这句话翻译成英文。", "input": got[0], "output": got[1]}

    def en2zh(r, rng, short):
        got = _zh_en(r, short)
        return got and {"instruction": "Translate the following sentence into Chinese: " + got[1], "input": "",
                        "output": got[0]}

    def sentiment(r, rng, short):
        s = _clause(r, 4, 12) if short else _clause(r, 13, 40)
        return s and {"instruction": _SENTIMENT.format(s=s), "input": "", "output": rng.choice(["积极", "消极"])}

    def question(r, rng, short):
        s = _clause(r, 4, 12) if short else _clause(r, 13, 40)
        return s and {"instruction": "把下面的句子改写成疑问句：", "input": s, "output": s + "吗？"}

    def summary(r, rng, short):
        sents = E.sentences(r["output"])
        if short or len(sents) < 3:
            return None
        return {"instruction": "用一句话概括下面这段话的主要内容。", "input": "".join(sents[:3]).strip(),
                "output": sents[0].strip()}

    return [zh2en, zh2en_input, en2zh, sentiment, question, summary]


_SUM = re.compile(r"^(\d+)\s*([-+*/])\s*(\d+)\s*=\s*$")


def _arith(a: int, op: str, b: int) -> str | None:
    if op == "+":
        return str(a + b)
    if op == "-":
        return str(a - b)
    if op == "*":
        return str(a * b)
    return str(round(a / b, 2)) if b else None


def _other_sum(r: dict, rng: random.Random) -> dict | None:
    m = _SUM.match(r["instruction"])
    if not m or r["input"]:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    for _ in range(10):
        if rng.random() < 0.5:
            a2, b2 = a + rng.choice([-3, -2, -1, 1, 2, 3]), b
        else:
            a2, b2 = a, b + rng.choice([-3, -2, -1, 1, 2, 3])
        res = _arith(a2, op, b2)
        if a2 >= 0 and b2 > 0 and res is not None and (a2, b2) != (a, b):
            q = f"{a2}{op}{b2}="
            return dict(r, instruction=q, output=q + res)
    return None


@dataclass
class Benchmark:
    rows: pd.DataFrame  # record columns + pair, side
    pairs: pd.DataFrame  # pair, kind, label, family, stratum, a, b (row positions)
    base_ids: set  # ids of the mirror rows the benchmark was built from (keep them out of a haystack)

    def texts(self) -> list[str]:
        return row_texts(self.rows, FIELDS)


def build_benchmark(rows: Sequence[dict], per_kind: int = 300, seed: int = 0,
                    kinds: Sequence[str] | None = None, verbose: bool = False) -> Benchmark:
    """Labelled pairs from real ``rows`` (records with ``extra`` holding ``en_instruction`` where known)."""
    rng = random.Random(seed)
    rows = [r for r in rows if r["output"].strip() and (r["instruction"].strip() or r["input"].strip())]
    t = time.perf_counter()
    nb = similar_neighbours(rows)
    if verbose:
        print(f"neighbour search over {len(rows):,} rows: {time.perf_counter() - t:.1f}s")
    clen = [E.cleaned_len(r) for r in rows]
    lonely = [k for k in range(len(rows)) if not nb[k] and clen[k] >= 2]
    rng.shuffle(lonely)
    used: set[int] = set()

    def fresh(pred: Callable[[int], bool] = lambda k: True) -> Iterable[int]:
        """Unused pool rows in the shuffled order (checked lazily: ``used`` grows meanwhile)."""
        for k in lonely:
            if k not in used and pred(k):
                yield k

    streams: dict[str, Iterable[int]] = {}

    def take(name: str = "any", pred: Callable[[int], bool] = lambda k: True) -> int | None:
        if name not in streams:
            streams[name] = fresh(pred)
        for k in streams[name]:
            if k not in used:
                used.add(k)
                return k
        return None

    # fillers (sentences for sentence_add, characters for typos) come from rows outside the pool
    pool = E.CharPool([_text(rows[k]) for k in range(0, len(rows), 7)], seed=seed)
    extra_sentences = [s for k in range(3, len(rows), 11) for s in E.sentences(rows[k]["output"])
                       if 4 <= len(clean_text(s)) <= 40]
    kinds_fn = E.edit_kinds(pool, extra_sentences)
    kinds = list(kinds or kinds_fn)

    # negative families: lists of (x, y) records, consumed in order
    by_source_len: dict[str, list[int]] = defaultdict(list)
    for k in lonely:
        by_source_len[rows[k]["source"]].append(k)
    for v in by_source_len.values():
        v.sort(key=lambda k: clen[k])

    def distinct_pair():
        x = take()
        if x is None:
            return None
        cand = by_source_len[rows[x]["source"]]
        pos = int(np.searchsorted([clen[k] for k in cand], clen[x]))
        for d in rng.sample(range(-40, 41), 81):
            q = pos + d
            if 0 <= q < len(cand) and cand[q] not in used and abs(clen[cand[q]] - clen[x]) <= max(3, 0.25 * clen[x]):
                used.add(cand[q])
                return rows[x], rows[cand[q]]
        used.discard(x)
        return None

    templates = _templates()

    def template_pair():
        fn = rng.choice(templates)
        short = rng.random() < 0.5 and fn.__name__ != "summary"
        got = []
        for _ in range(2000):
            k = take("not_belle", lambda k: rows[k]["source"] != "belle")
            if k is None:
                return None
            t = fn(rows[k], rng, short)
            if t is None:
                used.discard(k)
                continue
            got.append(dict(rows[k], **t))
            if len(got) == 2:
                return got[0], got[1], "template_short" if short else "template"
        return None

    # real rows asking the same thing and answering differently (answers share at most a fifth
    # of their character 3-grams); neither row has a similar row except perhaps the other
    groups: dict[str, list[int]] = defaultdict(list)
    for k, r in enumerate(rows):
        if len(clean_text(r["instruction"])) >= 4:
            groups[r["instruction"].strip()].append(k)
    same_inst = []
    for inst in sorted(groups):
        g = groups[inst]
        for a, b in zip(g[0::2], g[1::2]):
            if nb[a] <= {b} and nb[b] <= {a} and _jaccard3(rows[a]["output"], rows[b]["output"]) <= 0.2:
                same_inst.append((a, b))
    rng.shuffle(same_inst)

    def same_instruction_pair():
        while same_inst:
            a, b = same_inst.pop()
            if a not in used and b not in used:
                used.update((a, b))
                return rows[a], rows[b]
        return None

    def numbers_pair():
        for _ in range(50):
            k = take("sums", lambda k: bool(_SUM.match(rows[k]["instruction"])))
            if k is None:
                return None
            y = _other_sum(rows[k], rng)
            if y is not None:
                return rows[k], y
        return None

    family_fn = {"distinct": distinct_pair, "template": template_pair,
                 "same_instruction": same_instruction_pair, "numbers": numbers_pair}

    out_rows: list[dict] = []
    out_pairs: list[dict] = []

    def add_pair(kind: str, label: bool, family: str, a: dict, b: dict, base: Sequence[dict]):
        p = len(out_pairs)
        ia, ib = len(out_rows), len(out_rows) + 1
        for side, r in (("a", a), ("b", b)):
            rec = make_record(f"bench_{kind}", f"{family}.json", 2 * p + (side == "b"),
                              r["instruction"], r["input"], r["output"])
            rec.update(pair=p, side=side)
            out_rows.append(rec)
        out_pairs.append({"pair": p, "kind": kind, "label": label, "family": family,
                          "stratum": stratum(E.cleaned_len(a)), "a": ia, "b": ib})
        base_ids.update(r["id"] for r in base if "id" in r)

    base_ids: set = set()
    for kind in kinds:
        fn = kinds_fn[kind]
        n_pos = 0
        for k in fresh():
            if n_pos >= per_kind:
                break
            b = fn(rows[k], rng)
            if b is None:
                continue  # the edit does not apply to this row; another kind may use it
            used.add(k)
            add_pair(kind, True, "edit", rows[k], b, [rows[k]])
            n_pos += 1
        # negatives: families in proportion, the edit applied to one side when it applies
        quota = {f: round(FAMILY_SHARE[f] * n_pos) for f in FAMILIES}
        quota["distinct"] += n_pos - sum(quota.values())
        for fam in FAMILIES:
            for _ in range(quota[fam]):
                got, pr = fam, family_fn[fam]()
                if pr is None:  # family used up: a distinct pair instead
                    got, pr = "distinct", distinct_pair()
                if pr is None:
                    break
                x, y = pr[:2]
                got = pr[2] if len(pr) > 2 else got
                y2 = fn(y, rng) or y
                add_pair(kind, False, got, x, y2, [x, y])
        if verbose:
            print(f"  {kind}: {n_pos} positives, {sum(p['kind'] == kind and not p['label'] for p in out_pairs)} negatives")
    df = records_frame([{k: v for k, v in r.items() if k not in ("pair", "side")} for r in out_rows])
    df["pair"] = [r["pair"] for r in out_rows]
    df["side"] = [r["side"] for r in out_rows]
    return Benchmark(df, pd.DataFrame(out_pairs), base_ids)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def predict_from_labels(pairs: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    return labels[pairs["a"].to_numpy()] == labels[pairs["b"].to_numpy()]


def predict_from_kept(pairs: pd.DataFrame, kept: np.ndarray) -> np.ndarray:
    kept = np.asarray(kept, dtype=bool)
    return ~(kept[pairs["a"].to_numpy()] & kept[pairs["b"].to_numpy()])


def prf(label: np.ndarray, pred: np.ndarray) -> dict:
    tp = int((label & pred).sum())
    fp = int((~label & pred).sum())
    fn = int((label & ~pred).sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"pos": int(label.sum()), "neg": int((~label).sum()), "tp": tp, "fp": fp, "fn": fn,
            "precision": p, "recall": r, "f1": f}


def score(pairs: pd.DataFrame, pred: np.ndarray, by: str = "kind") -> pd.DataFrame:
    """P/R/F1 per value of ``by`` (kind, stratum, family) and overall (last row, ``all``)."""
    label = pairs["label"].to_numpy(dtype=bool)
    pred = np.asarray(pred, dtype=bool)
    out = []
    keys = list(dict.fromkeys(pairs[by]))
    for k in keys:
        m = (pairs[by] == k).to_numpy()
        out.append({by: k, **prf(label[m], pred[m])})
    out.append({by: "all", **prf(label, pred)})
    return pd.DataFrame(out)


def fmt_table(df: pd.DataFrame, first: str) -> str:
    lines = [f"{first:<18}{'pos':>6}{'neg':>6}{'TP':>6}{'FP':>6}{'FN':>6}{'P':>8}{'R':>8}{'F1':>8}"]
    for r in df.to_dict("records"):
        lines.append(f"{str(r[first]):<18}{r['pos']:>6}{r['neg']:>6}{r['tp']:>6}{r['fp']:>6}{r['fn']:>6}"
                     f"{r['precision']:>8.3f}{r['recall']:>8.3f}{r['f1']:>8.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--per-kind", type=int, default=300)
    a = ap.parse_args()
    from bench_dedupe import load_alpaca_rows

    rows = load_alpaca_rows(Path(a.mirror))
    t = time.perf_counter()
    bm = build_benchmark(rows, a.per_kind, verbose=True)
    print(f"built in {time.perf_counter() - t:.1f}s: {len(bm.pairs)} pairs, {len(bm.rows)} rows")
    print(bm.pairs.groupby(["kind", "label"]).size())
    print(bm.pairs.groupby(["family"]).size())
    print(bm.pairs.groupby(["stratum", "label"]).size())
