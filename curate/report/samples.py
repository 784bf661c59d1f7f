"""Per-sample figures the report shows (Data-Juicer's analyser, tracer): lengths and character classes of
every row, near-duplicate clusters with their survivor, and a seeded sample of dropped rows. Reads stage
outputs a column and a row group at a time (bounded memory at millions of rows); writes nothing."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FIELDS = ["instruction", "input", "output"]
# histogram edges in characters (roughly doubling: cutoff_len choices sit on edges)
LENGTH_EDGES = np.array([0, 1, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, np.inf])
CUTOFFS = [256, 512, 1024, 2048]
CLASSES = {"han": r"\p{Han}", "latin": r"[A-Za-z]", "digit": r"[0-9]"}


def length_labels(edges: np.ndarray = LENGTH_EDGES) -> list[str]:
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        out.append("0" if (lo, hi) == (0, 1) else (f"≥ {int(lo):,}" if not np.isfinite(hi) else f"{int(lo):,}–{int(hi) - 1:,}"))
    return out


CLASS_SAMPLE = 100_000  # rows of a pool whose characters are classed (seeded sample; lengths use every row)


def _field_stats(arr: pa.Array | pa.ChunkedArray, mask: np.ndarray, take: pa.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Characters of each row of one text column, and its Han / Latin / digit characters on the rows
    ``mask`` marks (``take``: their positions; 0 elsewhere)."""
    arr = pc.fill_null(arr.cast(pa.string()), "")
    n = pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    part = arr.take(take)
    classes = {}
    for k, pat in CLASSES.items():
        c = np.zeros(len(n), np.int64)
        c[mask] = pc.count_substring_regex(part, pat).to_numpy(zero_copy_only=False)
        classes[k] = c
    return n, classes


def _stats_frame(fields: list[tuple[np.ndarray, dict[str, np.ndarray]]], mask: np.ndarray) -> pd.DataFrame:
    """The per-row table of ``text_stats_table`` from the ``_field_stats`` of instruction, input, output."""
    out: dict[str, np.ndarray] = {f"{f}_chars": n.astype(np.int32) for f, (n, _) in zip(FIELDS, fields)}
    for k in CLASSES:
        out[k] = np.where(mask, sum(c[k] for _, c in fields), -1).astype(np.int32)
    out["total_chars"] = sum(n for n, _ in fields)  # int64: sums
    return pd.DataFrame(out)


def text_stats_table(table: pa.Table, classify: np.ndarray | None = None) -> pd.DataFrame:
    """Per row: characters of each field, and Han / Latin / digit characters over all fields of the rows
    ``classify`` marks (all rows by default; -1 for the others)."""
    mask = np.ones(table.num_rows, bool) if classify is None else classify
    take = pa.array(np.flatnonzero(mask))
    return _stats_frame([_field_stats(table.column(f) if f in table.column_names else pa.array([""] * table.num_rows),
                                      mask, take) for f in FIELDS], mask)


def parquet_text_stats(path: Path, class_sample: int = CLASS_SAMPLE, seed: int = 0) -> pd.DataFrame:
    """``text_stats_table`` of every row of a Parquet file, one column of one row group at a time (the
    least memory, and the fastest read); character classes on a seeded sample of ``class_sample`` rows
    (the regex count is the costly part)."""
    from .analysis import sample_positions

    pf = pq.ParquetFile(path)
    n = pf.metadata.num_rows
    marked = np.zeros(n, bool)
    marked[sample_positions(n, class_sample, seed)] = True
    have = set(pf.schema_arrow.names)
    parts, at = [], 0
    for g in range(pf.num_row_groups):
        rows = pf.metadata.row_group(g).num_rows
        mask = marked[at:at + rows]
        take = pa.array(np.flatnonzero(mask))
        parts.append(_stats_frame([_field_stats(pf.read_row_group(g, columns=[f]).column(0) if f in have
                                                else pa.array([""] * rows), mask, take) for f in FIELDS], mask))
        at += rows
    return pd.concat(parts, ignore_index=True) if parts else text_stats_table(pa.table({c: pa.array([], pa.string()) for c in FIELDS}))


def frame_text_stats(df: pd.DataFrame) -> pd.DataFrame:
    return text_stats_table(pa.table({f: pa.array(df[f].astype(str).tolist(), pa.string()) for f in FIELDS if f in df.columns}))


def length_summary(stats: dict[str, pd.DataFrame]) -> list[dict]:
    """Per group: rows, median / p90 / p99 characters of each field, share of rows whose instruction + input +
    output exceed each of ``CUTOFFS`` characters, and the Han / Latin / digit shares of all characters."""
    rows = []
    for g, s in stats.items():
        r: dict[str, Any] = {"group": g, "rows": int(len(s))}
        for f in FIELDS:
            v = s[f"{f}_chars"].to_numpy()
            q = np.quantile(v, [0.5, 0.9, 0.99]) if len(v) else [0, 0, 0]
            r[f"{f} p50"], r[f"{f} p90"], r[f"{f} p99"] = (int(round(x)) for x in q)
        tot = s["total_chars"].to_numpy()
        for c in CUTOFFS:
            r[f"> {c} chars"] = round(float((tot > c).mean()) if len(tot) else 0.0, 4)
        classed = s["han"].to_numpy() >= 0  # the rows whose characters were classed (a sample of a large pool)
        chars = max(1, int(tot[classed].sum()))
        for k in CLASSES:
            r[f"{k} share"] = round(int(s[k].to_numpy()[classed].sum()) / chars, 4)
        rows.append(r)
    return rows


def length_hist(stats: dict[str, pd.DataFrame], field: str, edges: np.ndarray = LENGTH_EDGES) -> list[dict]:
    """Histogram rows (group, bin, count, share) of one field's (or ``total``'s) characters."""
    from .charts import binned

    return binned({g: s[f"{field}_chars"].to_numpy() for g, s in stats.items()}, edges)


TOKEN_SAMPLE = 5000  # rows per group whose tokens are counted (seeded sample)
TOKEN_CUTOFFS = [256, 512, 1024]  # cutoff_len in tokens (train.finetune's default is 256)
TOKEN_EDGES = np.array([0, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, np.inf])


def find_tokenizer(run_dir: Path, given: str | Path | None = None) -> Path | None:
    """A local tokenizer for token counts: ``given`` (a ``tokenizer.json`` or a folder holding one), else the
    tiny base built from this run's pool (``<run's parent>/models/tiny-*/``, its ``build.json`` naming the
    pool's sha256). None when there is none: nothing is downloaded."""
    if given:
        g = Path(given)
        g = g / "tokenizer.json" if g.is_dir() else g
        if not g.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {given}")
        return g
    pool = run_dir / "05_diversity" / "kept.parquet"
    cands = sorted((run_dir.parent / "models").glob("tiny-*/build.json")) if pool.exists() else []
    if not cands:
        return None
    from ..io import read_json, sha256_file

    sha = sha256_file(pool)
    for b in cands:
        if read_json(b).get("pool_sha256") == sha and (b.parent / "tokenizer.json").is_file():
            return b.parent / "tokenizer.json"
    return None


def token_counts(tokenizer_json: Path, texts: list[str]) -> np.ndarray:
    """Tokens of each text (no special tokens) with the ``tokenizers`` library: the training's count
    less the prompt template's few tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    return np.array([len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)], dtype=np.int64)


def plain_text(df: pd.DataFrame) -> list[str]:
    """instruction, input, output joined by newlines (what a prompt template wraps)."""
    cols = [df[f].fillna("").astype(str) if f in df.columns else pd.Series([""] * len(df)) for f in FIELDS]
    return [("\n".join(x for x in t if x)) for t in zip(*cols)]


# ---- near duplicates -------------------------------------------------------------------------------

_DETAIL = re.compile(r"^(\S+)(?:\s+jaccard=([0-9.]+))?")


def parse_detail(detail: pd.Series) -> pd.DataFrame:
    """``survivor`` id and ``jaccard`` (NaN for exact duplicates) from the dedupe stage's ``detail``."""
    m = detail.astype(str).str.extract(_DETAIL)
    return pd.DataFrame({"survivor": m[0], "jaccard": pd.to_numeric(m[1], errors="coerce")})


def rows_by_id(path: Path, ids: list[str], columns: list[str]) -> pd.DataFrame:
    """The rows of a Parquet file whose ``id`` is one of ``ids``, in file order: the ``id`` column is
    read to find them, then only their row groups' ``columns``."""
    if not ids or not path.exists():
        return pd.DataFrame(columns=columns)
    from .analysis import parquet_rows

    col = pq.read_table(path, columns=["id"]).column("id")
    pos = np.flatnonzero(pc.is_in(col, value_set=pa.array(sorted(set(ids)), pa.string())).to_numpy(zero_copy_only=False))
    return parquet_rows(path, columns)(pos).drop_duplicates("id")  # columns the file lacks are left out


def row_text(r: dict | pd.Series) -> str:
    parts = [str(r.get("instruction", "") or "")]
    if str(r.get("input", "") or ""):
        parts.append(str(r["input"]))
    parts.append("→ " + str(r.get("output", "") or ""))
    return "\n".join(parts)


TEXT_COLS = ["id", "source", "file", "row", "instruction", "input", "output"]


def survivors_of(run_dir: Path, dropped: pd.DataFrame, stage: str = "04_dedupe") -> pd.DataFrame:
    """For dedupe-dropped rows: ``survivor``, ``jaccard`` (NaN if exact) and the survivor's texts (``s_*``),
    looked up in the stage's kept rows (or its dropped rows, when a later step dropped the survivor too)."""
    info = parse_detail(dropped["detail"]).set_index(dropped.index)
    ids = info["survivor"].dropna().unique().tolist()
    found = pd.concat([rows_by_id(run_dir / stage / "kept.parquet", ids, TEXT_COLS),
                       rows_by_id(run_dir / stage / "dropped.parquet", ids, TEXT_COLS)], ignore_index=True)
    found = found.drop_duplicates("id").set_index("id")
    for c in TEXT_COLS[1:]:
        info[f"s_{c}"] = [found.at[i, c] if i in found.index else None for i in info["survivor"]]
    return info


def near_duplicate_clusters(run_dir: Path, per_kind: int = 4, max_dropped: int = 5, stage: str = "04_dedupe") -> list[dict]:
    """A sample of near-duplicate clusters: the ``per_kind`` largest, most cross-source and nearest the
    threshold (lowest Jaccard), each with its survivor and ≤ ``max_dropped`` dropped rows (lowest Jaccard
    first). Only the shown rows' texts are read."""
    p = run_dir / stage / "dropped.parquet"
    if not p.exists():
        return []
    t = pq.read_table(p, columns=["id", "source", "reason", "detail"], filters=[("reason", "==", "near_duplicate")])
    if not t.num_rows:
        return []
    d = t.to_pandas()
    d = pd.concat([d.reset_index(drop=True), parse_detail(d["detail"])], axis=1)
    # survivors' sources (ids only read; their rows materialised), then sources per cluster, vectorised
    surv = rows_by_id(run_dir / stage / "kept.parquet", d["survivor"].unique().tolist(), ["id", "source"])
    src_of = dict(zip(surv["id"], surv["source"]))
    g = d.groupby("survivor", sort=True)
    by = pd.DataFrame({"size": g.size() + 1, "min_jaccard": g["jaccard"].min()})
    pairs = pd.concat([d[["survivor", "source"]], surv.rename(columns={"id": "survivor"})[["survivor", "source"]]])
    by["sources"] = pairs.drop_duplicates().groupby("survivor").size().reindex(by.index).fillna(1).astype(int)
    picks: list[tuple[str, str]] = []
    for why, order in (("largest", by.sort_values(["size", "min_jaccard"], ascending=[False, True], kind="mergesort")),
                       ("most cross-source", by.sort_values(["sources", "size"], ascending=[False, False], kind="mergesort")),
                       ("nearest the threshold", by.sort_values(["min_jaccard"], kind="mergesort"))):
        n = 0
        for k in order.index:
            if n >= per_kind:
                break
            if k not in {x for _, x in picks}:
                picks.append((why, k))
                n += 1
    picked = d[d["survivor"].isin({k for _, k in picks})]
    shown = {k: part.sort_values(["jaccard", "id"], kind="mergesort").head(max_dropped)
             for k, part in picked.groupby("survivor", sort=False)}
    ids = [k for _, k in picks] + [i for part in shown.values() for i in part["id"]]
    texts = pd.concat([rows_by_id(p, ids, TEXT_COLS), rows_by_id(run_dir / stage / "kept.parquet", ids, TEXT_COLS)],
                      ignore_index=True).drop_duplicates("id").set_index("id")
    out = []
    for why, k in picks:
        s = texts.loc[k].to_dict() if k in texts.index else {"source": src_of.get(k, "?")}
        out.append({"why": why, "survivor_id": k, "size": int(by.at[k, "size"]), "sources": int(by.at[k, "sources"]),
                    "survivor": {"id": k, **{c: s.get(c, "") for c in TEXT_COLS[1:]}},
                    "dropped": [{"id": r["id"], "jaccard": float(r["jaccard"]),
                                 **{c: texts.loc[r["id"]].get(c, "") for c in TEXT_COLS[1:] if r["id"] in texts.index}}
                                for r in shown[k].to_dict("records")]})
    return out


def dropped_sample(run_dir: Path, stages: list[str], per_reason: int = 50, seed: int = 0,
                   text_chars: int = 300) -> tuple[list[dict], dict[tuple[str, str], int]]:
    """A seeded sample of ≤ ``per_reason`` dropped rows of each (stage, reason), texts cut to ``text_chars``;
    and the number of rows of each (stage, reason)."""
    from .analysis import parquet_rows, sample_positions

    rows: list[dict] = []
    totals: dict[tuple[str, str], int] = {}
    for st in stages:
        p = run_dir / st / "dropped.parquet"
        if not p.exists():
            continue
        have = pq.ParquetFile(p).schema_arrow.names
        lab = pd.read_parquet(p, columns=[c for c in ("stage", "reason", "source", "file", "row", "detail") if c in have])
        if not len(lab):
            continue
        pos_all = []
        for (stage, reason), part in lab.groupby(["stage", "reason"], sort=True):
            totals[(str(stage), str(reason))] = int(len(part))
            idx = part.index.to_numpy()
            pos_all.append(np.sort(idx[sample_positions(len(idx), per_reason, seed)]))
        pos = np.concatenate(pos_all)
        txt = parquet_rows(p, ["instruction", "input", "output"])(pos)
        for i, (j, r) in enumerate(zip(pos, lab.iloc[pos].to_dict("records"))):
            rows.append({"stage": str(r.get("stage", st)), "reason": str(r.get("reason", "")), "source": str(r.get("source", "")),
                         "file": str(r.get("file", "")), "row": int(r.get("row", -1)), "detail": str(r.get("detail", ""))[:200],
                         **{f: str(txt[f].iat[i])[:text_chars] if f in txt.columns else "" for f in FIELDS}})
    return rows, totals
