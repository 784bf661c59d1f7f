"""Entropy, distinct-n and the diversity summary: hand-computed cases and real rows."""
import json
import math

import pytest

from curate.diversity import distinct_n, diversity_by, diversity_metrics, entropy, normalized_entropy
from curate.records import make_record, records_frame
from curate.ops.task_type_tagger import TaskTypeTagger
from curate.tasktype import TASK_TYPES


def test_entropy_in_bits():
    assert entropy([1, 1]) == pytest.approx(1.0)
    assert entropy([5, 5, 5, 5]) == pytest.approx(2.0)
    assert entropy([2, 1, 1]) == pytest.approx(1.5)  # -(.5 log .5 + 2 * .25 log .25)
    assert entropy({"a": 7}) == 0.0
    assert entropy({"a": 3, "b": 0, "c": 3}) == pytest.approx(1.0)  # zeros ignored
    assert entropy([]) == 0.0
    with pytest.raises(ValueError):
        entropy([1, -1])


def test_normalized_entropy():
    assert normalized_entropy([1, 1, 1, 1]) == pytest.approx(1.0)
    assert normalized_entropy([1, 1, 1, 1], k=8) == pytest.approx(2 / 3)
    assert normalized_entropy([3, 1], k=2) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert normalized_entropy([9]) == 0.0
    with pytest.raises(ValueError):
        normalized_entropy([1, 1, 1], k=2)


def test_distinct_n_by_hand():
    assert distinct_n(["abab"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["abab"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["abab"], 3) == pytest.approx(1.0)  # aba, bab
    assert distinct_n(["ab", "ab"], 2) == pytest.approx(1 / 2)  # counted over the whole set
    assert distinct_n(["ab", "ba"], 3) == 0.0  # no text long enough
    assert distinct_n(["你好你好"], 2) == pytest.approx(2 / 3)  # characters, not bytes
    assert distinct_n(["xy", "yx"], 2) == pytest.approx(1.0)  # no n-gram across texts ("yy")
    with pytest.raises(ValueError):
        distinct_n(["a"], 0)


def _tiny():
    rows = [make_record("s1", "f", 0, "abab"), make_record("s1", "f", 1, "abab"),
            make_record("s2", "f", 2, "cd"), make_record("s2", "f", 3, "cdcd")]
    df = records_frame(rows)
    df["task_type"] = ["math", "math", "code", "rewrite"]
    df["cluster"] = [0, 0, 1, 2]
    return df


def test_diversity_metrics_by_hand():
    m = diversity_metrics(_tiny())
    assert m["rows"] == 4
    assert m["task_type_entropy"] == pytest.approx(1.5)
    assert m["task_type_entropy_norm"] == pytest.approx(1.5 / math.log2(11), abs=1e-6)
    assert m["task_type_coverage"] == pytest.approx(3 / 11, abs=1e-6)
    assert m["cluster_entropy"] == pytest.approx(1.5)
    assert m["cluster_entropy_norm"] == pytest.approx(1.5 / math.log2(3), abs=1e-6)  # clusters present
    assert m["clusters_present"] == 3
    # characters of abab, abab, cd, cdcd: a b a b a b a b c d c d c d -> {a, b, c, d} / 14
    assert m["distinct_1"] == pytest.approx(4 / 14, abs=1e-6)
    # bigrams: 3 + 3 + 1 + 3 = 10, distinct {ab, ba, cd, dc}
    assert m["distinct_2"] == pytest.approx(4 / 10, abs=1e-6)
    assert m["mean_instruction_chars"] == pytest.approx(14 / 4)
    # with the clustering's k the same spread reads as less even
    assert diversity_metrics(_tiny(), n_clusters=50)["cluster_entropy_norm"] == pytest.approx(1.5 / math.log2(50), abs=1e-6)


def test_missing_columns_and_plain_types():
    df = _tiny().drop(columns=["task_type", "cluster"])
    m = diversity_metrics(df)
    assert m["task_type_entropy"] is None and m["cluster_entropy"] is None
    json.dumps(m)
    assert all(type(v) in (int, float, type(None)) for v in m.values())
    bad = _tiny()
    bad.loc[0, "task_type"] = "poetry"
    with pytest.raises(ValueError, match="poetry"):
        diversity_metrics(bad)


def test_diversity_by_source_on_real_rows(mirror):
    rows = []
    data = json.loads((mirror / "trans_chinese_alpaca/alpaca_chinese_part_3.json").read_text(encoding="utf-8"))
    rows += [make_record("trans_chinese_alpaca", "alpaca_chinese_part_3.json", i, r["instruction"], r["input"], r["output"])
             for i, r in enumerate(data)]
    drills = json.loads((mirror / "alpaca_chinese/supplementary/整数加减法.json").read_text(encoding="utf-8"))
    rows += [make_record("alpaca_chinese", "supplementary/整数加减法.json", i, r["instruction"], r.get("input", ""), r["output"])
             for i, r in enumerate(drills)]
    df = TaskTypeTagger()(records_frame(rows)).kept
    by = diversity_by(df, "source")
    assert list(by) == ["alpaca_chinese", "trans_chinese_alpaca"]
    assert by["alpaca_chinese"]["rows"] == len(drills) and by["trans_chinese_alpaca"]["rows"] == len(data)
    # arithmetic drills: one task type, a handful of characters; translated Alpaca: many of both
    assert by["alpaca_chinese"]["task_type_entropy"] == 0.0
    assert by["trans_chinese_alpaca"]["task_type_entropy_norm"] > 0.7
    assert by["trans_chinese_alpaca"]["task_type_coverage"] >= 9 / len(TASK_TYPES)
    assert by["alpaca_chinese"]["distinct_1"] < 0.01 < by["trans_chinese_alpaca"]["distinct_1"]
    assert by["alpaca_chinese"]["distinct_2"] < by["trans_chinese_alpaca"]["distinct_2"]
    json.dumps(by, ensure_ascii=False)
    with pytest.raises(KeyError):
        diversity_by(df, "nope")


# ---- embedding-based figures, verb–noun, novelty -------------------------------------------------

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from curate.diversity import (embedding_metrics, root_verb_noun, vendi_score, verb_noun_pairs,  # noqa: E402
                              verb_noun_table)
from curate.embed import Embedder, embed, instruction_texts  # noqa: E402
from curate.novelty import novelty_scores  # noqa: E402
from curate.ops.novelty_tagger import NoveltyTagger  # noqa: E402


def test_vendi_by_hand():
    assert vendi_score(np.eye(7)) == pytest.approx(7.0)  # n orthogonal items: n distinct
    assert vendi_score(np.tile([[0.6, 0.8]], (9, 1))) == pytest.approx(1.0)  # n copies: one
    # two equal-sized groups of identical rows, orthogonal to each other: two
    two = np.vstack([np.tile([1.0, 0.0, 0.0], (5, 1)), np.tile([0.0, 1.0, 0.0], (5, 1))])
    assert vendi_score(two) == pytest.approx(2.0)
    # K/n eigenvalues by brute force on random unit vectors equal the d×d shortcut
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    lam = np.linalg.eigvalsh(x @ x.T / 30)
    lam = lam[lam > 1e-12]
    assert vendi_score(x) == pytest.approx(float(np.exp(-(lam * np.log(lam)).sum())), rel=1e-9)
    with pytest.raises(ValueError, match="unit"):
        vendi_score(np.ones((3, 2)))


def _alpaca_frame(mirror, rel, source="s"):
    data = json.loads((mirror / rel).read_text(encoding="utf-8"))
    return records_frame([make_record(source, rel, i, r.get("instruction") or "", r.get("input") or "", r.get("output") or "")
                          for i, r in enumerate(data)])


def test_vendi_ranks_real_sets(mirror):
    drills = _alpaca_frame(mirror, "alpaca_chinese/supplementary/整数加减法.json", "drills")
    alpaca = _alpaca_frame(mirror, "trans_chinese_alpaca/alpaca_chinese_part_5.json", "alpaca")
    both = pd.concat([drills, alpaca], ignore_index=True)
    x = Embedder(seed=0).fit_transform([f"{i} {x[:100]}".strip() for i, x in zip(both["instruction"], both["input"])])
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    d = embedding_metrics(x[: len(drills)])
    a = embedding_metrics(x[len(drills):])
    # "43+12=" drills differ only in their digits; translated Alpaca differs in everything (measured:
    # 38 against 72 of at most 128, the embedding's rank)
    assert d["vendi"] < 0.7 * a["vendi"] and a["vendi"] > 50
    assert d["mean_cosine_distance"] < a["mean_cosine_distance"]
    assert a["vendi_rows"] == min(2000, len(alpaca))
    # seeded sample: same figures twice, a different seed samples differently on a large set
    assert embedding_metrics(x, sample=300, seed=1) == embedding_metrics(x, sample=300, seed=1)
    assert embedding_metrics(x, sample=300, seed=1) != embedding_metrics(x, sample=300, seed=2)
    m = diversity_metrics(both, embeddings=x)
    assert m["vendi"] == embedding_metrics(x)["vendi"] and m["vendi_rows"] == min(2000, len(both))
    with pytest.raises(ValueError, match="embeddings"):
        diversity_metrics(both, embeddings=x[:10])


def test_root_verb_and_object_of_real_instructions(mirror):
    part = json.loads((mirror / "trans_chinese_alpaca/alpaca_chinese_part_0.json").read_text(encoding="utf-8"))
    by_ins = {r["instruction"]: r for r in part}
    assert root_verb_noun("给出保持健康的三个建议。") == ("给出", "建议")
    assert root_verb_noun("三原色是什么？") is None  # a question about something: no verb–object
    assert "给出保持健康的三个建议。" in by_ins and "三原色是什么？" in by_ins
    assert root_verb_noun("写一首关于秋天的诗") == ("写", "诗")
    assert root_verb_noun("给定一个句子，将其翻译成英文。")[0].startswith("翻译")  # the setup clause is skipped
    pairs = verb_noun_pairs([r["instruction"] for r in part])
    table = verb_noun_table(pairs, top_verbs=20, top_nouns=4)
    assert table["rows"] == len(part) and 0.5 * len(part) < table["parsed"] <= len(part)
    assert len(table["verbs"]) == 20 and all(len(v["nouns"]) <= 4 for v in table["verbs"])
    counts = [v["count"] for v in table["verbs"]]
    assert counts == sorted(counts, reverse=True)
    assert {"生成", "描述", "解释"} <= {v["verb"] for v in table["verbs"]}  # Alpaca's usual verbs
    assert table == verb_noun_table(pairs)  # deterministic
    json.dumps(table, ensure_ascii=False)


def test_novelty_scores_and_operator(mirror):
    df = _alpaca_frame(mirror, "trans_chinese_alpaca/alpaca_chinese_part_7.json", "trans_chinese_alpaca")
    # a row and its exact copy (a new id): both have a twin, so both are among the least novel
    twin = df.iloc[[3]].copy()
    twin["id"] = "copy-of-3"
    df2 = pd.concat([df, twin], ignore_index=True)
    res = NoveltyTagger(k=1, ref_size=5000)(df2)
    res.check(len(df2), "novelty_tagger")
    nov = res.kept["novelty"].to_numpy()
    assert list(res.kept["id"]) == list(df2["id"]) and len(res.dropped) == 0
    assert nov[3] == pytest.approx(0.0, abs=1e-4) and nov[-1] == pytest.approx(0.0, abs=1e-4)
    assert (nov >= 0).all() and np.median(nov) > 0.05
    json.dumps(res.stats, ensure_ascii=False)
    assert res.stats["examples"] and set(res.stats["params"]) == {"k", "ref_size", "dims", "seed"}
    # deterministic, and the reference sample path agrees with the all-rows path when it holds everything
    again = NoveltyTagger(k=1, ref_size=5000)(df2).kept["novelty"].to_numpy()
    assert np.array_equal(nov, again)
    x = embed(df2)
    assert np.allclose(novelty_scores(x, k=1, ref_size=10 ** 6), novelty_scores(x, k=1, ref_size=len(x)))
    with pytest.raises(ValueError):
        NoveltyTagger(k=0)


def test_blockwise_top_values_are_torch_topk_exactly(mirror):
    """The neighbour search's blockwise top-k gives torch.topk's own tensor (values and order), on
    real similarities with self matches masked, on planted ties, and on widths it must decline."""
    import torch

    from curate.novelty import TOP_BLOCK, _top_values, knn_mean_distance

    df = _alpaca_frame(mirror, "trans_chinese_alpaca/alpaca_chinese_part_7.json")
    x = embed(df)
    ref = x[: 20 * TOP_BLOCK]
    sims = torch.matmul(torch.from_numpy(x[:3000]), torch.from_numpy(ref).T.contiguous())
    sims[torch.arange(len(ref)), torch.arange(len(ref))] = -torch.inf  # the rows' own matches
    plain = lambda s, k: torch.topk(s, k, dim=1, sorted=False).values  # noqa: E731
    for k in (1, 5, 10, 20):
        assert torch.equal(_top_values(torch, sims, k), plain(sims, k))
    ties = torch.round(sims * 8) / 8  # few distinct values: many ties across blocks
    ties[:, 7 * TOP_BLOCK + 3] = 1.0
    ties[::2, TOP_BLOCK - 1] = 1.0
    for k in (1, 10):
        assert torch.equal(_top_values(torch, ties, k), plain(ties, k))
    for width in (20 * TOP_BLOCK - 1, 5 * TOP_BLOCK):  # not whole blocks / too few blocks: plain top-k
        assert torch.equal(_top_values(torch, sims[:, :width], 10), plain(sims[:, :width], 10))
    # the search against the numpy brute force (float tolerance: a different product kernel)
    got = knn_mean_distance(x[:500], ref, k=10, chunk=128)
    want = 1.0 - np.sort(x[:500] @ ref.T, axis=1)[:, -10:].mean(axis=1)
    assert np.allclose(got, want, atol=1e-5)


def test_novelty_operator_from_a_recipe():
    from curate.ops import build_op

    op = build_op("novelty_tagger", {"k": 5})
    assert op.k == 5 and op.name == "novelty_tagger"


# ---- scale: the vectorised versions give what the plain ones give -------------------------------


def test_distinct_ns_equals_python_sets_on_real_rows_and_edge_cases(mirror):
    import curate.diversity as dv

    def plain(texts, n):
        seen, total = set(), 0
        for t in texts:
            t = t or ""
            m = len(t) - n + 1
            if m > 0:
                total += m
                seen.update(t[i:i + n] for i in range(m))
        return len(seen) / total if total else 0.0

    real = [r["instruction"] + r["input"] for r in
            json.loads((mirror / "trans_chinese_alpaca/alpaca_chinese_part_2.json").read_text(encoding="utf-8"))]
    odd = ["", None, "a", "ab", "😀😀😀", "\ud83dx\ud83d", "\x00\x00\x00\x00", "ab\x00", "\x00ab"]
    for texts in (real, odd, real[:50] + odd):
        for block in (dv._DISTINCT_BLOCK_CHARS, 7, 1):  # blocks of whole texts, down to one a block
            old = dv._DISTINCT_BLOCK_CHARS
            dv._DISTINCT_BLOCK_CHARS = block
            try:
                got = dv.distinct_ns(texts, (1, 2, 3))
            finally:
                dv._DISTINCT_BLOCK_CHARS = old
            assert got == {n: plain(texts, n) for n in (1, 2, 3)}, (block, texts[:3])
    assert distinct_n(real, 4) == plain(real, 4)  # longer n-grams: the Python path


def test_char_wb_counts_equal_sklearn_bit_for_bit(mirror):
    from curate.embed import char_wb_counts, instruction_texts, tfidf_transform

    df = pd.concat([_alpaca_frame(mirror, "trans_chinese_alpaca/alpaca_chinese_part_5.json", "trans_chinese_alpaca"),
                    _alpaca_frame(mirror, "alpaca_chinese/supplementary/翻译问题.json", "alpaca_chinese")], ignore_index=True)
    # blank texts, every kind of whitespace str.split() splits on (and one it does not: U+200B),
    # lower-casing that changes a length (İ) or looks at the context (final sigma), a lone surrogate
    texts = instruction_texts(df) + ["", " ", "A  b\tC\u3000d\u00a0e", "İstanbul ǅ", "x\ud83dy", "\n\n", "a",
                                     "ΟΔΟΣ ΟΔΟΣ. Σ ΣΑΣ", "a\x1cb\x1dc\x1ed\x1ff\x85g\u2028h\u2029i\u202fj\u205fk\u1680l\u200bm",
                                     "  lead and trail  ", "\u3000\u3000", "中文 测试\u3000全角", "x" * 3000]
    emb = Embedder(fit_sample=3000, seed=1).fit(texts)
    want = emb._vec.transform(texts)
    want.sort_indices()
    got = char_wb_counts(emb._vec, texts, block=997)
    counts = super(type(emb._vec), emb._vec).transform(texts)
    counts.sort_indices()
    for a, b in ((got, counts), (tfidf_transform(emb._vec, texts), want)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
        assert np.array_equal(a.data, b.data)
    # a vocabulary of the hostile texts themselves (the one above, fitted on Chinese rows, lacks
    # their n-grams): final sigma, İ and the separators count as sklearn counts them
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    odd = texts[-12:]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), lowercase=True, dtype=np.float32).fit(odd)
    assert {"ς ", "σ", "i̇"} <= set(vec.vocabulary_)
    got, counts = char_wb_counts(vec, odd, block=5), CountVectorizer.transform(vec, odd)
    counts.sort_indices()
    assert np.array_equal(got.indptr, counts.indptr) and np.array_equal(got.indices, counts.indices)
    assert np.array_equal(got.data, counts.data) and got.data.dtype == counts.data.dtype
    # a block of texts without a single word (blank texts only): empty rows, as sklearn gives
    blank = ["", " ", "\n\t", "\u3000"]
    got = char_wb_counts(emb._vec, blank)
    assert got.shape == (4, len(emb._vec.vocabulary_)) and got.nnz == 0 == emb._vec.transform(blank).nnz
    # settings it does not reproduce are left to sklearn
    assert char_wb_counts(TfidfVectorizer(analyzer="char", ngram_range=(1, 2)).fit(texts), texts) is None


def test_embedding_rows_do_not_depend_on_the_other_rows(mirror):
    """Chunked transforms, a sample's rows and a single row all give a row the same bytes: what lets
    the report, deita and k-center embed only the rows they need."""
    df = _alpaca_frame(mirror, "trans_chinese_alpaca/alpaca_chinese_part_6.json", "trans_chinese_alpaca")
    texts = instruction_texts(df)
    emb = Embedder(fit_sample=2000, seed=3).fit(texts)
    whole = emb.transform(texts)
    assert np.array_equal(whole, emb.transform(texts, chunk=333))
    pick = [5, 17, len(texts) - 1]
    assert np.array_equal(whole[pick], emb.transform([texts[i] for i in pick]))
    # fitting on the seeded sample given directly is the same fit
    again = Embedder(fit_sample=2000, seed=3)
    again.fit([texts[i] for i in again.fit_positions(len(texts))], sampled=True)
    assert np.array_equal(whole, again.transform(texts))


def test_report_analysis_of_a_frame_equals_the_per_group_one(mirror, monkeypatch):
    """analyse_frame (the run report: label columns only, texts fetched for the sampled rows) gives
    exactly what analyse_groups gives from whole frames, and reuses figures it is given."""
    import curate.diversity as dv
    from curate.report import analyse_frame, analyse_groups
    from curate.ops.cluster_tagger import ClusterTagger

    df = pd.concat([_alpaca_frame(mirror, "trans_chinese_alpaca/alpaca_chinese_part_3.json", "alpaca"),
                    _alpaca_frame(mirror, "alpaca_chinese/supplementary/整数加减法.json", "drills")], ignore_index=True)
    df = TaskTypeTagger()(df).kept
    df = ClusterTagger(n_clusters=8, fit_sample=1500, seed=0)(df).kept
    df["novelty"] = novelty_scores(embed(df), k=5, ref_size=1000)
    groups = {str(k): g for k, g in df.groupby("source", sort=True)}
    want = analyse_groups(groups, seed=7, n_clusters=8, overall="all")
    # the same rows in the same (source-grouped) order, texts only through fetch
    rows = pd.concat(list(groups.values()), ignore_index=True)
    labels = rows[["source", "task_type", "cluster", "novelty"]].assign(_group=rows["source"].astype(str))
    asked = []

    def fetch(pos):
        asked.append(len(pos))
        return rows[["instruction", "input"]].iloc[pos].reset_index(drop=True)

    got = analyse_frame(labels, sorted(groups), seed=7, n_clusters=8, overall="all", fetch=fetch)
    for key in ("metrics", "verb_noun", "task_types", "clusters", "examples"):
        assert json.dumps(got[key], sort_keys=True, default=str) == json.dumps(want[key], sort_keys=True, default=str), key
    assert all(np.array_equal(got["novelty"][g], want["novelty"][g]) for g in want["novelty"])
    # known figures of the same rows are used, not recomputed: no distinct-n over whole groups
    known = {g: {**m} for g, m in got["metrics"].items()}
    calls = []
    monkeypatch.setattr(dv, "distinct_ns", lambda texts, ns=(1, 2, 3): calls.append(1) or {n: 0.0 for n in ns})
    again = analyse_frame(labels, sorted(groups), seed=7, n_clusters=8, overall="all", fetch=fetch, known=known)
    assert calls == [] and again["metrics"] == got["metrics"]


def test_fit_store_gives_back_the_same_fit_and_only_that_one(mirror, tmp_path):
    """Embedder.fit under fit_store writes its fit once and loads it for the same texts and parameters
    (same vectors, bit for bit); other texts, other parameters or a damaged file fit anew."""
    from curate.embed import fit_store

    texts = instruction_texts(_alpaca_frame(mirror, "trans_chinese_alpaca/alpaca_chinese_part_6.json", "s"))
    plain = Embedder(fit_sample=1500, seed=2).fit(texts).transform(texts[:300])
    with fit_store(tmp_path):
        first = Embedder(fit_sample=1500, seed=2).fit(texts)
        files = sorted(tmp_path.glob("embedder-*.pkl"))
        assert len(files) == 1
        mtime = files[0].stat().st_mtime_ns
        again = Embedder(fit_sample=1500, seed=2).fit(texts)
        assert files[0].stat().st_mtime_ns == mtime  # loaded, not rewritten
        Embedder(fit_sample=1500, seed=3).fit(texts)  # another sample
        Embedder(fit_sample=1500, seed=2, dims=32).fit(texts)  # other parameters
        assert len(list(tmp_path.glob("embedder-*.pkl"))) == 3
    for e in (first, again):
        assert np.array_equal(e.transform(texts[:300]), plain)
    files[0].write_bytes(b"not a pickle")
    with fit_store(tmp_path):
        mended = Embedder(fit_sample=1500, seed=2).fit(texts)
    assert np.array_equal(mended.transform(texts[:300]), plain)
    assert files[0].read_bytes() != b"not a pickle"
    with fit_store(tmp_path / "ro", write=False):
        Embedder(fit_sample=1500, seed=2).fit(texts)
    assert not (tmp_path / "ro").exists()


def test_wording_figures_add_up_over_parts_of_the_rows(mirror):
    """distinct-1/2/3 and mean characters counted part by part and merged (as the diversity stage
    does a shard at a time) equal the figures of all rows at once, on real instructions."""
    from curate.diversity import TEXT_FIGURES, distinct_ns, merge_text_counts, text_counts, text_figures

    rows = json.loads((mirror / "trans_chinese_alpaca" / "alpaca_chinese_part_0.json").read_text(encoding="utf-8"))
    texts = [r["instruction"] for r in rows[:5000]] + ["", "a", "同一句话", "同一句话"]
    whole = diversity_metrics(pd.DataFrame({"instruction": texts}))
    merged = None
    for a, b in ((0, 1), (1, 1), (1, 700), (700, 2400), (2400, len(texts))):  # an empty part too
        merged = merge_text_counts(merged, text_counts(texts[a:b]))
    figs = text_figures(merged)
    assert figs["rows"] == len(texts)
    assert {k: round(figs[k], 6) for k in TEXT_FIGURES} == {k: whole[k] for k in TEXT_FIGURES}
    assert distinct_ns(texts) == {n: figs[f"distinct_{n}"] for n in (1, 2, 3)}
    assert 0 < figs["distinct_3"] < 1
    # handed to diversity_metrics as known figures, with the instructions left out
    assert diversity_metrics(pd.DataFrame({"x": range(len(texts))}), known=figs) == whole
