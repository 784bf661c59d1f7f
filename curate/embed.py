"""A small, deterministic embedding of instructions (TF-IDF over character n-grams, then SVD).

Why TF-IDF/SVD and not a neural sentence encoder: the project runs offline and loads no model
weights, and the figures it feeds (Vendi score, k-center selection, novelty) compare sets of
*instructions* by wording. Character 1–3-grams (``char_wb``) need no word segmentation, so Chinese,
English remnants and code are all handled the same way; sublinear TF-IDF down-weights the template
words every instruction shares ("请", "以下"); TruncatedSVD to ``dims`` dimensions merges n-grams
that occur together (a cheap LSA: "翻译"/"译成"/"英文" land near each other), and L2 normalisation
makes a dot product a cosine similarity. Known limit: two paraphrases with no characters in common
land far apart; this embedding measures lexical, not semantic, diversity.

Everything is seeded (the vocabulary and the SVD are fitted on a seeded sample of at most
``fit_sample`` rows and then applied to all), and BLAS runs on one thread by default so float sums
and therefore bytes are reproducible.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd


DEFAULT_DIMS = 128
# Rows ``Embedder.transform`` handles at a time: one chunk's TF-IDF matrix and float64 coordinates held
TRANSFORM_CHUNK = 50_000


def instruction_texts(df: pd.DataFrame, input_chars: int = 100) -> list[str]:
    """Instruction plus the start of the input (long contexts must not drown the instruction)."""
    inputs = df["input"].astype(str).tolist() if "input" in df.columns else [""] * len(df)
    # lists, not the Series: iterating an Arrow-backed column costs a Python object per element
    return [f"{ins} {inp[:input_chars]}".strip() for ins, inp in zip(df["instruction"].astype(str).tolist(), inputs)]


def code_points(text: str) -> np.ndarray:
    """The characters of ``text`` as uint64 code points (room to pack n-grams, see ``packed_ngrams``)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)


def packed_ngrams(cps: np.ndarray, lengths: np.ndarray,
                  ns: Iterable[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``cps`` (``code_points``) laid end to end as segments of ``lengths`` characters (texts, or
    padded words): for each n of ``ns``, ``(n, starts, codes)`` — the positions where an n-gram
    starts and stays inside its segment, and each such n-gram as one integer of 21 bits a character
    (exact for n <= 3: code points are < 2**21)."""
    seg_starts = np.cumsum(lengths) - lengths
    # characters from each position to the end of its segment
    tail = np.repeat(lengths, lengths) - (np.arange(len(cps), dtype=np.int64) - np.repeat(seg_starts, lengths))
    for n in ns:
        p = np.flatnonzero(tail >= n)
        code = cps[p]
        for j in range(1, n):
            code = (code << np.uint64(21)) | cps[p + j]
        yield n, p, code


def _vocab_tables(vec: Any) -> dict[int, tuple[Any, np.ndarray]]:
    """Per n-gram length n: a hash index of the vocabulary's n-grams packed as integers (21 bits a
    character) and the column of each; cached on the fitted vectoriser."""
    cached = getattr(vec, "_tiger_tables", None)
    if cached is not None and cached[0] is vec.vocabulary_:
        return cached[1]
    by_n: dict[int, tuple[list[int], list[int]]] = {}
    for term, col in vec.vocabulary_.items():
        code = 0
        for ch in term:
            code = (code << 21) | ord(ch)
        codes, cols = by_n.setdefault(len(term), ([], []))
        codes.append(code)
        cols.append(col)
    tables = {n: (pd.Index(np.array(c, dtype=np.uint64)), np.array(j, dtype=np.int64)) for n, (c, j) in by_n.items()}
    vec._tiger_tables = (vec.vocabulary_, tables)
    return tables


_SPACE: np.ndarray | None = None


def _space_table() -> np.ndarray:
    """For every code point, whether ``str.split()`` splits there (``str.isspace``); made once."""
    global _SPACE
    if _SPACE is None:
        table = np.zeros(0x110000, dtype=bool)
        table[[i for i in range(0x110000) if chr(i).isspace()]] = True
        _SPACE = table
    return _SPACE


def padded_words(docs: list[str], lowercase: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The words of ``docs`` as sklearn's ``char_wb`` analyser takes them (``doc.lower().split()``,
    each word padded with one space on each side): the doc of each word, each padded word's
    length, and the padded words' code points end to end. Found in numpy on the docs joined by a
    space, which splits there as a doc's end does (and lower-cases as it: a space is neither cased
    nor case-ignorable, so final sigma sees the same context)."""
    low = [d.lower() for d in docs] if lowercase else list(docs)
    lens = np.fromiter(map(len, low), dtype=np.int64, count=len(low))
    cps = code_points(" ".join(low))
    space = _space_table()[cps]
    inside = ~space
    starts = inside.copy()
    starts[1:] &= space[:-1]
    word = np.cumsum(starts)[inside] - 1  # the word of each character inside a word
    doc_of_word = np.repeat(np.arange(len(low), dtype=np.int64), lens + 1)[:len(cps)][starts]
    wl = np.bincount(word, minlength=len(doc_of_word)).astype(np.int64) + 2
    out = np.full(int(wl.sum()), 32, dtype=np.uint64)
    out[np.arange(len(word), dtype=np.int64) + 2 * word + 1] = cps[inside]
    return doc_of_word, wl, out


def char_wb_counts(vec: Any, texts: list[str], block: int = 20000) -> Any:
    """What ``vec``'s CountVectorizer part gives for ``texts`` (a fitted sklearn vectoriser with
    ``analyzer="char_wb"``, n-grams of at most 3 characters): the same float32 CSR matrix of n-gram
    counts, bit for bit, built with numpy instead of sklearn's Python loop over every n-gram (several
    times faster; tested equal on real and hostile rows). ``None`` for any other vectoriser settings.

    char_wb, as sklearn does it: lower-case, split on whitespace, pad each word with one space on
    each side, take the n-grams inside each padded word (``padded_words``). Each n-gram becomes one
    integer, looked up in the vocabulary's hash index; a block's (row, column) hits, as one int32
    key each, are sorted (a vectorised sort) and their repeats counted, which gives the rows'
    columns in order and their counts without scipy's conversion and per-row sorts."""
    from scipy import sparse

    lo, hi = vec.ngram_range
    if (vec.analyzer != "char_wb" or hi > 3 or lo < 1 or vec.preprocessor is not None or vec.strip_accents
            or vec.binary or vec.input != "content" or not hasattr(vec, "vocabulary_")):
        return None
    tables = _vocab_tables(vec)
    width = len(vec.vocabulary_)
    block = max(1, min(block, (2 ** 31 - 1) // max(width, 1)))  # row * width + column fits an int32
    data, indices, per_row = [], [], []
    for a in range(0, len(texts), block):
        docs = texts[a:a + block]
        doc_of_word, wl, cps = padded_words(docs, vec.lowercase)
        doc = np.repeat(doc_of_word, wl)
        keys = []
        for n, p, code in packed_ngrams(cps, wl, [n for n in range(lo, hi + 1) if n in tables]):
            index, colmap = tables[n]
            col = index.get_indexer(code)
            hit = col >= 0
            keys.append((doc[p[hit]] * width + colmap[col[hit]]).astype(np.int32))
        key = np.sort(np.concatenate(keys)) if keys else np.empty(0, dtype=np.int32)
        first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if len(key) else np.empty(0, np.int64)
        data.append(np.diff(np.append(first, len(key))).astype(vec.dtype))  # repeats add up, as sklearn counts
        indices.append(key[first] % width)
        per_row.append(np.bincount(key[first] // width, minlength=len(docs)))
    if not data:
        return sparse.csr_matrix((0, width), dtype=vec.dtype)
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(per_row))])
    x = sparse.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr), shape=(len(texts), width))
    x.has_sorted_indices = True
    x.has_canonical_format = True
    return x


def tfidf_transform(vec: Any, texts: list[str]) -> Any:
    """``vec.transform(texts)`` for a fitted TfidfVectorizer, with the counts from
    ``char_wb_counts`` when it applies (same matrix, faster)."""
    counts = char_wb_counts(vec, texts)
    if counts is None:
        return vec.transform(texts)
    return vec._tfidf.transform(counts, copy=False)


FIT_STORE = "_cache"  # <run_dir>/_cache: the run's fitted embeddings (``fit_store``)

# Where ``Embedder.fit`` keeps and finds its fits (see ``fit_store``); a context variable, so
# stages running in threads of one process do not see each other's store.
_FIT_STORE: contextvars.ContextVar[tuple[Path, bool] | None] = contextvars.ContextVar("tiger_fit_store", default=None)


@contextmanager
def fit_store(directory: str | Path | None, write: bool = True) -> Iterator[None]:
    """Within the block, ``Embedder.fit`` looks in ``directory`` for the very fit it is asked for
    (vocabulary, idf and SVD) and, with ``write``, keeps each new one there. The diversity stage's
    novelty tagger and the run's report fit the same pool embedding on the same seeded sample: the
    report loads it instead of fitting again. The key hashes the parameters, the numerical
    libraries' versions and every text of the fit sample, so a hit is the fit it replaces."""
    token = _FIT_STORE.set((Path(directory), write) if directory else None)
    try:
        yield
    finally:
        _FIT_STORE.reset(token)


def _fit_key(params: dict[str, Any], sample: list[str]) -> str:
    import scipy
    import sklearn

    h = hashlib.sha256(json.dumps({**params, "versions": [sklearn.__version__, np.__version__, scipy.__version__]},
                                  sort_keys=True).encode())
    for t in sample:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:32]


class Embedder:
    """TF-IDF over character n-grams → TruncatedSVD → L2 normalisation (see the module docstring)."""

    def __init__(self, dims: int = DEFAULT_DIMS, ngram_range: tuple[int, int] = (1, 3), max_features: int = 50000,
                 fit_sample: int = 20000, seed: int = 0, n_threads: int = 1):
        if dims < 2:
            raise ValueError(f"Embedder: dims must be >= 2, got {dims}")
        self.dims = int(dims)
        self.ngram_range = tuple(int(v) for v in ngram_range)
        self.max_features = int(max_features)
        self.fit_sample = int(fit_sample)
        self.seed = int(seed)
        self.n_threads = int(n_threads)
        self._vec = None
        self._svd = None

    def params(self) -> dict[str, Any]:
        return {"dims": self.dims, "ngram_range": list(self.ngram_range), "max_features": self.max_features,
                "fit_sample": self.fit_sample, "seed": self.seed}

    def fit_positions(self, n: int) -> np.ndarray:
        """Positions of the seeded sample of ``n`` texts that ``fit`` fits on (all when n <= fit_sample)."""
        if n > self.fit_sample:
            return np.sort(np.random.default_rng(self.seed).choice(n, size=self.fit_sample, replace=False))
        return np.arange(n)

    def fit(self, texts: list[str], sampled: bool = False) -> "Embedder":
        """Fit on the seeded sample (``fit_positions``) of ``texts``; with ``sampled``, ``texts`` are
        that sample already (so a caller with millions of rows builds only the texts it needs)."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from .threads import blas_threads

        if not len(texts):
            raise ValueError("Embedder.fit: no texts")
        idx = np.arange(len(texts)) if sampled else self.fit_positions(len(texts))
        sample = [texts[i] or " " for i in idx]
        store = _FIT_STORE.get()
        path = store[0] / f"embedder-{_fit_key({**self.params(), 'n_threads': self.n_threads}, sample)}.pkl" if store else None
        if path is not None and path.is_file():
            try:
                self._vec, self._svd = pickle.loads(path.read_bytes())
                return self
            except Exception:  # an unreadable file is fitted again (and rewritten)
                pass
        self._vec = TfidfVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, lowercase=True, sublinear_tf=True,
                                    min_df=2 if len(sample) >= 50 else 1, max_features=self.max_features, dtype=np.float32)
        try:
            x = self._vec.fit_transform(sample)
        except ValueError:  # too few distinct n-grams for min_df
            self._vec.set_params(min_df=1)
            x = self._vec.fit_transform(sample)
        k = min(self.dims, x.shape[1] - 1, x.shape[0] - 1)
        self._svd = None
        if k >= 2:
            with blas_threads(self.n_threads):
                self._svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=self.seed).fit(x)
        if path is not None and store[1]:
            from .io import atomic_path

            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    tmp.write_bytes(pickle.dumps((self._vec, self._svd), protocol=5))
            except OSError:  # a store that cannot be written (read-only run folder) only costs a refit
                pass
        return self

    def transform(self, texts: list[str], chunk: int = TRANSFORM_CHUNK) -> np.ndarray:
        """Unit float32 rows, one per text; ``chunk`` texts at a time (a row depends on its text
        alone, so the result is the same whatever the chunk, and only one chunk's TF-IDF matrix
        and float64 coordinates are held)."""
        if self._vec is None:
            raise RuntimeError("Embedder.transform before fit")
        if len(texts) <= chunk:
            return self._transform(texts)
        return np.concatenate([self._transform(texts[a:a + chunk]) for a in range(0, len(texts), chunk)])

    def _transform(self, texts: list[str]) -> np.ndarray:
        return self.project(self.tfidf(texts))

    def tfidf(self, texts: list[str]) -> Any:
        """The texts' TF-IDF rows (CSR), the first half of ``transform``."""
        if self._vec is None:
            raise RuntimeError("Embedder.tfidf before fit")
        return tfidf_transform(self._vec, [t or " " for t in texts])

    def project(self, x: Any) -> np.ndarray:
        """Unit float32 rows from TF-IDF rows (``tfidf``), the second half of ``transform``; each row
        depends on its own TF-IDF row alone."""
        from sklearn.preprocessing import normalize
        from .threads import blas_threads

        with blas_threads(self.n_threads):
            z = self._svd.transform(x) if self._svd is not None else x.toarray()
        z = np.asarray(z, dtype=np.float64)
        # A text with none of the fitted n-grams projects to zero, which has no direction: give such
        # rows one extra axis of their own, so they are identical to each other and orthogonal to
        # everything else instead of "distance 1 to everything, themselves included".
        empty = np.linalg.norm(z, axis=1) < 1e-9
        z = np.hstack([z, empty[:, None].astype(np.float64)])
        return normalize(z).astype(np.float32)

    def fit_transform(self, texts: list[str]) -> np.ndarray:
        return self.fit(texts).transform(texts)


def embed(df: pd.DataFrame, seed: int = 0, dims: int = DEFAULT_DIMS, input_chars: int = 100,
          fit_sample: int = 20000) -> np.ndarray:
    """Unit-length embeddings of ``df``'s instructions (rows in order), fitted on ``df`` itself."""
    texts = instruction_texts(df, input_chars)
    return Embedder(dims=dims, fit_sample=fit_sample, seed=seed).fit_transform(texts)
