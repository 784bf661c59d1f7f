"""cluster_tagger at scale: every row is transformed and assigned a chunk at a time, with TF-IDF
counts built by numpy; the labels and the cluster names must not depend on the chunking, on real rows."""
import json

import numpy as np
import pytest

from curate.records import make_record, records_frame
from curate.ops.cluster_tagger import ClusterTagger


@pytest.fixture(scope="module")
def frame(mirror):
    rows = []
    for rel in ("trans_chinese_alpaca/alpaca_chinese_part_1.json", "alpaca_chinese/supplementary/翻译问题.json",
                "alpaca_chinese/supplementary/整数加减法.json"):
        data = json.loads((mirror / rel).read_text(encoding="utf-8"))
        rows += [make_record(rel.split("/")[0], rel, i, r.get("instruction") or "", r.get("input") or "",
                             r.get("output") or "") for i, r in enumerate(data)]
    return records_frame(rows)


def test_labels_and_names_do_not_depend_on_the_chunking(frame):
    one = ClusterTagger(n_clusters=12, fit_sample=2000, seed=0, chunk_rows=10 ** 7, chunk_threads=1)(frame)
    for chunk, threads in ((997, 1), (997, 3), (4096, 2)):
        res = ClusterTagger(n_clusters=12, fit_sample=2000, seed=0, chunk_rows=chunk, chunk_threads=threads)(frame)
        assert np.array_equal(res.kept["cluster"].to_numpy(), one.kept["cluster"].to_numpy())
        assert res.stats["sizes"] == one.stats["sizes"]
        assert res.stats["top_terms"] == one.stats["top_terms"]
    assert len(one.kept) == len(frame) and one.kept["id"].tolist() == frame["id"].tolist()
    assert one.stats["n_clusters"] == 12 and all(len(t) > 0 for t in one.stats["top_terms"].values())
    with pytest.raises(ValueError, match="chunk_rows"):
        ClusterTagger(chunk_rows=0)


def test_labels_equal_sklearn_transform_of_all_rows(frame):
    """The numpy-built TF-IDF matrix feeds the same SVD and k-means as sklearn's own transform would."""
    import curate.embed as embed

    res = ClusterTagger(n_clusters=10, fit_sample=1500, seed=1, chunk_rows=2000)(frame)
    plain = embed.tfidf_transform
    try:
        embed.tfidf_transform = lambda vec, texts: vec.transform(texts)  # sklearn's path
        ref = ClusterTagger(n_clusters=10, fit_sample=1500, seed=1, chunk_rows=2000)(frame)
    finally:
        embed.tfidf_transform = plain
    assert np.array_equal(res.kept["cluster"].to_numpy(), ref.kept["cluster"].to_numpy())
    assert res.stats == ref.stats
