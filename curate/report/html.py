"""HTML pieces of the reports: escaping, tables, examples, a stage's steps and drops, the page."""
from __future__ import annotations

import html
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

TASK_TYPES_ORDER = ["generation", "rewrite", "brainstorming", "open qa", "closed qa", "classification",
                    "extract", "summarization", "math", "code", "other"]


VENDOR = Path(__file__).parent / "vendor"
VENDOR_FILES = ["vega.min.js", "vega-lite.min.js", "vega-embed.min.js"]


@lru_cache(maxsize=1)
def vendor_js() -> str:
    """Vega, Vega-Lite and Vega-Embed (BSD-3-Clause, licences beside them), to inline in a page."""
    return "\n".join((VENDOR / f).read_text(encoding="utf-8").replace("</script", "<\\/script") for f in VENDOR_FILES)


def esc(x: Any) -> str:
    return html.escape(str(x))


def html_table(rows: list[dict], cols: list[str] | None = None, name: str = "", raw: set[str] | None = None) -> str:
    """A table the page's script makes sortable (click a header) and filterable (a search box above it);
    numbers carry their value in ``data-v`` so they sort as numbers. ``raw``: columns holding HTML."""
    if not rows:
        return "<p><em>none</em></p>"
    cols = cols or list(rows[0].keys())
    raw = raw or set()
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)

    def cell(v: Any, c: str) -> str:
        if c in raw:
            return f"<td>{v}</td>"
        num = isinstance(v, (int, float)) and not isinstance(v, bool)
        return f"<td data-v='{v!r}'>{esc(fmt_value(v))}</td>" if num else f"<td>{esc(fmt_value(v))}</td>"
    body = "".join("<tr>" + "".join(cell(r.get(c, ""), c) for c in cols) + "</tr>" for r in rows)
    attr = f" data-table='{esc(name)}'" if name else ""
    return f"<div class='tbl'><table class='data'{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def char_diff(a: str, b: str, text=str, removed: str = "[-{}-]", added: str = "{{+{}+}}") -> tuple[str, str]:
    """``a`` and ``b`` with the characters only one has marked (difflib, per character): ``removed`` in
    ``a``, ``added`` in ``b`` (format strings); every piece of text goes through ``text`` (e.g. escaping).
    The defaults suit a terminal."""
    import difflib

    out_a, out_b = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out_a.append(text(a[i1:i2]))
            out_b.append(text(b[j1:j2]))
            continue
        if i2 > i1:
            out_a.append(removed.format(text(a[i1:i2])))
        if j2 > j1:
            out_b.append(added.format(text(b[j1:j2])))
    return "".join(out_a), "".join(out_b)


def diff_pair_html(a: str, b: str) -> tuple[str, str]:
    """``a`` and ``b`` as HTML with the characters only one of them has highlighted: ``<del>`` in ``a``,
    ``<ins>`` in ``b`` (``char_diff``)."""
    return char_diff(a, b, esc, "<del>{}</del>", "<ins>{}</ins>")


def before_after_html(examples: list[dict]) -> str:
    """Normalisation examples: each field before and after, the changed characters highlighted."""
    if not examples:
        return ""
    out = []
    for ex in examples:
        if "before" not in ex or "after" not in ex:
            out.append(examples_html([ex]))
            continue
        a, b = diff_pair_html(str(ex["before"]), str(ex["after"]))
        out.append(f"<div class='pair'><div><small>before · {esc(ex.get('field', ''))} · {esc(ex.get('id', ''))}</small>"
                   f"<pre>{a}</pre></div><div><small>after</small><pre>{b}</pre></div></div>")
    return "".join(out)


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def md_table(rows: list[dict], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt_value(r.get(c, "")).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(out)


def examples_html(examples: list[dict]) -> str:
    """Example rows as a sortable table, one column per field (in the order they first appear); texts
    cut to 300 characters, a nested value shown as JSON."""
    if not examples:
        return ""
    examples = [ex if isinstance(ex, dict) else {"example": ex} for ex in examples]
    cols: list[str] = []
    for ex in examples:
        cols += [k for k in ex if k not in cols]
    cut = [{k: (v[:300] if isinstance(v, str) else v) for k, v in ex.items()} for ex in examples]
    return html_table(cut, cols, name="examples")


def steps_html(stats: dict, cluster_examples: bool = False) -> str:
    out = []
    for step in stats.get("steps", []):
        out.append(f"<h3>{esc(step['op'])}</h3><p>{step['in']:,} in, {step['kept']:,} kept, {step['dropped']:,} dropped</p>")
        extra = {k: v for k, v in step.items() if k not in {"op", "params", "in", "kept", "dropped", "examples", "reasons"}
                 and not isinstance(v, (list, dict))}
        if extra:
            out.append(html_table([extra]))
        for k, v in step.items():
            if isinstance(v, dict) and k not in {"params", "examples"} and v and all(not isinstance(x, (dict, list)) for x in v.values()):
                out.append(f"<h4>{esc(k)}</h4>" + html_table([{"key": a, "value": b} for a, b in v.items()]))
        if cluster_examples and isinstance(step.get("examples"), list):
            for i, cl in enumerate(step["examples"][:5]):
                out.append(f"<h4>example cluster {i + 1}</h4>" + examples_html(cl if isinstance(cl, list) else [cl]))
    return "".join(out)


def drops_html(run_dir: Path, stage: str, per_reason: int = 3) -> str:
    p = run_dir / stage / "dropped.parquet"
    if not p.exists():  # a stage that dropped nothing writes no dropped.parquet
        return "<p>Nothing dropped here.</p>" if (run_dir / stage / "_SUCCESS.json").exists() else ""
    from ..io import read_positions

    # Counts from the two key columns; the texts only of the rows shown (a dedupe of millions drops
    # a million rows: reading all their texts to show three per reason cost a GiB)
    keys = pd.read_parquet(p, columns=["stage", "reason"])
    if not len(keys):
        return "<p>Nothing dropped here.</p>"
    groups = {g: np.asarray(pos) for g, pos in sorted(keys.groupby(["stage", "reason"]).indices.items())}
    del keys
    shown = {g: pos[:per_reason] for g, pos in groups.items()}
    have = pq.ParquetFile(p).schema_arrow.names
    cols = [c for c in ("source", "file", "row", "detail", "instruction", "output") if c in have]
    at = np.unique(np.concatenate(list(shown.values()))) if shown else np.empty(0, np.int64)
    rows = read_positions(p, at, cols).to_dict("records")
    row_at = dict(zip(at.tolist(), rows))
    out = ["<h3>Dropped, by reason</h3>"]
    for (st, reason), pos in groups.items():
        out.append(f"<h4>{esc(st)} — {esc(reason)}: {len(pos):,}</h4>")
        ex = [{"source": r["source"], "file": r["file"], "row": int(r["row"]), "detail": str(r["detail"])[:200],
               "instruction": str(r["instruction"])[:120], "output": str(r["output"])[:80]}
              for r in (row_at[i] for i in shown[(st, reason)].tolist())]
        out.append(examples_html(ex))
    return "".join(out)


CSS = """body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
div.tbl{max-width:100%;overflow-x:auto;max-height:36em;overflow-y:auto;margin:.5em 0}
table{border-collapse:collapse;font-size:.82em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top;max-width:32em;overflow-wrap:anywhere}
th{background:#f3f3f3;position:sticky;top:0;cursor:pointer;white-space:nowrap}th[data-sort=asc]::after{content:' ▲'}th[data-sort=desc]::after{content:' ▼'}
td[data-v]{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td:first-child{white-space:nowrap}input.tfilter{margin:.4em 0 0;padding:.2em .4em;width:18em}
span.tcount{color:#777;font-size:.8em;margin-left:.6em}section{border-top:2px solid #ddd;margin-top:1.5em}
figure.chart{margin:.8em 0;max-width:100%;overflow-x:auto}figure.chart .vega{width:100%}
nav{font-size:.9em}small{color:#777}
div.pair{display:grid;grid-template-columns:1fr 1fr;gap:.6em;margin:.4em 0}div.pair pre{white-space:pre-wrap;margin:.2em 0;
padding:.4em;background:#fafafa;border:1px solid #ddd;font-size:.82em;max-height:16em;overflow:auto}
del{background:#fbb;text-decoration:none}ins{background:#bfb;text-decoration:none}div.dup{border-left:3px solid #ccc;padding-left:.6em;margin:1em 0}"""


METRIC_COLUMNS = ["group", "rows", "task_type_entropy", "task_type_entropy_norm", "task_type_coverage", "cluster_entropy",
                  "cluster_entropy_norm", "distinct_1", "distinct_2", "distinct_3", "vendi", "mean_cosine_distance",
                  "mean_novelty", "verb_entropy", "distinct_verbs", "mean_instruction_chars"]


SCRIPT = """(function () {
  function cellValue(td) { var v = td.getAttribute('data-v'); return v === null ? td.textContent : parseFloat(v); }
  function setupTable(table) {
    var rows = Array.prototype.slice.call(table.tBodies[0].rows), heads = table.tHead.rows[0].cells;
    var box = document.createElement('input'), count = document.createElement('span');
    box.className = 'tfilter'; box.type = 'search'; box.placeholder = 'filter rows…'; count.className = 'tcount';
    function show() {
      var q = box.value.toLowerCase(), n = 0;
      rows.forEach(function (tr) { var hit = !q || tr.textContent.toLowerCase().indexOf(q) >= 0; tr.style.display = hit ? '' : 'none'; if (hit) n++; });
      count.textContent = n + ' of ' + rows.length + ' rows';
    }
    box.addEventListener('input', show);
    var wrap = table.parentNode; wrap.parentNode.insertBefore(box, wrap); wrap.parentNode.insertBefore(count, wrap);
    Array.prototype.forEach.call(heads, function (th, i) {
      th.addEventListener('click', function () {
        var dir = th.getAttribute('data-sort') === 'asc' ? 'desc' : 'asc';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('data-sort'); });
        th.setAttribute('data-sort', dir);
        var sorted = rows.slice().sort(function (a, b) {
          var x = cellValue(a.cells[i]), y = cellValue(b.cells[i]), c;
          if (typeof x === 'number' && typeof y === 'number') { c = x - y; } else { c = String(x).localeCompare(String(y), 'zh'); }
          return dir === 'asc' ? c : -c;
        });
        sorted.forEach(function (tr) { table.tBodies[0].appendChild(tr); });
      });
    });
    show();
  }
  window.tigerViews = {};
  window.addEventListener('load', function () {
    document.querySelectorAll('table.data').forEach(setupTable);
    var figs = document.querySelectorAll('figure.chart'), ok = 0, done = 0;
    document.body.setAttribute('data-plots-total', String(figs.length));
    function finish() { if (done === figs.length) { document.body.setAttribute('data-plots-ok', String(ok)); document.body.setAttribute('data-ready', '1'); } }
    finish();
    figs.forEach(function (fig) {
      var spec = JSON.parse(fig.querySelector('script.spec').textContent);
      vegaEmbed(fig.querySelector('.vega'), spec, {renderer: 'svg', actions: false, logLevel: vega.Error})
        .then(function (res) { window.tigerViews[fig.getAttribute('data-plot')] = res.view; fig.setAttribute('data-drawn', '1'); ok++; })
        .catch(function (err) { fig.setAttribute('data-error', String(err)); })
        .then(function () { done++; finish(); });
    });
  });
})();"""


def metrics_rows(analysis: dict[str, Any]) -> list[dict]:
    rows = []
    for g in analysis["groups"]:
        m = analysis["metrics"][g]
        rows.append({c: (g if c == "group" else m.get(c)) for c in METRIC_COLUMNS if c == "group" or c in m})
    return rows


def verb_noun_html(table: dict[str, Any]) -> str:
    rows = [{"verb": v["verb"], "count": v["count"], "top nouns": "、".join(f"{n['noun']} ({n['count']})" for n in v["nouns"])}
            for v in table["verbs"]]
    return html_table(rows)


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
sample of ≤ 5,000 rows per group. Chart: the top 20 verbs, each bar split into its top 4 nouns (written beside it) and the rest.</li>
</ul>"""


def page_html(title: str, subtitle: str, sections: list[str], titles: dict[str, str], parts: dict[str, str]) -> str:
    """One self-contained page: the sections, the vendored charting library and the page's script inlined."""
    vendor = vendor_js()
    nav = " · ".join(f"<a href='#{s}'>{esc(titles[s])}</a>" for s in sections)
    body = "".join(f"<section id='{s}'><h2>{esc(titles[s])}</h2>{parts.get(s, '')}</section>" for s in sections)
    return (f"<!doctype html><html lang='zh'><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)} <small>{esc(subtitle)}</small></h1>"
            f"<nav>{nav}</nav>{body}<script>{vendor}</script><script>{SCRIPT}</script></body></html>")
