"""A fixed set of texts indexed for near-duplicate lookup (e.g. eval items kept out of training)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .config import DEFAULT_NGRAM, DEFAULT_NUM_PERM, DEFAULT_THRESHOLD, MinHashConfig
from .lsh import row_hash
from .signatures import EMPTY, config_signatures

class NearDupIndex:
    """Near-duplicate lookup against a fixed set of texts (e.g. keep eval items out of training).

    ``NearDupIndex(eval_texts).query(train_texts)`` is a bool mask of the training texts whose
    estimated Jaccard with some indexed text is ≥ threshold (candidates from the same LSH bands as
    the deduplicator, then verified by signature agreement). Texts with no shingles never match.
    """

    def __init__(self, texts: Sequence[str], ngram: int = DEFAULT_NGRAM, num_perm: int = DEFAULT_NUM_PERM,
                 threshold: float = DEFAULT_THRESHOLD,
                 seed: int = 1, scheme: str = "affine32", progress: bool | None = None):
        self.mh = MinHashConfig(ngram, num_perm, threshold, seed, scheme)
        self.progress = progress
        sig = config_signatures(self.mh, list(texts), progress=progress)
        self.size = len(sig)
        nonempty = np.flatnonzero(~(sig == EMPTY).all(axis=1))
        # One entry per distinct signature: identical indexed texts would only repeat candidates.
        _, first = np.unique(row_hash(sig[nonempty]), return_index=True)
        self._ids = nonempty[np.sort(first)]  # position in ``texts`` of each entry
        self._sig = sig[self._ids]
        self._keys, self._order = [], []
        for k in range(self.mh.bands):
            keys = row_hash(self._sig[:, k * self.mh.rows:(k + 1) * self.mh.rows])
            order = np.argsort(keys, kind="stable")
            self._keys.append(keys[order])
            self._order.append(order)

    def __len__(self) -> int:
        return self.size

    def best_match(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """For each text: position of its most similar indexed text among the LSH candidates
        (-1 when none reaches the threshold; ties → smallest position) and that estimated Jaccard
        (0.0 when none)."""
        q = config_signatures(self.mh, list(texts), progress=self.progress)
        nq = len(q)
        best = np.full(nq, -1, dtype=np.int64)
        score = np.zeros(nq, dtype=np.float64)
        if nq == 0 or len(self._sig) == 0:
            return best, score
        qok = ~(q == EMPTY).all(axis=1)
        qi_all, ei_all = [], []
        for k in range(self.mh.bands):
            keys = row_hash(q[:, k * self.mh.rows:(k + 1) * self.mh.rows])
            lo = np.searchsorted(self._keys[k], keys, "left")
            hi = np.searchsorted(self._keys[k], keys, "right")
            cnt = np.where(qok, hi - lo, 0)
            if cnt.sum() == 0:
                continue
            qi = np.repeat(np.arange(nq), cnt)
            # position within each query's run of candidates → index into the sorted keys
            offs = np.arange(len(qi)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            qi_all.append(qi)
            ei_all.append(self._order[k][np.repeat(lo, cnt) + offs])
        if not qi_all:
            return best, score
        code = np.unique(np.concatenate(qi_all) * len(self._sig) + np.concatenate(ei_all))
        qi, ei = code // len(self._sig), code % len(self._sig)
        est = np.empty(len(qi))
        for s in range(0, len(qi), 32768):
            est[s:s + 32768] = np.count_nonzero(q[qi[s:s + 32768]] == self._sig[ei[s:s + 32768]], axis=1) / self.mh.num_perm
        ok = est >= self.mh.threshold
        qi, ei, est = qi[ok], self._ids[ei[ok]], est[ok]
        # best per query: highest estimate, then smallest position
        order = np.lexsort((ei, -est, qi))
        qi, ei, est = qi[order], ei[order], est[order]
        firsts = np.concatenate(([True], qi[1:] != qi[:-1])) if len(qi) else np.empty(0, bool)
        best[qi[firsts]] = ei[firsts]
        score[qi[firsts]] = est[firsts]
        return best, score

    def query(self, texts: Sequence[str]) -> np.ndarray:
        """Bool mask: True where the text is a near-duplicate of some indexed text."""
        return self.best_match(texts)[0] >= 0
