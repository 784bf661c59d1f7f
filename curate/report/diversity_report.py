"""``tiger diversity``: the diversity report of alpaca-format files side by side."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..io import write_text
from .analysis import analyse_groups
from .html import METHOD_HTML, TASK_TYPES_ORDER, esc, html_table, metrics_rows, page_html, verb_noun_html
from .charts import cluster_spread_chart, metrics_chart, novelty_chart, share_chart, verb_noun_chart

DIVERSITY_SECTIONS = ["summary", "metrics", "task_types", "clusters", "verb_noun", "novelty", "method"]


DIVERSITY_TITLES = {"summary": "Summary", "metrics": "Diversity figures side by side", "task_types": "Task types",
                    "clusters": "Clusters (shared clustering)", "verb_noun": "Verb–noun structure",
                    "novelty": "Novelty of records", "method": "How the figures are computed"}


def build_diversity_report(inputs: list[str | Path], out_dir: str | Path, names: list[str] | None = None,
                           seed: int = 0) -> tuple[Path, dict[str, Any]]:
    """The diversity report of alpaca-format files side by side: ``out_dir/diversity.html`` and
    ``out_dir/diversity.json`` (the figures). Returns the HTML path and the figures."""
    from ..io import write_json
    from ..userfiles import read_alpaca

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
    analysis = analyse_groups(groups, seed=seed)
    rows = metrics_rows(analysis)
    parts: dict[str, str] = {}
    total = sum(r["rows"] for r in rows)
    parts["summary"] = ("<p>" + f"{len(paths)} file(s), {total:,} records: " + ", ".join(
        f"<b>{esc(n)}</b> ({analysis['metrics'][n]['rows']:,} rows, Vendi {analysis['metrics'][n].get('vendi', 0):.1f})" for n in names)
        + ".</p>" + html_table([{"name": n, "file": str(p)} for n, p in zip(names, paths)]))
    parts["metrics"] = html_table(rows) + metrics_chart(rows, "Diversity figures per file")
    tt = pd.DataFrame(analysis["task_types"]).T.reindex(columns=TASK_TYPES_ORDER).fillna(0)
    parts["task_types"] = share_chart(tt, "Task types per file", "file") + html_table(
        [{"file": n, **{k: int(v) for k, v in tt.loc[n].items()}} for n in names])
    parts["clusters"] = (f"<p>One clustering (k = {analysis['n_clusters']}) of all rows together; a file spread over many "
                         f"clusters covers more kinds of wording.</p>"
                         + cluster_spread_chart(analysis["clusters"], analysis["n_clusters"], "Share of each file per cluster"))
    parts["verb_noun"] = "".join(
        f"<h3>{esc(n)}</h3>" + verb_noun_chart(analysis["verb_noun"][n], f"Root verbs and their objects: {n}")
        + verb_noun_html(analysis["verb_noun"][n]) for n in names)
    parts["novelty"] = novelty_chart(analysis["novelty"], "Novelty per file") + "".join(
        f"<h3>Most novel records of {esc(n)}</h3>" + html_table(analysis["examples"][n]) for n in names)
    parts["method"] = METHOD_HTML
    page = page_html("tiger diversity report", ", ".join(names), DIVERSITY_SECTIONS, DIVERSITY_TITLES, parts)
    out_dir = Path(out_dir)
    html_path = out_dir / "diversity.html"
    write_text(html_path, page)
    figures = {"files": {n: str(p) for n, p in zip(names, paths)}, "metrics": analysis["metrics"], "verb_noun": analysis["verb_noun"],
               "task_types": analysis["task_types"], "n_clusters": analysis["n_clusters"], "embedding": analysis["embedding"],
               "bad_rows": {n: groups[n].attrs.get("bad_rows", []) for n in names}}
    write_json(out_dir / "diversity.json", figures)
    return html_path, figures
