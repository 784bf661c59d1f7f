"""Figures the reports show that no stage stored: diversity of groups side by side (one shared
embedding and clustering), mixtures against the pool. Reads stage outputs; writes nothing."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..io import read_json
from .html import TASK_TYPES_ORDER


def load_stage_json(run_dir: Path, stage: str, name: str) -> Any:
    p = run_dir / stage / name
    return read_json(p) if p.exists() else {}


def parquet_rows(path: Path, columns: list[str]) -> Callable[[np.ndarray], pd.DataFrame]:
    """``fetch(positions)``: those rows of a Parquet file (in the order asked), ``columns`` only, read a
    column of a row group at a time and only the row groups that hold a position (a text column of
    millions of rows is never held whole)."""
    def fetch(positions: np.ndarray) -> pd.DataFrame:
        pos = np.asarray(positions, dtype=np.int64)
        pf = pq.ParquetFile(path)
        cols = [c for c in columns if c in pf.schema_arrow.names]
        if not cols:
            return pd.DataFrame(index=range(len(pos)))
        starts = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
        if len(pos) and (pos.min() < 0 or pos.max() >= starts[-1]):
            raise IndexError(f"{path}: row positions outside 0..{starts[-1] - 1}")
        order = np.argsort(pos, kind="stable")
        sp = pos[order]
        group = np.searchsorted(starts, sp, side="right") - 1
        parts = []
        for g in np.unique(group):
            local = pa.array(sp[group == g] - starts[g])
            # a column at a time: one decoded text column chunk is held, not the row group's
            parts.append(pa.table({c: pf.read_row_group(int(g), columns=[c]).column(0).take(local) for c in cols}))
        t = pa.concat_tables(parts) if parts else pf.schema_arrow.empty_table().select(cols)
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return t.take(pa.array(back)).to_pandas()
    return fetch


VERB_SAMPLE = 5000  # rows per group parsed for the verb–noun analysis (seeded sample)


COVERAGE_SAMPLE = 5000  # pool rows whose distance to a mixture is measured (seeded sample)


def sample_positions(n: int, size: int, seed: int) -> np.ndarray:
    from ..diversity import sample_rows

    return sample_rows(n, size, seed)


def analyse_groups(groups: dict[str, pd.DataFrame], seed: int = 0, n_clusters: int | None = None,
                   embedder: Any = None, overall: str | None = None) -> dict[str, Any]:
    """Everything the diversity pages show, per group of records (sources, mixtures or files).

    One embedding (``curate.embed.Embedder``) is fitted on all groups together (or ``embedder`` is
    used), so Vendi scores and novelty are comparable across groups. Task types come from the
    ``task_type`` column when present (the pipeline's), else from the labeller; clusters from the
    ``cluster`` column, else from ``cluster_tagger`` fitted on all groups together. Novelty is the
    ``novelty`` column when present, else computed over all groups together. ``overall`` names an
    extra group made of all rows (listed first).
    """
    names = list(groups)
    frames = []
    for name in names:
        df = groups[name].copy()
        df["_group"] = name
        frames.append(df)
    allrows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return analyse_frame(allrows, names, seed=seed, n_clusters=n_clusters, embedder=embedder, overall=overall)


Fetch = Callable[[np.ndarray], pd.DataFrame]


def analyse_frame(allrows: pd.DataFrame, names: list[str], seed: int = 0, n_clusters: int | None = None,
                  embedder: Any = None, overall: str | None = None, known: dict[str, dict] | None = None,
                  fetch: Fetch | None = None, coverage_sample: int | None = None) -> dict[str, Any]:
    """``analyse_groups`` on one frame whose ``_group`` column names each row's group (one of ``names``).

    Built to scale to millions of rows: nothing is computed on all rows that a seeded sample can
    estimate. Only the rows that are shown or sampled get their texts and embeddings: the
    embedding's fit sample (≤ 20,000 rows), each group's Vendi sample (≤ 2,000), verb–noun sample
    (≤ 5,000) and five most novel rows, and with ``coverage_sample`` a seeded sample of that many
    rows of all, whose embeddings are returned as ``_coverage_x`` (for ``mixture_comparison``).
    ``fetch(positions)`` gives ``instruction`` and ``input`` of those rows of ``allrows`` (default:
    from ``allrows`` itself), so ``allrows`` may hold only the label columns (``task_type``,
    ``cluster``, ``novelty``). ``known``: figures per group computed before (the diversity stage's
    stats), whose text figures are reused (``diversity_metrics``'s ``known``).
    """
    from ..diversity import TEXT_FIGURES, VENDI_SAMPLE, diversity_metrics, sample_rows, verb_noun_pairs, verb_noun_table
    from ..embed import Embedder, instruction_texts
    from ..novelty import novelty_scores
    from ..ops.cluster_tagger import ClusterTagger

    if "task_type" not in allrows.columns or allrows["task_type"].isna().any():
        from ..userfiles import label_frame

        allrows = label_frame(allrows.drop(columns=[c for c in ("task_type", "task_rule") if c in allrows.columns]))
    k = n_clusters
    if "cluster" not in allrows.columns or allrows["cluster"].isna().any():
        k = n_clusters or int(min(50, max(2, len(allrows) // 40)))
        allrows = ClusterTagger(n_clusters=k, seed=seed, fit_sample=20000).__call__(allrows.drop(
            columns=["cluster"], errors="ignore")).kept
    if fetch is None:
        have = [c for c in ("instruction", "input") if c in allrows.columns]
        fetch = lambda pos: allrows[have].iloc[pos].reset_index(drop=True)  # noqa: E731
    n = len(allrows)
    emb = embedder if embedder is not None else Embedder(seed=seed)
    with_novelty = "novelty" in allrows.columns and not allrows["novelty"].isna().any()

    # group codes, not an object array of every row's group name (a Python string a row)
    codes, uniques = pd.factorize(allrows["_group"])
    code_of = {g: c for c, g in enumerate(uniques)}
    groups = {name: np.flatnonzero(codes == code_of.get(name, -2)) for name in names}
    if overall:
        if overall in groups:
            raise ValueError(f"analyse_groups: overall name {overall!r} is also a group")
        groups = {overall: np.arange(n), **groups}
        names = list(groups)
    fitted = getattr(emb, "_vec", None) is not None  # an unfitted embedder given: its parameters, fitted here
    if not with_novelty:
        # every row is embedded here (files given to `tiger diversity`, not a run's pool), with the
        # novelty tagger's defaults
        texts_all = instruction_texts(fetch(np.arange(n)))
        if not fitted:
            emb.fit(texts_all)
            fitted = True
        allrows = allrows.assign(novelty=novelty_scores(emb.transform(texts_all), k=10, seed=seed))
        del texts_all
    novelty = allrows["novelty"].astype(float).to_numpy()

    # every row whose text is needed, fetched at once (positions in allrows)
    plan: dict[str, dict[str, np.ndarray]] = {}
    for name, pos in groups.items():
        plan[name] = {"vendi": pos[sample_rows(len(pos), VENDI_SAMPLE, seed)],
                      "verb": pos[sample_positions(len(pos), VERB_SAMPLE, seed)],
                      "top": pos[np.argsort(-novelty[pos], kind="mergesort")[:5]]}
    fit_pos = emb.fit_positions(n) if not fitted else np.empty(0, np.int64)
    cov_pos = sample_positions(n, coverage_sample, seed) if coverage_sample else np.empty(0, np.int64)
    need = np.unique(np.concatenate([fit_pos, cov_pos] + [p for g in plan.values() for p in g.values()]))
    rows = fetch(need)
    at = lambda pos: np.searchsorted(need, pos)  # noqa: E731  row of `rows` of each position
    texts = np.array(instruction_texts(rows), dtype=object)
    instr = rows["instruction"].astype(str).to_numpy(dtype=object)
    if not fitted:
        emb.fit(texts[at(fit_pos)].tolist(), sampled=True)

    def xs(pos: np.ndarray) -> np.ndarray:
        return emb.transform(texts[at(pos)].tolist())

    label_cols = [c for c in ("task_type", "cluster", "novelty") if c in allrows.columns]
    out: dict[str, Any] = {"groups": names, "metrics": {}, "verb_noun": {}, "novelty": {}, "task_types": {},
                           "clusters": {}, "examples": {}, "n_clusters": k,
                           "embedding": emb.params() if hasattr(emb, "params") else {}}
    for name, pos in groups.items():
        part = allrows[label_cols].iloc[pos] if len(pos) < n else allrows[label_cols]
        prior = (known or {}).get(name)
        if not (prior and prior.get("rows") == len(pos) and all(f in prior for f in TEXT_FIGURES)):
            part = part.assign(instruction=fetch(pos)["instruction"].to_numpy())  # no figures to reuse
        m = diversity_metrics(part, n_clusters=k, embeddings=xs(plan[name]["vendi"]), seed=seed, known=prior)
        verb_pos = plan[name]["verb"]
        vn = verb_noun_table(verb_noun_pairs(instr[at(verb_pos)].tolist()))
        m["verb_entropy"] = vn["verb_entropy"]
        m["distinct_verbs"] = vn["distinct_verbs"]
        vn["sampled"] = int(len(verb_pos))
        out["metrics"][name] = m
        out["verb_noun"][name] = vn
        out["novelty"][name] = novelty[pos]
        tc = part["task_type"].value_counts()
        out["task_types"][name] = {t: int(tc.get(t, 0)) for t in TASK_TYPES_ORDER}
        out["clusters"][name] = part["cluster"].astype(int).value_counts().to_dict()
        top = plan[name]["top"]
        out["examples"][name] = [{"novelty": round(float(novelty[i]), 3), "task_type": str(allrows["task_type"].iat[i]),
                                  "instruction": str(instr[at(i)])[:120]} for i in top]
    out["_embedder"] = emb
    if coverage_sample:
        out["_coverage_x"] = xs(cov_pos)
    return out


def coverage_of(pool_sample_x: np.ndarray, sel_x: np.ndarray) -> dict[str, float]:
    """How well a selection covers the pool: cosine distance from each of a seeded sample of pool rows
    (``pool_sample_x``, their embeddings) to its nearest selected row (mean, 95th percentile, max).
    k-center minimises the max."""
    from ..novelty import knn_mean_distance

    d = knn_mean_distance(pool_sample_x, sel_x, k=1)
    return {"coverage_mean": round(float(d.mean()), 4), "coverage_p95": round(float(np.quantile(d, 0.95)), 4),
            "coverage_max": round(float(d.max()), 4)}


def read_mixture_rows(path: Path) -> pd.DataFrame:
    data = read_json(path)
    return pd.DataFrame({"instruction": [str(d.get("instruction", "")) for d in data],
                         "input": [str(d.get("input", "")) for d in data],
                         "output": [str(d.get("output", "")) for d in data]})


def mixture_comparison(run_dir: Path, pool: pd.DataFrame, seed: int = 0, embedder: Any = None,
                       pool_sample_x: np.ndarray | None = None) -> list[dict]:
    """Vendi, mean cosine distance, coverage of the pool and distinct-2 of every mixture of a run,
    in one embedding fitted on the pool: the figures that compare diversity-aware strategies with
    ``random`` at the same size. ``pool_sample_x``: the embeddings of the pool's coverage sample
    (what ``analyse_frame`` returns as ``_coverage_x``); without it they are computed from ``pool``."""
    from ..diversity import distinct_n, embedding_metrics
    from ..embed import Embedder, instruction_texts

    mx = load_stage_json(run_dir, "mixtures", "mixtures.json") or []
    if not mx or not len(pool):
        return []
    emb = embedder if embedder is not None else Embedder(seed=seed).fit(instruction_texts(pool))
    if pool_sample_x is None:  # a row's embedding depends on its text alone: embed the sample only
        pool_sample_x = emb.transform(instruction_texts(pool.iloc[sample_positions(len(pool), COVERAGE_SAMPLE, seed)]))
    rows = []
    for m in mx:
        path = run_dir / "mixtures" / m["file"]
        if not path.exists():
            continue
        df = read_mixture_rows(path)
        x = emb.transform(instruction_texts(df))
        div = m.get("composition", {}).get("diversity", {})
        rows.append({"mixture": m["name"], "strategy": m.get("spec", {}).get("strategy", ""), "rows": int(len(df)),
                     **embedding_metrics(x, seed=seed), **coverage_of(pool_sample_x, x),
                     "task_type_entropy": div.get("task_type_entropy"),
                     "cluster_entropy": div.get("cluster_entropy"),
                     "distinct_2": round(distinct_n(df["instruction"].tolist(), 2), 6)})
    return rows


def pairs_against_random(rows: list[dict]) -> list[dict]:
    """Each non-random mixture next to the random mixture of the same size, when the run has one."""
    rnd = {r["rows"]: r for r in rows if r["strategy"] == "random"}
    out = []
    for r in rows:
        base = rnd.get(r["rows"])
        if r["strategy"] == "random" or base is None:
            continue
        for k in ("vendi", "mean_cosine_distance", "coverage_mean", "coverage_max", "task_type_entropy", "distinct_2"):
            if r.get(k) is not None and base.get(k) is not None:
                out.append({"mixture": r["mixture"], "vs": base["mixture"], "figure": k, "mixture value": r[k],
                            "random value": base[k], "difference": round(float(r[k]) - float(base[k]), 4)})
    return out
