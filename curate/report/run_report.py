"""The run report: one self-contained HTML page of a run (plots embedded as PNG), plus a Markdown
summary. Everything shown is read back from the run folder (manifest, ledgers, stats, dropped rows,
mixture manifests), so it can be rebuilt at any time with ``tiger report RUN_DIR``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
from .html import (
    CSS,
    METHOD_HTML,
    SCRIPT,
    TASK_TYPES_ORDER,
    drops_html,
    esc,
    examples_html,
    html_table,
    md_table,
    metrics_rows,
    steps_html,
    verb_noun_html,
)
from .plots import (
    cluster_plot,
    comparison_plot,
    ledger_plot,
    metrics_plot,
    novelty_plot,
    setup_fonts,
    stacked_share_plot,
    verb_noun_plot,
)

SECTIONS = ["summary", "ledger", "parse", "normalize", "filter", "dedupe", "diversity", "mixtures", "manifest"]


TITLES = {"summary": "Summary", "ledger": "Ledger: every record kept or dropped with a reason",
          "parse": "Parse and quarantine", "normalize": "Normalization", "filter": "Length, empty-text and language filter",
          "dedupe": "Deduplication", "diversity": "Task types, clusters and diversity", "mixtures": "Mixtures",
          "manifest": "Manifest"}


def build_report(run_dir: Path) -> tuple[Path, str]:
    """Write ``report/report.html`` and ``report/summary.md`` of a run; returns the HTML path and the Markdown."""
    setup_fonts()
    run_dir = Path(run_dir)
    manifest = read_json(run_dir / "manifest.json")
    seed = int(manifest.get("recipe", {}).get("seed", 0) or 0) if isinstance(manifest.get("recipe"), dict) else 0
    md: list[str] = [f"# tiger curation report — {manifest['run_id']}", ""]
    parts: dict[str, str] = {}
    parts["summary"] = _summary(manifest, md)
    parts["ledger"] = _ledger(manifest["ledger"], md)
    parts["parse"] = _parse(run_dir)
    parts["normalize"] = _normalize(run_dir, md)
    parts["filter"] = steps_html(load_stage_json(run_dir, "03_filter", "stats.json")) + drops_html(run_dir, "03_filter")
    dstats = load_stage_json(run_dir, "04_dedupe", "stats.json")
    parts["dedupe"] = steps_html(dstats, cluster_examples=True) + drops_html(run_dir, "04_dedupe")
    parts["diversity"], pool, analysis = _diversity(run_dir, seed, md)
    parts["mixtures"] = _mixtures(run_dir, pool, analysis, seed, md)
    parts["manifest"] = _manifest(manifest)

    nav = " · ".join(f"<a href='#{s}'>{TITLES[s]}</a>" for s in SECTIONS)
    body = "".join(f"<section id='{s}'><h2>{TITLES[s]}</h2>{parts.get(s, '')}</section>" for s in SECTIONS)
    page = (f"<!doctype html><html lang='zh'><head><meta charset='utf-8'><title>tiger report {esc(manifest['run_id'])}</title>"
            f"<style>{CSS}</style></head><body><h1>tiger curation report <small>{esc(manifest['run_id'])}</small></h1>"
            f"<nav>{nav}</nav>{body}<script>{SCRIPT}</script></body></html>")
    out = run_dir / "report" / "report.html"
    write_text(out, page)
    markdown = "\n".join(md)
    write_text(run_dir / "report" / "summary.md", markdown)
    return out, markdown


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
    return (html_table(lrows) + ledger_plot(ledger) + "<h3>By source</h3>" + html_table(
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
        nhtml.append(f"<h3>{esc(step['op'])}</h3>" + examples_html(step.get("examples", [])))
    md += ["## Normalization", "", md_table(nrows, ["rule", "rows changed"]), ""]
    return html_table(nrows) + "".join(nhtml)


def _diversity(run_dir: Path, seed: int, md: list[str]) -> tuple[str, pd.DataFrame, dict[str, Any]]:
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
        have = pq.ParquetFile(pool_path).schema_arrow.names
        pool = pd.read_parquet(pool_path, columns=[c for c in ("source", "task_type", "cluster", "novelty") if c in have])
        ct = pd.crosstab(pool["source"], pool["task_type"]).reindex(columns=[t for t in TASK_TYPES_ORDER if t in set(pool["task_type"].unique())])
        dhtml += stacked_share_plot(ct, "Task types per source") + html_table(
            [{"source": s, **{k: int(v) for k, v in row.items()}} for s, row in ct.iterrows()])
        dhtml += cluster_plot(pool["cluster"].value_counts())
    analysis: dict[str, Any] = {}
    if len(pool):
        pool["_group"] = pool["source"].astype(str)
        n_k = int(pool["cluster"].nunique()) if "cluster" in pool.columns else None
        known = {"all": div.get("all"), **div.get("by_source", {})} if div else None
        analysis = analyse_frame(pool, sorted(pool["_group"].unique()), seed=seed, n_clusters=n_k, overall="all", known=known,
                          fetch=parquet_rows(pool_path, ["instruction", "input"]), coverage_sample=COVERAGE_SAMPLE)
        rich = metrics_rows(analysis)
        vendi_rows = analysis["metrics"]["all"].get("vendi_rows", 0)
        verb_rows = analysis["verb_noun"]["all"]["sampled"]
        dhtml += ("<h3>Richer figures per source</h3><p>Vendi and mean cosine distance on a seeded sample of ≤ 2,000 rows "
                  f"per group ({vendi_rows:,} of the pool's {len(pool):,}), in one TF-IDF/SVD embedding fitted on a "
                  "seeded sample of the pool; verb figures on a seeded sample of ≤ 5,000 rows per group; distinct-n and "
                  "entropies on all rows (see the method note below).</p>" + html_table(rich)
                  + metrics_plot(rich, "Diversity figures per source"))
        dhtml += ("<h3>Verb–noun structure of the pool</h3>"
                  f"<p>On a seeded sample of {verb_rows:,} rows of the pool's {len(pool):,}.</p>"
                  + verb_noun_plot(analysis["verb_noun"]["all"], "Root verbs and their objects: all")
                  + verb_noun_html(analysis["verb_noun"]["all"]))
        src_nov = {k: v for k, v in analysis["novelty"].items() if k != "all"}
        note = ("the <code>novelty</code> column of the records" if "novelty" in pool.columns
                else "computed for this report (the recipe has no <code>novelty_tagger</code>)")
        dhtml += (f"<h3>Novelty of records</h3><p>Novelty is {note}.</p>" + novelty_plot(src_nov, "Novelty per source")
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


def _mixtures(run_dir: Path, pool: pd.DataFrame, analysis: dict[str, Any], seed: int, md: list[str]) -> str:
    mx = load_stage_json(run_dir, "mixtures", "mixtures.json") or []
    mrows, tt = [], {}
    for m in mx:
        comp = m.get("composition", {})
        mrows.append({"mixture": m["name"], "rows": m["rows"], **{k: v for k, v in comp.get("diversity", {}).items()
                                                                   if isinstance(v, (int, float))}})
        tt[m["name"]] = comp.get("by_task_type", {})
    mhtml = html_table(mrows)
    if tt:
        t = pd.DataFrame(tt).T.fillna(0)
        t = t.reindex(columns=[c for c in TASK_TYPES_ORDER if c in t.columns])
        mhtml += stacked_share_plot(t, "Task types per mixture")
        src = pd.DataFrame({m["name"]: m.get("composition", {}).get("by_source", {}) for m in mx}).T.fillna(0)
        mhtml += stacked_share_plot(src, "Sources per mixture")
    comp = (mixture_comparison(run_dir, pool, seed=seed, embedder=analysis["_embedder"], pool_sample_x=analysis["_coverage_x"])
            if mx and len(pool) else [])
    if comp:
        mhtml += ("<h3>Diversity-aware selection against random</h3><p>Every mixture embedded with one TF-IDF/SVD "
                  "embedding fitted on the pool. Vendi and mean cosine distance on ≤ 2,000 rows of each mixture; "
                  "coverage: cosine distance from ≤ 5,000 pool rows to their nearest mixture row (lower is better; "
                  "k-center minimises its maximum).</p>" + html_table(comp) + comparison_plot(comp))
        pairs = pairs_against_random(comp)
        if pairs:
            mhtml += "<h4>Each strategy next to random at the same size</h4>" + html_table(pairs)
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
