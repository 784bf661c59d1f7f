"""Near-duplicate search with MinHash LSH over character n-grams, in steps that share one config.

``config`` (settings, LSH bands) → ``shingles`` (what is compared) → ``signatures`` (numpy, equal to
datasketch's) → ``lsh`` (candidate pairs, verified) → ``cluster`` (pairs into groups) ; ``index``
looks texts up against a fixed set. The operator that drops rows is
``curate/ops/document_minhash_deduplicator.py``; its defaults were chosen on the labelled benchmark
``benchmarks/neardup_bench.py`` (figures in benchmarks/README.md).

Memory: the signatures (``n × num_perm × 4`` bytes) are the one large array; texts are built and
shingled a part at a time; LSH works band by band, and a bucket's members are paired with the next
``window - 1`` members and its first one, so a huge bucket costs linear, not quadratic, memory.
"""
from .cluster import CLUSTERINGS, cluster_pairs, near_duplicate_clusters
from .config import DEFAULT_FIELDS, DEFAULT_NGRAM, DEFAULT_NUM_PERM, DEFAULT_THRESHOLD, MinHashConfig, band_params
from .index import NearDupIndex
from .lsh import lsh_candidate_pairs, near_duplicate_pairs
from .shingles import clean_text, fold_char, shingle_hash, shingles
from .signatures import minhash_signatures, row_texts

__all__ = ["CLUSTERINGS", "DEFAULT_FIELDS", "DEFAULT_NGRAM", "DEFAULT_NUM_PERM", "DEFAULT_THRESHOLD", "MinHashConfig",
           "NearDupIndex", "band_params", "clean_text", "cluster_pairs", "fold_char", "lsh_candidate_pairs",
           "minhash_signatures", "near_duplicate_clusters", "near_duplicate_pairs", "row_texts", "shingle_hash",
           "shingles"]
