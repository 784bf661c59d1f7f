"""The near-duplicate search on partitions (curate.minhash.partitioned) gives the same pairs, and the
operator the same survivors, byte for byte, as the in-memory search: on real rows, however the rows
are split, with a duplicate cluster planted across partition boundaries."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curate.io import write_parquet
from curate.minhash import MinHashConfig, near_duplicate_pairs, row_texts
from curate.minhash.partitioned import PartitionedSignatures, partitioned_near_duplicate_pairs
from curate.minhash.signatures import config_signatures
from curate.ops.document_minhash_deduplicator import DocumentMinhashDeduplicator
from curate.parse import parse_files
from curate.records import make_record, records_frame

FILES = [("trans_chinese_alpaca", "alpaca_chinese_part_0.json"), ("alpaca_chinese", "translated/zh-data-part-00.json"),
         ("belle", "dev1K.json"), ("trans_chinese_alpaca", "alpaca_chinese_part_1.json")]


@pytest.fixture(scope="module")
def rows(mirror) -> pd.DataFrame:
    """Real rows of sources that translate the same Alpaca tasks (many near-duplicates across files),
    plus a planted cluster: one row and edited copies, at the start, middle and end of the frame."""
    res = parse_files([{"source": s, "file": f, "path": str(mirror / s / f), "format": "json"} for s, f in FILES])
    df = res.kept.reset_index(drop=True)
    base = "请用三句话介绍长城的历史，并说明它为什么被列为世界文化遗产。"
    out = "长城始建于春秋战国时期，秦朝连接各段城墙，明朝大规模重修。它体现了古代中国的军事防御智慧和建筑成就。"
    planted = [make_record("plant", "p.json", k, base + tail, "", out) for k, tail in enumerate(["", "。", "！", "呀"])]
    p = records_frame(planted)
    return pd.concat([p.iloc[:1], df.iloc[:len(df) // 2], p.iloc[1:2], df.iloc[len(df) // 2:], p.iloc[2:]],
                     ignore_index=True)


def test_partitioned_pairs_equal_the_in_memory_ones(rows):
    mh = MinHashConfig()
    sig = config_signatures(mh, row_texts(rows, ("instruction", "input", "output")))
    want = near_duplicate_pairs(sig, mh.threshold, mh.bands, mh.rows, 16)
    assert len(want[0]) > 500
    n = len(sig)
    for cuts in ([0, n], [0, 1, n // 3, n // 3 + 1, n - 1, n], [0, 997, 2000, 2001, n]):
        parts = PartitionedSignatures([sig[a:b] for a, b in zip(cuts, cuts[1:])])
        for partitions in (1, 3, 8):
            got = partitioned_near_duplicate_pairs(parts, mh.threshold, mh.bands, mh.rows, 16, partitions)
            for w, g in zip(want, got):
                assert np.array_equal(w, g), (cuts, partitions)


def test_the_operator_on_partitions_writes_the_same_bytes(rows, tmp_path):
    plain = DocumentMinhashDeduplicator()(rows)
    split = DocumentMinhashDeduplicator(partitions=5, partition_rows=1000)(rows)  # the plant spans partitions
    for name in ("kept", "dropped"):
        write_parquet(tmp_path / f"a_{name}.parquet", getattr(plain, name))
        write_parquet(tmp_path / f"b_{name}.parquet", getattr(split, name))
        assert (tmp_path / f"a_{name}.parquet").read_bytes() == (tmp_path / f"b_{name}.parquet").read_bytes()
    drop = lambda s: {k: v for k, v in s.items() if k != "params"}  # noqa: E731
    assert drop(plain.stats) == drop(split.stats)
    planted = split.dropped[split.dropped["source"] == "plant"]
    assert len(planted) == 3  # one survivor of the four copies, though they lie in three partitions


def test_bucket_order_is_the_three_key_lexsort(rows):
    """The buckets' order (band key, whole hash, row) from one argsort and a sort of the shared keys
    only: the same permutation as lexsort, on real band keys (few shared) and on keys drawn from a
    handful of values (every key shared, whole hashes tied too)."""
    from curate.minhash.lsh import row_hash
    from curate.minhash.partitioned import bucket_order

    mh = MinHashConfig(ngram=3, num_perm=128, threshold=0.55)
    sig = config_signatures(mh, row_texts(rows, ("instruction", "input", "output")), progress=False)
    n = len(sig)
    for k in (0, 7):
        key = row_hash(sig, cols=slice(k * mh.rows, (k + 1) * mh.rows))
        whole, row = row_hash(sig), np.arange(n, dtype=np.int64)
        assert np.array_equal(bucket_order(key, whole, row), np.lexsort((row, whole, key)))
        assert len(np.unique(key)) < n  # real buckets of two or more rows
    rng = np.random.default_rng(0)
    key = rng.integers(0, 5, 5000).astype(np.uint64)
    whole = rng.integers(0, 3, 5000).astype(np.uint64)
    row = rng.permutation(5000).astype(np.int64)
    assert np.array_equal(bucket_order(key, whole, row), np.lexsort((row, whole, key)))
    assert len(bucket_order(key[:0], whole[:0], row[:0])) == 0
    assert np.array_equal(bucket_order(key[:1], whole[:1], row[:1]), [0])
