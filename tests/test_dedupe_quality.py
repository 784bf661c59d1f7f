"""Near-duplicate quality pinned on a small labelled benchmark built from real mirror rows.

The full benchmark and its tables: benchmarks/neardup_bench.py. Here a smaller one (a part of the
mirror, 25 pairs per kind) checks that the defaults keep their quality, and that the benchmark
itself is built as documented.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import neardup_bench as nb  # noqa: E402
from bench_dedupe import load_alpaca_rows  # noqa: E402

from curate.ops.document_minhash_deduplicator import DocumentMinhashDeduplicator  # noqa: E402

FORMAT_KINDS = ("punct", "width", "trad", "whitespace")  # identical after cleaning: always caught


@pytest.fixture(scope="module")
def bench(mirror, tmp_path_factory) -> nb.Benchmark:
    # a third of the mirror: the translated Alpaca parts 0-19 (with their English originals, for the
    # translation templates), the hikari supplementary sets (arithmetic, same-instruction rows), BELLE
    part = tmp_path_factory.mktemp("mirror_part")
    supplementary = sorted(p.relative_to(mirror).as_posix() for p in (mirror / "alpaca_chinese/supplementary").glob("*.json"))
    for rel in [f"trans_chinese_alpaca/alpaca_chinese_part_{k}.json" for k in range(20)] + supplementary + \
               ["belle/dev1K.json"]:
        dst = part / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(mirror / rel)
    rows = load_alpaca_rows(part)
    assert len(rows) > 25_000
    return nb.build_benchmark(rows, per_kind=25, seed=1)


def _pred(bm: nb.Benchmark, op: DocumentMinhashDeduplicator) -> np.ndarray:
    res = op(bm.rows)
    return nb.predict_from_kept(bm.pairs, bm.rows["id"].isin(set(res.kept["id"])).to_numpy())


def test_benchmark_is_built_as_documented(bench):
    p, rows = bench.pairs, bench.rows
    assert set(p["kind"]) == set(nb.E.edit_kinds(nb.E.CharPool(["的"]), ["好。"]))
    counts = p.groupby(["kind", "label"]).size()
    assert (counts == 25).all(), counts[counts != 25]  # as many negatives as positives per kind
    # every row in exactly one pair: any deduplicator can run over all rows at once
    assert sorted(np.concatenate([p["a"], p["b"]])) == list(range(len(rows)))
    assert rows["id"].is_unique
    texts = bench.texts()
    assert all(texts[a] != texts[b] for a, b in zip(p["a"], p["b"]))  # an edit changed each positive
    assert {"distinct", "template", "template_short", "numbers"} <= set(p.loc[~p["label"], "family"])
    tpl = p[p["family"] == "template_short"].iloc[0]
    assert rows.iloc[tpl["a"]]["instruction"][:6] == rows.iloc[tpl["b"]]["instruction"][:6] \
        or rows.iloc[tpl["a"]]["input"] != rows.iloc[tpl["b"]]["input"]


def test_default_quality(bench):
    pred = _pred(bench, DocumentMinhashDeduplicator())
    by_kind = nb.score(bench.pairs, pred).set_index("kind")
    overall = by_kind.loc["all"]
    assert overall["f1"] >= 0.93, nb.fmt_table(by_kind.reset_index(), "kind")
    assert overall["precision"] >= 0.95
    for kind in FORMAT_KINDS:
        assert by_kind.loc[kind, "recall"] == 1.0, kind
    for kind in ("char_1pct", "char_3pct", "sentence_add", "sentence_del"):
        assert by_kind.loc[kind, "recall"] >= 0.9, kind
    fam = nb.score(bench.pairs, pred, "family").set_index("family")
    # distinct rows, template-sharing rows and other sums are never merged; of the rows that are
    # mostly a shared template with a 4-12 character fill, a few are (1 % on the full benchmark)
    for family in ("distinct", "template", "numbers"):
        assert fam.loc[family, "fp"] == 0, family
    assert fam.loc["template_short", "fp"] <= 0.1 * fam.loc["template_short", "neg"]


def test_defaults_beat_the_previous_ones(bench):
    new = nb.prf(bench.pairs["label"].to_numpy(bool), _pred(bench, DocumentMinhashDeduplicator()))
    old = nb.prf(bench.pairs["label"].to_numpy(bool),
                 _pred(bench, DocumentMinhashDeduplicator(ngram=5, threshold=0.7, clustering="components")))
    assert new["f1"] >= old["f1"] + 0.05 and new["recall"] > old["recall"]


def test_traditional_folding_in_shingles(bench):
    sets = nb.shingle_schemes(bench.texts())
    trad = (bench.pairs["kind"] == "trad") & bench.pairs["label"]
    folded = nb.exact_jaccard(bench.pairs[trad], sets["char 3-grams"])
    plain = nb.exact_jaccard(bench.pairs[trad], sets["char 3-grams, no t2s fold"])
    # s2t then t2s character by character gives back the text, but for the few characters OpenCC
    # maps one way only (着 → 著, and 著 stays)
    assert folded.mean() > 0.97 and folded.min() > 0.8
    assert plain.mean() < 0.6
