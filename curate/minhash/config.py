"""The MinHash LSH settings shared by every step of a near-duplicate job (signatures, bands,
verification, the eval-set index): one dataclass, validated once."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

DEFAULT_FIELDS = ("instruction", "input", "output")
# Chosen on the labelled near-duplicate benchmark (benchmarks/neardup_bench.py; figures in
# benchmarks/README.md).
DEFAULT_NGRAM = 3
DEFAULT_NUM_PERM = 128
DEFAULT_THRESHOLD = 0.55
SCHEMES = ("affine32", "legacy")


def check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")


@lru_cache(maxsize=64)
def band_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) that datasketch's ``MinHashLSH(threshold, num_perm)`` uses (equal FP/FN weights)."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return int(lsh.b), int(lsh.r)


@dataclass(frozen=True)
class MinHashConfig:
    """Shingle size, permutations, Jaccard threshold, hash seed and scheme, LSH bands × rows.

    ``bands``/``rows`` default to datasketch's optimum for ``threshold`` and ``num_perm``."""

    ngram: int = DEFAULT_NGRAM
    num_perm: int = DEFAULT_NUM_PERM
    threshold: float = DEFAULT_THRESHOLD
    seed: int = 1
    scheme: str = "affine32"
    bands: int | None = None
    rows: int | None = None

    def __post_init__(self) -> None:
        check_scheme(self.scheme)
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.ngram < 1 or self.num_perm < 2:
            raise ValueError("need ngram ≥ 1, num_perm ≥ 2")
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither")
        for k, t in (("ngram", int), ("num_perm", int), ("threshold", float), ("seed", int)):
            object.__setattr__(self, k, t(getattr(self, k)))
        b, r = ((int(self.bands), int(self.rows)) if self.bands is not None
                else band_params(self.threshold, self.num_perm))
        object.__setattr__(self, "bands", b)
        object.__setattr__(self, "rows", r)
