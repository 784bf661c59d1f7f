from __future__ import annotations

import numpy as np
import pandas as pd

from ..embed import DEFAULT_DIMS, embed
from ..novelty import DEFAULT_REF_SIZE, novelty_scores
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
        scores = np.round(novelty_scores(x, k=self.k, ref_size=self.ref_size, seed=self.seed), 6)
        kept[self.column] = pd.Series(scores, index=df.index, dtype="float64")
        order = np.argsort(-scores, kind="mergesort")
        pick = list(order[:3]) + list(order[-3:][::-1])
        examples = [{"id": str(df["id"].iloc[i]), "field": self.column, "before": "",
                     "after": f"{scores[i]:.3f} {str(df['instruction'].iloc[i])[:80]}"} for i in pick]
        stats = {"changed": 0, "examples": examples,
                 "params": {"k": self.k, "ref_size": self.ref_size, "dims": self.dims, "seed": self.seed},
                 "mean": float(np.mean(scores)), "median": float(np.median(scores)),
                 "p10": float(np.quantile(scores, 0.1)), "p90": float(np.quantile(scores, 0.9))}
        return StageResult(kept, empty_drops(df, self.name), stats)
