"""Dedupe stage: exact and MinHash near-duplicate removal, on real rows of the offline mirror.

The mirror's JSON files are read directly here (the parse stage is tested on its own).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasketch import MinHash, MinHashLSH

from curate.duplicates import survivors
from curate.exact import exact_key
from curate.minhash import (
    DEFAULT_NGRAM,
    DEFAULT_THRESHOLD,
    NearDupIndex,
    band_params,
    clean_text,
    lsh_candidate_pairs,
    minhash_signatures,
    near_duplicate_clusters,
    shingle_hash,
    shingles,
)
from curate.ops import OPS
from curate.ops.document_exact_deduplicator import DocumentExactDeduplicator
from curate.ops.document_minhash_deduplicator import DocumentMinhashDeduplicator
from curate.records import make_record, records_frame

TRANS = "trans_chinese_alpaca"
HIKARI = "alpaca_chinese"


def _load(mirror: Path, source: str, rel: str) -> list[dict]:
    data = json.loads((mirror / source / rel).read_text(encoding="utf-8"))
    return [make_record(source, rel, k, str(r.get("instruction", "")), str(r.get("input", "")),
                        str(r.get("output", ""))) for k, r in enumerate(data)]


@pytest.fixture(scope="module")
def trans0(mirror) -> list[dict]:
    return _load(mirror, TRANS, "alpaca_chinese_part_0.json")


@pytest.fixture(scope="module")
def hikari0(mirror) -> list[dict]:
    # The same Alpaca prompts 0..3251 as trans_chinese_alpaca's first parts, translated again.
    return _load(mirror, HIKARI, "translated/alpaca_data-0-3252-中文-已完成.json")


def _text(r: dict) -> str:
    return "\n".join([r["instruction"], r["input"], r["output"]])


def _datasketch_sig(text: str, scheme: str = "affine32", ngram: int = DEFAULT_NGRAM) -> np.ndarray:
    m = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash, scheme=scheme)
    m.update_batch(shingles(text, ngram))
    return m.hashvalues


# --- shingles and signatures ---------------------------------------------------------------


def test_cleaning_and_shingles():
    # full-width → half-width, lower case, punctuation and all whitespace dropped, symbols kept
    assert clean_text("你好，世界！ ＨＥＬＬＯ\tWorld。\n1+1=2") == "你好世界helloworld1+1=2"
    assert shingles("你好，世界！", 3) == ["你好世", "好世界"]
    # shorter than n: the whole cleaned text is the single shingle; nothing left: no shingles
    assert shingles("谢谢！", 5) == ["谢谢"]
    assert shingles("，。！ \n", 5) == []
    assert shingle_hash("谢谢") != shingle_hash("再见")


def test_signatures_equal_datasketch_on_real_rows(trans0, hikari0):
    texts = [_text(r) for r in trans0[:200] + hikari0[:150]]
    texts += ["", "。。。", "好", "你好", "是的。", "ＡＢＣ", "a\u200bb", "𠀀𠀁𠀂𠀃𠀄𠀅", "坏\ud800字符串测试"]  # edge cases
    # small batches and chunks so documents straddle batch and chunk boundaries
    for batch_chars, chunk in ((2_000_000, 8192), (3000, 257)):
        sig = minhash_signatures(texts, ngram=DEFAULT_NGRAM, num_perm=128, seed=1, batch_chars=batch_chars, chunk=chunk)
        assert sig.dtype == np.uint32 and sig.shape == (len(texts), 128)
        for i, t in enumerate(texts):
            assert np.array_equal(sig[i], _datasketch_sig(t)), (i, t[:40])


def test_legacy_scheme_equals_datasketch_legacy(trans0):
    texts = [_text(r) for r in trans0[:60]] + ["好", ""]
    sig = minhash_signatures(texts, scheme="legacy", chunk=300)
    assert sig.dtype == np.uint64
    for i, t in enumerate(texts):
        assert np.array_equal(sig[i], _datasketch_sig(t, "legacy")), i


def test_lsh_bands_and_candidates_equal_datasketch(trans0, hikari0):
    b, r = band_params(0.7, 128)
    lsh = MinHashLSH(threshold=0.7, num_perm=128)
    assert (b, r) == (lsh.b, lsh.r)
    # The two translations of the same prompts give plenty of candidate pairs.
    texts = [_text(x) for x in trans0[:1000] + hikari0[:1000]]
    # plus 4 lightly edited copies of 20 long rows: LSH buckets of 3-5 members
    rng = random.Random(11)
    longs = [t for t in texts[:1000] if len(t) > 300][:20]
    texts += [_edit(t, rng, 2) for t in longs for _ in range(4)]
    sig = minhash_signatures(texts)
    keep = np.unique(sig, axis=0, return_index=True)[1]  # one row per distinct signature
    keep = np.sort(keep[~(sig[keep] == 0xFFFFFFFF).all(axis=1)])
    sub = sig[keep]
    for k in range(len(sub)):
        lsh.insert(k, MinHash(hashvalues=sub[k], seed=1, scheme="affine32"))
    expected = set()
    for k in range(len(sub)):
        for other in lsh.query(MinHash(hashvalues=sub[k], seed=1, scheme="affine32")):
            if other != k:
                expected.add((min(k, other), max(k, other)))
    i, j = lsh_candidate_pairs(sub, b, r, window=len(sub))
    assert len(expected) > 150
    assert set(zip(i.tolist(), j.tolist())) == expected
    # a small window pairs big buckets partly (linear cost) but keeps every bucket connected
    i2, j2 = lsh_candidate_pairs(sub, b, r, window=2)
    assert set(zip(i2.tolist(), j2.tolist())) < expected
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse import coo_matrix

    def parts(i, j):
        return connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(len(sub),) * 2))[1]

    assert np.array_equal(parts(i, j), parts(i2, j2))


# --- exact dedupe --------------------------------------------------------------------------


def test_exact_duplicates_across_alpaca_sources(mirror):
    trans = _load(mirror, TRANS, "alpaca_chinese_part_8.json")
    hik = _load(mirror, HIKARI, "translated/alpaca_data-6382-9407-（jlh）中文-已完成.json")
    # a real prompt copied verbatim between the sources
    q = "水的两种化学成分是什么？"
    a = [r for r in trans if r["instruction"] == q]
    b = [r for r in hik if r["instruction"] == q]
    assert len(a) == 1 and len(b) == 1 and a[0]["output"] == b[0]["output"] and a[0]["source"] != b[0]["source"]
    df = records_frame(trans + hik)
    res = DocumentExactDeduplicator()(df)
    res.check(len(df), "exact")
    pair = {a[0]["id"], b[0]["id"]}
    assert len(pair & set(res.kept["id"])) == 1
    d = res.dropped[res.dropped["id"].isin(pair)].iloc[0]
    assert d["reason"] == "exact_duplicate" and d["detail"] in pair and d["detail"] != d["id"]
    # every group of rows with byte-identical text is merged (an independent check)
    raw = df.groupby(["instruction", "input", "output"]).size()
    assert len(res.kept) <= len(raw)
    assert res.stats["cross_source_duplicates"] > 0
    assert res.stats["source_pairs"][f"{HIKARI}+{TRANS}"] == res.stats["cross_source_duplicates"]


def test_source_pairs_count_each_dropped_row_with_its_survivors_source(mirror):
    """group_stats counts sources as codes: the figures equal a plain count over the dropped rows,
    with several sources (one a prefix of another, one non-Latin) copied across each other."""
    from curate.duplicates import group_stats

    rows = _load(mirror, TRANS, "alpaca_chinese_part_8.json")[:300]
    names = [TRANS, HIKARI, "alpaca", "中文源", "a+b"]
    rng = random.Random(3)
    df = records_frame([{**r, "source": rng.choice(names)} for r in rows])
    dup = records_frame([{**rows[rng.randrange(300)], "source": rng.choice(names), "row": 10_000 + k}
                         for k in range(400)])
    df = pd.concat([df, dup], ignore_index=True)
    labels = pd.factorize(df["instruction"] + "\n" + df["output"])[0]
    surv = survivors(df, labels)
    stats = group_stats(df, labels, surv, "exact_duplicate", np.full(len(df), "", dtype=object))
    src = df["source"].tolist()
    want: dict[str, int] = {}
    for r in np.flatnonzero(surv != np.arange(len(df))):
        a, b = sorted((src[r], src[surv[r]]))
        want[f"{a}+{b}"] = want.get(f"{a}+{b}", 0) + 1
    assert stats["source_pairs"] == want and list(stats["source_pairs"]) == sorted(want)
    assert len(want) > 8 and stats["cross_source_duplicates"] == sum(
        c for k, c in want.items() if k not in {f"{n}+{n}" for n in names})
    # clusters counted by hand; the figures do not depend on what numbers label the groups
    sizes = pd.Series(labels).value_counts()
    assert stats["clusters"] == int((sizes >= 2).sum())
    assert stats["cluster_sizes"] == {str(k): int(v) for k, v in sorted((sizes[sizes >= 2]).value_counts().items())}
    first_row = pd.Series(np.arange(len(df))).groupby(labels).transform("min").to_numpy()
    for other in (first_row, labels * 7 + 1_000_000, labels.astype(np.int32)):
        assert group_stats(df, other, surv, "exact_duplicate", np.full(len(df), "", dtype=object)) == stats


def test_exact_key_folds_width_and_spaces_only(trans0, hikari0):
    # real pair: the same Alpaca row with full-width vs half-width brackets (row 294 of both)
    t, h = trans0[294], hikari0[294]
    assert t["input"] != h["input"] and t["output"] == h["output"]
    assert exact_key([t["instruction"], t["input"], t["output"]]) == exact_key([h["instruction"], h["input"], h["output"]])
    res = DocumentExactDeduplicator()(records_frame([t, h]))
    assert len(res.kept) == 1 and len(res.dropped) == 1
    assert exact_key(["a  b\n", "", "x"]) == exact_key([" a b", "", "x"])
    # no other folding: case, 。 vs . and different words stay different
    assert exact_key(["Hello", "", ""]) != exact_key(["hello", "", ""])
    assert exact_key(["好。", "", ""]) != exact_key(["好.", "", ""])
    assert exact_key(["a", "b", ""]) != exact_key(["ab", "", ""])


# --- near dedupe ---------------------------------------------------------------------------

CJK = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研质"


def _edit(text: str, rng: random.Random, n_edits: int) -> str:
    chars = list(text)
    for _ in range(n_edits):
        op = rng.choice(("ins", "del", "sub"))
        p = rng.randrange(len(chars))
        if op == "ins":
            chars.insert(p, rng.choice(CJK))
        elif op == "del":
            del chars[p]
        else:
            chars[p] = rng.choice(CJK)
    return "".join(chars)


def _repunct(text: str) -> str:
    return text.replace("，", ", ").replace("。", ".").replace("：", ":") + "！"


@pytest.fixture(scope="module")
def long_rows(mirror) -> list[dict]:
    """120 real rows with ≥ 250 cleaned characters that are not near-duplicates of each other."""
    rows = [r for k in range(6) for r in _load(mirror, TRANS, f"alpaca_chinese_part_{k}.json")
            if len(clean_text(_text(r))) >= 250]
    labels = near_duplicate_clusters(minhash_signatures([_text(r) for r in rows]))
    rows = [r for k, r in enumerate(rows) if labels[k] == k and (labels == k).sum() == 1]
    assert len(rows) >= 120
    return rows[:120]


def _jaccard(a: str, b: str, ngram: int = 5) -> float:
    sa, sb = set(shingles(a, ngram)), set(shingles(b, ngram))
    return len(sa & sb) / len(sa | sb)


def test_near_duplicates_with_small_edits_are_caught(long_rows):
    rng = random.Random(7)
    rows = [dict(r) for r in long_rows]
    variants = []
    for k, r in enumerate(rows):
        v = dict(r, id=f"v{k:04d}", row=100_000 + k)
        if k % 3 == 0:
            v["output"] = _repunct(r["output"])  # punctuation and spacing only
        else:
            v["output"] = _edit(r["output"], rng, 3)  # 3 character edits
        variants.append(v)
    df = records_frame(rows + variants)
    res = DocumentMinhashDeduplicator()(df)
    res.check(len(df), "near")
    labels = dict(zip(res.dropped["id"], res.dropped["detail"].str.split().str[0]))
    caught = punct_caught = 0
    for k, (r, v) in enumerate(zip(rows, variants)):
        # the survivor of the pair is one of the two and nothing else
        got = labels.get(v["id"]) == r["id"] or labels.get(r["id"]) == v["id"]
        caught += got
        if k % 3 == 0:
            assert _jaccard(_text(r), _text(v)) == 1.0
            punct_caught += got
    assert punct_caught == 40  # identical after cleaning: always caught
    # 3 edits leave 3-gram Jaccard ≳ 0.9, where the (21, 6) bands find a pair with probability > 0.99
    assert caught >= 114, caught
    # precision: every dropped row's survivor is its own pair partner, never another original
    partner = {r["id"]: v["id"] for r, v in zip(rows, variants)}
    partner |= {v: r for r, v in partner.items()}
    assert all(partner[d] == s for d, s in labels.items())
    assert len(res.kept) >= len(rows)


def test_template_rows_with_different_sentences_are_not_merged(trans0):
    # real Chinese sentences (first clause of real outputs), behind the same instruction template
    sents = []
    for r in trans0:
        s = r["output"].split("。")[0]
        if 6 <= len(s) <= 40 and s not in sents:
            sents.append(s)
    sents = sents[:300]
    rows = [make_record("t", "tpl.json", k, "请将下面的句子翻译成英文：" + s, "", "") for k, s in enumerate(sents)]
    # fills of at least 8 cleaned characters: the template is at most 60 % of the row
    longer = [r for r, s in zip(rows, sents) if len(clean_text(s)) >= 8]
    assert len(longer) > 200
    res = DocumentMinhashDeduplicator()(records_frame(longer))
    assert len(res.dropped) == 0, res.dropped[["instruction", "detail"]].head().to_dict("records")
    # shorter fills (4-7 characters: "x 的值为 2", "最大值为25") leave the template most of the row; the
    # few rows merged then are each a near-duplicate of their survivor by exact Jaccard, with no
    # chains through other rows (leader clustering; connected components merge many more)
    res = DocumentMinhashDeduplicator()(records_frame(rows))
    assert len(res.dropped) <= 0.02 * len(rows)
    by_id = {r["id"]: r for r in rows}
    for d in res.dropped.itertuples():
        surv = by_id[d.detail.split()[0]]
        assert _jaccard(d.instruction, surv["instruction"], DEFAULT_NGRAM) >= DEFAULT_THRESHOLD - 0.1
    chained = DocumentMinhashDeduplicator(clustering="components")(records_frame(rows))
    assert len(chained.dropped) >= len(res.dropped)
    # the same template with an identical sentence is a duplicate
    res = DocumentMinhashDeduplicator()(records_frame(longer + [dict(longer[5], id="dup", row=999)]))
    assert list(res.dropped["id"]) == ["dup"] or list(res.dropped["id"]) == [longer[5]["id"]]


def test_short_texts_do_not_collapse():
    words = ["你好", "谢谢", "是", "否", "好的", "再见", "对", "不对", "ok", "no", "1", "2", "三", "四个字"]
    rows = [make_record("t", "s.json", k, w, "", "") for k, w in enumerate(words)]
    res = DocumentMinhashDeduplicator()(records_frame(rows))
    assert len(res.dropped) == 0
    sig = minhash_signatures(words)
    assert len(np.unique(sig, axis=0)) == len(words)
    # identical short texts (after cleaning) are still duplicates
    more = rows + [make_record("t", "s.json", 99, "你好！", "", "")]
    res = DocumentMinhashDeduplicator()(records_frame(more))
    assert len(res.dropped) == 1 and res.dropped.iloc[0]["instruction"] in ("你好", "你好！")
    # texts with nothing left after cleaning are never duplicates of each other
    blanks = [make_record("t", "b.json", k, p, "", "") for k, p in enumerate(["", "。", "！！", " "])]
    res = DocumentMinhashDeduplicator()(records_frame(blanks))
    assert len(res.dropped) == 0 and res.stats["no_shingles"] == 4


# --- survivor rule, determinism, ledger ----------------------------------------------------


def test_survivor_rule(trans0):
    base = trans0[10]
    a = make_record(HIKARI, "x.json", 0, base["instruction"], base["input"], base["output"])
    b = make_record(TRANS, "y.json", 0, base["instruction"], base["input"], base["output"])
    c = make_record("belle", "z.json", 0, base["instruction"], base["input"], base["output"])
    df = records_frame([a, b, c])
    # no priority, equal outputs: smallest id
    res = DocumentExactDeduplicator()(df)
    assert list(res.kept["id"]) == [min(a["id"], b["id"], c["id"])]
    assert set(res.dropped["detail"]) == {min(a["id"], b["id"], c["id"])}
    # priority list wins over id
    res = DocumentExactDeduplicator(source_priority=["belle", TRANS])(df)
    assert list(res.kept["id"]) == [c["id"]]
    res = DocumentExactDeduplicator(source_priority=[TRANS])(df)
    assert list(res.kept["id"]) == [b["id"]]
    # near duplicates: the longest output survives when no source is preferred
    longer = make_record(HIKARI, "x.json", 1, base["instruction"], base["input"], base["output"] + "谢谢")
    df2 = records_frame([b, longer])
    res = DocumentMinhashDeduplicator()(df2)
    assert list(res.kept["id"]) == [longer["id"]]
    assert res.dropped.iloc[0]["detail"].startswith(longer["id"] + " jaccard=")
    res = DocumentMinhashDeduplicator(source_priority=[TRANS])(df2)
    assert list(res.kept["id"]) == [b["id"]]
    # the plain function, with labels
    assert list(survivors(df, np.array([0, 1, 0]))) == [
        0 if a["id"] < c["id"] else 2, 1, 0 if a["id"] < c["id"] else 2]


def test_rank_from_arrow_ids_equals_rank_from_strings(trans0, hikari0):
    """A light frame keeps its ids in Arrow (no Python string per row): the survivor rule ranks them
    as it ranks the same ids as strings, for the project's 16-hex ids and for any other ids."""
    import pyarrow as pa

    from curate.duplicates import ids_at, priority_rank

    df = records_frame(trans0[:800] + hikari0[:800]).sample(frac=1.0, random_state=3).reset_index(drop=True)
    df.loc[df.index[::7], "output"] = ""  # ties on output length: the id decides
    for ids in (df["id"], "row-" + df["id"].str[:5], df["id"].str.upper()):  # hex, other lengths, not hex
        plain = df.assign(id=ids.astype(object))
        arrow = df.assign(id=pd.arrays.ArrowExtensionArray(pa.chunked_array([ids.iloc[:700], ids.iloc[700:]])))
        assert isinstance(arrow["id"].dtype, pd.ArrowDtype)
        for prio in ((), (HIKARI,)):
            assert np.array_equal(priority_rank(arrow, prio), priority_rank(plain, prio))
            assert np.array_equal(priority_rank(df.assign(id=ids.astype("string[pyarrow]")), prio),
                                  priority_rank(plain, prio))
        sliced = arrow.iloc[5:900:3]  # a filtered frame: its Arrow buffer starts at an offset
        assert np.array_equal(priority_rank(sliced), priority_rank(plain.iloc[5:900:3]))
        got = ids_at(arrow, np.array([4, 0, 4]))
        assert list(got) == [ids.iloc[4], ids.iloc[0], ids.iloc[4]] and all(type(x) is str for x in got)


def test_leader_clustering_takes_every_copy_and_never_chains(long_rows):
    base = long_rows[3]
    lead = dict(base, id="lead", output=base["output"] + "谢谢你的提问。")  # longest output: the survivor
    near = dict(base, id="near", row=1)  # a near-duplicate of lead
    copies = [dict(near, id=f"copy{k}", row=2 + k) for k in range(3)]  # identical to near
    res = DocumentMinhashDeduplicator()(records_frame([near, *copies, lead]))
    assert list(res.kept["id"]) == ["lead"]
    assert set(res.dropped["detail"].str.split().str[0]) == {"lead"}
    # a chain a ~ b ~ c with a !~ c: components merge all three, leader clustering keeps a and c
    rng = random.Random(3)
    a = dict(base, id="a", source="alpha", output=base["output"] + "很好。" * 3)  # preferred source: a leads
    b = dict(a, id="b", row=5, source=TRANS, output=_edit(a["output"], rng, 25))
    c = dict(a, id="c", row=6, source=TRANS, output=_edit(b["output"], rng, 25))
    sig = minhash_signatures([_text(x) for x in (a, b, c)])
    agree = lambda x, y: float((sig[x] == sig[y]).mean())  # noqa: E731
    if not (agree(0, 1) >= DEFAULT_THRESHOLD and agree(1, 2) >= DEFAULT_THRESHOLD > agree(0, 2)):
        pytest.skip("the random edits did not make a chain")  # pragma: no cover (seeded: they do)
    df = records_frame([a, b, c])
    assert len(DocumentMinhashDeduplicator(clustering="components", source_priority=["alpha"])(df).kept) == 1
    kept = DocumentMinhashDeduplicator(source_priority=["alpha"])(df).kept
    assert list(kept["id"]) == ["a", "c"]


def test_leader_clustering_of_the_paired_rows_alone_equals_it_over_all_rows():
    """``cluster_pairs`` clusters only the rows some pair names (the rest lead themselves): the same
    labels as the clustering over every row, on pairs with classes of identical signatures, chains
    and stars, with ranks in any order and rows in no pair before, between and after the others."""
    from curate.minhash.cluster import _leaders_by_class, cluster_pairs

    rng = np.random.default_rng(7)
    for n, m in ((50, 0), (50, 40), (2000, 300), (2000, 3000), (30, 200)):
        i = rng.integers(0, n, m)
        j = rng.integers(0, n, m)
        i, j = np.minimum(i, j)[i != j], np.maximum(i, j)[i != j]
        est = np.where(rng.random(len(i)) < 0.3, 1.0, rng.uniform(0.7, 0.99, len(i)))
        for rank in (None, rng.permutation(n)):
            full = _leaders_by_class(n, i, j, est, np.arange(n) if rank is None else rank)
            assert np.array_equal(cluster_pairs(n, i, j, est, rank), full), (n, m)
            # a leader is its cluster's best-ranked row: the survivor rule picks the labels themselves
            surv = survivors(pd.DataFrame(index=range(n)), full, rank=np.arange(n) if rank is None else rank)
            assert np.array_equal(surv, full)


def _frame(trans0, hikari0) -> pd.DataFrame:
    return records_frame(trans0[:1500] + hikari0[:1500])


def test_determinism_and_input_order_independence(trans0, hikari0):
    df = _frame(trans0, hikari0)
    op = DocumentMinhashDeduplicator()
    r1, r2 = op(df), op(df)
    pd.testing.assert_frame_equal(r1.kept, r2.kept)
    pd.testing.assert_frame_equal(r1.dropped, r2.dropped)
    assert json.dumps(r1.stats, sort_keys=True) == json.dumps(r2.stats, sort_keys=True)
    assert len(r1.dropped) > 100  # the two sources share many rows
    # shuffled input: same survivors and same (dropped → survivor) decisions; kept keeps input order
    perm = np.random.RandomState(0).permutation(len(df))
    shuffled = df.iloc[perm].reset_index(drop=True)
    r3 = op(shuffled)
    assert set(r3.kept["id"]) == set(r1.kept["id"])
    assert dict(zip(r3.dropped["id"], r3.dropped["detail"])) == dict(zip(r1.dropped["id"], r1.dropped["detail"]))
    pos = {i: k for k, i in enumerate(shuffled["id"])}
    assert [pos[i] for i in r3.kept["id"]] == sorted(pos[i] for i in r3.kept["id"])
    e1, e3 = DocumentExactDeduplicator()(df), DocumentExactDeduplicator()(shuffled)
    assert dict(zip(e1.dropped["id"], e1.dropped["detail"])) == dict(zip(e3.dropped["id"], e3.dropped["detail"]))


def test_ledger_and_stats(trans0, hikari0):
    df = _frame(trans0, hikari0)
    for op in (DocumentExactDeduplicator(), DocumentMinhashDeduplicator()):
        res = op(df)
        res.check(len(df), op.name)
        assert set(res.kept["id"]) | set(res.dropped["id"]) == set(df["id"])
        assert not set(res.kept["id"]) & set(res.dropped["id"])
        assert list(res.kept.columns) == list(df.columns)
        assert (res.dropped["stage"] == op.name).all()
        survivors_ = res.dropped["detail"].str.split().str[0]
        assert survivors_.isin(set(res.kept["id"])).all()  # every survivor is kept
        s = res.stats
        json.dumps(s)  # plain JSON types only
        reason = res.dropped["reason"].iloc[0]
        assert s["reasons"] == {reason: len(res.dropped)}
        assert 1 <= len(s["examples"][reason]) <= 3
        assert sum((int(k) - 1) * v for k, v in s["cluster_sizes"].items()) == len(res.dropped)
        assert sum(s["cluster_sizes"].values()) == s["clusters"]
        assert sum(s["source_pairs"].values()) == len(res.dropped)
        assert 1 <= len(s["example_clusters"]) <= 5
        for cl in s["example_clusters"]:
            assert len(cl) >= 2 and sum(m["survivor"] for m in cl) == 1
            assert all(len(m["output"]) <= 120 and len(m["instruction"]) <= 120 for m in cl)
    # empty input
    res = DocumentMinhashDeduplicator()(df.iloc[0:0])
    assert len(res.kept) == 0 and len(res.dropped) == 0


def test_registered_and_bad_input():
    assert OPS["document_exact_deduplicator"] is DocumentExactDeduplicator
    assert OPS["document_minhash_deduplicator"] is DocumentMinhashDeduplicator
    rows = [make_record("s", "f.json", k, f"第{k}条指令内容", "", "输出") for k in range(3)]
    df = records_frame(rows)
    df.loc[1, "output"] = None
    for op in (DocumentExactDeduplicator(), DocumentMinhashDeduplicator()):
        with pytest.raises(TypeError, match=r"f\.json.*row 1"):
            op(df)
    with pytest.raises(ValueError):
        DocumentMinhashDeduplicator(scheme="nope")


# --- NearDupIndex --------------------------------------------------------------------------


def test_near_dup_index_flags_eval_items_and_their_near_copies(long_rows, trans0):
    evals = [_text(r) for r in long_rows[:40]]
    index = NearDupIndex(evals)
    rng = random.Random(3)
    near = [_edit(t, rng, 2) for t in evals[:20]]
    others = [_text(r) for r in long_rows[40:]]
    shorts = ["你好", "谢谢", ""]
    mask = index.query(near + others + shorts + evals[20:])
    assert mask[:20].sum() >= 19
    assert not mask[20:20 + len(others) + len(shorts)].any()
    assert mask[-20:].all()
    best, score = index.best_match(evals[25:27] + others[:1])
    assert list(best) == [25, 26, -1] and list(score[:2]) == [1.0, 1.0] and score[2] == 0.0
    assert len(index) == 40


def test_questions_sharing_a_paragraph_are_not_near_duplicates(mirror):
    """DRCD: many questions about one long paragraph. The paragraph dominates the joined text, so
    without the instruction+output check they looked like near-duplicates of each other."""
    from curate.parse import parse_file

    recs = parse_file(mirror / "traditional" / "DRCD_dev.json", "traditional", "DRCD_dev.json").records[:300]
    df = records_frame(recs)
    assert df["input"].duplicated().sum() >= 200  # many rows share their paragraph
    plain = DocumentMinhashDeduplicator(verify_threshold=0)(df)
    assert len(plain.dropped) > 100  # the defect the check fixes
    res = DocumentMinhashDeduplicator()(df)
    assert len(res.kept) == len(df) - len(res.dropped)
    # what is still dropped asks (nearly) the same question with the same answer
    assert len(res.dropped) < 10
    assert res.stats["pairs_rejected_by_verify"] > 100
    # a real near-duplicate with a shared paragraph is still caught: same question, one character changed
    edited = dict(recs[0], id="edited", row=10_000, instruction=recs[0]["instruction"][:-2] + "呢？")
    res2 = DocumentMinhashDeduplicator()(records_frame(recs[:50] + [edited]))
    assert "edited" in set(res2.dropped["id"]) or recs[0]["id"] in set(res2.dropped["id"])
