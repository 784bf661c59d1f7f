"""Training mixtures: named, seeded samples of the curated pool, written in LLaMA-Factory's alpaca
format (and the other formats of ``curate.export``) with a manifest that says what is inside.

A mixture spec is ``{name, strategy, size, seed, **options}``; ``"diverse-2000"`` is shorthand for
``{name: "diverse-2000", strategy: "diverse", size: 2000}``. Strategies live in ``STRATEGIES``
(``@strategy("name")`` adds one):

- ``random``      uniform sample of the pool.
- ``per_source``  an equal share per source; sources too small for their share give all they have
                  and the rest is spread over the others (water-filling; leftovers one by one, in a
                  seeded order).
- ``diverse``     balanced over task types, and inside each type over clusters (option ``levels``,
                  default ``["task_type", "cluster"]``): the same water-filling at every level, so
                  small strata are exhausted and their share goes to the others; rows are drawn at
                  random inside a stratum. Option ``min_confidence`` (e.g. 0.75): only rows whose
                  ``task_confidence`` reaches it are eligible, so the balance rests on confident labels.
- ``narrow``      only a few task types (option ``task_types``; default the 2 most common in the
                  pool), sampled uniformly from them.
- ``kcenter``     greedy farthest-first in the TF-IDF/SVD embedding (``curate.embed``), over the pool
                  or, for a pool larger than option ``candidates`` (200,000), over a seeded sample of
                  that many candidate rows.
- ``deita``       a quality score first, then a row is admitted only if its cosine distance to every
                  admitted row exceeds option ``threshold`` (0.2); only the rows examined are embedded.

Every strategy is capped by its eligible pool: asking for more rows than there are gives the whole
eligible pool, and the manifest says so (``capped``). Determinism: the pool is first sorted by
``id``, so a mixture depends on the set of rows and the seed, not on their order in the frame;
the selected rows are returned sorted by ``id`` (a hash, so this order is also well shuffled).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import io
from .diversity import diversity_metrics
from .export import sharegpt_dataset_info, system_prompt, write_exports
from .records import history_pairs, text_codes
from .registry import Registry
from .tasktype import TASK_TYPES

_NAME_OK = re.compile(r"^[A-Za-z0-9_.\-]+$")
_SHORTHAND = re.compile(r"^([A-Za-z_]+)-(\d+)$")
_SPEC_KEYS = ("name", "strategy", "size", "seed")


@dataclass
class MixtureSpec:
    name: str
    strategy: str
    size: int
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME_OK.match(self.name or ""):
            raise ValueError(f"mixture name {self.name!r}: use letters, digits, '_', '-', '.' only (it names files)")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"mixture {self.name!r}: unknown strategy {self.strategy!r}; known: {STRATEGIES.known()}")
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 1:
            raise ValueError(f"mixture {self.name!r}: size must be a positive integer, got {self.size!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"mixture {self.name!r}: seed must be an integer, got {self.seed!r}")
        self.size, self.seed = int(self.size), int(self.seed)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "strategy": self.strategy, "size": self.size, "seed": self.seed,
                "options": dict(sorted(self.options.items()))}


def parse_mixture_specs(config_list: list, default_seed: int = 0) -> list[MixtureSpec]:
    """Specs from a config list of shorthand strings (``"diverse-2000"``) and/or dicts.

    A dict has ``strategy`` and ``size`` (or only a shorthand ``name``), optional ``name`` (default
    ``"<strategy>-<size>"``) and ``seed`` (default ``default_seed``); every other key — or an
    ``options`` dict — is a strategy option. Names must be unique.
    """
    specs: list[MixtureSpec] = []
    for i, item in enumerate(config_list or []):
        if isinstance(item, MixtureSpec):
            specs.append(item)
            continue
        if isinstance(item, str):
            m = _SHORTHAND.match(item.strip())
            if not m:
                raise ValueError(f"mixture #{i} {item!r}: expected '<strategy>-<size>' such as 'diverse-2000'")
            specs.append(MixtureSpec(name=item.strip(), strategy=m.group(1), size=int(m.group(2)), seed=default_seed))
            continue
        if not isinstance(item, dict):
            raise ValueError(f"mixture #{i}: expected a string or a dict, got {type(item).__name__}")
        d = dict(item)
        options = dict(d.pop("options", None) or {})
        if "strategy" not in d and "name" in d and _SHORTHAND.match(str(d["name"])):
            m = _SHORTHAND.match(str(d["name"]))
            d.setdefault("strategy", m.group(1))
            d.setdefault("size", int(m.group(2)))
        missing = [k for k in ("strategy", "size") if k not in d]
        if missing:
            raise ValueError(f"mixture #{i} {item!r}: missing {', '.join(missing)}")
        options.update({k: v for k, v in d.items() if k not in _SPEC_KEYS})
        specs.append(MixtureSpec(name=str(d.get("name") or f"{d['strategy']}-{d['size']}"), strategy=str(d["strategy"]),
                                 size=d["size"], seed=d.get("seed", default_seed), options=options))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"mixture names must be unique; repeated: {', '.join(dupes)}")
    return specs


# ---- strategies ---------------------------------------------------------------------------------

# A strategy gets the pool (sorted by id, index 0..n-1), the spec and a seeded RNG, and returns the
# chosen row positions plus a dict of what it decided (for the manifest).
Strategy = Callable[[pd.DataFrame, MixtureSpec, np.random.Generator], tuple[np.ndarray, dict[str, Any]]]
STRATEGIES = Registry("mixture strategy")


def strategy(name: str, reads_texts: bool = False, embeds: bool = False) -> Callable[[Strategy], Strategy]:
    """Register a strategy; ``reads_texts``: it reads and embeds row texts (seconds to minutes on a
    large pool), so a runner gives it a task of its own instead of one shared with the strategies
    that only read label columns (``selection_groups``); ``embeds``: it embeds rows in the pool's
    embedding (``embed_rows``, seeded by the spec's ``embed_seed``), whose fit a runner can make
    beforehand (``prefit_pool_embedders``)."""
    def add(fn: Strategy) -> Strategy:
        fn.reads_texts = bool(reads_texts or embeds)  # type: ignore[attr-defined]
        fn.embeds = bool(embeds)  # type: ignore[attr-defined]
        return STRATEGIES.add(name, fn)

    return add


def selection_groups(specs: list[MixtureSpec]) -> list[list[int]]:
    """The specs (by index) in groups a runner can select side by side: one group per spec whose
    strategy reads texts, in order, then one of all the others (their cost is mostly loading the
    pool's label columns, which a group does once)."""
    heavy = [i for i, s in enumerate(specs) if getattr(STRATEGIES.get(s.strategy), "reads_texts", False)]
    light = [i for i in range(len(specs)) if i not in heavy]
    return [[i] for i in heavy] + ([light] if light else [])


def _need(pool: pd.DataFrame, spec: MixtureSpec, columns: list[str]) -> None:
    missing = [c for c in columns if c not in pool.columns]
    if missing:
        hint = {"task_type": "task_type_tagger", "cluster": "cluster_tagger"}
        how = ", ".join(f"{c} (from {hint[c]})" if c in hint else c for c in missing)
        raise KeyError(f"mixture {spec.name!r} (strategy {spec.strategy}) needs column(s) {how}")


def _sample(positions: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    if k >= len(positions):
        return positions
    return np.sort(rng.choice(positions, size=k, replace=False))


def allocate(sizes: dict[Any, int], total: int, rng: np.random.Generator | None = None) -> dict[Any, int]:
    """Split ``total`` over groups as evenly as their sizes allow (water-filling).

    Every group gets an equal share; a group smaller than its share gives all it has and the rest
    is shared among the others, until ``total`` (capped at the sum of sizes) is placed. The last
    few units that cannot be split evenly go one per group, in a seeded random order (sorted
    order without ``rng``).
    """
    keys = sorted(sizes, key=str)
    alloc = {k: 0 for k in keys}
    remaining = min(int(total), sum(int(sizes[k]) for k in keys))
    active = [k for k in keys if sizes[k] > 0]
    while remaining > 0 and active:
        share = remaining // len(active)
        if share == 0:
            order = [active[i] for i in rng.permutation(len(active))] if rng is not None else active
            for k in order[:remaining]:
                alloc[k] += 1
            remaining = 0
            break
        for k in active:
            give = min(share, int(sizes[k]) - alloc[k])
            alloc[k] += give
            remaining -= give
        active = [k for k in active if alloc[k] < sizes[k]]
    return alloc


def _groups(coded: tuple[np.ndarray, list[str]], positions: np.ndarray) -> dict[str, np.ndarray]:
    """The ``positions`` grouped by a column coded by ``records.text_codes`` (keys sorted), each
    group in the order given (a stable sort); keys no position holds give no group."""
    groups, keys = coded
    g = groups[positions]
    ordered = positions[np.argsort(g, kind="stable")]
    ends = np.cumsum(np.bincount(g, minlength=len(keys)))
    return {keys[i]: ordered[e - n:e] for i, (n, e) in enumerate(zip(np.diff(ends, prepend=0), ends)) if n}


def _stratified(pool: pd.DataFrame, positions: np.ndarray, levels: list[str], total: int,
                rng: np.random.Generator, coded: dict | None = None) -> np.ndarray:
    if total >= len(positions):
        return positions
    if not levels:
        return _sample(positions, total, rng)
    coded = {} if coded is None else coded  # each level's column coded once, for all its groups
    if levels[0] not in coded:
        coded[levels[0]] = text_codes(pool[levels[0]])
    groups = _groups(coded[levels[0]], positions)
    alloc = allocate({k: len(v) for k, v in groups.items()}, total, rng)
    parts = [_stratified(pool, groups[k], levels[1:], alloc[k], rng, coded)
             for k in sorted(groups) if alloc[k] > 0]
    return np.concatenate(parts) if parts else np.array([], dtype=np.int64)


@strategy("random")
def _random(pool: pd.DataFrame, spec: MixtureSpec, rng: np.random.Generator):
    return _sample(np.arange(len(pool)), spec.size, rng), {"eligible_rows": int(len(pool))}


@strategy("per_source")
def _per_source(pool: pd.DataFrame, spec: MixtureSpec, rng: np.random.Generator):
    _need(pool, spec, ["source"])
    chosen = _stratified(pool, np.arange(len(pool)), ["source"], spec.size, rng)
    return chosen, {"eligible_rows": int(len(pool))}


@strategy("diverse")
def _diverse(pool: pd.DataFrame, spec: MixtureSpec, rng: np.random.Generator):
    levels = list(spec.options.get("levels", ["task_type", "cluster"]))
    _need(pool, spec, levels)
    eligible = np.arange(len(pool))
    if spec.options.get("min_confidence") is not None:
        _need(pool, spec, ["task_confidence"])
        eligible = np.flatnonzero(pool["task_confidence"].to_numpy(dtype=float) >= float(spec.options["min_confidence"]))
    chosen = _stratified(pool, eligible, levels, spec.size, rng)
    return chosen, {"eligible_rows": int(len(eligible)), "levels": levels}


@strategy("narrow")
def _narrow(pool: pd.DataFrame, spec: MixtureSpec, rng: np.random.Generator):
    _need(pool, spec, ["task_type"])
    types = spec.options.get("task_types")
    if types is None:
        counts = pool["task_type"].astype(str).value_counts()
        ranked = sorted(counts.items(), key=lambda kv: (-int(kv[1]), kv[0]))
        types = [t for t, _ in ranked[: int(spec.options.get("n_types", 2))]]
    types = [str(t) for t in types]
    bad = [t for t in types if t not in TASK_TYPES]
    if bad or not types:
        raise ValueError(f"mixture {spec.name!r}: task_types must be a non-empty subset of {TASK_TYPES}, got {types}")
    eligible = np.flatnonzero(pool["task_type"].astype(str).isin(types).to_numpy())
    return _sample(eligible, spec.size, rng), {"eligible_rows": int(len(eligible)), "task_types": types}


# ---- diversity-aware strategies -------------------------------------------------------------------

_EMBED_CACHE: dict[str, Any] = {}
# k-center runs over a seeded sample of at most this many candidate rows of a larger pool
# (spec option ``candidates``): the embedding of 2 million rows would cost minutes and a GiB, and a
# 200,000-row sample still holds every group of more than a few dozen rows.
KCENTER_CANDIDATES = 200_000


def clear_embed_cache() -> None:
    """Let the cached embedder and the frame it was asked for go (call when done with a pool)."""
    _EMBED_CACHE.clear()


def pool_embedder(pool: pd.DataFrame, seed: int = 0, dims: int = 128, input_chars: int = 100) -> Any:
    """The ``curate.embed.Embedder`` fitted on the pool (on its seeded fit sample: only those rows'
    texts are built); cached per (rows, params) within the process, since several mixtures of one
    run share the pool."""
    from .embed import Embedder, instruction_texts

    params = (seed, dims, input_chars)
    # The same frame object asks again and again (deita embeds block by block): hashing 2 million ids
    # on every call cost seconds each, so the frame itself is the fast key.
    if _EMBED_CACHE.get("frame") is pool and _EMBED_CACHE.get("params") == params:
        return _EMBED_CACHE["emb"]
    from .duplicates import hex16_bytes

    raw = hex16_bytes(pool["id"])  # a lazy pool's Arrow ids: their bytes, without a string per row
    ids = raw if raw is not None else pd.util.hash_pandas_object(pool["id"].astype(str), index=False).to_numpy()
    key = hashlib.sha256(ids.tobytes() + json.dumps(list(params)).encode()).hexdigest()
    if _EMBED_CACHE.get("key") != key:
        emb = Embedder(dims=dims, seed=seed)
        emb.fit(instruction_texts(_text_rows(pool, emb.fit_positions(len(pool))), input_chars), sampled=True)
        _EMBED_CACHE.clear()  # one pool at a time is enough; keeps memory bounded
        _EMBED_CACHE.update(key=key, emb=emb)
    _EMBED_CACHE.update(frame=pool, params=params)
    return _EMBED_CACHE["emb"]


def prefit_pool_embedders(path: str, specs: list[MixtureSpec]) -> int:
    """Fit the pool embeddings the specs' strategies will ask for (``pool_embedder``, one per
    ``embed_seed``) on the rows of the Parquet file ``path``, which holds the pool's rows and texts
    in any order (the diversity stage's input holds the pool's rows before it is written). Run
    within a fit store (``curate.embed.fit_store``): the selections then find those very fits there
    (the key hashes the fit sample's texts) instead of fitting again. Returns how many were fitted."""
    from .pool import LazyPool

    seeds = sorted({int(s.options.get("embed_seed", 0)) for s in specs
                    if getattr(STRATEGIES.get(s.strategy), "embeds", False)})
    if not seeds:
        return 0
    clear_embed_cache()  # a fit this process holds would not reach the store
    pool = LazyPool(path)
    try:
        for seed in seeds:
            pool_embedder(pool, seed=seed)
    finally:
        clear_embed_cache()
    return len(seeds)


def embed_rows(pool: pd.DataFrame, positions: np.ndarray, seed: int = 0, dims: int = 128,
               input_chars: int = 100) -> np.ndarray:
    """Unit embeddings of the pool rows at ``positions``, in the pool's embedding (``pool_embedder``).
    A row's vector does not depend on which other rows are embedded with it."""
    from .embed import instruction_texts

    emb = pool_embedder(pool, seed=seed, dims=dims, input_chars=input_chars)
    return emb.transform(instruction_texts(_text_rows(pool, np.asarray(positions, dtype=np.int64)), input_chars))


def _text_rows(pool: Any, positions: np.ndarray) -> pd.DataFrame:
    """The rows at ``positions`` with what ``instruction_texts`` reads (a lazy pool reads only that)."""
    from .pool import LazyPool

    if isinstance(pool, LazyPool):
        return pool.take(positions, [c for c in ("instruction", "input") if c in pool.columns])
    return pool.iloc[positions]


def pool_embeddings(pool: pd.DataFrame, seed: int = 0, dims: int = 128, input_chars: int = 100) -> np.ndarray:
    """Unit embeddings (``curate.embed``) of all the pool's instructions, fitted on the pool (equal to
    ``curate.embed.embed(pool)``)."""
    return embed_rows(pool, np.arange(len(pool)), seed=seed, dims=dims, input_chars=input_chars)


def k_center_greedy(x: np.ndarray, k: int, first: int, block: int = 2048) -> np.ndarray:
    """Farthest-first traversal (Gonzalez 1985): start at ``first``, then repeatedly add the row whose
    cosine distance to its nearest chosen row is largest (ties: the lowest position). A 2-approximation
    of the k-center problem: it covers the space evenly, rare regions included.

    Lazily evaluated, exactly: rows are kept in blocks, each with the largest of its rows' distances
    (an upper bound once later centres are added, since distances only shrink). Only the block with
    the largest bound is brought up to date (against the centres it has not seen, one matrix product);
    when the top block is up to date its best row is the global farthest. Most blocks are never
    touched again once far-off regions are covered (a small share of the plain loop's block updates;
    figures in benchmarks/README.md). Same choices as the plain loop up to float rounding (equal in
    float64, tested)."""
    from .threads import blas_threads

    n = len(x)
    k = min(int(k), n)
    chosen = np.empty(k, dtype=np.int64)
    if k == 0:
        return chosen
    chosen[0] = first
    starts = np.arange(0, n, block)
    with blas_threads():
        mind = 1.0 - x @ x[first]
        mind[first] = -np.inf
        seen = np.ones(len(starts), dtype=np.int64)  # centres each block's distances account for
        bound = np.maximum.reduceat(mind, starts)
        for t in range(1, k):
            while True:
                b = int(np.argmax(bound))  # ties: the lowest block, so ties go to the lowest position
                a, z = b * block, min(n, (b + 1) * block)
                if seen[b] == t:
                    break
                sims = x[a:z] @ x[chosen[seen[b]:t]].T
                np.minimum(mind[a:z], 1.0 - sims.max(axis=1), out=mind[a:z])
                seen[b] = t
                bound[b] = mind[a:z].max()
            j = a + int(np.argmax(mind[a:z]))
            chosen[t] = j
            mind[j] = -np.inf
            bound[b] = mind[a:z].max()
    return chosen


def quality_scores(df: pd.DataFrame) -> np.ndarray:
    """A simple quality score per row (higher is better), as the first step of DEITA-style selection.

    DEITA scores complexity and quality with trained models; offline, this uses what predicts them
    cheaply: the length of the answer (log characters, saturating at 2,000), the length of the task
    (instruction + input, log, saturating at 500) and the variety of the answer's characters
    (distinct / total over its first 500, which punishes "哈哈哈哈…" and number lists). Each term is
    in [0, 1]; the score is 0.5·answer + 0.3·task + 0.2·variety.
    """
    from .pool import LazyPool

    if isinstance(df, LazyPool):  # row-local: over the file a part at a time, in pool order
        return df.map_rows(quality_scores, ["instruction", "input", "output"])
    out = df["output"].astype(str).tolist()
    out_len = np.fromiter(map(len, out), dtype=np.int64, count=len(out))
    task_len = (df["instruction"].astype(str).str.len() + df["input"].astype(str).str.len()).to_numpy(dtype=np.int64)
    # the same ufuncs as a per-row loop, on whole arrays
    ans = np.minimum(np.log1p(out_len) / np.log1p(2000), 1.0)
    tsk = np.minimum(np.log1p(task_len) / np.log1p(500), 1.0)
    var = np.minimum(char_variety(out, 500) * 2.0, 1.0)  # half the characters distinct is already varied text
    return 0.5 * ans + 0.3 * tsk + 0.2 * var


def char_variety(texts: list[str], head: int = 500, block: int = 4096) -> np.ndarray:
    """Per text, distinct characters / characters over its first ``head`` characters (0.0 for an
    empty text): ``len(set(t[:head])) / len(t[:head])``, the same floats, without a Python set of
    one-character strings per row (several times faster on millions of answers). A block's texts are
    laid out as code points in a padded matrix, rows of similar length together (so padding stays
    small), each row sorted, and the changes between neighbours counted."""
    res = np.zeros(len(texts), dtype=np.float64)
    pad = np.uint32(0xFFFFFFFF)  # above every code point: sorts after a row's characters
    for a in range(0, len(texts), block):
        heads = [t[:head] for t in texts[a:a + block]]
        lens = np.fromiter(map(len, heads), dtype=np.int64, count=len(heads))
        cps = np.frombuffer("".join(heads).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        starts = np.cumsum(lens) - lens
        order = np.argsort(lens, kind="stable")
        sorted_lens = lens[order]
        distinct = np.zeros(len(heads), dtype=np.int64)
        i = 0
        while i < len(order):
            # the rows up to twice as long as the shortest left: at most half of a matrix is padding
            j = int(np.searchsorted(sorted_lens, max(8, 2 * int(sorted_lens[i])), side="right"))
            rows = order[i:j]
            width = int(sorted_lens[j - 1])
            if width:
                col = np.arange(width)
                valid = col[None, :] < lens[rows][:, None]
                chars = np.where(valid, cps[np.where(valid, starts[rows][:, None] + col[None, :], 0)], pad)
                chars.sort(axis=1)
                first = np.ones_like(valid)
                first[:, 1:] = chars[:, 1:] != chars[:, :-1]
                distinct[rows] = (first & valid).sum(axis=1)
            i = j
        res[a:a + len(heads)] = np.where(lens > 0, distinct / np.maximum(lens, 1), 0.0)
    return res


def deita_select(x: np.ndarray | Callable[[np.ndarray], np.ndarray], scores: np.ndarray, k: int, min_distance: float,
                 block: int = 512) -> tuple[np.ndarray, int]:
    """Quality first, then diversity (DEITA's "score-first, diversity-aware" selection, Liu et al. 2024):
    go through the rows by descending ``scores`` and admit one only if its cosine distance to every
    admitted row exceeds ``min_distance``. Returns the admitted positions (at most ``k``) and how many
    rows were examined. ``x``: the rows' unit embeddings, or a function giving those of some
    positions (then only the rows examined are embedded, a block at a time)."""
    from .threads import blas_threads

    rows = x if callable(x) else (lambda pos: x[pos])
    order = np.argsort(-scores, kind="mergesort")
    k = min(int(k), len(order))
    chosen = np.empty(k, dtype=np.int64)
    cmat = None
    m = 0
    max_sim = 1.0 - min_distance
    examined = 0
    # Rows are embedded a window of blocks at a time, the window doubling up to 16 blocks: a lazy
    # pool reads every row group that holds one of the rows asked for, and the rows by score are
    # spread over the whole file, so fewer, larger reads cost far less. A row's vector does not
    # depend on the rows embedded with it, so the choices are the same.
    window, win_start, win_x = block, 0, None
    with blas_threads():
        for a in range(0, len(order), block):
            cand = order[a:a + block]
            if win_x is None or a >= win_start + len(win_x):
                win_start, win_x = a, rows(order[a:a + window])
                window = min(16 * block, 2 * window)
            xc = win_x[a - win_start:a - win_start + len(cand)]
            if cmat is None:
                cmat = np.empty((k, xc.shape[1]), dtype=xc.dtype)
            ok = (cmat[:m] @ xc.T).max(axis=0) < max_sim if m else np.ones(len(cand), dtype=bool)
            start = m
            for i, (c, good) in enumerate(zip(cand, ok)):
                examined += 1
                if not good:
                    continue
                if m > start and float((cmat[start:m] @ xc[i]).max()) >= max_sim:
                    continue
                chosen[m] = c
                cmat[m] = xc[i]
                m += 1
                if m == k:
                    return chosen[:m], examined
    return chosen[:m], examined


@strategy("kcenter", embeds=True)
def _kcenter(pool: pd.DataFrame, spec: MixtureSpec, rng: np.random.Generator):
    _need(pool, spec, ["instruction", "input"])
    n = len(pool)
    cap = int(spec.options.get("candidates", KCENTER_CANDIDATES))
    if cap < 1:
        raise ValueError(f"mixture {spec.name!r}: candidates must be >= 1, got {cap}")
    cand = np.arange(n) if n <= cap else np.sort(rng.choice(n, size=cap, replace=False))
    first = int(rng.integers(len(cand))) if n else 0
    if n:
        x = embed_rows(pool, cand, seed=int(spec.options.get("embed_seed", 0)))
        chosen = cand[k_center_greedy(x, spec.size, first)]
    else:
        chosen = np.array([], dtype=np.int64)
    return chosen, {"eligible_rows": int(n), "candidates": int(len(cand)), "first": int(cand[first]) if n else 0,
                    "embedding": "tfidf-char-svd128"}


@strategy("deita", embeds=True)
def _deita(pool: pd.DataFrame, spec: MixtureSpec, rng: np.random.Generator):
    _need(pool, spec, ["instruction", "input", "output"])
    threshold = float(spec.options.get("threshold", 0.2))
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"mixture {spec.name!r}: threshold is a cosine distance in [0, 1), got {threshold}")
    seed = int(spec.options.get("embed_seed", 0))
    scores = quality_scores(pool)
    # only the rows examined are embedded (about twice k), not the pool
    chosen, examined = deita_select(lambda pos: embed_rows(pool, pos, seed=seed), scores, spec.size, threshold)
    filled = 0
    if len(chosen) < min(spec.size, len(pool)) and spec.options.get("fill", True):
        # Too few rows are that far apart: top up with the best remaining rows, and say how many.
        taken = np.zeros(len(pool), dtype=bool)
        taken[chosen] = True
        order = np.argsort(-scores, kind="mergesort")
        extra = order[~taken[order]][: min(spec.size, len(pool)) - len(chosen)].astype(np.int64)
        filled = int(len(extra))
        chosen = np.concatenate([chosen, extra])
    return chosen, {"eligible_rows": int(len(pool)), "threshold": threshold, "examined": int(examined),
                    "filled_below_threshold": filled, "mean_quality": round(float(scores[chosen].mean()), 4) if len(chosen) else 0.0,
                    "pool_mean_quality": round(float(scores.mean()), 4) if len(pool) else 0.0,
                    "embedding": "tfidf-char-svd128"}


# ---- building and writing -----------------------------------------------------------------------

def sorted_by_id(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` in id order with a fresh 0..n-1 index (strategies work on positions in this order, so
    a mixture does not depend on the pool's row order); returned as is when it already is."""
    if isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1 \
            and df["id"].is_monotonic_increasing:  # a stable sort would leave it as it is
        return df
    return df.sort_values("id", kind="mergesort").reset_index(drop=True)


def build_mixture(df: pd.DataFrame, spec: MixtureSpec | dict | str) -> pd.DataFrame:
    """The rows of ``df`` (a frame, or a ``curate.pool.LazyPool``: the same rows, texts left on disk)
    that ``spec`` selects, sorted by id (all columns kept).

    What was decided (eligible rows, capping, resolved options) is in ``result.attrs["mixture"]``.
    """
    return build_mixtures(df, [spec])[0]


def build_mixtures(df: pd.DataFrame, specs: list[MixtureSpec | dict | str],
                   progress: Callable[[str], None] | None = None) -> list[pd.DataFrame]:
    """``build_mixture`` of each spec on one pool: every selection is made first, then the rows
    are read once for all of them (from a lazy pool, one pass over the file, not one per mixture)."""
    from .pool import LazyPool

    specs = [s if isinstance(s, MixtureSpec) else parse_mixture_specs([s])[0] for s in specs]
    if "id" not in df.columns:
        raise KeyError(f"mixture {specs[0].name if specs else ''!r}: the pool has no 'id' column")
    pool = df if isinstance(df, LazyPool) else sorted_by_id(df)
    chosen = select_mixtures(pool, specs, progress)
    if isinstance(pool, LazyPool):
        union = np.unique(np.concatenate([p for p, _ in chosen])) if chosen else np.zeros(0, np.int64)
        rows = pool.take(union)
        take = lambda pos: rows.loc[pos]  # noqa: E731
    else:
        take = lambda pos: pool.iloc[pos]  # noqa: E731
    out = []
    for positions, info in chosen:
        mix = take(positions).reset_index(drop=True)
        mix.attrs["mixture"] = info
        out.append(mix)
    return out


def select_mixtures(pool: pd.DataFrame, specs: list[MixtureSpec],
                    progress: Callable[[str], None] | None = None) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Each spec's chosen pool positions (sorted) and what was decided (the manifest's ``mixture``),
    on a pool sorted by id (a frame from ``sorted_by_id``, or a ``LazyPool``). A spec's choice
    depends on the pool and the spec alone, so specs can be selected in any grouping."""
    if "id" not in pool.columns:
        raise KeyError(f"mixture {specs[0].name if specs else ''!r}: the pool has no 'id' column")
    n_clusters = int(pool["cluster"].nunique()) if "cluster" in pool.columns else None
    chosen = []
    for spec in specs:
        if progress:
            progress(f"mixtures: {spec.name}")
        positions, info = STRATEGIES[spec.strategy](pool, spec, np.random.default_rng(spec.seed))
        positions = np.sort(np.asarray(positions, dtype=np.int64))
        chosen.append((positions, {
            "pool_rows": int(len(pool)),
            "pool_clusters": n_clusters,
            "size_requested": spec.size,
            "rows": int(len(positions)),
            "capped": bool(len(positions) < spec.size),
            **{k: (v if not isinstance(v, np.integer) else int(v)) for k, v in info.items()},
        }))
    return chosen


def alpaca_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as alpaca dicts. ``history`` (and ``system``, a chat source's system prompt) is added to
    every row when any row has one (so the file has one schema), and left out when none has."""
    hists, systems = [], []
    cols = ["id", "source", "file", "row", "history"] + (["extra"] if "extra" in df.columns else [])
    for rec in df[cols].to_dict("records") if len(df) else []:
        where = f"record {rec['id']} ({rec['source']}:{rec['file']} row {rec['row']})"
        hists.append(history_pairs(rec["history"], where))
        systems.append(system_prompt(rec.get("extra"), where))
    with_history, with_system = any(hists), any(systems)
    out = []
    for i, (ins, inp, outp) in enumerate(zip(df["instruction"], df["input"], df["output"])):
        item: dict[str, Any] = {"instruction": str(ins), "input": str(inp), "output": str(outp)}
        if with_history:
            item["history"] = hists[i]
        if with_system:
            item["system"] = systems[i]
        out.append(item)
    return out


def write_alpaca_json(df: pd.DataFrame, path: str | Path) -> Path:
    """A JSON array of {instruction, input, output[, history]}: UTF-8, indent 2, written atomically."""
    text = json.dumps(alpaca_records(df), ensure_ascii=False, indent=2) + "\n"
    return io.write_text(path, text)


def composition(df: pd.DataFrame, n_clusters: int | None = None) -> dict[str, Any]:
    """Counts by source, task type (all 11) and cluster, plus ``diversity_metrics``."""
    out: dict[str, Any] = {"rows": int(len(df))}
    if "source" in df.columns:
        out["by_source"] = {str(k): int(v) for k, v in sorted(df["source"].astype(str).value_counts().items())}
    if "task_type" in df.columns:
        vc = df["task_type"].astype(str).value_counts()
        out["by_task_type"] = {t: int(vc.get(t, 0)) for t in TASK_TYPES}
    if "cluster" in df.columns:
        vc = df["cluster"].value_counts()
        out["by_cluster"] = {str(int(k)): int(v) for k, v in sorted(vc.items(), key=lambda kv: int(kv[0]))}
    out["diversity"] = diversity_metrics(df, n_clusters=n_clusters)
    return out


def dataset_info_entry(name: str, with_history: bool, with_system: bool = False) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` entry for an alpaca-format file."""
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    if with_history:
        columns["history"] = "history"
    if with_system:
        columns["system"] = "system"
    return {"file_name": f"{name}.json", "formatting": "alpaca", "columns": columns}


def write_mixture(df: pd.DataFrame, spec: MixtureSpec | dict | str, out_dir: str | Path,
                  licenses: dict[str, str] | None = None) -> dict[str, Any]:
    """Write ``<name>.json`` (alpaca), the exports of ``curate.export`` (``<name>.sharegpt.json``,
    ``<name>.parquet``, the dataset folder ``<name>/`` with its card) and ``<name>.manifest.json``
    for the mixture ``df``, and add its entries to ``dataset_info.json`` in ``out_dir``. Returns the
    manifest (plus the paths)."""
    spec = spec if isinstance(spec, MixtureSpec) else parse_mixture_specs([spec])[0]
    out_dir = Path(out_dir)
    data_path = out_dir / f"{spec.name}.json"
    write_alpaca_json(df, data_path)
    with_history = any(history_pairs(h) for h in df["history"])
    with_system = "extra" in df.columns and any(system_prompt(x) for x in df["extra"])
    selection = dict(df.attrs.get("mixture") or {})
    ids = df["id"].astype(str).tolist()
    manifest = {
        "name": spec.name,
        "spec": spec.to_dict(),
        "file": data_path.name,
        "file_sha256": io.sha256_file(data_path),
        "rows": int(len(df)),
        "size_requested": spec.size,
        "capped": bool(len(df) < spec.size),
        "selection": selection,
        "ids_sha256": hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest(),
        "composition": composition(df, n_clusters=selection.get("pool_clusters")),
    }
    manifest.update(write_exports(df, spec.name, out_dir, manifest, licenses))
    manifest_path = out_dir / f"{spec.name}.manifest.json"
    io.write_json(manifest_path, manifest)

    info_path = out_dir / "dataset_info.json"
    info = io.read_json(info_path) if info_path.exists() else {}
    if not isinstance(info, dict):
        raise ValueError(f"{info_path}: expected a JSON object (LLaMA-Factory dataset_info), got {type(info).__name__}")
    info[spec.name] = dataset_info_entry(spec.name, with_history, with_system)
    info[f"{spec.name}_sharegpt"] = sharegpt_dataset_info(spec.name)
    io.write_json(info_path, info)
    return {**manifest, "paths": {"data": str(data_path), "manifest": str(manifest_path), "dataset_info": str(info_path)}}
