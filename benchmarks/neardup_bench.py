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

from curate.minhash.cluster import _components  # noqa: E402
from curate.minhash import (  # noqa: E402
    clean_text,
    minhash_signatures,
    near_duplicate_clusters,
    near_duplicate_pairs,
    row_texts,
)
from curate.records import make_record, records_frame  # noqa: E402

import edits as E  # noqa: E402
from procmem import proc_mib  # noqa: E402

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


# ---------------------------------------------------------------------------------------------
# Shingling compared by exact Jaccard (no MinHash noise): which unit separates the labels best
# ---------------------------------------------------------------------------------------------


def shingle_schemes(texts: Sequence[str]) -> dict[str, list[set]]:
    """Shingle sets of every text under each scheme compared (cleaning as curate.minhash.clean_text)."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    import unicodedata

    def fold_no_t2s(ch: str) -> str | None:  # curate.minhash.fold_char without the t2s step
        c = unicodedata.normalize("NFKC", ch)
        c = ch if len(c) != 1 else c
        c = c.lower() if len(c.lower()) == 1 else c
        return None if unicodedata.category(c)[0] in "PZC" else c

    table = {ord(c): fold_no_t2s(c) for c in set("".join(texts))}
    plain = [t.translate(table) for t in texts]
    clean = [clean_text(t) for t in texts]

    def grams(c: str, n: int, short_whole: bool = True) -> set:
        if len(c) < n:
            return {c} if c and short_whole else set()
        return {c[i:i + n] for i in range(len(c) - n + 1)}

    words = [jieba.lcut(c) for c in clean]
    out: dict[str, list[set]] = {}
    for n in (2, 3, 4, 5, 6):
        out[f"char {n}-grams"] = [grams(c, n) for c in clean]
    for n in (3, 5):
        out[f"char {n}-grams, no t2s fold"] = [grams(c, n) for c in plain]
    out["char 5-grams, short → empty"] = [grams(c, 5, False) for c in clean]
    out["raw char 5-grams (Data-Juicer)"] = [grams(t.lower(), 5, False) for t in texts]
    out["jieba words"] = [set(w) for w in words]
    out["jieba word 2-grams"] = [set(zip(w, w[1:])) if len(w) > 1 else {tuple(w)} for w in words]
    return out


def exact_jaccard(pairs: pd.DataFrame, sets: list[set]) -> np.ndarray:
    out = np.empty(len(pairs))
    for k, (i, j) in enumerate(zip(pairs["a"].to_numpy(), pairs["b"].to_numpy())):
        u = sets[i] | sets[j]
        # two empty sets: an empty signature each, which MinHash LSH puts in one bucket
        out[k] = len(sets[i] & sets[j]) / len(u) if u else 1.0
    return out


def shingling_table(bm: Benchmark, thresholds: Sequence[float] = tuple(np.round(np.arange(0.3, 0.96, 0.05), 2))) -> str:
    texts = bm.texts()
    label = bm.pairs["label"].to_numpy(bool)
    strata = {s: (bm.pairs["stratum"] == s).to_numpy() for s in ("short", "medium", "long")}
    tshort = (bm.pairs["family"] == "template_short").to_numpy()
    lines = [f"{'shingles (exact Jaccard)':<32}{'F1@0.55':>8}{'best F1':>8}{'at t':>6}"
             f"{'short':>7}{'medium':>7}{'long':>7}{'tpl-FP':>8}"]
    for name, sets in shingle_schemes(texts).items():
        jac = exact_jaccard(bm.pairs, sets)
        f1s = [prf(label, jac >= t)["f1"] for t in thresholds]
        k = int(np.argmax(f1s))
        t = thresholds[k]
        st = [prf(label[m], (jac >= t)[m])["f1"] for m in strata.values()]
        fp = int((jac[tshort] >= t).sum())
        lines.append(f"{name:<32}{prf(label, jac >= 0.55)['f1']:>8.3f}{f1s[k]:>8.3f}{t:>6.2f}"
                     + "".join(f"{x:>7.3f}" for x in st) + f"{fp:>5}/{int(tshort.sum())}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The MinHash-LSH operator over a sweep of its parameters
# ---------------------------------------------------------------------------------------------


def kept_from_labels(labels: np.ndarray) -> np.ndarray:
    return np.asarray(labels) == np.arange(len(labels))


def sweep_table(bm: Benchmark, ngrams=(2, 3, 4, 5), thresholds=(0.45, 0.5, 0.55, 0.6, 0.65, 0.7),
                num_perms=(128,), clusterings=("leader",)) -> str:
    from curate.duplicates import priority_rank
    from curate.minhash import band_params

    texts = bm.texts()
    rank = priority_rank(bm.rows)
    label = bm.pairs["label"].to_numpy(bool)
    tshort = (bm.pairs["family"] == "template_short").to_numpy()
    lines = [f"{'ngram':>5}{'perm':>5}{'clustering':>11}{'t':>6}{'(b, r)':>9}{'P':>7}{'R':>7}{'F1':>7}{'tpl-FP':>8}"]
    for num_perm in num_perms:
        for n in ngrams:
            sig = minhash_signatures(texts, ngram=n, num_perm=num_perm, progress=False)
            for t in thresholds:
                for cl in clusterings:
                    pred = predict_from_kept(bm.pairs, kept_from_labels(
                        near_duplicate_clusters(sig, t, rank=rank, clustering=cl)))
                    r = prf(label, pred)
                    lines.append(f"{n:>5}{num_perm:>5}{cl:>11}{t:>6.2f}{str(band_params(t, num_perm)):>9}"
                                 f"{r['precision']:>7.3f}{r['recall']:>7.3f}{r['f1']:>7.3f}"
                                 f"{int(pred[tshort].sum()):>5}/{int(tshort.sum())}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Tools side by side: each in a fresh process on the same rows (benchmark rows + mirror haystack)
# ---------------------------------------------------------------------------------------------

TOOLS = ["tiger", "tiger_5gram_0.7_components", "datasketch_update", "datasketch_bulk", "dj_normal", "dj_turbo"]


def _union_find_kept(n: int, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the first row of a cluster is kept
    return np.array([find(k) == k for k in range(n)])


def _datasketch(texts: list[str], ngram: int, threshold: float, num_perm: int, bulk: bool) -> np.ndarray:
    """The usual datasketch recipe: a MinHash per document, MinHashLSH insert + query, the
    candidates checked with MinHash.jaccard, union-find; shingles as this project's."""
    import xxhash
    from datasketch import MinHash, MinHashLSH

    from curate.minhash import shingles

    sh = [[x.encode("utf-8") for x in set(shingles(t, ngram))] for t in texts]
    if bulk:  # MinHash.bulk with a fast 32-bit hash, LSH filled in an insertion session
        mhs = MinHash.bulk(sh, num_perm=num_perm, seed=1, hashfunc=xxhash.xxh32_intdigest)
    else:  # naive: update per shingle with the default SHA-1 hash
        mhs = []
        for s in sh:
            m = MinHash(num_perm=num_perm, seed=1)
            for x in s:
                m.update(x)
            mhs.append(m)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    ok = [k for k in range(len(texts)) if sh[k]]
    if bulk:
        with lsh.insertion_session() as sess:
            for k in ok:
                sess.insert(k, mhs[k])
    else:
        for k in ok:
            lsh.insert(k, mhs[k])
    pairs = []
    for k in ok:
        for o in lsh.query(mhs[k]):
            if o > k and mhs[k].jaccard(mhs[o]) >= threshold:
                pairs.append((k, o))
    return _union_find_kept(len(texts), pairs)


def run_tool_child(tool: str, rows_path: str, out_path: str) -> None:
    """Measure one tool in this (fresh) process; write kept positions, time and memory as JSON."""
    from curate.ops.document_minhash_deduplicator import DocumentMinhashDeduplicator

    df = pd.read_parquet(rows_path)
    texts = row_texts(df, FIELDS) if tool.startswith("datasketch") else None
    rss0 = proc_mib("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    if tool == "tiger":
        res = DocumentMinhashDeduplicator()(df)
        kept = df["id"].isin(set(res.kept["id"])).to_numpy()
    elif tool == "tiger_5gram_0.7_components":
        res = DocumentMinhashDeduplicator(ngram=5, threshold=0.7, clustering="components")(df)
        kept = df["id"].isin(set(res.kept["id"])).to_numpy()
    elif tool in ("datasketch_update", "datasketch_bulk"):
        from curate.minhash import DEFAULT_NGRAM, DEFAULT_THRESHOLD

        kept = _datasketch(texts, DEFAULT_NGRAM, DEFAULT_THRESHOLD, 128, bulk=tool == "datasketch_bulk")
    else:
        raise SystemExit(f"unknown tool {tool}")
    sec, cpu = time.perf_counter() - t, time.process_time() - c
    json.dump({"kept": np.flatnonzero(kept).tolist(), "seconds": sec, "cpu": cpu, "rss_loaded_mib": rss0,
               "rss_peak_mib": proc_mib("VmHWM")}, open(out_path, "w"))


def tools_table(bm: Benchmark, haystack: pd.DataFrame, tools: Sequence[str], dj_python: str | None,
                workdir: Path) -> str:
    import subprocess

    from curate.minhash import DEFAULT_NGRAM, DEFAULT_THRESHOLD

    workdir.mkdir(parents=True, exist_ok=True)
    rows = pd.concat([bm.rows.drop(columns=["pair", "side"]), haystack], ignore_index=True)
    rows_path = workdir / "rows.parquet"
    rows.to_parquet(rows_path)
    with open(workdir / "texts.jsonl", "w", encoding="utf-8") as f:
        for t in row_texts(rows, FIELDS):
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    label = bm.pairs["label"].to_numpy(bool)
    tshort = (bm.pairs["family"] == "template_short").to_numpy()
    short = (bm.pairs["stratum"] == "short").to_numpy()
    lines = [f"same {len(rows):,} rows for every tool: {len(bm.rows):,} benchmark rows + {len(haystack):,} other "
             f"mirror rows; each tool in a fresh process; CPU s counts all its threads/processes; peak = the "
             f"process's high-water RSS (+ over input: above its RSS once the rows were loaded)",
             f"{'tool':<30}{'wall s':>8}{'CPU s':>8}{'rows/s':>9}{'peak MiB':>9}{'(+ over input)':>15}"
             f"{'P':>7}{'R':>7}{'F1':>7}{'F1 short':>9}{'tpl-FP':>8}"]
    for tool in tools:
        out = workdir / f"{tool}.json"
        if tool.startswith("dj_"):
            if not dj_python or not Path(dj_python).exists():
                lines.append(f"{tool:<30}  skipped: no Data-Juicer environment (--dj-python)")
                continue
            extra = ["--turbo", "--num-proc", "2"] if tool == "dj_turbo" else []
            cmd = [dj_python, str(HERE / "dj_runner.py"), str(workdir / "texts.jsonl"), str(out),
                   "--window", str(DEFAULT_NGRAM), "--threshold", str(DEFAULT_THRESHOLD), "--num-perm", "128", *extra]
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--tool", tool, "--rows", str(rows_path),
                   "--out", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            lines.append(f"{tool:<30}  failed: {(r.stderr or r.stdout)[-300:]}")
            continue
        got = json.load(open(out))
        kept = np.zeros(len(rows), dtype=bool)
        kept[got["kept"]] = True
        pred = predict_from_kept(bm.pairs, kept)
        m = prf(label, pred)
        fs = prf(label[short], pred[short])["f1"]
        lines.append(f"{tool:<30}{got['seconds']:>8.1f}{got['cpu']:>8.1f}{len(rows) / got['seconds']:>9,.0f}"
                     f"{got['rss_peak_mib']:>9,.0f}{got['rss_peak_mib'] - got['rss_loaded_mib']:>15,.0f}"
                     f"{m['precision']:>7.3f}{m['recall']:>7.3f}{m['f1']:>7.3f}{fs:>9.3f}"
                     f"{int(pred[tshort].sum()):>5}/{int(tshort.sum())}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default=str(ROOT.parent / "shared" / "corpora"))
    ap.add_argument("--per-kind", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--parts", default="quality,shingles,sweep,tools")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--dj-python", default="/tmp/djvenv/bin/python")
    ap.add_argument("--workdir", default="/tmp/tiger-neardup")
    # internal: run one tool in this process
    ap.add_argument("--tool")
    ap.add_argument("--rows")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.tool:
        run_tool_child(a.tool, a.rows, a.out)
        return
    import platform

    from bench_dedupe import load_alpaca_rows

    from curate.ops.document_minhash_deduplicator import DocumentMinhashDeduplicator

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    rows = load_alpaca_rows(Path(a.mirror))
    t = time.perf_counter()
    bm = build_benchmark(rows, a.per_kind, a.seed)
    print(f"benchmark: {len(bm.pairs):,} labelled pairs ({int(bm.pairs['label'].sum()):,} positive), "
          f"{len(bm.rows):,} rows, from {len(rows):,} mirror rows, built in {time.perf_counter() - t:.0f}s")
    print("negatives by family:", bm.pairs[~bm.pairs["label"]].groupby("family").size().to_dict())
    parts = a.parts.split(",")
    if "quality" in parts:
        op = DocumentMinhashDeduplicator()
        res = op(bm.rows)
        pred = predict_from_kept(bm.pairs, bm.rows["id"].isin(set(res.kept["id"])).to_numpy())
        print(f"\n== quality at the defaults (ngram={op.ngram}, num_perm={op.num_perm}, threshold={op.threshold}, "
              f"b={op.bands}, r={op.rows}, {op.clustering} clustering)")
        for by in ("kind", "family", "stratum"):
            print(fmt_table(score(bm.pairs, pred, by), by) + "\n")
    if "sweep" in parts:
        print("== sweep (MinHash LSH operator; tpl-FP = short-fill template pairs merged)")
        print(sweep_table(bm))
        print(sweep_table(bm, ngrams=(3,), thresholds=(0.5, 0.55, 0.6), num_perms=(64, 256)).split("\n", 1)[1])
        print(sweep_table(bm, ngrams=(3, 5), thresholds=(0.55, 0.7), clusterings=("components",)).split("\n", 1)[1])
    if "shingles" in parts:
        print("\n== shingling (exact Jaccard of the shingle sets; best F1 over t = 0.30 … 0.95; F1 by stratum at that t)")
        print(shingling_table(bm))
    if "tools" in parts:
        haystack = records_frame([r for r in rows if r["id"] not in bm.base_ids])
        print("\n== tools side by side")
        print(tools_table(bm, haystack, a.tools.split(","), a.dj_python, Path(a.workdir)))


if __name__ == "__main__":
    main()
