"""One self-contained HTML report of a run (plots embedded as PNG), plus a Markdown summary.

Everything shown is read back from the run folder (manifest, ledgers, stats, dropped rows,
mixture manifests), so the report can be rebuilt at any time with ``tiger report RUN_DIR``.
"""
from __future__ import annotations

import base64
import glob
import html
import io
import json
import warnings
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from .io import read_json, write_text  # noqa: E402

TASK_TYPES_ORDER = ["generation", "rewrite", "brainstorming", "open qa", "closed qa", "classification",
                    "extract", "summarization", "math", "code", "other"]
SECTIONS = ["summary", "ledger", "parse", "normalize", "filter", "dedupe", "diversity", "mixtures", "manifest"]


_FONT_READY = False


def _setup_fonts() -> None:
    """Use a CJK font for plots when one is installed (Debian's fonts-noto-cjk comes with chromium),
    so verbs and nouns are drawn as characters, not boxes. Registered by file, so a font installed
    after matplotlib built its cache is found too."""
    global _FONT_READY
    if _FONT_READY:
        return
    from matplotlib import font_manager

    names = []
    for pattern in ("/usr/share/fonts/**/NotoSansCJK-Regular.ttc", "/usr/share/fonts/**/NotoSansCJKsc-Regular.otf",
                    "/usr/share/fonts/**/wqy-microhei.ttc", "/usr/share/fonts/**/wqy-zenhei.ttc"):
        for path in sorted(glob.glob(pattern, recursive=True))[:1]:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError):
                continue
    have = {f.name for f in font_manager.fontManager.ttflist}
    names = [n for n in ("Noto Sans CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei") if n in have]
    plt.rcParams["font.sans-serif"] = names + ["DejaVu Sans"]
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["axes.unicode_minus"] = False
    _FONT_READY = True


def _e(x: Any) -> str:
    return html.escape(str(x))


def _png(fig, name: str = "plot") -> str:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a glyph missing from the font is not an error of the data
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return (f'<img class="plot" data-plot="{_e(name)}" alt="{_e(name)}" '
            f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">')


def _table(rows: list[dict], cols: list[str] | None = None) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    cols = cols or list(rows[0].keys())
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_e(_fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _md_table(rows: list[dict], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c, "")).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(out)


def _examples_html(examples: list[dict]) -> str:
    if not examples:
        return ""
    items = []
    for ex in examples:
        items.append("<li><code>" + _e(json.dumps(ex, ensure_ascii=False)[:600]) + "</code></li>")
    return "<ul class='ex'>" + "".join(items) + "</ul>"


def _load(run_dir: Path, stage: str, name: str) -> Any:
    p = run_dir / stage / name
    return read_json(p) if p.exists() else {}


def _ledger_plot(ledger: list[dict]) -> str:
    sources = sorted({s for row in ledger for s in row["by_source"]})
    fig, ax = plt.subplots(figsize=(8, 3.6))
    stages = [row["stage"] for row in ledger]
    bottom = [0] * len(stages)
    for src in sources:
        vals = [row["by_source"].get(src, {}).get("kept", 0) for row in ledger]
        ax.bar(stages, vals, bottom=bottom, label=src)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("records kept")
    ax.set_title("Records kept after each stage, by source")
    ax.legend(fontsize=8)
    return _png(fig, "ledger")


def _stacked_share_plot(table: pd.DataFrame, title: str) -> str:
    """Rows: groups (sources or mixtures); columns: task types; values: counts → shares."""
    share = table.div(table.sum(axis=1).where(lambda s: s > 0, 1), axis=0)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(share) + 1.6))
    left = [0.0] * len(share)
    cmap = plt.get_cmap("tab20")
    for i, col in enumerate(share.columns):
        ax.barh(share.index.astype(str), share[col], left=left, label=col, color=cmap(i % 20))
        left = [a + b for a, b in zip(left, share[col])]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of records")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return _png(fig, title)


def _cluster_plot(sizes: pd.Series) -> str:
    fig, ax = plt.subplots(figsize=(8, 3))
    s = sizes.sort_values(ascending=False)
    ax.bar(range(len(s)), s.values)
    ax.set_xlabel("cluster (sorted by size)")
    ax.set_ylabel("records")
    ax.set_title(f"Cluster sizes ({len(s)} clusters)")
    return _png(fig, "cluster_sizes")


def build_report(run_dir: Path) -> tuple[Path, str]:
    _setup_fonts()
    run_dir = Path(run_dir)
    manifest = read_json(run_dir / "manifest.json")
    ledger = manifest["ledger"]
    parts: dict[str, str] = {}
    md: list[str] = [f"# tiger curation report — {manifest['run_id']}", ""]

    # Summary
    first, last = ledger[0], ledger[-1]
    n_files = len(manifest["inputs"])
    mixtures = manifest.get("mixtures", [])
    parts["summary"] = (
        f"<p>{n_files} input files, {first['in']:,} raw rows → {last['kept']:,} curated records "
        f"({first['in'] - last['kept']:,} dropped, every one with a reason below). "
        f"{len(mixtures)} mixtures: " + ", ".join(f"<b>{_e(m['name'])}</b> ({m['rows']:,})" for m in mixtures) + ".</p>")
    md += [f"{n_files} files, {first['in']:,} raw rows → {last['kept']:,} curated records.", ""]

    # Ledger
    lrows = [{"stage": r["stage"], "in": r["in"], "kept": r["kept"], "dropped": r["dropped"],
              "balanced": "yes" if r["balanced"] else "NO", "reasons": r["reasons"]} for r in ledger]
    parts["ledger"] = (_table(lrows) + _ledger_plot(ledger) + "<h3>By source</h3>" + _table(
        [{"stage": r["stage"], "source": s, **c} for r in ledger for s, c in r["by_source"].items()]))
    md += ["## Ledger", "", _md_table(lrows, ["stage", "in", "kept", "dropped", "balanced", "reasons"]), ""]

    # Parse
    pstats = _load(run_dir, "01_parse", "stats.json")
    files_tbl = [{"file": f, **v} for f, v in sorted((pstats.get("files") or {}).items())]
    parts["parse"] = _table(files_tbl) + _drops_html(run_dir, "01_parse")

    # Normalize
    nstats = _load(run_dir, "02_normalize", "stats.json")
    nrows, nhtml = [], []
    for step in nstats.get("steps", []):
        nrows.append({"rule": step["op"], "rows changed": step.get("changed", 0), "by field": step.get("by_field", "")})
        nhtml.append(f"<h3>{_e(step['op'])}</h3>" + _examples_html(step.get("examples", [])))
    parts["normalize"] = _table(nrows) + "".join(nhtml)
    md += ["## Normalization", "", _md_table(nrows, ["rule", "rows changed"]), ""]

    parts["filter"] = _steps_html(_load(run_dir, "03_filter", "stats.json")) + _drops_html(run_dir, "03_filter")
    dstats = _load(run_dir, "04_dedupe", "stats.json")
    parts["dedupe"] = _steps_html(dstats, cluster_examples=True) + _drops_html(run_dir, "04_dedupe")

    # Diversity
    pool_path = run_dir / "05_diversity" / "kept.parquet"
    vstats = _load(run_dir, "05_diversity", "stats.json")
    div = vstats.get("diversity", {})
    dv_rows = [{"group": g, **m} for g, m in [("all", div.get("all", {}))] + sorted(div.get("by_source", {}).items())]
    dhtml = _table(dv_rows)
    pool = pd.DataFrame()
    if pool_path.exists():
        # the label columns only (a few MB at millions of rows); the texts of the rows a figure
        # samples or shows are read from the file when needed (_parquet_rows)
        have = pq.ParquetFile(pool_path).schema_arrow.names
        pool = pd.read_parquet(pool_path, columns=[c for c in ("source", "task_type", "cluster", "novelty", "task_confidence") if c in have])
        ct = pd.crosstab(pool["source"], pool["task_type"]).reindex(columns=[t for t in TASK_TYPES_ORDER if t in set(pool["task_type"].unique())])
        dhtml += _stacked_share_plot(ct, "Task types per source") + _table(
            [{"source": s, **{k: int(v) for k, v in row.items()}} for s, row in ct.iterrows()])
        if "task_confidence" in pool.columns:  # curate.tasktype_model: under MIN_CONFIDENCE is a guess
            from .tasktype_model import MIN_CONFIDENCE
            low = int((pool["task_confidence"] < MIN_CONFIDENCE).sum())
            dhtml += (f"<p>Low-confidence task types (task_confidence &lt; {MIN_CONFIDENCE}): {low:,} of {len(pool):,} rows "
                      f"({low / max(1, len(pool)):.1%}).</p>")
        dhtml += _cluster_plot(pool["cluster"].value_counts())
    seed = int(manifest.get("recipe", {}).get("seed", 0) or 0) if isinstance(manifest.get("recipe"), dict) else 0
    a: dict[str, Any] = {}
    if len(pool):
        pool["_group"] = pool["source"].astype(str)
        n_k = int(pool["cluster"].nunique()) if "cluster" in pool.columns else None
        known = {"all": div.get("all"), **div.get("by_source", {})} if div else None
        a = analyse_frame(pool, sorted(pool["_group"].unique()), seed=seed, n_clusters=n_k, overall="all", known=known,
                          fetch=_parquet_rows(pool_path, ["instruction", "input"]), coverage_sample=COVERAGE_SAMPLE)
        rich = _metrics_rows(a)
        vendi_rows = a["metrics"]["all"].get("vendi_rows", 0)
        verb_rows = a["verb_noun"]["all"]["sampled"]
        dhtml += ("<h3>Richer figures per source</h3><p>Vendi and mean cosine distance on a seeded sample of ≤ 2,000 rows "
                  f"per group ({vendi_rows:,} of the pool's {len(pool):,}), in one TF-IDF/SVD embedding fitted on a "
                  "seeded sample of the pool; verb figures on a seeded sample of ≤ 5,000 rows per group; distinct-n and "
                  "entropies on all rows (see the method note below).</p>" + _table(rich)
                  + _metrics_plot(rich, "Diversity figures per source"))
        dhtml += ("<h3>Verb–noun structure of the pool</h3>"
                  f"<p>On a seeded sample of {verb_rows:,} rows of the pool's {len(pool):,}.</p>"
                  + _verb_noun_plot(a["verb_noun"]["all"], "Root verbs and their objects: all")
                  + _verb_noun_html(a["verb_noun"]["all"]))
        src_nov = {k: v for k, v in a["novelty"].items() if k != "all"}
        note = ("the <code>novelty</code> column of the records" if "novelty" in pool.columns
                else "computed for this report (the recipe has no <code>novelty_tagger</code>)")
        dhtml += (f"<h3>Novelty of records</h3><p>Novelty is {note}.</p>" + _novelty_plot(src_nov, "Novelty per source")
                  + "<h4>Most novel records of the pool</h4>" + _table(a["examples"]["all"]))
        dhtml += "<h3>How the figures are computed</h3>" + METHOD_HTML
        md += ["## Diversity per source (richer figures)", "",
               _md_table(rich, [c for c in ["group", "rows", "task_type_entropy", "cluster_entropy", "distinct_2", "vendi",
                                            "mean_cosine_distance", "mean_novelty", "verb_entropy"] if c in rich[0]]), ""]
    for step in vstats.get("steps", []):
        if step.get("clusters"):
            dhtml += "<h3>Clusters (top terms)</h3>" + _table(step["clusters"][:60] if isinstance(step["clusters"], list) else
                                                               [{"cluster": k, "terms": v} for k, v in list(step["clusters"].items())[:60]])
    parts["diversity"] = dhtml
    cols = [c for c in ["group", "rows", "task_type_entropy", "task_type_coverage", "cluster_entropy", "distinct_1",
                        "distinct_2", "distinct_3"] if c in dv_rows[0]]
    md += ["## Diversity per source", "", _md_table(dv_rows, cols), ""]

    # Mixtures
    mx = _load(run_dir, "mixtures", "mixtures.json") or []
    mrows, tt = [], {}
    for m in mx:
        comp = m.get("composition", {})
        mrows.append({"mixture": m["name"], "rows": m["rows"], **{k: v for k, v in comp.get("diversity", {}).items()
                                                                   if isinstance(v, (int, float))}})
        tt[m["name"]] = comp.get("by_task_type", {})
    mhtml = _table(mrows)
    if tt:
        t = pd.DataFrame(tt).T.fillna(0)
        t = t.reindex(columns=[c for c in TASK_TYPES_ORDER if c in t.columns])
        mhtml += _stacked_share_plot(t, "Task types per mixture")
        src = pd.DataFrame({m["name"]: m.get("composition", {}).get("by_source", {}) for m in mx}).T.fillna(0)
        mhtml += _stacked_share_plot(src, "Sources per mixture")
    comp = (mixture_comparison(run_dir, pool, seed=seed, embedder=a["_embedder"], pool_sample_x=a["_coverage_x"])
            if mx and len(pool) else [])
    if comp:
        mhtml += ("<h3>Diversity-aware selection against random</h3><p>Every mixture embedded with one TF-IDF/SVD "
                  "embedding fitted on the pool. Vendi and mean cosine distance on ≤ 2,000 rows of each mixture; "
                  "coverage: cosine distance from ≤ 5,000 pool rows to their nearest mixture row (lower is better; "
                  "k-center minimises its maximum).</p>" + _table(comp) + _comparison_plot(comp))
        pairs = _pairs_against_random(comp)
        if pairs:
            mhtml += "<h4>Each strategy next to random at the same size</h4>" + _table(pairs)
        md += ["## Mixtures against random (one embedding)", "",
               _md_table(comp, ["mixture", "rows", "vendi", "mean_cosine_distance", "coverage_mean", "coverage_max",
                                "task_type_entropy", "distinct_2"]), ""]
    parts["mixtures"] = mhtml
    if mrows:
        md += ["## Mixtures", "", _md_table(mrows, list(mrows[0].keys())), ""]

    # Manifest
    parts["manifest"] = ("<h3>Packages</h3>" + _table([{"package": k, "version": v} for k, v in manifest["packages"].items()])
                         + f"<p>code version {_e(manifest['code_version'])}</p><h3>Recipe</h3><pre>"
                         + _e(json.dumps(manifest["recipe"], ensure_ascii=False, indent=2)) + "</pre><h3>Inputs</h3>"
                         + _table(manifest["inputs"], ["source", "file", "bytes", "sha256", "url"]))

    titles = {"summary": "Summary", "ledger": "Ledger: every record kept or dropped with a reason",
              "parse": "Parse and quarantine", "normalize": "Normalization", "filter": "Language and empty-text filter",
              "dedupe": "Deduplication", "diversity": "Task types, clusters and diversity", "mixtures": "Mixtures",
              "manifest": "Manifest"}
    nav = " · ".join(f"<a href='#{s}'>{titles[s]}</a>" for s in SECTIONS)
    body = "".join(f"<section id='{s}'><h2>{titles[s]}</h2>{parts.get(s, '')}</section>" for s in SECTIONS)
    page = (f"<!doctype html><html lang='zh'><head><meta charset='utf-8'><title>tiger report {_e(manifest['run_id'])}</title>"
            f"<style>{CSS}</style></head><body><h1>tiger curation report <small>{_e(manifest['run_id'])}</small></h1>"
            f"<nav>{nav}</nav>{body}<script>{SCRIPT}</script></body></html>")
    out = run_dir / "report" / "report.html"
    write_text(out, page)
    markdown = "\n".join(md)
    write_text(run_dir / "report" / "summary.md", markdown)
    return out, markdown


def _steps_html(stats: dict, cluster_examples: bool = False) -> str:
    out = []
    for step in stats.get("steps", []):
        out.append(f"<h3>{_e(step['op'])}</h3><p>{step['in']:,} in, {step['kept']:,} kept, {step['dropped']:,} dropped</p>")
        extra = {k: v for k, v in step.items() if k not in {"op", "params", "in", "kept", "dropped", "examples", "reasons"}
                 and not isinstance(v, (list, dict))}
        if extra:
            out.append(_table([extra]))
        for k, v in step.items():
            if isinstance(v, dict) and k not in {"params", "examples"} and v and all(not isinstance(x, (dict, list)) for x in v.values()):
                out.append(f"<h4>{_e(k)}</h4>" + _table([{"key": a, "value": b} for a, b in v.items()]))
        if cluster_examples and isinstance(step.get("examples"), list):
            for i, cl in enumerate(step["examples"][:5]):
                out.append(f"<h4>example cluster {i + 1}</h4>" + _examples_html(cl if isinstance(cl, list) else [cl]))
    return "".join(out)


def _parquet_rows(path: Path, columns: list[str]) -> Callable[[np.ndarray], pd.DataFrame]:
    """``fetch(positions)``: those rows of a Parquet file, ``columns`` only, read one column at a time
    (a text column of millions of rows is held once, as Arrow, and only until its rows are taken)."""
    def fetch(positions: np.ndarray) -> pd.DataFrame:
        idx = pa.array(np.asarray(positions, dtype=np.int64))
        have = pq.ParquetFile(path).schema_arrow.names
        cols = {c: pq.read_table(path, columns=[c]).column(c).take(idx) for c in columns if c in have}
        return pa.table(cols).to_pandas() if cols else pd.DataFrame(index=range(len(idx)))
    return fetch


def _drops_html(run_dir: Path, stage: str, per_reason: int = 3) -> str:
    p = run_dir / stage / "dropped.parquet"
    if not p.exists():
        return ""
    # only what is shown (the raw `extra` of quarantined rows can be most of the file)
    have = pq.ParquetFile(p).schema_arrow.names
    df = pd.read_parquet(p, columns=[c for c in ("stage", "reason", "source", "file", "row", "detail", "instruction",
                                                 "output") if c in have])
    if not len(df):
        return "<p>Nothing dropped here.</p>"
    out = ["<h3>Dropped, by reason</h3>"]
    for (st, reason), part in df.groupby(["stage", "reason"], sort=True):
        out.append(f"<h4>{_e(st)} — {_e(reason)}: {len(part):,}</h4>")
        ex = [{"source": r["source"], "file": r["file"], "row": int(r["row"]), "detail": str(r["detail"])[:200],
               "instruction": str(r["instruction"])[:120], "output": str(r["output"])[:80]}
              for r in part.head(per_reason).to_dict("records")]
        out.append(_examples_html(ex))
    return "".join(out)


CSS = """body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em;display:block;overflow-x:auto;max-width:100%}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}section{border-top:2px solid #ddd;margin-top:1.5em}img.plot{max-width:100%;display:block;margin:.5em 0}
ul.ex code{white-space:pre-wrap;font-size:.8em}nav{font-size:.9em}small{color:#777}"""


# ==== diversity analysis: shared by the run report and `tiger diversity` ===========================

VERB_SAMPLE = 5000  # rows per group parsed for the verb–noun analysis (seeded sample)
COVERAGE_SAMPLE = 5000  # pool rows whose distance to a mixture is measured (seeded sample)
METRIC_COLUMNS = ["group", "rows", "task_type_entropy", "task_type_entropy_norm", "task_type_coverage", "cluster_entropy",
                  "cluster_entropy_norm", "distinct_1", "distinct_2", "distinct_3", "vendi", "mean_cosine_distance",
                  "mean_novelty", "verb_entropy", "distinct_verbs", "mean_instruction_chars"]

SCRIPT = """window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.plot'), ok = 0;
  imgs.forEach(function (im) { if (im.complete && im.naturalWidth > 0) { ok++; } });
  document.body.setAttribute('data-plots-total', String(imgs.length));
  document.body.setAttribute('data-plots-ok', String(ok));
  document.body.setAttribute('data-ready', '1');
});"""


def _sample_positions(n: int, size: int, seed: int) -> np.ndarray:
    from .diversity import sample_rows

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
    from .diversity import TEXT_FIGURES, VENDI_SAMPLE, diversity_metrics, sample_rows, verb_noun_pairs, verb_noun_table
    from .embed import Embedder, instruction_texts, novelty_scores
    from .tasktype import ClusterTagger

    if "task_type" not in allrows.columns or allrows["task_type"].isna().any():
        from .userfiles import label_frame

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

    gcol = allrows["_group"].to_numpy()
    groups = {name: np.flatnonzero(gcol == name) for name in names}
    if overall:
        if overall in groups:
            raise ValueError(f"analyse_groups: overall name {overall!r} is also a group")
        groups = {overall: np.arange(n), **groups}
        names = list(groups)
    fitted = embedder is not None
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
                      "verb": pos[_sample_positions(len(pos), VERB_SAMPLE, seed)],
                      "top": pos[np.argsort(-novelty[pos], kind="mergesort")[:5]]}
    fit_pos = emb.fit_positions(n) if not fitted else np.empty(0, np.int64)
    cov_pos = _sample_positions(n, coverage_sample, seed) if coverage_sample else np.empty(0, np.int64)
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


def _metrics_rows(analysis: dict[str, Any]) -> list[dict]:
    rows = []
    for g in analysis["groups"]:
        m = analysis["metrics"][g]
        rows.append({c: (g if c == "group" else m.get(c)) for c in METRIC_COLUMNS if c == "group" or c in m})
    return rows


def _metrics_plot(rows: list[dict], title: str) -> str:
    """Grouped bars of the [0, 1] figures plus Vendi scaled by its largest value."""
    keys = [("task_type_entropy_norm", "task-type entropy (norm.)"), ("cluster_entropy_norm", "cluster entropy (norm.)"),
            ("distinct_2", "distinct-2"), ("mean_cosine_distance", "mean cosine distance"), ("vendi", "Vendi (÷ max)")]
    keys = [(k, lab) for k, lab in keys if any(r.get(k) is not None for r in rows)]
    vmax = max([r.get("vendi") or 0 for r in rows] + [1e-9])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        vals = [(r.get(k) or 0) / (vmax if k == "vendi" else 1.0) for k, _ in keys]
        ax.bar(np.arange(len(keys)) + i * width, vals, width, label=str(r["group"]))
    ax.set_xticks(np.arange(len(keys)) + width * (len(rows) - 1) / 2)
    ax.set_xticklabels([lab for _, lab in keys], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=min(4, len(rows)), loc="upper center", bbox_to_anchor=(0.5, -0.15))
    return _png(fig, title)


def _verb_noun_plot(table: dict[str, Any], title: str) -> str:
    """Self-instruct's sunburst: inner ring the top root verbs, outer ring each verb's top nouns."""
    verbs = table["verbs"]
    fig, ax = plt.subplots(figsize=(7.5, 7.5))
    if not verbs:
        ax.text(0.5, 0.5, "no verbs found", ha="center", va="center")
        ax.axis("off")
        return _png(fig, title)
    cmap = plt.get_cmap("tab20")
    inner = [v["count"] for v in verbs]
    outer, outer_labels, outer_colors = [], [], []
    for i, v in enumerate(verbs):
        rest = v["count"]
        base = np.array(cmap(i % 20))
        for j, n in enumerate(v["nouns"]):
            outer.append(n["count"])
            outer_labels.append(n["noun"] if n["count"] >= max(inner) * 0.08 else "")
            outer_colors.append(tuple(np.clip(base * (0.85 - 0.1 * j) + 0.15, 0, 1)))
            rest -= n["count"]
        if rest > 0:
            outer.append(rest)
            outer_labels.append("")
            outer_colors.append((0.93, 0.93, 0.93, 1.0))
    ax.pie(inner, radius=0.62, labels=[v["verb"] for v in verbs], labeldistance=0.55, colors=[cmap(i % 20) for i in range(len(verbs))],
           wedgeprops={"width": 0.32, "edgecolor": "white"}, textprops={"fontsize": 8}, startangle=90, counterclock=False)
    ax.pie(outer, radius=1.0, labels=outer_labels, labeldistance=0.8, colors=outer_colors,
           wedgeprops={"width": 0.38, "edgecolor": "white"}, textprops={"fontsize": 7}, startangle=90, counterclock=False)
    ax.set_title(f"{title}\n{table['parsed']:,} of {table.get('sampled', table['rows']):,} instructions with a root verb", fontsize=9)
    ax.axis("equal")
    return _png(fig, title)


def _verb_noun_html(table: dict[str, Any]) -> str:
    rows = [{"verb": v["verb"], "count": v["count"], "top nouns": "、".join(f"{n['noun']} ({n['count']})" for n in v["nouns"])}
            for v in table["verbs"]]
    return _table(rows)


def _novelty_plot(novelty: dict[str, np.ndarray], title: str) -> str:
    fig, ax = plt.subplots(figsize=(8, 3.2))
    allv = np.concatenate([v for v in novelty.values() if len(v)]) if novelty else np.array([0.0])
    bins = np.linspace(0, max(0.05, float(np.quantile(allv, 0.995))), 40)
    for name, v in novelty.items():
        if len(v):
            ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.5, label=f"{name} (mean {np.mean(v):.3f})")
    ax.set_xlabel("novelty: mean cosine distance to the 10 nearest neighbours")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _png(fig, title)


def _cluster_spread_plot(clusters: dict[str, dict], k: int, title: str) -> str:
    """Share of each group in each cluster (clusters sorted by total size)."""
    table = pd.DataFrame(clusters).fillna(0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False).index]
    share = table / table.sum(axis=0).where(lambda x: x > 0, 1)
    fig, ax = plt.subplots(figsize=(9, 3.2))
    width = 0.8 / max(1, share.shape[1])
    for i, col in enumerate(share.columns):
        ax.bar(np.arange(len(share)) + i * width, share[col].to_numpy(), width, label=str(col))
    ax.set_xlabel(f"cluster (shared clustering, k = {k}, sorted by size)")
    ax.set_ylabel("share of the group")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _png(fig, title)


def _coverage(pool_sample_x: np.ndarray, sel_x: np.ndarray) -> dict[str, float]:
    """How well a selection covers the pool: cosine distance from each of a seeded sample of pool rows
    (``pool_sample_x``, their embeddings) to its nearest selected row (mean, 95th percentile, max).
    k-center minimises the max."""
    from .embed import knn_mean_distance

    d = knn_mean_distance(pool_sample_x, sel_x, k=1)
    return {"coverage_mean": round(float(d.mean()), 4), "coverage_p95": round(float(np.quantile(d, 0.95)), 4),
            "coverage_max": round(float(d.max()), 4)}


def _read_mixture_rows(path: Path) -> pd.DataFrame:
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
    from .diversity import distinct_n, embedding_metrics
    from .embed import Embedder, instruction_texts

    mx = _load(run_dir, "mixtures", "mixtures.json") or []
    if not mx or not len(pool):
        return []
    emb = embedder if embedder is not None else Embedder(seed=seed).fit(instruction_texts(pool))
    if pool_sample_x is None:  # a row's embedding depends on its text alone: embed the sample only
        pool_sample_x = emb.transform(instruction_texts(pool.iloc[_sample_positions(len(pool), COVERAGE_SAMPLE, seed)]))
    rows = []
    for m in mx:
        path = run_dir / "mixtures" / m["file"]
        if not path.exists():
            continue
        df = _read_mixture_rows(path)
        x = emb.transform(instruction_texts(df))
        div = m.get("composition", {}).get("diversity", {})
        rows.append({"mixture": m["name"], "strategy": m.get("spec", {}).get("strategy", ""), "rows": int(len(df)),
                     **embedding_metrics(x, seed=seed), **_coverage(pool_sample_x, x),
                     "task_type_entropy": div.get("task_type_entropy"),
                     "cluster_entropy": div.get("cluster_entropy"),
                     "distinct_2": round(distinct_n(df["instruction"].tolist(), 2), 6)})
    return rows


def _comparison_plot(rows: list[dict]) -> str:
    keys = [("vendi", "Vendi"), ("mean_cosine_distance", "mean cosine distance"), ("coverage_max", "coverage radius (max)"),
            ("coverage_mean", "coverage (mean)"), ("task_type_entropy", "task-type entropy")]
    fig, axes = plt.subplots(1, len(keys), figsize=(12, 3.2))
    for ax, (k, lab) in zip(axes, keys):
        vals = [r.get(k) or 0 for r in rows]
        colors = ["#999999" if r["strategy"] == "random" else "#1f77b4" for r in rows]
        ax.bar(range(len(rows)), vals, color=colors)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r["mixture"] for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_title(lab, fontsize=8)
    fig.suptitle("Mixtures compared in one embedding (grey: random; lower coverage = better covered pool)", fontsize=9)
    fig.tight_layout()
    return _png(fig, "mixture_comparison")


def _pairs_against_random(rows: list[dict]) -> list[dict]:
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


METHOD_HTML = """<ul>
<li><b>Task types</b>: the ordered keyword rules of <code>curate.tasktype</code> (11 types), checked against a
hand-labelled development set (<code>tests/data/README.md</code>).</li>
<li><b>Entropy</b> is in bits; <i>normalised</i> divides by log2 of the number of categories (11 types; k clusters).
<b>Coverage</b>: share of the 11 types present.</li>
<li><b>Clusters</b>: TF-IDF character n-grams → SVD → k-means, fitted on all compared rows together.</li>
<li><b>distinct-n</b>: distinct character n-grams / all character n-grams of the instructions.</li>
<li><b>Embedding</b>: TF-IDF over character 1–3-grams of instruction + first 100 input characters → TruncatedSVD
(128 dims) → L2 normalisation, fitted on a seeded sample of ≤ 20,000 of all compared rows. It measures wording, not
meaning. <b>Vendi score</b> = exp(entropy of the eigenvalues of K/n), K the cosine-similarity matrix, computed on a
seeded sample of ≤ 2,000 rows per group so groups of different sizes compare fairly (it is at most 128, the
embedding's rank). <b>Mean cosine distance</b>: mean over pairs of that sample.</li>
<li><b>Novelty</b> of a record: mean cosine distance to its 10 nearest neighbours among a seeded sample of
≤ 10,000 rows (the <code>novelty_tagger</code> operator, and the report when it computes it itself); 0 = it has near
twins.</li>
<li><b>Verb–noun</b> (as in Self-Instruct): root verb = first content verb of the instruction's first real clause,
object = first noun after it, from jieba's part-of-speech tags (an approximation of a dependency parse), on a seeded
sample of ≤ 5,000 rows per group. Inner ring: the top 20 verbs; outer ring: each verb's top 4 nouns.</li>
</ul>"""


def _page(title: str, subtitle: str, sections: list[str], titles: dict[str, str], parts: dict[str, str]) -> str:
    nav = " · ".join(f"<a href='#{s}'>{_e(titles[s])}</a>" for s in sections)
    body = "".join(f"<section id='{s}'><h2>{_e(titles[s])}</h2>{parts.get(s, '')}</section>" for s in sections)
    return (f"<!doctype html><html lang='zh'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{_e(title)} <small>{_e(subtitle)}</small></h1>"
            f"<nav>{nav}</nav>{body}<script>{SCRIPT}</script></body></html>")


DIVERSITY_SECTIONS = ["summary", "metrics", "task_types", "clusters", "verb_noun", "novelty", "method"]
DIVERSITY_TITLES = {"summary": "Summary", "metrics": "Diversity figures side by side", "task_types": "Task types",
                    "clusters": "Clusters (shared clustering)", "verb_noun": "Verb–noun structure",
                    "novelty": "Novelty of records", "method": "How the figures are computed"}


def build_diversity_report(inputs: list[str | Path], out_dir: str | Path, names: list[str] | None = None,
                           seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """The diversity report of alpaca-format files side by side: ``out_dir/diversity.html`` and
    ``out_dir/diversity.json`` (the figures). Returns the HTML path and the figures."""
    from .io import write_json
    from .userfiles import read_alpaca

    _setup_fonts()
    paths = [Path(p) for p in inputs]
    if not paths:
        raise ValueError("build_diversity_report: no input files")
    names = list(names) if names else []
    if names and len(names) != len(paths):
        raise ValueError(f"{len(names)} names for {len(paths)} files")
    if not names:
        names = [p.stem for p in paths]
        if len(set(names)) < len(names):  # same stem in different folders
            names = [f"{p.parent.name}/{p.stem}" for p in paths]
    if len(set(names)) < len(names):
        raise ValueError(f"names must be unique: {names}")
    groups = {n: read_alpaca(p, name=n) for n, p in zip(names, paths)}
    a = analyse_groups(groups, seed=seed)
    rows = _metrics_rows(a)
    parts: dict[str, str] = {}
    total = sum(r["rows"] for r in rows)
    parts["summary"] = ("<p>" + f"{len(paths)} file(s), {total:,} records: " + ", ".join(
        f"<b>{_e(n)}</b> ({a['metrics'][n]['rows']:,} rows, Vendi {a['metrics'][n].get('vendi', 0):.1f})" for n in names)
        + ".</p>" + _table([{"name": n, "file": str(p)} for n, p in zip(names, paths)]))
    parts["metrics"] = _table(rows) + _metrics_plot(rows, "Diversity figures per file")
    tt = pd.DataFrame(a["task_types"]).T.reindex(columns=TASK_TYPES_ORDER).fillna(0)
    parts["task_types"] = _stacked_share_plot(tt, "Task types per file") + _table(
        [{"file": n, **{k: int(v) for k, v in tt.loc[n].items()}} for n in names])
    parts["clusters"] = (f"<p>One clustering (k = {a['n_clusters']}) of all rows together; a file spread over many "
                         f"clusters covers more kinds of wording.</p>"
                         + _cluster_spread_plot(a["clusters"], a["n_clusters"], "Share of each file per cluster"))
    parts["verb_noun"] = "".join(
        f"<h3>{_e(n)}</h3>" + _verb_noun_plot(a["verb_noun"][n], f"Root verbs and their objects: {n}")
        + _verb_noun_html(a["verb_noun"][n]) for n in names)
    parts["novelty"] = _novelty_plot(a["novelty"], "Novelty per file") + "".join(
        f"<h3>Most novel records of {_e(n)}</h3>" + _table(a["examples"][n]) for n in names)
    parts["method"] = METHOD_HTML
    page = _page("tiger diversity report", ", ".join(names), DIVERSITY_SECTIONS, DIVERSITY_TITLES, parts)
    out_dir = Path(out_dir)
    html_path = out_dir / "diversity.html"
    write_text(html_path, page)
    figures = {"files": {n: str(p) for n, p in zip(names, paths)}, "metrics": a["metrics"], "verb_noun": a["verb_noun"],
               "task_types": a["task_types"], "n_clusters": a["n_clusters"], "embedding": a["embedding"],
               "bad_rows": {n: groups[n].attrs.get("bad_rows", []) for n in names}}
    write_json(out_dir / "diversity.json", figures)
    return html_path, figures
