"""Diversity figures of a set of records: how evenly it covers task types and clusters, and how
varied its wording is.

Entropy is in **bits** (log base 2): a set spread evenly over 4 types has H = 2. The normalised
entropy H / log2(K) is in [0, 1] whatever the base (1 = perfectly even over K categories).
Everything returned is plain Python (int, float, str, list, dict, None) so it goes straight to JSON.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from .embed import code_points, packed_ngrams
from .tasktype import TASK_TYPES

# The Vendi score is computed on a seeded sample of at most this many rows (see embedding_metrics).
VENDI_SAMPLE = 2000


def _counts(counts: Mapping[Any, int] | Iterable[int]) -> list[int]:
    values = counts.values() if isinstance(counts, Mapping) else counts
    out = [int(v) for v in values]
    if any(v < 0 for v in out):
        raise ValueError(f"entropy: negative count in {out}")
    return [v for v in out if v > 0]


def entropy(counts: Mapping[Any, int] | Iterable[int]) -> float:
    """Shannon entropy in bits of a distribution given by counts (a dict or a list of ints).

    Zero counts are ignored; no counts at all gives 0.0.
    """
    values = _counts(counts)
    total = sum(values)
    if total == 0:
        return 0.0
    h = -sum((v / total) * math.log2(v / total) for v in values)
    return max(0.0, h)  # -0.0 and rounding noise below zero read as 0


def normalized_entropy(counts: Mapping[Any, int] | Iterable[int], k: int | None = None) -> float:
    """H / log2(K): 1.0 when the counts are spread evenly over K categories.

    ``k`` is the number of possible categories (e.g. 11 task types); by default the number of
    categories with a non-zero count. With K <= 1 the result is 0.0 (one category is no spread).
    """
    values = _counts(counts)
    k = len(values) if k is None else int(k)
    if k < len(values):
        raise ValueError(f"normalized_entropy: k={k} is less than the {len(values)} categories present")
    if k <= 1:
        return 0.0
    return entropy(values) / math.log2(k)


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n over characters: distinct character n-grams / all character n-grams.

    n-grams are taken inside each text (never across two texts); a text shorter than n adds none.
    Characters are counted as they are (spaces and punctuation included). 0.0 when there are no
    n-grams at all.
    """
    return distinct_ns(texts, (n,))[n]


# Texts are handled a block of about this many characters at a time (bounds the temporary arrays).
_DISTINCT_BLOCK_CHARS = 8_000_000


def distinct_ns(texts: Iterable[str], ns: Iterable[int] = (1, 2, 3)) -> dict[int, float]:
    """``distinct_n`` for several n in one pass, vectorised: the texts become one array of code
    points, each n-gram (n <= 3) one integer of 21 bits a character (exact: code points are < 2**21),
    and the distinct ones are counted with a hash table, a block of texts at a time. Larger n fall
    back to Python sets."""
    ns = [int(n) for n in ns]
    for n in ns:
        if n < 1:
            raise ValueError(f"distinct_n: n must be >= 1, got {n}")
    texts = [t or "" for t in texts]
    if any(n > 3 for n in ns):
        out = {}
        for n in ns:
            seen: set[str] = set()
            total = 0
            for t in texts:
                m = len(t) - n + 1
                if m > 0:
                    total += m
                    seen.update(t[i:i + n] for i in range(m))
            out[n] = len(seen) / total if total else 0.0
        return out
    counts = text_counts(texts, ns)
    return {n: _distinct(counts, n) for n in ns}


def _distinct(counts: dict[str, Any], n: int) -> float:
    return len(counts["uniq"][n]) / counts["totals"][n] if counts["totals"][n] else 0.0


def text_counts(texts: list[str], ns: Iterable[int] = (1, 2, 3)) -> dict[str, Any]:
    """What the wording figures are made of, in a form that adds up over parts of the rows
    (:func:`merge_text_counts`): rows, characters, and per n ≤ 3 the n-gram count and the distinct
    n-gram codes (see :func:`distinct_ns`)."""
    ns = [int(n) for n in ns]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    uniq: dict[int, list[np.ndarray]] = {n: [] for n in ns}
    totals = {n: 0 for n in ns}
    ends = np.cumsum(lengths)
    a = 0
    while a < len(texts):
        # a block of whole texts of about _DISTINCT_BLOCK_CHARS characters (at least one text)
        b = max(a + 1, int(np.searchsorted(ends, (ends[a - 1] if a else 0) + _DISTINCT_BLOCK_CHARS, side="right")))
        for n, _, code in packed_ngrams(code_points("".join(texts[a:b])), lengths[a:b], ns):
            totals[n] += len(code)
            uniq[n].append(pd.unique(code))
        a = b
    return {"rows": len(texts), "chars": int(lengths.sum()), "totals": totals,
            "uniq": {n: pd.unique(np.concatenate(u)) if u else np.zeros(0, dtype=np.uint64) for n, u in uniq.items()}}


def merge_text_counts(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, Any]:
    """The :func:`text_counts` of two parts' rows together (``a`` None: ``b``)."""
    if a is None:
        return b
    return {"rows": a["rows"] + b["rows"], "chars": a["chars"] + b["chars"],
            "totals": {n: a["totals"][n] + b["totals"][n] for n in a["totals"]},
            "uniq": {n: pd.unique(np.concatenate([a["uniq"][n], b["uniq"][n]])) for n in a["uniq"]}}


def text_figures(counts: dict[str, Any]) -> dict[str, Any]:
    """``TEXT_FIGURES`` (distinct-1/2/3, mean instruction characters) from :func:`text_counts`: what
    ``diversity_metrics`` takes as ``known``, with the ``rows`` they cover."""
    rows, out = counts["rows"], {"rows": counts["rows"]}
    for n in (1, 2, 3):
        out[f"distinct_{n}"] = _distinct(counts, n)
    out["mean_instruction_chars"] = counts["chars"] / rows if rows else 0.0
    return out


def _label_counts(series: pd.Series) -> dict[str, int]:
    vc = series.astype(str).value_counts(sort=False)  # a hash count, not a Python loop over the rows
    return {str(k): int(v) for k, v in sorted(vc.items())}


# The columns diversity_metrics reads.
METRIC_INPUTS = ("task_type", "cluster", "instruction", "novelty")


# Figures of the instructions' wording: the costly ones, which ``known`` can supply.
TEXT_FIGURES = ("distinct_1", "distinct_2", "distinct_3", "mean_instruction_chars")


def diversity_metrics(df: pd.DataFrame, n_clusters: int | None = None, embeddings: np.ndarray | None = None,
                      vendi_sample: int = VENDI_SAMPLE, seed: int = 0,
                      known: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Diversity figures of ``df``.

    Keys: ``rows``; ``task_type_entropy`` (bits), ``task_type_entropy_norm`` (over the 11 types of
    ``TASK_TYPES``), ``task_type_coverage`` (types present / 11); ``cluster_entropy``,
    ``cluster_entropy_norm`` (over ``n_clusters`` when given — pass the clustering's k to compare
    subsets fairly — else over the clusters present), ``clusters_present``; ``distinct_1/2/3`` of
    the instructions (characters); ``mean_instruction_chars``. Figures whose column is missing
    (``task_type``, ``cluster``) are None. With ``embeddings`` (unit rows aligned with ``df``, e.g.
    from ``curate.embed``): ``vendi``, ``vendi_rows`` and ``mean_cosine_distance`` on a seeded sample
    of at most ``vendi_sample`` rows (see ``embedding_metrics``); ``embeddings`` may also hold only
    the rows of that sample (``sample_rows(len(df), vendi_sample, seed)``), so a caller with
    millions of rows embeds 2,000 of them. With a ``novelty`` column: ``mean_novelty``.
    ``known``: figures of these same rows computed before (the diversity stage's stats.json); its
    ``TEXT_FIGURES`` are used instead of being computed again when its ``rows`` equals ``len(df)``.
    """
    rows = int(len(df))
    out: dict[str, Any] = {"rows": rows}
    if "task_type" in df.columns:
        tc = _label_counts(df["task_type"])
        unknown = sorted(set(tc) - set(TASK_TYPES))
        if unknown:
            raise ValueError(f"diversity_metrics: task_type values not in TASK_TYPES: {unknown}")
        out["task_type_entropy"] = entropy(tc)
        out["task_type_entropy_norm"] = normalized_entropy(tc, k=len(TASK_TYPES))
        out["task_type_coverage"] = len(tc) / len(TASK_TYPES)
    else:
        out.update(task_type_entropy=None, task_type_entropy_norm=None, task_type_coverage=None)
    if "cluster" in df.columns:
        cc = _label_counts(df["cluster"])
        k = max(int(n_clusters), len(cc)) if n_clusters else None
        out["cluster_entropy"] = entropy(cc)
        out["cluster_entropy_norm"] = normalized_entropy(cc, k=k)
        out["clusters_present"] = len(cc)
    else:
        out.update(cluster_entropy=None, cluster_entropy_norm=None, clusters_present=None)
    if known is not None and known.get("rows") == rows and all(k in known for k in TEXT_FIGURES):
        out.update({k: known[k] for k in TEXT_FIGURES})
    else:
        instructions = df["instruction"].astype(str).tolist() if "instruction" in df.columns else []
        for n, v in distinct_ns(instructions, (1, 2, 3)).items():
            out[f"distinct_{n}"] = v
        out["mean_instruction_chars"] = (sum(len(t) for t in instructions) / rows) if rows else 0.0
    if embeddings is not None:
        sampled = len(sample_rows(rows, vendi_sample, seed))
        if len(embeddings) not in (rows, sampled):
            raise ValueError(f"diversity_metrics: {len(embeddings)} embeddings for {rows} rows "
                             f"(or their sample of {sampled})")
        out.update(embedding_metrics(embeddings, vendi_sample, seed))
    if "novelty" in df.columns:
        out["mean_novelty"] = float(df["novelty"].astype(float).mean()) if rows else 0.0
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def diversity_by(df: pd.DataFrame, column: str = "source", n_clusters: int | None = None,
                 embeddings: np.ndarray | None = None, known_by: Mapping[str, Any] | None = None,
                 **kw: Any) -> dict[str, dict[str, Any]]:
    """``diversity_metrics`` of each group of ``df[column]``, keyed by the group (as str, sorted);
    ``embeddings`` (aligned with ``df``) are split along with the rows; ``known_by``: each group's
    ``known`` figures."""
    if column not in df.columns:
        raise KeyError(f"diversity_by: no column {column!r} (columns: {', '.join(map(str, df.columns))})")
    keys = df[column].astype(str)
    # only the columns the figures read are split, not the whole frame once more (output, extra…)
    slim = df[[c for c in METRIC_INPUTS if c in df.columns]]
    out = {}
    for g in sorted(keys.unique()):
        mask = (keys == g).to_numpy()
        if known_by is not None:
            kw["known"] = known_by.get(str(g))
        out[str(g)] = diversity_metrics(slim[mask], n_clusters=n_clusters,
                                        embeddings=None if embeddings is None else embeddings[mask], **kw)
    return out


# ---- embedding-based diversity ------------------------------------------------------------------


def vendi_score(x: np.ndarray) -> float:
    """Vendi score of unit-length row vectors ``x``: exp(Shannon entropy, nats, of the eigenvalues of
    K/n) with K = x xᵀ the cosine-similarity matrix (Friedman & Dieng, 2023).

    It reads as an effective number of distinct items: n identical rows give 1, n orthogonal rows
    give n. The non-zero eigenvalues of K/n = x xᵀ/n equal those of xᵀx/n (d × d), which is what is
    decomposed here: exact, and cheap for n ≫ d.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return 0.0
    norms = np.linalg.norm(x, axis=1)
    if not np.allclose(norms[norms > 0], 1.0, atol=1e-3):
        raise ValueError("vendi_score: rows must be unit vectors (cosine similarity)")
    from .threads import blas_threads

    with blas_threads():  # a fixed thread count: the same eigenvalues to the last digit
        gram = (x.T @ x) / n if x.shape[1] < n else (x @ x.T) / n
        lam = np.linalg.eigvalsh(gram)
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()  # zero rows (empty texts) would make the trace < 1
    return float(np.exp(-np.sum(lam * np.log(lam))))


def sample_rows(n: int, size: int = VENDI_SAMPLE, seed: int = 0) -> np.ndarray:
    """Sorted positions of a seeded sample of ``size`` of ``n`` rows (all when n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def embedding_metrics(x: np.ndarray, sample: int = VENDI_SAMPLE, seed: int = 0) -> dict[str, Any]:
    """Vendi score on a seeded sample of at most ``sample`` rows (so sets of different sizes are
    compared on equal footing: the Vendi score grows with n), and the mean pairwise cosine distance
    on the same sample."""
    from .threads import blas_threads

    idx = sample_rows(len(x), sample, seed)
    xs = np.asarray(x, dtype=np.float64)[idx]
    n = len(xs)
    if n < 2:
        return {"vendi": float(n), "vendi_rows": n, "mean_cosine_distance": 0.0}
    s = xs.sum(axis=0)
    with blas_threads():
        mean_sim = (float(s @ s) - n) / (n * (n - 1))  # mean of off-diagonal cosine similarities
    return {"vendi": round(vendi_score(xs), 4), "vendi_rows": int(n), "mean_cosine_distance": round(1.0 - mean_sim, 6)}


# ---- verb–noun structure (self-instruct, Wang et al. 2023, fig. 2) ------------------------------

# Helpers that are not the task's verb ("请帮我写…", "使用以下数据…", "进行分类").
_AUX_VERBS = {"请", "能", "能够", "可以", "会", "要", "需要", "应该", "让", "使", "使用", "用", "帮", "帮助", "帮我",
              "根据", "基于", "进行", "做", "想", "希望", "觉得", "认为", "叫", "来", "去", "试着", "尝试", "阅读", "看"}
# A copula or "have" before any content verb: a question about something ("什么是机器学习？",
# "有哪些方法…"), which self-instruct's parse also leaves without a verb–object pair.
_COPULA = {"是", "有", "为什么", "什么", "如何", "怎么", "怎样", "哪些", "哪个"}
# Instruction verbs jieba often tags as nouns or idioms ("总结/n", "翻译成/l", "分类/n").
_TASK_VERBS = {"总结", "分类", "翻译", "翻译成", "概括", "摘要", "比较", "分析", "改写", "重写", "创作", "列出", "列举",
               "生成", "描述", "识别", "提取", "设计", "解释", "计算", "回答", "判断", "编写", "撰写", "推荐", "排序", "评估",
               "修改", "纠正", "润色", "归类", "预测", "概述", "构建", "创建", "制定", "转换", "找出", "说出", "命名", "选择"}
_PUNCT = set("，。；！？,.;!?：:")


_NOT_OBJECTS = {"有关", "关于", "以下", "下列", "下面", "上述", "其中", "时候"}
# A clause that only sets up the input ("给定一个句子，将其翻译成英文"): the task verb is in the next one.
_SETUP = re.compile(r"^(给定|给出以下|根据|基于|鉴于|考虑到|假设|如果|按照|利用|使用以下|阅读以下|以下是)")
_CLAUSES = re.compile(r"[，。；！？,;!?\n]")


def _is_noun(word: str, flag: str) -> bool:
    if word in _NOT_OBJECTS:
        return False
    return (flag.startswith("n") and flag != "nx") or (flag in ("i", "l", "j") and len(word) >= 2)


@lru_cache(maxsize=1)
def _posseg():
    import logging

    import jieba
    import jieba.posseg as pseg

    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading lines would fill the run log
    return pseg


def _clause_verb_noun(clause: str) -> tuple[str, str] | None:
    pseg = _posseg()
    # HMM off: its Viterbi pass for unknown words is most of jieba's time, and instructions' verbs are
    # common words found in the dictionary anyway.
    words = [(w.word, w.flag) for w in pseg.lcut(clause, HMM=False) if w.word.strip()]
    for i, (w, f) in enumerate(words):
        if w in _COPULA:
            return None
        if w in _AUX_VERBS:
            continue
        if f.startswith("v") or w in _TASK_VERBS:
            for w2, f2 in words[i + 1:]:
                if _is_noun(w2, f2) and w2 not in _TASK_VERBS:
                    return w, w2
            return w, ""
    return None


@lru_cache(maxsize=200_000)
def root_verb_noun(text: str) -> tuple[str, str] | None:
    """The root verb of an instruction and the first noun after it, by jieba's POS tags.

    Self-instruct parses each instruction with a dependency parser and keeps the root verb and its
    direct object; jieba has no parser, so this approximates "root" by the first content verb of the
    first clause that does more than set up the input (a clause starting 给定/根据/基于… is skipped;
    helpers such as 请/使用/进行 are skipped; instruction verbs jieba tags as nouns, e.g. 总结/n, count
    as verbs) and "object" by the first noun after it in that clause (``""`` when none). ``None``
    when the clause asks about something with a copula first ("什么是…", "有哪些…") or has no verb.
    """
    clauses = [c.strip() for c in _CLAUSES.split(text.strip()[:160]) if c.strip()][:3]
    for j, clause in enumerate(clauses):
        if _SETUP.match(clause) and j + 1 < len(clauses):
            continue
        return _clause_verb_noun(clause[:60])
    return None


def verb_noun_pairs(texts: list[str]) -> list[tuple[str, str] | None]:
    from tqdm.auto import tqdm

    return [root_verb_noun(t) for t in tqdm(texts, desc="verb-noun", disable=None, leave=False, mininterval=1.0)]


def verb_noun_table(pairs: list[tuple[str, str] | None], top_verbs: int = 20, top_nouns: int = 4) -> dict[str, Any]:
    """The ``top_verbs`` most common root verbs, each with its ``top_nouns`` most common objects.

    Returns ``{"rows", "parsed", "verbs": [{"verb", "count", "nouns": [{"noun", "count"}]}],
    "distinct_verbs", "distinct_pairs", "verb_entropy"}`` (entropy in bits over all root verbs).
    Ties are broken alphabetically so the table is deterministic.
    """
    got = [p for p in pairs if p is not None]
    verbs = Counter(v for v, _ in got)
    ranked = sorted(verbs.items(), key=lambda kv: (-kv[1], kv[0]))[:top_verbs]
    by_verb: dict[str, Counter] = {}
    for v, n in got:
        if n:
            by_verb.setdefault(v, Counter())[n] += 1
    table = []
    for v, c in ranked:
        nouns = sorted(by_verb.get(v, Counter()).items(), key=lambda kv: (-kv[1], kv[0]))[:top_nouns]
        table.append({"verb": v, "count": int(c), "nouns": [{"noun": n, "count": int(k)} for n, k in nouns]})
    return {"rows": len(pairs), "parsed": len(got), "verbs": table, "distinct_verbs": len(verbs),
            "distinct_pairs": len(set(p for p in got if p[1])), "verb_entropy": round(entropy(verbs), 6)}
