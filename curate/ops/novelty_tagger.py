from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..embed import DEFAULT_DIMS, TRANSFORM_CHUNK, Embedder, embed, instruction_texts
from ..jobs import RowJob
from ..novelty import (DEFAULT_REF_SIZE, KNN_CHUNK, knn_mean_distance, novelty_scores, reference_positions,
                       reference_slots)
from ..records import StageResult, empty_drops
from .base import Tagger, register


@register("novelty_tagger")
class NoveltyTagger(Tagger):
    """Adds ``novelty`` (float): mean cosine distance of a row's instruction to its ``k`` nearest
    neighbours (see ``novelty_scores``) in the TF-IDF/SVD embedding of ``curate.embed``.

    Params: ``k`` (10), ``ref_size`` (10,000: neighbours are searched in a seeded sample of that many
    rows; see ``DEFAULT_REF_SIZE``), ``dims`` (128), ``input_chars`` (100), ``fit_sample`` (20,000), ``seed`` (0), ``column``.
    Drops nothing. stats: ``mean``/``median``/``p10``/``p90`` of the score, ``params`` and, as
    examples, the three most and three least novel rows.
    """

    def __init__(self, k: int = 10, ref_size: int = DEFAULT_REF_SIZE, dims: int = DEFAULT_DIMS, input_chars: int = 100,
                 fit_sample: int = 20000, seed: int = 0, column: str = "novelty"):
        if k < 1:
            raise ValueError(f"novelty_tagger: k must be >= 1, got {k}")
        self.k, self.ref_size, self.dims = int(k), int(ref_size), int(dims)
        self.input_chars, self.fit_sample, self.seed, self.column = int(input_chars), int(fit_sample), int(seed), column

    def __call__(self, df: pd.DataFrame) -> StageResult:
        kept = df.copy()
        if len(df) == 0:
            kept[self.column] = pd.Series(dtype="float64")
            return StageResult(kept, empty_drops(df, self.name), {"changed": 0, "examples": []})
        x = embed(df, seed=self.seed, dims=self.dims, input_chars=self.input_chars, fit_sample=self.fit_sample)
        return self._result(df, kept, novelty_scores(x, k=self.k, ref_size=self.ref_size, seed=self.seed))

    def _result(self, df: pd.DataFrame, kept: pd.DataFrame, raw: np.ndarray) -> StageResult:
        scores, stats = self._tags(raw, lambda pos: df.iloc[pos])
        kept[self.column] = pd.Series(scores, index=df.index, dtype="float64")
        return StageResult(kept, empty_drops(df, self.name), stats)

    def tag_values(self, job: "NoveltyJob", n: int, fetch) -> tuple[dict[str, tuple[np.ndarray, str]], dict]:
        """``finish_job``'s tags without the rows: {column: (values for the ``n`` rows, dtype)} and
        the figures; ``fetch(positions)`` gives the example rows (``id``, ``instruction``)."""
        if n != job.n:
            raise RuntimeError(f"{self.name}: the job covered {job.n} rows, the stage has {n}")
        raw = np.concatenate([job.load(f) for f in job.rows_files("novelty-{:05d}.npy")])
        scores, stats = self._tags(raw, fetch)
        return {self.column: (scores, "float64")}, stats

    def _tags(self, raw: np.ndarray, fetch) -> tuple[np.ndarray, dict]:
        """The scores (rounded) and the figures; ``fetch(positions)``: those rows (id, instruction)."""
        scores = np.round(raw, 6)
        order = np.argsort(-scores, kind="mergesort")
        pick = list(order[:3]) + list(order[-3:][::-1])
        at = np.unique(np.asarray(pick, dtype=np.int64))
        rows = fetch(at).set_axis(at, axis=0) if len(at) else None
        examples = [{"id": str(rows.loc[i, "id"]), "field": self.column, "before": "",
                     "after": f"{scores[i]:.3f} {str(rows.loc[i, 'instruction'])[:80]}"} for i in pick]
        stats = {"changed": 0, "examples": examples,
                 "params": {"k": self.k, "ref_size": self.ref_size, "dims": self.dims, "seed": self.seed},
                 "mean": float(np.mean(scores)), "median": float(np.median(scores)),
                 "p10": float(np.quantile(scores, 0.1)), "p90": float(np.quantile(scores, 0.9))}
        return scores, stats

    # --- the same scores as tasks on the run's workers (curate.jobs)

    def embedder(self) -> Embedder:
        return Embedder(dims=self.dims, fit_sample=self.fit_sample, seed=self.seed)

    def tag_job(self, in_path: str, work_dir: str, n: int, partition_rows: int,
                store: str | None = None) -> "NoveltyJob | None":
        """The embedding fit and reference rows (one task), then each row partition's scores (one
        task each); ``store``: the run's fit store (``curate.embed.fit_store``), as the merge uses."""
        return NoveltyJob(str(in_path), str(work_dir), int(n), int(partition_rows), KNN_CHUNK, self, store) if n else None

    def finish_job(self, df: pd.DataFrame, job: "NoveltyJob") -> StageResult:
        """``self(df)``'s result, byte for byte, from a finished job's files (``df``: the job's rows)."""
        if len(df) != job.n:
            raise RuntimeError(f"{self.name}: the job covered {job.n} rows, the frame holds {len(df)}")
        raw = np.concatenate([job.load(f) for f in job.rows_files("novelty-{:05d}.npy")])
        return self._result(df, df.copy(), raw)


@dataclass(frozen=True)
class NoveltyJob(RowJob):
    """``novelty_tagger`` as tasks: ``fit 0`` fits the embedding on its seeded sample and embeds the
    reference rows (embedder.pkl, ref.npy); ``rows p`` embeds partition p and scores it against them
    (novelty-p.npy). Partition edges are multiples of the neighbour search's chunk."""

    op: NoveltyTagger | None = None
    store: str | None = None
    # a row's neighbour search costs about three times its cluster assignment (benchmarks/README.md)
    cost_per_row = 3.0

    def _texts(self, frame: pd.DataFrame) -> list[str]:
        return instruction_texts(frame, self.op.input_chars)

    def fit_step(self) -> None:
        from ..embed import fit_store

        emb = self.op.embedder()
        sample = self.read_positions(emb.fit_positions(self.n), ["instruction", "input"])
        with fit_store(self.store):  # the fit the report reuses, as the in-memory path keeps it
            emb.fit(self._texts(sample), sampled=True)
        ref_idx = reference_positions(self.n, self.op.ref_size, self.op.seed)
        ref = emb.transform(self._texts(self.read_positions(ref_idx, ["instruction", "input"])))
        self.save("embedder.pkl", emb)
        self.save("ref.npy", ref)

    def rows_step(self, p: int, start: int, stop: int) -> None:
        emb = self.load("embedder.pkl")
        texts = self._texts(self.read_rows(start, stop, columns=["instruction", "input"]))
        self._save_rows(p, start, stop, emb.transform(texts) if texts else None)

    def _save_rows(self, p: int, start: int, stop: int, x: np.ndarray | None) -> None:
        """Partition p's scores from its rows' embeddings ``x`` (None: no rows)."""
        if x is None:
            self.save(f"novelty-{p:05d}.npy", np.empty(0, dtype=np.float64))
            return
        own = reference_slots(self.n, self.op.ref_size, self.op.seed)[start:stop]
        self.save(f"novelty-{p:05d}.npy", knn_mean_distance(x, self.load("ref.npy"), k=self.op.k, ref_is_x=own,
                                                            chunk=KNN_CHUNK))

    # --- sharing the rows' TF-IDF with another job (curate.jobs.SharedTfidfJob)

    def tfidf_key(self) -> tuple | None:
        """What fixes the fitted vectoriser and the texts (``Embedder``: char_wb 1-3-grams)."""
        emb = self.op.embedder()
        return ("char_wb", tuple(emb.ngram_range), emb.max_features, emb.fit_sample, emb.seed, self.op.input_chars,
                self.in_path, self.n)

    def tfidf_source(self) -> tuple[int, Any]:
        return self.op.input_chars, self.load("embedder.pkl")._vec

    def rows_from_tfidf(self, p: int, start: int, stop: int, x: Any, at: int = 0) -> None:
        """``rows_step`` from TF-IDF rows: rows start..stop are those of ``x`` from ``at`` on,
        projected as ``Embedder.transform`` does, ``TRANSFORM_CHUNK`` rows at a time."""
        if stop == start:
            self._save_rows(p, start, stop, None)
            return
        emb, step = self.load("embedder.pkl"), TRANSFORM_CHUNK
        z = [emb.project(x[at + a:at + min(a + step, stop - start)]) for a in range(0, stop - start, step)]
        self._save_rows(p, start, stop, np.concatenate(z))
