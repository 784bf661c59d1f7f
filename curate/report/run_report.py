"""The run report: one self-contained HTML page of a run (charts drawn by the browser from data in the
page, the charting library inlined; works offline), plus a Markdown summary. Everything shown is read back from the run folder (manifest, ledgers, stats, dropped rows,
mixture manifests), so it can be rebuilt at any time with ``tiger report RUN_DIR``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..io import read_json, write_text
from ..recipe import OPS_STAGES
from .analysis import (
    COVERAGE_SAMPLE,
    analyse_frame,
    load_stage_json,
    mixture_comparison,
    pairs_against_random,
    parquet_rows,
)
from .charts import (
    binned,
    cluster_chart,
    comparison_chart,
    histogram_chart,
    ledger_chart,
    metrics_chart,
    novelty_chart,
    share_chart,
    verb_noun_chart,
)
from .html import (
    METHOD_HTML,
    TASK_TYPES_ORDER,
    before_after_html,
    diff_pair_html,
    drops_html,
    esc,
    html_table,
    md_table,
    metrics_rows,
    page_html,
    steps_html,
    verb_noun_html,
)
from .samples import (
    CLASS_SAMPLE,
    CUTOFFS,
    FIELDS,
    TOKEN_CUTOFFS,
    TOKEN_EDGES,
    TOKEN_SAMPLE,
    find_tokenizer,
    plain_text,
    token_counts,
    dropped_sample,
    frame_text_stats,
    length_hist,
    length_labels,
    length_summary,
    near_duplicate_clusters,
    parquet_text_stats,
    row_text,
)

SECTIONS = ["summary", "ledger", "parse", "normalize", "filter", "dedupe", "duplicates", "diversity", "lengths", "mixtures",
            "rows", "manifest"]
DROPPED_PER_REASON = 50  # dropped rows per (stage, reason) in the row browser (seeded sample)


TITLES = {"summary": "Summary", "ledger": "Ledger: every record kept or dropped with a reason",
          "parse": "Parse and quarantine", "normalize": "Normalization", "filter": "Length, empty-text and language filter",
          "dedupe": "Deduplication", "duplicates": "Near duplicates side by side",
          "diversity": "Task types, clusters and diversity", "lengths": "Lengths and characters per sample",
          "mixtures": "Mixtures", "rows": "Row browser: dropped rows", "manifest": "Manifest"}


def build_report(run_dir: Path, tokenizer: str | Path | None = None) -> tuple[Path, str]:
    """Write ``report/report.html`` and ``report/summary.md`` of a run; returns the HTML path and the Markdown.
    ``tokenizer``: a local ``tokenizer.json`` (or its folder) for token counts; default: the run's tiny base
    when one was built (``samples.find_tokenizer``), else token counts are left out and the page says so."""
    from ..embed import FIT_STORE, fit_store

    run_dir = Path(run_dir)
    tok = find_tokenizer(run_dir, tokenizer)  # first: a tokenizer that is not there fails before any work
    with fit_store(run_dir / FIT_STORE, write=False):  # the pool's embedding as the diversity stage fitted it
        return _build(run_dir, tok)


# The child's program: build the report of argv[1] (with the tokenizer argv[2], when given).
_CHILD = ("import sys\nfrom curate.memory import tune_malloc\nfrom curate.report.run_report import build_report\n"
          "tune_malloc()\n"
          "build_report(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)\n")


def build_report_fresh(run_dir: Path, tokenizer: str | Path | None = None) -> tuple[Path, str]:
    """``build_report`` in a new Python process; returns the same (HTML path, Markdown), the Markdown
    read back from ``summary.md``, which it writes. A worker process that ran other stages before
    keeps what they left (allocator pages, caches): at 10M rows that added about 0.5 GiB to the
    report's own peak of about 2.4 GiB. In its own process, the report's peak is its own."""
    import os
    import subprocess
    import sys

    run_dir = Path(run_dir)
    root = str(Path(__file__).resolve().parents[2])  # where ``curate`` is imported from here
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    args = [sys.executable, "-c", _CHILD, str(run_dir)] + ([str(tokenizer)] if tokenizer else [])
    done = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"the report of {run_dir} failed in its own process (exit {done.returncode}):\n{tail}")
    return run_dir / "report" / "report.html", (run_dir / "report" / "summary.md").read_text(encoding="utf-8")


def _build(run_dir: Path, tok: Path | None) -> tuple[Path, str]:
    manifest = read_json(run_dir / "manifest.json")
    seed = _recipe_seed(manifest.get("recipe"))
    md: list[str] = [f"# tiger curation report — {manifest['run_id']}", ""]
    parts: dict[str, str] = {}
    parts["summary"] = _summary(manifest, md)
    parts["ledger"] = _ledger(manifest["ledger"], md)
    parts["parse"] = _parse(run_dir)
    parts["normalize"] = _normalize(run_dir, md)
    parts["filter"] = steps_html(load_stage_json(run_dir, "03_filter", "stats.json")) + drops_html(run_dir, "03_filter")
    dstats = load_stage_json(run_dir, "04_dedupe", "stats.json")
    parts["dedupe"] = steps_html(dstats, cluster_examples=True) + drops_html(run_dir, "04_dedupe")
    # The sections that read texts (Arrow: decoding and counting run without the GIL) go on threads
    # of their own, one each, while the diversity figures (Python: jieba, the embedding) run on this
    # one: one thread for the three made them the page's longest path. Each is a pure function of the
    # stage outputs, so the page does not depend on which finishes first.
    from concurrent.futures import ThreadPoolExecutor

    pool_path = run_dir / "05_diversity" / "kept.parquet"
    with ThreadPoolExecutor(max_workers=3) as side:
        dropped_rows = side.submit(_released, _rows, run_dir, seed)
        dup = side.submit(_released, _duplicates, run_dir, dstats)
        lens = side.submit(_released, parquet_text_stats, pool_path) if pool_path.exists() else None
        parts["diversity"], pool, analysis = _released(_diversity, run_dir, seed, md, _run_embedder(manifest, seed))
        mix_md: list[str] = []
        parts["mixtures"] = _mixtures(run_dir, pool, analysis, seed, mix_md)
        parts["duplicates"] = dup.result()
        parts["lengths"] = _lengths(run_dir, pool, lens.result() if lens else None, md, tok, seed)
        md += mix_md
        parts["rows"] = dropped_rows.result()
    parts["manifest"] = _manifest(manifest)

    page = page_html("tiger curation report", manifest["run_id"], SECTIONS, TITLES, parts)
    out = run_dir / "report" / "report.html"
    write_text(out, page)
    markdown = "\n".join(md)
    write_text(run_dir / "report" / "summary.md", markdown)
    return out, markdown


def _released(f: Any, *args: Any) -> Any:
    """``f(*args)``, then Arrow's freed memory handed back to the system (its allocator keeps it
    otherwise, and the two threads' leftovers add up in the peak)."""
    import pyarrow as pa

    try:
        return f(*args)
    finally:
        pa.default_memory_pool().release_unused()


def _summary(manifest: dict, md: list[str]) -> str:
    ledger = manifest["ledger"]
    first, last = ledger[0], ledger[-1]
    n_files = len(manifest["inputs"])
    mixtures = manifest.get("mixtures", [])
    md += [f"{n_files} files, {first['in']:,} raw rows → {last['kept']:,} curated records.", ""]
    html = (f"<p>{n_files} input files, {first['in']:,} raw rows → {last['kept']:,} curated records "
            f"({first['in'] - last['kept']:,} dropped, every one with a reason below). "
            f"{len(mixtures)} mixtures: " + ", ".join(f"<b>{esc(m['name'])}</b> ({m['rows']:,})" for m in mixtures) + ".</p>")
    recipe = manifest.get("recipe") if isinstance(manifest.get("recipe"), dict) else {}
    idle = [key for key in OPS_STAGES.values() if not recipe.get(key)]
    if idle:  # a stage the recipe turned off (``filter: []``): say so where nobody can miss it
        md += [f"**Stages that run no operator:** {', '.join(idle)}.", ""]
        html += f"<p><b>Stages that run no operator:</b> {esc(', '.join(idle))}.</p>"
    return html


def _ledger(ledger: list[dict], md: list[str]) -> str:
    lrows = [{"stage": r["stage"], "in": r["in"], "kept": r["kept"], "dropped": r["dropped"],
              "balanced": "yes" if r["balanced"] else "NO", "reasons": r["reasons"]} for r in ledger]
    md += ["## Ledger", "", md_table(lrows, ["stage", "in", "kept", "dropped", "balanced", "reasons"]), ""]
    return (html_table(lrows, name="ledger") + ledger_chart(ledger) + "<h3>By source</h3>" + html_table(
        [{"stage": r["stage"], "source": s, **c} for r in ledger for s, c in r["by_source"].items()]))


def _parse(run_dir: Path) -> str:
    pstats = load_stage_json(run_dir, "01_parse", "stats.json")
    files_tbl = [{"file": f, **v} for f, v in sorted((pstats.get("files") or {}).items())]
    # every column any file has (estimated_rows: rows lost with a file that could not be read)
    fcols = list(dict.fromkeys(c for r in files_tbl for c in r))
    return html_table(files_tbl, fcols) + drops_html(run_dir, "01_parse")


def _normalize(run_dir: Path, md: list[str]) -> str:
    nstats = load_stage_json(run_dir, "02_normalize", "stats.json")
    nrows, nhtml = [], []
    for step in nstats.get("steps", []):
        nrows.append({"rule": step["op"], "rows changed": step.get("changed", 0), "by field": step.get("by_field", "")})
        nhtml.append(f"<h3>{esc(step['op'])}</h3>" + before_after_html(step.get("examples", [])))
    md += ["## Normalization", "", md_table(nrows, ["rule", "rows changed"]), ""]
    return html_table(nrows) + "".join(nhtml)


def _recipe_seed(recipe: Any) -> int:
    return int(recipe.get("seed", 0) or 0) if isinstance(recipe, dict) else 0


def _run_embedder(manifest: dict, seed: int) -> Any:
    """An unfitted ``Embedder`` with the parameters of the run's novelty tagger: the embedding the pool's
    ``novelty`` column was computed in, whose fit the diversity stage kept in the run's fit store.
    Without a novelty tagger in the recipe, one seeded with the recipe's seed."""
    from ..embed import Embedder
    from ..ops.novelty_tagger import NoveltyTagger

    recipe = manifest.get("recipe") if isinstance(manifest.get("recipe"), dict) else {}
    for step in recipe.get("diversity") or []:
        if isinstance(step, dict) and "novelty_tagger" in step:
            try:
                op = NoveltyTagger(**(step["novelty_tagger"] or {}))
            except (TypeError, ValueError):
                break
            return Embedder(dims=op.dims, fit_sample=op.fit_sample, seed=op.seed)
    return Embedder(seed=seed)


def _diversity(run_dir: Path, seed: int, md: list[str], emb: Any = None) -> tuple[str, pd.DataFrame, dict[str, Any]]:
    """The diversity section; also the pool's label columns and the analysis the mixtures section reuses."""
    pool_path = run_dir / "05_diversity" / "kept.parquet"
    vstats = load_stage_json(run_dir, "05_diversity", "stats.json")
    div = vstats.get("diversity", {})
    dv_rows = [{"group": g, **m} for g, m in [("all", div.get("all", {}))] + sorted(div.get("by_source", {}).items())]
    dhtml = html_table(dv_rows)
    pool = pd.DataFrame()
    if pool_path.exists():
        # the label columns only (a few MB at millions of rows); the texts of the rows a figure
        # samples or shows are read from the file when needed (parquet_rows)
        pool = _pool_labels(pool_path)
        ct = pd.crosstab(pool["source"], pool["task_type"]).reindex(columns=[t for t in TASK_TYPES_ORDER if t in set(pool["task_type"].unique())])
        dhtml += share_chart(ct, "Task types per source", "source") + html_table(
            [{"source": s, **{k: int(v) for k, v in row.items()}} for s, row in ct.iterrows()])
        if "task_confidence" in pool.columns:  # curate.tasktype_model: a label under MIN_CONFIDENCE is a guess
            from ..tasktype_model import MIN_CONFIDENCE

            low = int((pool["task_confidence"] < MIN_CONFIDENCE).sum())
            dhtml += (f"<p>Low-confidence task types (task_confidence &lt; {MIN_CONFIDENCE}): {low:,} of "
                      f"{len(pool):,} rows ({low / max(1, len(pool)):.1%}).</p>")
        dhtml += cluster_chart(pool["cluster"].value_counts(), _cluster_terms(vstats))
    analysis: dict[str, Any] = {}
    if len(pool):
        pool["_group"] = pool["source"].astype(str)
        analysis = _kept_analysis(_pool_analysis_path(run_dir, seed, emb))
        if analysis is None:
            analysis = _analyse_pool(run_dir, pool, seed, emb, div)
        rich = metrics_rows(analysis)
        vendi_rows = analysis["metrics"]["all"].get("vendi_rows", 0)
        verb_rows = analysis["verb_noun"]["all"]["sampled"]
        dhtml += ("<h3>Richer figures per source</h3><p>Vendi and mean cosine distance on a seeded sample of ≤ 2,000 rows "
                  f"per group ({vendi_rows:,} of the pool's {len(pool):,}), in one TF-IDF/SVD embedding fitted on a "
                  "seeded sample of the pool; verb figures on a seeded sample of ≤ 5,000 rows per group; distinct-n and "
                  "entropies on all rows (see the method note below).</p>" + html_table(rich, name="metrics per source")
                  + metrics_chart(rich, "Diversity figures per source"))
        dhtml += ("<h3>Verb–noun structure of the pool</h3>"
                  f"<p>On a seeded sample of {verb_rows:,} rows of the pool's {len(pool):,}.</p>"
                  + verb_noun_chart(analysis["verb_noun"]["all"], "Root verbs and their objects: all")
                  + verb_noun_html(analysis["verb_noun"]["all"]))
        src_nov = {k: v for k, v in analysis["novelty"].items() if k != "all"}
        note = ("the <code>novelty</code> column of the records" if "novelty" in pool.columns
                else "computed for this report (the recipe has no <code>novelty_tagger</code>)")
        dhtml += (f"<h3>Novelty of records</h3><p>Novelty is {note}.</p>" + novelty_chart(src_nov, "Novelty per source")
                  + "<h4>Most novel records of the pool</h4>" + html_table(analysis["examples"]["all"]))
        dhtml += "<h3>How the figures are computed</h3>" + METHOD_HTML
        md += ["## Diversity per source (richer figures)", "",
               md_table(rich, [c for c in ["group", "rows", "task_type_entropy", "cluster_entropy", "distinct_2", "vendi",
                                            "mean_cosine_distance", "mean_novelty", "verb_entropy"] if c in rich[0]]), ""]
    for step in vstats.get("steps", []):
        if step.get("clusters"):
            dhtml += "<h3>Clusters (top terms)</h3>" + html_table(step["clusters"][:60] if isinstance(step["clusters"], list) else
                                                               [{"cluster": k, "terms": v} for k, v in list(step["clusters"].items())[:60]])
    cols = [c for c in ["group", "rows", "task_type_entropy", "task_type_coverage", "cluster_entropy", "distinct_1",
                        "distinct_2", "distinct_3"] if c in dv_rows[0]]
    md += ["## Diversity per source", "", md_table(dv_rows, cols), ""]
    return dhtml, pool, analysis


POOL_COLUMNS = ("source", "task_type", "cluster", "novelty", "task_confidence")


def _pool_analysis_path(run_dir: Path, seed: int, emb: Any) -> Path:
    """Where ``precompute_pool_analysis`` keeps the pool's analysis: in the run's fit store, keyed on
    the pool file, the diversity stage's figures, the seed, the embedding and the code."""
    import hashlib

    from ..embed import FIT_STORE
    from ..io import sha256_file
    from ..pipeline import code_version

    pool_path = run_dir / "05_diversity" / "kept.parquet"
    stats = run_dir / "05_diversity" / "stats.json"
    parts = [sha256_file(pool_path), sha256_file(stats) if stats.exists() else "", str(seed),
             json.dumps(emb.params() if emb is not None else None, sort_keys=True), str(COVERAGE_SAMPLE), code_version()]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    return run_dir / FIT_STORE / f"pool-analysis-{key}.pkl"


def _pool_labels(pool_path: Path) -> pd.DataFrame:
    """The pool's label columns (a few MB at millions of rows)."""
    have = pq.ParquetFile(pool_path).schema_arrow.names
    return pd.read_parquet(pool_path, columns=[c for c in POOL_COLUMNS if c in have])


def _kept_analysis(path: Path) -> dict | None:
    """The analysis ``precompute_pool_analysis`` kept at ``path`` (the same figures), or None."""
    import pickle

    if not path.is_file():
        return None
    try:
        return pickle.loads(path.read_bytes())
    except Exception:  # an unreadable file: computed again
        return None


def _analyse_pool(run_dir: Path, pool: pd.DataFrame, seed: int, emb: Any, div: dict) -> dict:
    """``analyse_frame`` of the pool (its label columns in ``pool``, with ``_group``)."""
    pool_path = run_dir / "05_diversity" / "kept.parquet"
    n_k = int(pool["cluster"].nunique()) if "cluster" in pool.columns else None
    known = {"all": div.get("all"), **div.get("by_source", {})} if div else None
    return analyse_frame(pool, sorted(pool["_group"].unique()), seed=seed, n_clusters=n_k, overall="all", known=known,
                         embedder=emb, fetch=parquet_rows(pool_path, ["instruction", "input"]),
                         coverage_sample=COVERAGE_SAMPLE)


def precompute_pool_analysis(run_dir: str | Path, recipe: dict) -> str | None:
    """The report's analysis of the pool (``analyse_frame``: seconds at millions of rows), computed
    before the report from the diversity stage's outputs and the run's ``recipe`` (as the manifest
    will hold it), and kept in the run's fit store where the report finds it: a runner computes it
    beside the mixtures' selections. Returns its path (None: no pool)."""
    import pickle

    from ..embed import FIT_STORE, fit_store
    from ..io import atomic_path

    run_dir = Path(run_dir)
    pool_path = run_dir / "05_diversity" / "kept.parquet"
    if not pool_path.exists():
        return None
    seed = _recipe_seed(recipe)
    emb = _run_embedder({"recipe": recipe}, seed)
    pool = _pool_labels(pool_path)
    if not len(pool):
        return None
    pool["_group"] = pool["source"].astype(str)
    div = load_stage_json(run_dir, "05_diversity", "stats.json").get("diversity", {})
    with fit_store(run_dir / FIT_STORE, write=False):  # as build_report reads the pool's embedding
        analysis = _analyse_pool(run_dir, pool, seed, emb, div)
    path = _pool_analysis_path(run_dir, seed, emb)
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(analysis, protocol=5))
    return str(path)


def _mixtures(run_dir: Path, pool: pd.DataFrame, analysis: dict[str, Any], seed: int, md: list[str]) -> str:
    mx = load_stage_json(run_dir, "mixtures", "mixtures.json") or []
    mrows, tt = [], {}
    for m in mx:
        comp = m.get("composition", {})
        mrows.append({"mixture": m["name"], "rows": m["rows"], **{k: v for k, v in comp.get("diversity", {}).items()
                                                                   if isinstance(v, (int, float))}})
        tt[m["name"]] = comp.get("by_task_type", {})
    mhtml = html_table(mrows, name="mixtures")
    if tt:
        t = pd.DataFrame(tt).T.fillna(0)
        t = t.reindex(columns=[c for c in TASK_TYPES_ORDER if c in t.columns])
        mhtml += share_chart(t, "Task types per mixture", "mixture")
        src = pd.DataFrame({m["name"]: m.get("composition", {}).get("by_source", {}) for m in mx}).T.fillna(0)
        mhtml += share_chart(src, "Sources per mixture", "mixture", "source")
    comp = (mixture_comparison(run_dir, pool, seed=seed, embedder=analysis["_embedder"], pool_sample_x=analysis["_coverage_x"])
            if mx and len(pool) else [])
    if comp:
        mhtml += ("<h3>Diversity-aware selection against random</h3><p>Every mixture embedded with one TF-IDF/SVD "
                  "embedding fitted on the pool. Vendi and mean cosine distance on ≤ 2,000 rows of each mixture; "
                  "coverage: cosine distance from ≤ 5,000 pool rows to their nearest mixture row (lower is better; "
                  "k-center minimises its maximum).</p>" + html_table(comp, name="mixtures against random") + comparison_chart(comp))
        pairs = pairs_against_random(comp)
        if pairs:
            mhtml += "<h4>Each strategy next to random at the same size</h4>" + html_table(pairs, name="pairs")
        md += ["## Mixtures against random (one embedding)", "",
               md_table(comp, ["mixture", "rows", "vendi", "mean_cosine_distance", "coverage_mean", "coverage_max",
                                "task_type_entropy", "distinct_2"]), ""]
    if mrows:
        md += ["## Mixtures", "", md_table(mrows, list(mrows[0].keys())), ""]
    return mhtml


def _manifest(manifest: dict) -> str:
    return ("<h3>Packages</h3>" + html_table([{"package": k, "version": v} for k, v in manifest["packages"].items()])
                         + f"<p>code version {esc(manifest['code_version'])}</p><h3>Recipe</h3><pre>"
                         + esc(json.dumps(manifest["recipe"], ensure_ascii=False, indent=2)) + "</pre><h3>Inputs</h3>"
                         + html_table(manifest["inputs"], ["source", "file", "bytes", "sha256", "url"]))


def _cluster_terms(vstats: dict) -> dict[int, str]:
    for step in vstats.get("steps", []):
        cl = step.get("clusters")
        if isinstance(cl, list):
            return {int(c["cluster"]): str(c.get("terms", "")) for c in cl if isinstance(c, dict) and "cluster" in c}
        if isinstance(cl, dict):
            return {int(k): str(v) for k, v in cl.items() if str(k).lstrip("-").isdigit()}
    return {}


def _duplicates(run_dir: Path, dstats: dict) -> str:
    """Near-duplicate clusters: survivor and dropped rows side by side, differing characters highlighted."""
    clusters = near_duplicate_clusters(run_dir)
    if not clusters:
        return "<p>No near duplicates were dropped.</p>"
    thr = next((s.get("params", {}).get("threshold") for s in dstats.get("steps", []) if "minhash" in s.get("op", "")), None)
    out = [f"<p>{len(clusters)} near-duplicate clusters: the largest, the most cross-source and those nearest the "
           f"threshold{f' (Jaccard {thr})' if thr is not None else ''} (lowest Jaccard). Each shows the row the "
           "deduplicator kept (left) and up to 5 rows it dropped (right); characters only one side has are "
           "highlighted (<del>kept only</del>, <ins>dropped only</ins>). Texts are instruction, input and "
           "→ output, cut to 600 characters.</p>"]
    for c in clusters:
        s = c["survivor"]
        out.append(f"<div class='dup' data-survivor='{esc(c['survivor_id'])}'><h4>{esc(c['why'])}: {c['size']} rows, "
                   f"{c['sources']} source(s) — survivor {esc(s['id'])} ({esc(s.get('source', ''))})</h4>")
        for r in c["dropped"]:
            a, b = diff_pair_html(row_text(s)[:600], row_text(r)[:600])
            out.append(f"<div class='pair'><div><small>kept · {esc(s.get('source', ''))} · {esc(s.get('file', ''))} "
                       f"row {esc(s.get('row', ''))}</small><pre>{a}</pre></div><div><small>dropped · {esc(r['id'])} · "
                       f"{esc(r.get('source', ''))} · {esc(r.get('file', ''))} row {esc(r.get('row', ''))} · "
                       f"<b>Jaccard {r['jaccard']:.3f}</b></small><pre>{b}</pre></div></div>")
        out.append("</div>")
    return "".join(out)


def _lengths(run_dir: Path, pool: pd.DataFrame, ps: pd.DataFrame | None, md: list[str], tok: Path | None = None,
             seed: int = 0) -> str:
    """Length distributions per source and per mixture, the share a cutoff would truncate, character classes.
    ``ps``: the pool's ``parquet_text_stats`` (None when there is no pool)."""
    if ps is None or not len(pool):
        return "<p><em>no pool</em></p>"
    by_source = {"all": ps, **{g: _Rows(ps, pos) for g, pos in source_positions(pool).items()}}
    by_mix: dict[str, pd.DataFrame] = {}
    from .analysis import read_mixture_rows

    for m in load_stage_json(run_dir, "mixtures", "mixtures.json") or []:
        path = run_dir / "mixtures" / m["file"]
        if path.exists():
            by_mix[m["name"]] = frame_text_stats(read_mixture_rows(path))
    summary = length_summary({**by_source, **by_mix})
    tok_note = ("<b>Tokens</b>: not shown — no local tokenizer was found (the run's tiny base, "
                "<code>models/tiny-*/</code> beside the run, is built when training on it; or pass "
                "<code>tiger report RUN --tokenizer PATH</code>); nothing is downloaded. ") if tok is None else ""
    out = ["<p>Characters of every row of the pool and of each mixture (not a sample). " + tok_note +
           "LLaMA-Factory's <code>cutoff_len</code> counts tokens of the prompt template plus instruction, input and "
           "output, so read the character shares below as an upper bound for a tokenizer of ≥ 1 character per token. "
           f"<code>&gt; N chars</code>: share of rows whose instruction + input + output exceed N characters "
           f"(N = {', '.join(map(str, CUTOFFS))}). Han / Latin / digit: share of all characters (of a seeded sample "
           f"of ≤ {CLASS_SAMPLE:,} pool rows; every row of a mixture).</p>",
           html_table(summary, name="lengths")]
    labels = length_labels()
    for f in FIELDS + ["total"]:
        name = f if f != "total" else "instruction + input + output"
        out.append(histogram_chart(length_hist(by_source, f), f"Length of {name} (characters) per source",
                                   "characters", labels))
        if by_mix:
            out.append(histogram_chart(length_hist(by_mix, f), f"Length of {name} (characters) per mixture",
                                       "characters", labels))
    cols = ["group", "rows", "output p50", "output p90", "output p99"] + [f"> {c} chars" for c in CUTOFFS] + ["han share"]
    md += ["## Lengths (characters)", "", md_table(summary, cols), ""]
    if tok is not None:
        out.append(_tokens(run_dir, pool, by_mix_paths(run_dir), tok, seed))
    return "".join(out)


class _Rows:
    """Rows ``pos`` of a per-row stats frame, read a column at a time: what the length figures read
    of a group, without a copy of the whole frame per source (8 columns of every pooled row)."""

    def __init__(self, frame: pd.DataFrame, pos: np.ndarray):
        self.frame, self.pos = frame, pos

    def __len__(self) -> int:
        return len(self.pos)

    def __getitem__(self, column: str) -> pd.Series:
        return pd.Series(self.frame[column].to_numpy()[self.pos])


def source_positions(pool: pd.DataFrame) -> dict[str, np.ndarray]:
    """The pool's row positions of each source (ascending), sources in name order; without an object
    array of millions of names."""
    codes, names = pd.factorize(pool["source"].astype(str))
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(names)))
    split = dict(zip((str(n) for n in names), np.split(order, bounds[:-1])))
    return {g: split[g] for g in sorted(split)}


def by_mix_paths(run_dir: Path) -> dict[str, Path]:
    mx = load_stage_json(run_dir, "mixtures", "mixtures.json") or []
    return {m["name"]: run_dir / "mixtures" / m["file"] for m in mx if (run_dir / "mixtures" / m["file"]).exists()}


def _tokens(run_dir: Path, pool: pd.DataFrame, mixes: dict[str, Path], tok: Path, seed: int) -> str:
    """Token counts of instruction + input + output (a seeded sample per group) and the share a cutoff_len cuts."""
    from .analysis import read_mixture_rows, sample_positions

    groups = source_positions(pool)
    plan = {g: pos[sample_positions(len(pos), TOKEN_SAMPLE, seed)] for g, pos in groups.items()}
    need = np.unique(np.concatenate(list(plan.values())))
    rows = parquet_rows(run_dir / "05_diversity" / "kept.parquet", FIELDS)(need)
    texts = np.array(plain_text(rows), dtype=object)
    counts = {g: token_counts(tok, texts[np.searchsorted(need, pos)].tolist()) for g, pos in plan.items()}
    for name, path in mixes.items():
        df = read_mixture_rows(path)
        counts[name] = token_counts(tok, plain_text(df.iloc[sample_positions(len(df), TOKEN_SAMPLE, seed)]))
    trows = [{"group": g, "rows counted": int(len(v)), "tokens p50": int(np.median(v)) if len(v) else 0,
              "tokens p90": int(np.quantile(v, 0.9)) if len(v) else 0,
              **{f"> {c} tokens": round(float((v > c).mean()) if len(v) else 0.0, 4) for c in TOKEN_CUTOFFS}}
             for g, v in counts.items()]
    labels = length_labels(TOKEN_EDGES)
    return (f"<h3>Tokens ({esc(tok.parent.name)})</h3><p>Tokens of instruction, input and output joined by newlines "
            f"(no prompt template, no special tokens) with <code>{esc(tok)}</code>, on a seeded sample of ≤ {TOKEN_SAMPLE:,} "
            "rows per source and per mixture. <code>&gt; N tokens</code>: the share a <code>cutoff_len</code> of N would "
            "truncate (before the template's own tokens; train.finetune's default is 256).</p>"
            + html_table(trows, name="tokens")
            + histogram_chart(binned(counts, TOKEN_EDGES), "Tokens of instruction + input + output", "tokens", labels))


def _rows(run_dir: Path, seed: int) -> str:
    """A searchable sample of dropped rows of every stage, and how many each (stage, reason) has."""
    stages = sorted(p.name for p in run_dir.iterdir() if p.is_dir() and (p / "dropped.parquet").exists())
    rows, totals = dropped_sample(run_dir, stages, per_reason=DROPPED_PER_REASON, seed=seed)
    if not rows:
        return "<p>Nothing was dropped.</p>"
    tot = [{"stage": k[0], "reason": k[1], "dropped": v, "shown": min(v, DROPPED_PER_REASON)} for k, v in sorted(totals.items())]
    return (f"<p>A seeded sample of at most {DROPPED_PER_REASON} dropped rows of each stage and reason "
            f"({len(rows):,} rows shown of {sum(totals.values()):,} dropped; texts cut to 300 characters). Type in the box "
            "to search every column (a stage, a reason, a source, any text); click a header to sort. "
            "<code>tiger dropped RUN --stage S --reason R</code> lists them all. What the text rules changed, before and "
            "after, is under <a href='#normalize'>Normalization</a>; near duplicates next to the row kept, under "
            "<a href='#duplicates'>Near duplicates side by side</a>.</p>"
            + html_table(tot, name="dropped counts") + html_table(rows, name="dropped rows"))
