"""One self-contained HTML report of a run (plots embedded as PNG), plus a Markdown summary.

Everything shown is read back from the run folder (manifest, ledgers, stats, dropped rows,
mixture manifests), so the report can be rebuilt at any time with ``tiger report RUN_DIR``.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .io import read_json, write_text  # noqa: E402

TASK_TYPES_ORDER = ["generation", "rewrite", "brainstorming", "open qa", "closed qa", "classification",
                    "extract", "summarization", "math", "code", "other"]
SECTIONS = ["summary", "ledger", "parse", "normalize", "filter", "dedupe", "diversity", "mixtures", "manifest"]


def _e(x: Any) -> str:
    return html.escape(str(x))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return f'<img class="plot" alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


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
    return _png(fig)


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
    return _png(fig)


def _cluster_plot(sizes: pd.Series) -> str:
    fig, ax = plt.subplots(figsize=(8, 3))
    s = sizes.sort_values(ascending=False)
    ax.bar(range(len(s)), s.values)
    ax.set_xlabel("cluster (sorted by size)")
    ax.set_ylabel("records")
    ax.set_title(f"Cluster sizes ({len(s)} clusters)")
    return _png(fig)


def build_report(run_dir: Path) -> tuple[Path, str]:
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
    if pool_path.exists():
        pool = pd.read_parquet(pool_path, columns=["source", "task_type", "cluster"])
        ct = pd.crosstab(pool["source"], pool["task_type"]).reindex(columns=[t for t in TASK_TYPES_ORDER if t in set(pool["task_type"])])
        dhtml += _stacked_share_plot(ct, "Task types per source") + _table(
            [{"source": s, **{k: int(v) for k, v in row.items()}} for s, row in ct.iterrows()])
        dhtml += _cluster_plot(pool["cluster"].value_counts())
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
    parts["mixtures"] = mhtml
    if mrows:
        md += ["## Mixtures", "", _md_table(mrows, list(mrows[0].keys())), ""]

    # Manifest
    parts["manifest"] = ("<h3>Packages</h3>" + _table([{"package": k, "version": v} for k, v in manifest["packages"].items()])
                         + f"<p>code version {_e(manifest['code_version'])}</p><h3>Recipe</h3><pre>"
                         + _e(json.dumps(manifest["recipe"], ensure_ascii=False, indent=2)) + "</pre><h3>Inputs</h3>"
                         + _table(manifest["inputs"], ["source", "file", "bytes", "sha256", "origin"]))

    titles = {"summary": "Summary", "ledger": "Ledger: every record kept or dropped with a reason",
              "parse": "Parse and quarantine", "normalize": "Normalization", "filter": "Language and empty-text filter",
              "dedupe": "Deduplication", "diversity": "Task types, clusters and diversity", "mixtures": "Mixtures",
              "manifest": "Manifest"}
    nav = " · ".join(f"<a href='#{s}'>{titles[s]}</a>" for s in SECTIONS)
    body = "".join(f"<section id='{s}'><h2>{titles[s]}</h2>{parts.get(s, '')}</section>" for s in SECTIONS)
    page = (f"<!doctype html><html lang='zh'><head><meta charset='utf-8'><title>tiger report {_e(manifest['run_id'])}</title>"
            f"<style>{CSS}</style></head><body><h1>tiger curation report <small>{_e(manifest['run_id'])}</small></h1>"
            f"<nav>{nav}</nav>{body}</body></html>")
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


def _drops_html(run_dir: Path, stage: str, per_reason: int = 3) -> str:
    p = run_dir / stage / "dropped.parquet"
    if not p.exists():
        return ""
    df = pd.read_parquet(p)
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
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}section{border-top:2px solid #ddd;margin-top:1.5em}img.plot{max-width:100%;display:block;margin:.5em 0}
ul.ex code{white-space:pre-wrap;font-size:.8em}nav{font-size:.9em}small{color:#777}"""
