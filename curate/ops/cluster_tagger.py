"""``cluster_tagger`` groups rows by their wording: TF-IDF over character n-grams (or jieba words) of
the instruction plus the start of the input, TruncatedSVD, L2-normalisation, MiniBatchKMeans. All
of it is seeded; clusters are renumbered by size (0 = largest) so ids read the same every run.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..jobs import RowJob
from ..records import StageResult, empty_drops
from .base import Tagger, register


def _jieba_tokenizer(text: str) -> list[str]:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading lines would fill the run log
    return [w for w in jieba.lcut(text) if w.strip()]


def _overlaps(a: str, b: str) -> bool:
    """Char n-grams of one phrase ("描述", "描述一", "述一个"): keep only one of them as a name."""
    return a in b or b in a or a[1:] == b[:-1] or b[1:] == a[:-1] or a[1:] in b or b[1:] in a


@register("cluster_tagger")
class ClusterTagger(Tagger):
    """Adds ``cluster`` (int, 0 = largest cluster) from unsupervised clustering of the wording.

    Pipeline: TF-IDF (``analyzer="char_wb"`` character ``ngram_range``-grams, or jieba word
    ``word_ngram_range``-grams with ``tokenizer="jieba"``; sublinear tf, ``min_df=2``, at most
    ``max_features`` terms) over instruction + the first ``input_chars`` characters of the input →
    TruncatedSVD to ``svd_dims`` → L2 normalise → MiniBatchKMeans(``n_clusters``, ``n_init`` fixed,
    ``random_state=seed``). The vocabulary, SVD and k-means are fitted on at most ``fit_sample``
    rows (a seeded sample) and then applied to every row, ``chunk_rows`` rows at a time (the
    labels do not depend on the chunking), the chunks on ``chunk_threads`` threads (2 by default; same output). BLAS runs on
    ``n_threads`` threads
    (1 by default). Deterministic for the same rows and params, whatever the thread counts.

    Drops nothing. stats: ``n_clusters`` (effective), ``sizes`` and ``top_terms`` per cluster (the
    highest-weighted terms of the cluster's mean TF-IDF vector), so a report can name clusters.
    """

    def __init__(self, n_clusters: int = 50, max_features: int = 50000, ngram_range: tuple[int, int] | list[int] = (1, 3),
                 tokenizer: str = "char", word_ngram_range: tuple[int, int] | list[int] = (1, 2), svd_dims: int = 100, seed: int = 0, fit_sample: int = 20000,
                 input_chars: int = 100, n_init: int = 3, top_terms: int = 8, n_threads: int = 1,
                 column: str = "cluster", chunk_rows: int = 100_000, chunk_threads: int = 2):
        if n_clusters < 1:
            raise ValueError(f"cluster_tagger: n_clusters must be >= 1, got {n_clusters}")
        if tokenizer not in ("char", "jieba"):
            raise ValueError(f"cluster_tagger: tokenizer must be 'char' or 'jieba', got {tokenizer!r}")
        self.n_clusters = int(n_clusters)
        self.max_features = int(max_features)
        self.ngram_range = tuple(int(v) for v in ngram_range)
        self.tokenizer = tokenizer
        self.word_ngram_range = tuple(int(v) for v in word_ngram_range)
        self.svd_dims = int(svd_dims)
        self.seed = int(seed)
        self.fit_sample = int(fit_sample)
        self.input_chars = int(input_chars)
        self.n_init = int(n_init)
        self.top_terms = int(top_terms)
        self.n_threads = int(n_threads)
        self.column = column
        if chunk_rows < 1:
            raise ValueError(f"cluster_tagger: chunk_rows must be >= 1, got {chunk_rows}")
        self.chunk_rows = int(chunk_rows)
        self.chunk_threads = int(chunk_threads)

    def _vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        common = dict(max_features=self.max_features, sublinear_tf=True, min_df=2, dtype=np.float32)
        if self.tokenizer == "jieba":
            return TfidfVectorizer(tokenizer=_jieba_tokenizer, token_pattern=None, lowercase=True,
                                   ngram_range=self.word_ngram_range, **common)
        return TfidfVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, lowercase=True, **common)

    def __call__(self, df: pd.DataFrame) -> StageResult:
        with self._blas():
            return self._run(df)

    def _blas(self):
        from ..threads import blas_threads

        # A fixed thread count (one by default) keeps float sums reproducible; one is also fastest:
        # the SVD's QR is many times slower when BLAS threads compete with other work for few cores.
        return blas_threads(self.n_threads)

    def _run(self, df: pd.DataFrame) -> StageResult:
        kept = df.copy()
        n = len(df)
        if n == 0:
            kept[self.column] = pd.Series(dtype="int64")
            return StageResult(kept, empty_drops(df, self.name), {"n_clusters": 0, "sizes": {}, "top_terms": {}})

        from ..embed import instruction_texts

        # the input is cut so long contexts (articles, code) do not drown the instruction's wording
        texts = instruction_texts(df, self.input_chars)
        fit = self._fit([texts[i] for i in self.fit_positions(n)])

        # Every row is transformed and assigned a chunk at a time (each row's label depends on that
        # row alone, so the labels equal one pass over all rows), with TF-IDF counts built by numpy
        # (curate.embed.tfidf_transform, the same matrix as sklearn's), so millions of rows never
        # hold their dense SVD coordinates at once. The per-cluster TF-IDF sums that name the
        # clusters are added up chunk by chunk.
        raw = np.empty(n, dtype=np.int64)
        raw_sums = np.zeros((fit["k"], len(fit["vec"].vocabulary_)), dtype=np.float64)
        for a, (lab, part) in self._chunks(fit, texts):
            raw[a:a + len(lab)] = lab
            raw_sums += part.toarray()
        return self._result(df, kept, fit, raw, raw_sums)

    def fit_positions(self, n: int) -> np.ndarray:
        """The seeded sample of ``n`` rows the vocabulary, SVD and k-means are fitted on."""
        rng = np.random.default_rng(self.seed)
        return np.sort(rng.choice(n, size=self.fit_sample, replace=False)) if n > self.fit_sample else np.arange(n)

    def _fit(self, fit_texts: list[str]) -> dict:
        """Vectoriser, SVD (or None) and k-means fitted on the sample's texts."""
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.decomposition import TruncatedSVD
        from sklearn.preprocessing import normalize

        vec = self._vectorizer()
        if len(fit_texts) < 2:
            vec.set_params(min_df=1)
        try:
            x_fit = vec.fit_transform(fit_texts)
        except ValueError:  # every text empty: no vocabulary
            vec.set_params(min_df=1, analyzer="char", ngram_range=(1, 1))
            x_fit = vec.fit_transform([t or " " for t in fit_texts])
        k = min(self.n_clusters, len(set(fit_texts)))
        dims = min(self.svd_dims, x_fit.shape[1] - 1, x_fit.shape[0] - 1)
        svd = None
        if dims >= 2:
            svd = TruncatedSVD(n_components=dims, random_state=self.seed, algorithm="randomized", n_iter=5)
            z_fit = normalize(svd.fit_transform(x_fit))
        else:  # tiny inputs: cluster the TF-IDF vectors directly
            z_fit = normalize(x_fit).toarray()

        km = MiniBatchKMeans(n_clusters=k, random_state=self.seed, n_init=self.n_init,
                             batch_size=2048, max_iter=100, reassignment_ratio=0.01)
        km.fit(z_fit.astype(np.float64))
        return {"vec": vec, "svd": svd, "km": km, "k": k, "dims": dims, "fit_rows": len(fit_texts),
                "features": int(x_fit.shape[1])}

    def _chunks(self, fit: dict, texts: list[str], offset: int = 0):
        """``(start, (labels, per-cluster TF-IDF sums))`` of each ``chunk_rows`` chunk of ``texts``,
        in order; ``offset``: where ``texts`` start in the stage's rows (a chunk edge)."""
        from ..embed import tfidf_transform

        def chunk(a: int) -> tuple[np.ndarray, Any]:
            return self._assign(fit, tfidf_transform(fit["vec"], texts[a:a + self.chunk_rows]))

        starts = range(0, len(texts), self.chunk_rows)
        # Chunks on ``chunk_threads`` threads (much of the work releases the GIL); results are taken in
        # chunk order, so the sums, and so every output, are the same whatever the thread count.
        with ThreadPoolExecutor(max_workers=max(1, self.chunk_threads)) as pool:
            for a, res in zip(starts, pool.map(chunk, starts)):
                yield offset + a, res

    @staticmethod
    def _assign(fit: dict, x: Any) -> tuple[np.ndarray, Any]:
        """One chunk's raw k-means labels and per-cluster TF-IDF sums (k x vocabulary, CSR), from
        its TF-IDF rows ``x``."""
        import scipy.sparse as sp
        from sklearn.preprocessing import normalize

        svd, km, k = fit["svd"], fit["km"], fit["k"]
        z = normalize(svd.transform(x)) if svd is not None else normalize(x).toarray()
        lab = km.predict(z.astype(np.float64))
        onehot = sp.csr_matrix((np.ones(len(lab), dtype=np.float32), (lab, np.arange(len(lab)))), shape=(k, len(lab)))
        return lab, (onehot @ x).tocsr()

    def _result(self, df: pd.DataFrame, kept: pd.DataFrame, fit: dict, raw: np.ndarray,
                raw_sums: np.ndarray) -> StageResult:
        labels, stats = self._tags(fit, raw, raw_sums)
        kept[self.column] = pd.Series(labels, index=df.index, dtype="int64")
        return StageResult(kept, empty_drops(df, self.name), stats)

    def _tags(self, fit: dict, raw: np.ndarray, raw_sums: np.ndarray) -> tuple[np.ndarray, dict]:
        """Each row's cluster and the figures, from the fit and the raw k-means labels and sums."""
        # Renumber by size (largest first, ties by raw id) so ids are stable and readable.
        k, dims = fit["k"], fit["dims"]
        sizes = np.bincount(raw, minlength=k)
        order = sorted(range(k), key=lambda c: (-int(sizes[c]), c))
        remap = np.empty(k, dtype=np.int64)
        remap[order] = np.arange(k)
        labels = remap[raw]
        sums = np.empty_like(raw_sums)
        sums[remap] = raw_sums
        stats = {
            "n_clusters": int(len(np.unique(labels))),
            "n_clusters_requested": self.n_clusters,
            "fit_rows": int(fit["fit_rows"]),
            "features": int(fit["features"]),
            "svd_dims": int(dims) if dims >= 2 else 0,
            "sizes": {str(c): int(v) for c, v in enumerate(np.bincount(labels, minlength=k))},
            "top_terms": self._top_terms(sums, k, fit["vec"]),
        }
        return labels, stats

    # --- the same tags as tasks on the run's workers (curate.jobs)

    def tag_job(self, in_path: str, work_dir: str, n: int, partition_rows: int,
                store: str | None = None) -> "ClusterJob | None":
        """The fit (one task) and the assignment of each row partition (one task each); ``store``
        (the run's fit store) is not used: these fits are the stage's own."""
        return ClusterJob(str(in_path), str(work_dir), int(n), int(partition_rows), self.chunk_rows, self) if n else None

    def finish_job(self, df: pd.DataFrame, job: "ClusterJob") -> StageResult:
        """``self(df)``'s result, byte for byte, from a finished job's files (``df``: the job's rows)."""
        if len(df) != job.n:
            raise RuntimeError(f"{self.name}: the job covered {job.n} rows, the frame holds {len(df)}")
        return self._result(df, df.copy(), *self._job_files(job))

    def _job_files(self, job: "ClusterJob") -> tuple[dict, np.ndarray, np.ndarray]:
        fit = job.load("fit.pkl")
        raw = np.concatenate([job.load(f) for f in job.rows_files("labels-{:05d}.npy")])
        raw_sums = np.zeros((fit["k"], len(fit["vec"].vocabulary_)), dtype=np.float64)
        for f in job.rows_files("sums-{:05d}.pkl"):
            for part in job.load(f):  # per chunk, in order: the same float sums as one pass
                raw_sums += part.toarray()
        return fit, raw, raw_sums

    def tag_values(self, job: "ClusterJob", n: int, fetch) -> tuple[dict[str, tuple[np.ndarray, str]], dict]:
        """``finish_job``'s tags without the rows: {column: (values for the ``n`` rows, dtype)} and
        the figures (``fetch`` is not needed: the figures show no rows)."""
        if n != job.n:
            raise RuntimeError(f"{self.name}: the job covered {job.n} rows, the stage has {n}")
        labels, stats = self._tags(*self._job_files(job))
        return {self.column: (labels, "int64")}, stats

    def _top_terms(self, sums: np.ndarray, k: int, vec) -> dict[str, list[str]]:
        """``sums``: each cluster's summed TF-IDF vector (k x vocabulary)."""
        names = vec.get_feature_names_out()
        out: dict[str, list[str]] = {}
        for c in range(k):
            row = sums[c]
            # Skip single characters and whitespace-padded fragments: they name nothing.
            cand = np.argsort(-row, kind="stable")
            terms = []
            for j in cand:
                if row[j] <= 0 or len(terms) >= self.top_terms:
                    break
                t = str(names[j]).strip()
                if len(t) >= 2 and not any(_overlaps(t, u) for u in terms):
                    terms.append(t)
            out[str(c)] = terms
        return out


@dataclass(frozen=True)
class ClusterJob(RowJob):
    """``cluster_tagger`` as tasks: ``fit 0`` fits on the seeded sample (fit.pkl); ``rows p``
    labels partition p's rows and sums their TF-IDF vectors per cluster, a chunk at a time
    (labels-p.npy, sums-p.pkl). Partition edges are multiples of ``chunk_rows``."""

    op: ClusterTagger | None = None

    def _texts(self, frame: pd.DataFrame) -> list[str]:
        from ..embed import instruction_texts

        return instruction_texts(frame, self.op.input_chars)

    def fit_step(self) -> None:
        sample = self.read_positions(self.op.fit_positions(self.n), ["instruction", "input"])
        with self.op._blas():
            self.save("fit.pkl", self.op._fit(self._texts(sample)))

    def rows_step(self, p: int, start: int, stop: int) -> None:
        fit = self.load("fit.pkl")
        texts = self._texts(self.read_rows(start, stop, columns=["instruction", "input"]))
        with self.op._blas():
            self._save_rows(p, [res for _, res in self.op._chunks(fit, texts, start)])

    def _save_rows(self, p: int, chunks: list[tuple[np.ndarray, Any]]) -> None:
        labels = [lab for lab, _ in chunks]
        self.save(f"labels-{p:05d}.npy", np.concatenate(labels) if labels else np.empty(0, np.int64))
        self.save(f"sums-{p:05d}.pkl", [part for _, part in chunks])

    # --- sharing the rows' TF-IDF with another job (curate.jobs.SharedTfidfJob)

    def tfidf_key(self) -> tuple | None:
        """What fixes the fitted vectoriser and the texts (None: not char_wb n-grams)."""
        op = self.op
        if op.tokenizer != "char":
            return None
        return ("char_wb", tuple(op.ngram_range), op.max_features, op.fit_sample, op.seed, op.input_chars,
                self.in_path, self.n)

    def tfidf_source(self) -> tuple[int, Any]:
        return self.op.input_chars, self.load("fit.pkl")["vec"]

    def rows_from_tfidf(self, p: int, start: int, stop: int, x: Any, at: int = 0) -> None:
        """``rows_step`` from TF-IDF rows: rows start..stop are those of ``x`` from ``at`` on."""
        fit, step = self.load("fit.pkl"), self.op.chunk_rows
        with self.op._blas():
            self._save_rows(p, [self.op._assign(fit, x[at + a:at + min(a + step, stop - start)])
                                for a in range(0, stop - start, step)])
