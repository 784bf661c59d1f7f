from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..duplicates import (Decision, check_frame, dedupe_result, empty_stats, group_stats, ids_at, priority_rank,
                          survivors)
from ..minhash.cluster import CLUSTERINGS, cluster_pairs
from ..minhash.config import DEFAULT_FIELDS, DEFAULT_NGRAM, DEFAULT_NUM_PERM, DEFAULT_THRESHOLD, MinHashConfig
from ..minhash.lsh import near_duplicate_pairs, nonempty_rows, pair_jaccard
from ..minhash.partitioned import (PartitionJob, PartitionedSignatures, SignatureFiles, job_no_shingles,
                                   job_verified_pairs, partitioned_near_duplicate_pairs)
from ..minhash.signatures import config_signatures, row_texts
from ..records import StageResult, drop_frame
from .base import Deduplicator, register


# Rows per hash partition with ``partitions: auto``. A bucket task holds its partition's band keys a
# band at a time plus its route files' pages: about 0.6 GiB at 0.6M rows and 1.8 GiB at 2.5M
# (benchmarks/bench_tasks.py, benchmarks/README.md), so 1M rows keeps it near 1 GiB at any size.
AUTO_PARTITION_ROWS = 1_000_000


@register("document_minhash_deduplicator")
class DocumentMinhashDeduplicator(Deduplicator):
    """Drop near-duplicates found with MinHash LSH over character n-grams; keep one per cluster.

    Params (defaults): ``ngram=3`` (characters per shingle), ``num_perm=128``, ``threshold=0.55``
    (estimated Jaccard for a pair to count), ``fields=("instruction","input","output")`` (joined
    by newlines), ``seed=1``, ``scheme="affine32"`` (datasketch's; ``"legacy"`` for pre-2.0
    sketches), ``bands``/``rows`` (default: datasketch's optimum for threshold and num_perm),
    ``window=16`` (bucket pairing, see ``curate.minhash.lsh``), ``source_priority=()`` (survivor rule),
    ``clustering="leader"`` (or ``"components"``, see ``curate.minhash.cluster``),
    ``verify_fields=("instruction","output")`` and ``verify_threshold=0.3``: a pair whose rows have
    text outside ``verify_fields`` (an input) must also reach this estimated Jaccard on
    ``verify_fields`` alone (``verify_threshold=0`` turns the check off). Why: a long shared input
    dominates the joined text, so different questions about one paragraph (DRCD) or different tasks
    on one passage looked like near-duplicates, while different translations of one Alpaca row still
    agree well above 0.3 on instruction+output (figures in benchmarks/README.md).
    ``partitions=0`` (in memory; N > 0, or ``"auto"`` for one per AUTO_PARTITION_ROWS rows and at
    least 4: with a task runner, the search as tasks over row partitions of ``partition_rows=200000``
    rows and N key-hash partitions, :class:`PartitionJob`; the same pairs, byte for byte).
    Dropped: ``near_duplicate``, detail = ``"<survivor id> jaccard=<estimate>"`` (the estimate
    against the survivor, which with leader clustering is always ≥ threshold).
    """

    def __init__(self, ngram: int = DEFAULT_NGRAM, num_perm: int = DEFAULT_NUM_PERM,
                 threshold: float = DEFAULT_THRESHOLD,
                 fields: Sequence[str] = DEFAULT_FIELDS, seed: int = 1, scheme: str = "affine32",
                 bands: int | None = None, rows: int | None = None, window: int = 16,
                 source_priority: Sequence[str] = (), clustering: str = "leader",
                 verify_fields: Sequence[str] = ("instruction", "output"), verify_threshold: float = 0.3,
                 partitions: int | str = 0, partition_rows: int = 200_000):
        self.mh = MinHashConfig(ngram, num_perm, threshold, seed, scheme, bands, rows)  # checks them
        if not 0.0 <= verify_threshold <= 1.0:
            raise ValueError(f"verify_threshold must be in [0, 1], got {verify_threshold}")
        self.verify_fields, self.verify_threshold = tuple(verify_fields), float(verify_threshold)
        if clustering not in CLUSTERINGS:
            raise ValueError(f"clustering must be one of {CLUSTERINGS}, got {clustering!r}")
        if window < 2:
            raise ValueError(f"window must be ≥ 2, got {window}")
        self.clustering, self.window = clustering, int(window)
        self.fields = tuple(fields)
        self.source_priority = tuple(source_priority)
        if partitions != "auto" and (isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 0):
            raise ValueError(f"partitions must be an integer ≥ 0 or 'auto', got {partitions!r}")
        if int(partition_rows) < 1:
            raise ValueError(f"need partition_rows ≥ 1, got {partition_rows}")
        # partitions > 0: the search of curate.minhash.partitioned over signatures held
        # partition_rows rows at a time, keys grouped in that many hash partitions (same pairs);
        # "auto": as many as keep a hash partition to AUTO_PARTITION_ROWS rows (hash_partitions)
        self.partitions, self.partition_rows = partitions, int(partition_rows)

    def hash_partitions(self, n: int) -> int:
        """The hash partitions a search over ``n`` rows uses: ``partitions``, or with "auto" at
        least 4 and enough that each holds about AUTO_PARTITION_ROWS rows' band keys."""
        if self.partitions == "auto":
            return max(4, -(-int(n) // AUTO_PARTITION_ROWS))
        return int(self.partitions)

    def signatures(self, df: pd.DataFrame, fields: Sequence[str] | None = None) -> np.ndarray:
        """The rows' signatures over ``fields`` (default: the operator's), their texts built part
        by part (the whole list of joined texts would cost about as much memory as the frame)."""
        fields = self.fields if fields is None else tuple(fields)
        sig = np.empty((len(df), self.mh.num_perm), dtype=np.uint32 if self.mh.scheme == "affine32" else np.uint64)
        for s in range(0, len(df), self.partition_rows):  # one array, filled a part at a time (no copy)
            part = df.iloc[s:s + self.partition_rows]
            sig[s:s + len(part)] = config_signatures(self.mh, row_texts(part, fields), progress=False)
        return sig

    def signature_parts(self, df: pd.DataFrame, fields: Sequence[str] | None = None) -> list[np.ndarray]:
        """The signatures a row partition (``partition_rows`` rows) at a time."""
        fields = self.fields if fields is None else tuple(fields)
        return [config_signatures(self.mh, row_texts(df.iloc[s:s + self.partition_rows], fields), progress=False)
                for s in range(0, len(df), self.partition_rows)]

    def _verify(self, df: pd.DataFrame, i: np.ndarray, j: np.ndarray,
                est: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Keep a pair unless its rows carry text outside ``verify_fields`` and their
        ``verify_fields`` alone fall below ``verify_threshold`` (see the class docstring)."""
        others = [f for f in self.fields if f not in self.verify_fields]
        if not len(i) or self.verify_threshold <= 0 or not others or not self.verify_fields:
            return i, j, est, 0
        extra = np.zeros(len(df), dtype=bool)
        for f in others:
            extra |= (df[f].astype(str).str.len() > 0).to_numpy()
        check = extra[i] | extra[j]
        if not check.any():
            return i, j, est, 0
        rows = np.unique(np.concatenate((i[check], j[check])))
        sub = self.signatures(df.iloc[rows], fields=self.verify_fields)
        pos = np.searchsorted(rows, np.concatenate((i[check], j[check])))
        k = int(check.sum())
        ok = np.ones(len(i), dtype=bool)
        # two empty verify texts (no shingles) agree trivially: the joined text decided
        ok[check] = pair_jaccard(sub, pos[:k], pos[k:]) >= self.verify_threshold
        return i[ok], j[ok], est[ok], int((~ok).sum())

    def _params(self) -> dict:
        mh = self.mh
        return {"ngram": mh.ngram, "num_perm": mh.num_perm, "threshold": mh.threshold,
                "fields": list(self.fields), "seed": mh.seed, "scheme": mh.scheme,
                "bands": mh.bands, "rows": mh.rows, "window": self.window,
                "source_priority": list(self.source_priority), "clustering": self.clustering,
                "verify_fields": list(self.verify_fields), "verify_threshold": self.verify_threshold,
                "partitions": self.partitions, "partition_rows": self.partition_rows}

    def _empty(self, df: pd.DataFrame) -> StageResult:
        return StageResult(df, drop_frame(df, self.name, "near_duplicate", ""),
                           empty_stats() | {"params": self._params(), "no_shingles": 0, "pairs": 0})

    def __call__(self, df: pd.DataFrame) -> StageResult:
        check_frame(df, self.fields, self.name)
        n = len(df)
        mh = self.mh
        if n == 0:
            return self._empty(df)
        if self.partitions:
            sig = PartitionedSignatures(self.signature_parts(df))
            i, j, est_ij = partitioned_near_duplicate_pairs(sig, mh.threshold, mh.bands, mh.rows, self.window,
                                                            self.hash_partitions(n))
            no_shingles = n - sum(len(nonempty_rows(p)) for p in sig.parts)
        else:
            sig = self.signatures(df)
            i, j, est_ij = near_duplicate_pairs(sig, mh.threshold, mh.bands, mh.rows, self.window)
            no_shingles = n - len(nonempty_rows(sig))
        i, j, est_ij, rejected = self._verify(df, i, j, est_ij)
        labels, surv = self._clusters(df, i, j, est_ij)
        d = np.flatnonzero(surv != np.arange(n))
        est = (pair_jaccard(sig, d, surv[d]) if isinstance(sig, np.ndarray) else
               np.count_nonzero(sig.rows(d) == sig.rows(surv[d]), axis=1) / mh.num_perm)
        del sig  # n × num_perm: let it go before the kept/dropped copies are made
        return self._result(df, labels, surv, est, len(i), rejected, no_shingles)

    # --- the same search as tasks on the run's workers (curate.minhash.partitioned.PartitionJob)

    def partition_job(self, in_path: str, work_dir: str, n: int, live: bool) -> PartitionJob | None:
        """The search over the rows of ``in_path`` as tasks, when the recipe asks for partitions;
        ``live``: only the rows the stage's steps before this one keep (their file ``live.npy``)."""
        if not self.partitions:
            return None
        return PartitionJob(str(in_path), str(work_dir), int(n), self.mh, self.fields, self.window,
                            self.hash_partitions(n), self.partition_rows, self.verify_fields, self.verify_threshold,
                            live)

    def finish_job(self, df: pd.DataFrame, job: PartitionJob) -> StageResult:
        """The operator's result from a finished job's files: ``df`` holds the rows searched, its
        index their input rows. Equal, byte for byte, to ``self(df)`` with ``partitions=0``."""
        check_frame(df, self.fields, self.name)
        if len(df) == 0:
            return self._empty(df)
        d = self.decide_job(df, job)
        return dedupe_result(df, self.name, d)

    def decide_job(self, df: pd.DataFrame, job: PartitionJob, fetch=None) -> Decision:
        """``finish_job``'s decision; ``df`` may be a light frame (``id``, ``source``, ``file``,
        ``row``, the output's length ``duplicates.OUTLEN``; no texts), ``fetch(positions)`` then
        gives example rows."""
        if len(df) == 0:
            stats = self._empty(df).stats
            return Decision(np.empty(0, np.int64), np.empty(0, dtype=object), "near_duplicate", stats)
        rows = df.index.to_numpy(dtype=np.int64)
        labels, surv, pairs, rejected = self._job_clusters(df, job)
        d = np.flatnonzero(surv != np.arange(len(df)))
        est = SignatureFiles(job).agreement(rows[d], rows[surv[d]])
        return self._decision(df, labels, surv, est, pairs, rejected, job_no_shingles(job, rows), fetch)

    def survivors_job(self, df: pd.DataFrame, job: PartitionJob) -> np.ndarray:
        """``decide_job``'s survivors alone (no figures, no examples): which rows it keeps."""
        return self._job_clusters(df, job)[1] if len(df) else np.empty(0, np.int64)

    def _job_clusters(self, df: pd.DataFrame, job: PartitionJob) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Cluster labels and survivors (positions in ``df``) from the job's verified pairs, with the
        pair count and how many pairs the verification rejected."""
        rows = df.index.to_numpy(dtype=np.int64)
        i, j, est_ij, rejected = job_verified_pairs(job)
        pi, pj = np.searchsorted(rows, i), np.searchsorted(rows, j)  # input rows → positions in df
        if len(i) and not (np.array_equal(rows[np.minimum(pi, len(rows) - 1)], i)
                           and np.array_equal(rows[np.minimum(pj, len(rows) - 1)], j)):
            raise RuntimeError(f"{self.name}: the job's pairs name rows the frame does not hold "
                               f"({job.work_dir}: stale work files?)")
        labels, surv = self._clusters(df, pi, pj, est_ij)
        return labels, surv, len(i), rejected

    def _clusters(self, df: pd.DataFrame, i: np.ndarray, j: np.ndarray,
                  est_ij: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cluster label and survivor (positions in ``df``) of each row, from the verified pairs."""
        if self.clustering != "leader" or not len(i):
            rank = priority_rank(df, self.source_priority)
            labels = cluster_pairs(len(df), i, j, est_ij, rank, self.clustering)
            return labels, survivors(df, labels, self.source_priority, rank)
        # Leader clustering touches only the rows some pair names (``cluster_pairs``), and ranks
        # only need to order those: they are ranked alone. Its label is the cluster's best-ranked
        # row (leaders are visited best first and take only rows not yet visited), which is the
        # survivor rule's pick: the labels are the survivors.
        rows = np.unique(np.concatenate((i, j)))
        labels = np.arange(len(df), dtype=np.int64)
        labels[rows] = rows[cluster_pairs(len(rows), np.searchsorted(rows, i), np.searchsorted(rows, j), est_ij,
                                          priority_rank(df.iloc[rows], self.source_priority))]
        return labels, labels.copy()

    def _result(self, df: pd.DataFrame, labels: np.ndarray, surv: np.ndarray, est_drop: np.ndarray,
                pairs: int, rejected: int, no_shingles: int) -> StageResult:
        """Figures and frames; ``est_drop``: each dropped row's estimated Jaccard with its survivor."""
        d = self._decision(df, labels, surv, est_drop, pairs, rejected, no_shingles)
        return dedupe_result(df, self.name, d)

    def _decision(self, df: pd.DataFrame, labels: np.ndarray, surv: np.ndarray, est_drop: np.ndarray,
                  pairs: int, rejected: int, no_shingles: int, fetch=None) -> Decision:
        n = len(df)
        drop = surv != np.arange(n)
        est = np.ones(n)
        est[drop] = est_drop
        details = np.full(n, "", dtype=object)  # only the dropped rows' ids are made into strings
        d = np.flatnonzero(drop)
        details[d] = [f"{i} jaccard={e:.3f}" for i, e in zip(ids_at(df, surv[d]), est[d])]
        stats = group_stats(df, labels, surv, "near_duplicate", details, fetch=fetch)
        stats["params"] = self._params()
        stats["pairs"] = int(pairs)
        stats["pairs_rejected_by_verify"] = rejected
        stats["no_shingles"] = int(no_shingles)
        return Decision(surv, details, "near_duplicate", stats)
