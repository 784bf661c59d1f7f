"""Mixtures on a real pool from the mirror: strategies, caps, determinism, alpaca output."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from curate.diversity import diversity_metrics
from curate.mix import (STRATEGIES, MixtureSpec, allocate, build_mixture, composition, parse_mixture_specs,
                        write_alpaca_json, write_mixture)
from curate.records import make_record, records_frame
from curate.ops.cluster_tagger import ClusterTagger
from curate.ops.task_type_tagger import TaskTypeTagger
from curate.tasktype import TASK_TYPES

N = 600


def _alpaca_rows(mirror, source, rel, file_label=None):
    data = json.loads((mirror / rel).read_text(encoding="utf-8"))
    return [make_record(source, file_label or rel, i, r.get("instruction") or "", r.get("input") or "", r.get("output") or "")
            for i, r in enumerate(data)]


@pytest.fixture(scope="module")
def pool(mirror):
    rows = []
    for i in range(4):
        rows += _alpaca_rows(mirror, "trans_chinese_alpaca", f"trans_chinese_alpaca/alpaca_chinese_part_{i}.json")
    for name in ["整数加减法", "翻译问题", "名词解释类问题", "学术问题", "建议类问题", "申请书类"]:
        rows += _alpaca_rows(mirror, "alpaca_chinese", f"alpaca_chinese/supplementary/{name}.json")
    for i, line in enumerate((mirror / "belle/dev1K.json").read_text(encoding="utf-8").splitlines()):
        r = json.loads(line)
        rows.append(make_record("belle", "dev1K.json", i, r["instruction"], r.get("input", ""), r["output"]))
    df = records_frame(rows)
    df = TaskTypeTagger()(df).kept
    return ClusterTagger(n_clusters=20, fit_sample=3000, seed=0)(df).kept


def test_strategies_registered():
    assert {"random", "per_source", "diverse", "narrow"} <= set(STRATEGIES)


def test_parse_specs():
    specs = parse_mixture_specs(["diverse-2000", "per_source-500",
                                 {"strategy": "narrow", "size": 100, "seed": 3, "task_types": ["math"]},
                                 {"name": "random-50"}])
    assert [(s.name, s.strategy, s.size, s.seed) for s in specs] == [
        ("diverse-2000", "diverse", 2000, 0), ("per_source-500", "per_source", 500, 0),
        ("narrow-100", "narrow", 100, 3), ("random-50", "random", 50, 0)]
    assert specs[2].options == {"task_types": ["math"]}
    assert parse_mixture_specs(["random-10"], default_seed=7)[0].seed == 7
    for bad in (["bogus-10"], ["random"], ["random-0"], [{"strategy": "random"}], ["random-5", "random-5"],
                [{"strategy": "random", "size": 5, "name": "a/b"}], [3]):
        with pytest.raises(ValueError):
            parse_mixture_specs(bad)


def test_allocate_water_filling():
    assert allocate({"a": 10, "b": 10, "c": 10}, 9) == {"a": 3, "b": 3, "c": 3}
    assert allocate({"a": 10, "b": 2, "c": 10}, 15) == {"a": 7, "b": 2, "c": 6}  # b exhausted, rest shared
    got = allocate({"a": 10, "b": 2, "c": 10}, 15, np.random.default_rng(0))
    assert got["b"] == 2 and sum(got.values()) == 15 and sorted([got["a"], got["c"]]) == [6, 7]
    assert allocate({"a": 1, "b": 2}, 100) == {"a": 1, "b": 2}  # capped at what there is
    assert allocate({"a": 0, "b": 5}, 3) == {"a": 0, "b": 3}


def _entropy(m):
    return diversity_metrics(m)["task_type_entropy"]


def test_diverse_beats_random_and_narrow_is_lower(pool):
    rnd = build_mixture(pool, f"random-{N}")
    div = build_mixture(pool, f"diverse-{N}")
    nar = build_mixture(pool, f"narrow-{N}")
    assert len(rnd) == len(div) == len(nar) == N
    assert _entropy(div) > _entropy(rnd) > _entropy(nar)
    assert diversity_metrics(div)["task_type_coverage"] == 1.0
    # stratified: every task type with enough rows gets the same share (±1)
    counts = div["task_type"].value_counts()
    available = pool["task_type"].value_counts()
    full = [t for t in TASK_TYPES if available[t] > N // len(TASK_TYPES) + 1]
    assert counts[full].max() - counts[full].min() <= 1
    # small types are taken whole
    for t in TASK_TYPES:
        if available[t] <= N // len(TASK_TYPES):
            assert counts[t] == available[t]
    # inside a type, clusters are balanced too: more clusters than a random draw of that type
    big = counts.index[0]
    assert div[div.task_type == big]["cluster"].nunique() >= rnd[rnd.task_type == big]["cluster"].nunique()
    # narrow defaults to the two most common types of the pool
    top2 = sorted(available.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
    assert set(nar["task_type"]) == {t for t, _ in top2}
    assert nar.attrs["mixture"]["task_types"] == [t for t, _ in top2]


def test_per_source_equal_shares(pool):
    m = build_mixture(pool, "per_source-900")
    by = m["source"].value_counts().to_dict()
    assert by == {"alpaca_chinese": 300, "belle": 300, "trans_chinese_alpaca": 300}
    n_alp = int((pool["source"] == "alpaca_chinese").sum())
    assert n_alp < 933 < 1000  # the pool's supplementary part is the smallest source
    # 2,800 = 933 each: alpaca_chinese gives all it has and belle/trans share its shortfall
    mid = build_mixture(pool, "per_source-2800")["source"].value_counts().to_dict()
    assert mid["alpaca_chinese"] == n_alp
    assert sorted([mid["belle"], mid["trans_chinese_alpaca"]]) == sorted([(2800 - n_alp) // 2, 2800 - n_alp - (2800 - n_alp) // 2])
    # 4,500: belle (1,000 rows) runs out too, and the translated Alpaca fills the rest
    big = build_mixture(pool, "per_source-4500")["source"].value_counts().to_dict()
    assert big == {"alpaca_chinese": n_alp, "belle": 1000, "trans_chinese_alpaca": 4500 - 1000 - n_alp}


def test_size_caps(pool):
    math_rows = int((pool["task_type"] == "math").sum())
    m = build_mixture(pool, {"strategy": "narrow", "size": 10 ** 6, "task_types": ["math"]})
    assert len(m) == math_rows and set(m["task_type"]) == {"math"}
    assert m.attrs["mixture"]["capped"] is True and m.attrs["mixture"]["eligible_rows"] == math_rows
    for strat in ("random", "diverse", "per_source"):
        whole = build_mixture(pool, f"{strat}-{10 ** 6}")
        assert len(whole) == len(pool) and whole.attrs["mixture"]["capped"] is True
        assert sorted(whole["id"]) == sorted(pool["id"])


def test_deterministic_and_order_independent(pool):
    for name in (f"random-{N}", f"diverse-{N}", f"narrow-{N}", f"per_source-{N}"):
        a = build_mixture(pool, name)
        b = build_mixture(pool, name)
        shuffled = pool.sample(frac=1.0, random_state=1).reset_index(drop=True)
        c = build_mixture(shuffled, name)
        assert a["id"].tolist() == b["id"].tolist() == c["id"].tolist()
        assert a["id"].is_monotonic_increasing  # output sorted by id
    other_seed = build_mixture(pool, {"strategy": "random", "size": N, "seed": 1})
    assert other_seed["id"].tolist() != build_mixture(pool, f"random-{N}")["id"].tolist()


def test_diverse_needs_tags(pool):
    with pytest.raises(KeyError, match="cluster_tagger"):
        build_mixture(pool.drop(columns=["cluster"]), "diverse-10")
    # levels can be chosen, e.g. task types only
    m = build_mixture(pool.drop(columns=["cluster"]), {"strategy": "diverse", "size": 110, "levels": ["task_type"]})
    got, available = m["task_type"].value_counts(), pool["task_type"].value_counts()
    # a type with fewer rows than its share (e.g. "other", kept for rows with no words) is taken whole…
    small = [t for t in available.index if available[t] < 10]
    assert all(got[t] == available[t] for t in small)
    # …and the rest share the remainder evenly
    full = got.drop(small)
    assert len(m) == 110 and full.max() - full.min() <= 1


def test_write_mixture_same_bytes_and_loads_with_datasets(pool, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    spec = parse_mixture_specs([f"diverse-{N}"])[0]
    outs = []
    for d in ("a", "b"):
        m = build_mixture(pool, spec)
        manifest = write_mixture(m, spec, tmp_path / d)
        outs.append(manifest)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert {f"{spec.name}.json", f"{spec.name}.manifest.json", "dataset_info.json", f"{spec.name}.sharegpt.json",
            f"{spec.name}.parquet", f"{spec.name}/README.md", f"{spec.name}/state.json"} <= {str(f) for f in files}
    for fname in files:  # every file, the exports and the dataset folder included
        assert (tmp_path / "a" / fname).read_bytes() == (tmp_path / "b" / fname).read_bytes(), fname

    data = json.loads((tmp_path / "a" / f"{spec.name}.json").read_text(encoding="utf-8"))
    assert len(data) == N and set(data[0]) == {"instruction", "input", "output"}  # no history in these rows
    assert "\\u" not in (tmp_path / "a" / f"{spec.name}.json").read_text(encoding="utf-8")[:2000]  # Chinese kept readable

    man = json.loads((tmp_path / "a" / f"{spec.name}.manifest.json").read_text(encoding="utf-8"))
    m = build_mixture(pool, spec)
    assert man["rows"] == N and man["capped"] is False and man["spec"]["strategy"] == "diverse"
    assert man["ids_sha256"] == hashlib.sha256("\n".join(m["id"]).encode()).hexdigest()
    assert sum(man["composition"]["by_task_type"].values()) == N
    assert sum(man["composition"]["by_source"].values()) == N
    assert man["composition"]["diversity"]["rows"] == N
    assert man["selection"]["pool_rows"] == len(pool)
    info = json.loads((tmp_path / "a" / "dataset_info.json").read_text(encoding="utf-8"))
    assert info[spec.name] == {"file_name": f"{spec.name}.json", "formatting": "alpaca",
                               "columns": {"prompt": "instruction", "query": "input", "response": "output"}}

    # a second mixture in the same folder adds its entry
    write_mixture(build_mixture(pool, "random-20"), "random-20", tmp_path / "a")
    assert set(json.loads((tmp_path / "a" / "dataset_info.json").read_text(encoding="utf-8"))) == {
        spec.name, f"{spec.name}_sharegpt", "random-20", "random-20_sharegpt"}

    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(tmp_path / "a" / f"{spec.name}.json"), split="train",
                      cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == N and set(ds.column_names) == {"instruction", "input", "output"}
    assert ds[0]["instruction"] == data[0]["instruction"]


def test_history_from_real_multiturn_chats(mirror, tmp_path):
    # Chinese-Vicuna's sample chats: input/output are lists of turns; earlier turns become history.
    rows = []
    for i, line in enumerate((mirror / "traditional/chinese_vicuna_chat_sample.jsonl").read_text(encoding="utf-8").splitlines()):
        r = json.loads(line)
        history = [[q, a] for q, a in zip(r["input"][:-1], r["output"][:-1])]
        rows.append(make_record("traditional", "chinese_vicuna_chat_sample.jsonl", i, r["input"][-1], "", r["output"][-1],
                                history=history))
    rows.append(make_record("belle", "x", 0, "你好", "", "你好！"))  # a single-turn row alongside
    df = records_frame(rows)
    path = write_alpaca_json(df, tmp_path / "chat.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert all("history" in d for d in data)  # one schema for the whole file
    assert data[-1]["history"] == []
    assert any(len(d["history"]) >= 1 for d in data[:-1])
    assert all(isinstance(p, list) and len(p) == 2 for d in data for p in d["history"])

    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert set(ds.column_names) == {"instruction", "input", "output", "history"}
    assert ds[0]["history"] == data[0]["history"]

    bad = records_frame([make_record("belle", "dev1K.json", 7, "q", "", "a")])
    bad.loc[0, "history"] = '[["only one"]]'
    with pytest.raises(ValueError, match="dev1K.json row 7"):
        write_alpaca_json(bad, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_composition_counts(pool):
    m = build_mixture(pool, "random-100")
    c = composition(m, n_clusters=20)
    assert c["rows"] == 100 and list(c["by_task_type"]) == TASK_TYPES
    assert sum(c["by_cluster"].values()) == 100
    assert c["diversity"]["cluster_entropy_norm"] <= 1.0
    json.dumps(c, ensure_ascii=False)
    assert isinstance(MixtureSpec("x", "random", 5).to_dict()["options"], dict)
    with pytest.raises(ValueError):
        MixtureSpec("x", "random", -1)


# ---- diversity-aware strategies -------------------------------------------------------------------

from curate.diversity import embedding_metrics  # noqa: E402
from curate.novelty import knn_mean_distance  # noqa: E402
from curate.mix import deita_select, k_center_greedy, pool_embeddings, quality_scores  # noqa: E402


def _sorted_pool(pool):
    return pool.sort_values("id", kind="mergesort").reset_index(drop=True)


def _positions(sp, m):
    pos = {i: k for k, i in enumerate(sp["id"])}
    return np.array([pos[i] for i in m["id"]])


def test_kcenter_covers_the_pool_better_than_random(pool):
    sp = _sorted_pool(pool)
    x = pool_embeddings(sp)
    kc = build_mixture(pool, f"kcenter-{N}")
    rnd = build_mixture(pool, f"random-{N}")
    assert len(kc) == N and kc["id"].is_unique and set(kc["id"]) <= set(pool["id"])
    info = kc.attrs["mixture"]
    assert info["embedding"] == "tfidf-char-svd128" and 0 <= info["first"] < len(pool)
    # the k-center objective: no pool row is far from a chosen row
    radius = {name: knn_mean_distance(x, x[_positions(sp, m)], k=1) for name, m in (("kcenter", kc), ("random", rnd))}
    assert radius["kcenter"].max() < radius["random"].max()
    assert np.quantile(radius["kcenter"], 0.99) < np.quantile(radius["random"], 0.99)
    # and it reaches more task types evenly than a random draw of the same size
    assert _entropy(kc) > _entropy(rnd)
    # deterministic and independent of the pool's row order
    shuffled = pool.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert build_mixture(shuffled, f"kcenter-{N}")["id"].tolist() == kc["id"].tolist()
    assert build_mixture(pool, {"strategy": "kcenter", "size": N, "seed": 5})["id"].tolist() != kc["id"].tolist()


def test_k_center_greedy_by_hand():
    x = np.array([[1, 0], [0.99, 0.141], [0, 1], [-1, 0], [0.7071, 0.7071]], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    # from row 0: the farthest is -x (row 3), then the row farthest from both (row 2, up)
    assert k_center_greedy(x, 3, 0).tolist() == [0, 3, 2]
    assert sorted(k_center_greedy(x, 10, 0).tolist()) == [0, 1, 2, 3, 4]  # capped at the pool


def test_deita_quality_first_then_far_apart(pool):
    sp = _sorted_pool(pool)
    x = pool_embeddings(sp)
    spec = {"strategy": "deita", "size": N, "threshold": 0.2}
    de = build_mixture(pool, spec)
    rnd = build_mixture(pool, f"random-{N}")
    info = de.attrs["mixture"]
    assert len(de) == N and info["filled_below_threshold"] == 0 and info["examined"] >= N
    q = quality_scores(sp)
    assert q[_positions(sp, de)].mean() > q[_positions(sp, rnd)].mean() + 0.05
    assert info["mean_quality"] > info["pool_mean_quality"]
    # no two chosen rows closer than the threshold (cosine distance)
    xd = x[_positions(sp, de)]
    sims = xd @ xd.T
    np.fill_diagonal(sims, -1)
    assert sims.max() < 0.8 + 1e-6
    assert build_mixture(pool, spec)["id"].tolist() == de["id"].tolist()
    # a threshold no set of N rows can meet: the rest is filled with the best rows, and counted
    tight = build_mixture(pool, {"strategy": "deita", "size": N, "threshold": 0.97})
    assert len(tight) == N and tight.attrs["mixture"]["filled_below_threshold"] > 0
    with pytest.raises(ValueError, match="threshold"):
        build_mixture(pool, {"strategy": "deita", "size": 10, "threshold": 1.5})


def test_deita_select_by_hand():
    x = np.array([[1, 0], [0.995, 0.0998], [0, 1], [0.6, 0.8]], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    chosen, examined = deita_select(x, scores, k=3, min_distance=0.1)
    assert chosen.tolist() == [0, 2, 3] and examined == 4  # row 1 is a near twin of row 0
    chosen, _ = deita_select(x, scores, k=2, min_distance=0.1)
    assert chosen.tolist() == [0, 2]


def test_quality_scores_prefer_substantial_answers():
    df = records_frame([make_record("s", "f", 0, "写一篇关于春天的短文", "", "春天来了，万物复苏，桃花盛开，燕子归来。" * 8),
                        make_record("s", "f", 1, "写一篇关于春天的短文", "", "好"),
                        make_record("s", "f", 2, "写一篇关于春天的短文", "", "哈" * 300)])
    q = quality_scores(df)
    assert q[0] > q[2] > q[1] and ((q >= 0) & (q <= 1)).all()


def test_char_variety_is_the_share_of_distinct_characters_of_each_answers_head(pool):
    from curate.mix import char_variety

    texts = pool["output"].astype(str).tolist() + [
        "", "a", "哈" * 300, "春天" * 400, "\ud800x\ud800", "\U0001F600\U0001F600b", "x" * 499 + "yz", " \n\t "]
    want = np.array([len(set(t[:500])) / len(t[:500]) if t else 0.0 for t in texts])
    got = char_variety(texts, 500, block=1000)  # several blocks, rows of every length class
    assert got.dtype == np.float64 and np.array_equal(got, want)
    assert char_variety(["ab", "aab"], head=2).tolist() == [1.0, 0.5] and len(char_variety([])) == 0


def test_strategies_figures_in_one_embedding(pool):
    """The figures the report shows: random vs kcenter vs deita at the same size, on real rows."""
    sp = _sorted_pool(pool)
    x = pool_embeddings(sp)
    figs = {}
    for name in (f"random-{N}", f"kcenter-{N}", f"deita-{N}"):
        m = build_mixture(pool, name)
        xs = x[_positions(sp, m)]
        figs[name] = {**embedding_metrics(xs), "radius": float(knn_mean_distance(x, xs, k=1).max())}
    print(json.dumps(figs, indent=1))
    assert all(f["vendi_rows"] == N for f in figs.values())
    assert figs[f"kcenter-{N}"]["radius"] == min(f["radius"] for f in figs.values())


def _plain_k_center(x, k, first):
    """The farthest-first loop written plainly (one distance pass per centre), to check the lazy one."""
    chosen = [first]
    mind = 1.0 - x @ x[first]
    mind[first] = -np.inf
    for _ in range(1, min(k, len(x))):
        j = int(np.argmax(mind))
        chosen.append(j)
        mind = np.minimum(mind, 1.0 - x @ x[j])
        mind[j] = -np.inf
    return np.array(chosen)


def test_lazy_k_center_equals_the_plain_loop_on_real_rows(pool):
    # float64: no rounding difference between one matrix product and many vector products, so the
    # lazily evaluated blocks must make exactly the plain loop's choices
    x = pool_embeddings(_sorted_pool(pool)).astype(np.float64)
    for block, first in ((2048, 0), (64, 17), (7, len(x) - 1)):
        assert k_center_greedy(x, N, first, block=block).tolist() == _plain_k_center(x, N, first).tolist()


def test_kcenter_over_a_candidate_sample(pool):
    sp = _sorted_pool(pool)
    spec = {"strategy": "kcenter", "size": 200, "candidates": 1500}
    m = build_mixture(pool, spec)
    info = m.attrs["mixture"]
    assert len(m) == 200 and info["candidates"] == 1500 and info["eligible_rows"] == len(pool)
    assert build_mixture(pool.sample(frac=1.0, random_state=1), spec)["id"].tolist() == m["id"].tolist()
    # the same choice as k-center run by hand on the same seeded sample of candidates
    rng = np.random.default_rng(0)
    cand = np.sort(rng.choice(len(sp), size=1500, replace=False))
    first = int(rng.integers(1500))
    x = pool_embeddings(sp)[cand]
    assert sorted(sp["id"].iloc[cand[k_center_greedy(x, 200, first)]]) == m["id"].tolist()
    # a pool no larger than the cap: every row is a candidate
    assert build_mixture(pool, f"kcenter-{N}").attrs["mixture"]["candidates"] == len(pool)


def test_deita_embeds_only_what_it_examines(pool):
    sp = _sorted_pool(pool)
    x = pool_embeddings(sp)
    q = quality_scores(sp)
    asked = []

    def rows(pos):
        asked.append(len(pos))
        return x[pos]

    lazy = deita_select(rows, q, 300, 0.2)
    assert [a.tolist() if hasattr(a, "tolist") else a for a in lazy] == \
        [a.tolist() if hasattr(a, "tolist") else a for a in deita_select(x, q, 300, 0.2)]
    assert sum(asked) < len(sp) and sum(asked) >= lazy[1]
    # a window of blocks at a time, doubling: 512, 1024, … rows, not one read per block of 512
    assert asked == [min(512 * 2 ** i, 16 * 512) for i in range(len(asked))]


def test_a_sorted_pool_is_not_sorted_again_and_the_embedder_is_fitted_once(pool):
    from curate.mix import clear_embed_cache, pool_embedder, sorted_by_id

    shuffled = pool.sample(frac=1.0, random_state=3)
    ordered = sorted_by_id(shuffled)
    assert ordered["id"].is_monotonic_increasing and ordered is not shuffled
    assert sorted_by_id(ordered) is ordered  # already in id order: no copy
    for spec in ("kcenter-60", "deita-60"):
        assert build_mixture(ordered, spec)["id"].tolist() == build_mixture(shuffled, spec)["id"].tolist()
    clear_embed_cache()
    first = pool_embedder(ordered)
    assert pool_embedder(ordered) is first  # the same frame: no refit
    assert pool_embedder(ordered.copy()) is first  # equal ids: the content key finds it
    clear_embed_cache()
    assert pool_embedder(ordered) is not first


def test_diverse_can_balance_on_confident_labels_only(pool):
    from curate.tasktype_model import MIN_CONFIDENCE

    m = build_mixture(pool, {"strategy": "diverse", "size": 300, "min_confidence": MIN_CONFIDENCE})
    assert len(m) == 300 and (m["task_confidence"] >= MIN_CONFIDENCE).all()
    assert m.attrs["mixture"]["eligible_rows"] == int((pool["task_confidence"] >= MIN_CONFIDENCE).sum()) < len(pool)
    with pytest.raises(KeyError, match="task_confidence"):
        build_mixture(pool.drop(columns=["task_confidence"]), {"strategy": "diverse", "size": 10, "min_confidence": 0.5})


def test_a_lazy_pool_builds_the_same_mixtures_as_the_whole_frame(pool, tmp_path, monkeypatch):
    """Mixtures from a pool whose texts stay on disk (``curate.pool.LazyPool``: label columns in id
    order, texts read by position) are the same bytes as from the whole frame, for every strategy,
    on a file in shuffled row order split into many row groups."""
    import curate.io
    import curate.pool
    from curate.io import read_parquet, write_parquet
    from curate.mix import clear_embed_cache
    from curate.pool import LazyPool

    monkeypatch.setattr(curate.io, "ROW_GROUP_BYTES", 200_000)
    monkeypatch.setattr(curate.pool, "MAP_ROWS", 777)
    shuffled = pool.sample(frac=1.0, random_state=3).reset_index(drop=True)
    path = tmp_path / "pool.parquet"
    write_parquet(path, shuffled)
    import pyarrow.parquet as pq
    assert pq.ParquetFile(path).metadata.num_row_groups > 5

    lazy, whole = LazyPool(path), read_parquet(path)
    assert len(lazy) == len(whole) and list(lazy.columns) == list(whole.columns)
    assert "instruction" not in lazy.frame.columns  # texts are not held
    some = np.array([5, 0, len(pool) - 1, 17])
    by_id = whole.sort_values("id", kind="mergesort").reset_index(drop=True)
    assert lazy.iloc[some].equals(by_id.iloc[some])
    # its ids stay in Arrow (no Python string per row), in the same order as the stable sort's
    assert isinstance(lazy["id"].dtype, pd.ArrowDtype) and lazy["id"].astype(str).tolist() == by_id["id"].tolist()
    assert lazy["output"].equals(by_id["output"])
    specs = parse_mixture_specs(["random-300", "per_source-300", "diverse-300", "narrow-200", "kcenter-150",
                                 {"name": "deita-150", "strategy": "deita", "size": 150}])
    for spec in specs:
        made = []
        for name, src in (("lazy", lazy), ("whole", whole)):
            clear_embed_cache()
            m = build_mixture(src, spec)
            write_mixture(m, spec, tmp_path / name)
            made.append(m)
        assert made[0].equals(made[1]) and made[0].attrs == made[1].attrs, spec.name
    files = sorted(p.relative_to(tmp_path / "lazy") for p in (tmp_path / "lazy").rglob("*") if p.is_file())
    assert len(files) >= 6 * 5
    for f in files:
        assert (tmp_path / "lazy" / f).read_bytes() == (tmp_path / "whole" / f).read_bytes(), f


def test_strata_group_positions_by_their_text_in_the_order_given(pool):
    """The strata of real rows: each key holds exactly the given positions whose value reads so, in
    the order given; a cluster number and the same number as text are one stratum."""
    from curate.mix import _groups
    from curate.records import text_codes

    rng = np.random.default_rng(0)
    mixed = pool.assign(cluster=pool["cluster"].astype(object))
    mixed.loc[mixed.index[::3], "cluster"] = mixed["cluster"][::3].astype(str)  # 5 and "5": one stratum
    for frame, column in ((pool, "task_type"), (pool, "source"), (mixed, "cluster")):
        positions = rng.permutation(len(frame))[: len(frame) // 2]
        groups = _groups(text_codes(frame[column]), positions)
        texts = frame[column].astype(str).to_numpy()[positions]
        assert list(groups) == sorted(set(texts))
        for key, got in groups.items():
            assert got.tolist() == positions[texts == key].tolist()
        assert sum(len(g) for g in groups.values()) == len(positions)


def test_mixture_tasks_in_any_order_write_what_one_pass_writes(pool, tmp_path):
    """The mixtures stage as tasks: a strategy that embeds texts gets a task of its own, the others
    share one; run in any order, then merged, they write each mixture's files byte for byte as
    building them from the whole frame does, and the finished stage is found done."""
    from curate.io import write_parquet
    from curate.mix import build_mixtures, clear_embed_cache
    from curate.pipeline import finish_mixtures, plan_mixtures, run_mixture_task

    path = tmp_path / "pool.parquet"
    write_parquet(path, pool.sample(frac=1.0, random_state=5).reset_index(drop=True))
    specs = tuple(parse_mixture_specs(["random-300", "kcenter-150", "per_source-300", "diverse-300", "narrow-200",
                                       "deita-150"]))
    plan = plan_mixtures(path, tmp_path / "tasks", specs)
    assert [[specs[i].name for i in g] for g in plan.job.groups] == [
        ["kcenter-150"], ["deita-150"], ["random-300", "per_source-300", "diverse-300", "narrow-200"]]
    assert len(plan.tasks) == 3 and not plan.done
    for step, index in reversed(plan.tasks):
        clear_embed_cache()  # as in a process of its own
        run_mixture_task(plan, step, index)
    listed = finish_mixtures(plan)
    assert [m["name"] for m in listed] == [s.name for s in specs]
    clear_embed_cache()
    for spec, mix in zip(specs, build_mixtures(pool, list(specs))):
        write_mixture(mix, spec, tmp_path / "whole")
    files = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*") if p.is_file())
    assert len(files) >= 6 * 5
    for f in files:
        assert (tmp_path / "tasks" / f).read_bytes() == (tmp_path / "whole" / f).read_bytes(), f
    again = plan_mixtures(path, tmp_path / "tasks", specs)
    assert again.done and again.tasks == () and finish_mixtures(again) == listed
    assert not (tmp_path / "tasks" / "_work").exists()


def test_pool_embeddings_fitted_beforehand_are_those_the_selections_use(pool, tmp_path):
    """A runner fits the mixtures' pool embedding from the last stage's input (the pool's rows
    before their labels are added) beside that stage's merge: the selections find that very fit in
    the run's fit store (nothing fitted or written again) and choose what they choose without it."""
    from curate.io import write_parquet
    from curate.mix import clear_embed_cache
    from curate.pipeline import finish_mixtures, plan_mixtures, prefit_mixtures, run_mixture_task

    rows = pool.sample(frac=1.0, random_state=7).reset_index(drop=True)
    specs = tuple(parse_mixture_specs(["kcenter-150", "random-100", "deita-150"]))
    outs = {}
    for name in ("prefit", "plain"):
        run = tmp_path / name
        write_parquet(run / "05_diversity" / "kept.parquet", rows)
        plan = plan_mixtures(run / "05_diversity" / "kept.parquet", run / "mixtures", specs)
        store = run / "_cache"
        if name == "prefit":
            write_parquet(run / "04_dedupe" / "kept.parquet", rows.drop(columns=["task_type", "cluster"]))
            assert prefit_mixtures(run / "04_dedupe" / "kept.parquet", specs, store) == 1  # one embed_seed
            fitted = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
            assert len(fitted) == 1
        for step, index in plan.tasks:
            clear_embed_cache()  # each task in a process of its own
            run_mixture_task(plan, step, index)
        finish_mixtures(plan)
        outs[name] = {p.relative_to(run / "mixtures"): p.read_bytes() for p in (run / "mixtures").rglob("*") if p.is_file()}
        if name == "prefit":
            assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == fitted  # found, not fitted again
        else:
            assert sorted(p.name for p in store.iterdir()) == sorted(fitted)  # the same key: the same fit
    assert outs["prefit"] == outs["plain"] and len(outs["plain"]) >= 3 * 5
    assert prefit_mixtures(tmp_path / "prefit" / "04_dedupe" / "kept.parquet", specs[1:2], tmp_path / "x") == 0
