"""The reports' charts: Vega-Lite specs with their data embedded, drawn by the browser (Vega, vendored in
``vendor/`` and inlined into the page, so it works offline as one file). Chinese labels are SVG text in
the viewer's fonts; hovering a mark shows its counts. Every spec is plain JSON written with sorted keys,
so the same figures give the same bytes."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from .html import esc

def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if not np.isfinite(f) else round(f, 6)
    return v


def chart(name: str, spec: dict[str, Any]) -> str:
    """A chart's placeholder and its spec; the page's script draws it (SVG)."""
    base = {"config": {"view": {"stroke": None}, "axis": {"labelLimit": 260}}}
    if "facet" in spec:
        pass
    elif isinstance(spec.get("height"), dict):  # a discrete height (a band per row) cannot fit a container
        base["width"] = 820
    else:
        base["width"] = "container"
        base["autosize"] = {"type": "fit-x", "contains": "padding"}
    spec = {**base, **_clean(spec)}
    spec.setdefault("title", name)
    text = json.dumps(spec, ensure_ascii=False, sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
    return (f"<figure class='chart' data-plot='{esc(name)}'><div class='vega'></div>"
            f"<script type='application/json' class='spec'>{text}</script></figure>")


def _tip(*fields: tuple[str, str] | tuple[str, str, str]) -> list[dict]:
    out = []
    for f in fields:
        d = {"field": f[0], "type": f[1]}
        if len(f) > 2:
            d["format"] = f[2]
        out.append(d)
    return out


def ledger_chart(ledger: list[dict]) -> str:
    rows = [{"stage": r["stage"], "source": s, "kept": c.get("kept", 0), "dropped": c.get("dropped", 0)}
            for r in ledger for s, c in sorted(r["by_source"].items())]
    return chart("ledger", {"title": "Records kept after each stage, by source", "data": {"values": rows}, "mark": "bar",
                            "encoding": {"x": {"field": "stage", "type": "nominal", "sort": [r["stage"] for r in ledger],
                                               "axis": {"labelAngle": 0}},
                                         "y": {"field": "kept", "type": "quantitative", "title": "records kept"},
                                         "color": {"field": "source", "type": "nominal"},
                                         "tooltip": _tip(("stage", "nominal"), ("source", "nominal"), ("kept", "quantitative", ","),
                                                         ("dropped", "quantitative", ","))}})


def share_chart(table: pd.DataFrame, title: str, group: str = "group", part: str = "task type") -> str:
    """Rows of ``table``: groups (sources, mixtures, files); columns: parts (task types, sources); values: counts.
    Each group's bar shows the shares of its parts; hover gives count and share."""
    total = table.sum(axis=1).where(lambda s: s > 0, 1)
    rows = [{group: str(g), part: str(c), "count": int(table.loc[g, c]), "share": float(table.loc[g, c] / total[g])}
            for g in table.index for c in table.columns]
    order = [str(c) for c in table.columns]
    return chart(title, {"title": title, "data": {"values": rows}, "mark": "bar", "height": {"step": 26},
                         "transform": [{"calculate": f"indexof({json.dumps(order, ensure_ascii=False)}, datum['{part}'])",
                                        "as": "_order"}],
                         "encoding": {"y": {"field": group, "type": "nominal", "title": None},
                                      "x": {"field": "share", "type": "quantitative", "stack": "zero", "scale": {"domain": [0, 1]},
                                            "axis": {"format": "%"}, "title": "share of records"},
                                      "color": {"field": part, "type": "nominal", "sort": order,
                                                "scale": {"scheme": "tableau20"}},
                                      "order": {"field": "_order", "type": "quantitative"},
                                      "tooltip": _tip((group, "nominal"), (part, "nominal"), ("count", "quantitative", ","),
                                                      ("share", "quantitative", ".1%"))}})


def cluster_chart(sizes: pd.Series, terms: dict[int, str] | None = None) -> str:
    s = sizes.sort_values(ascending=False, kind="mergesort")
    rows = [{"rank": i + 1, "cluster": int(c), "records": int(v), "terms": (terms or {}).get(int(c), "")}
            for i, (c, v) in enumerate(s.items())]
    return chart("cluster_sizes", {"title": f"Cluster sizes ({len(s)} clusters, sorted)", "data": {"values": rows}, "mark": "bar",
                                   "encoding": {"x": {"field": "rank", "type": "ordinal", "title": "cluster (sorted by size)",
                                                      "axis": {"labels": False, "ticks": False}},
                                                "y": {"field": "records", "type": "quantitative"},
                                                "tooltip": _tip(("cluster", "nominal"), ("records", "quantitative", ","),
                                                                ("terms", "nominal"))}})


METRIC_KEYS = [("task_type_entropy_norm", "task-type entropy (norm.)"), ("cluster_entropy_norm", "cluster entropy (norm.)"),
               ("distinct_2", "distinct-2"), ("mean_cosine_distance", "mean cosine distance"), ("vendi", "Vendi (÷ max)")]


def metrics_chart(rows: list[dict], title: str) -> str:
    """Grouped bars of the [0, 1] figures plus Vendi scaled by its largest value (hover: the value)."""
    keys = [(k, lab) for k, lab in METRIC_KEYS if any(r.get(k) is not None for r in rows)]
    vmax = max([r.get("vendi") or 0 for r in rows] + [1e-9])
    data = [{"group": str(r["group"]), "figure": lab, "value": r.get(k) or 0,
             "scaled": (r.get(k) or 0) / (vmax if k == "vendi" else 1.0)} for k, lab in keys for r in rows]
    return chart(title, {"title": title, "data": {"values": data}, "mark": "bar",
                         "encoding": {"x": {"field": "figure", "type": "nominal", "sort": [lab for _, lab in keys],
                                            "axis": {"labelAngle": 0}, "title": None},
                                      "xOffset": {"field": "group", "type": "nominal", "sort": [str(r["group"]) for r in rows]},
                                      "y": {"field": "scaled", "type": "quantitative", "scale": {"domain": [0, 1]}, "title": None},
                                      "color": {"field": "group", "type": "nominal", "sort": [str(r["group"]) for r in rows]},
                                      "tooltip": _tip(("group", "nominal"), ("figure", "nominal"), ("value", "quantitative", ".4f"))}})


def verb_noun_chart(table: dict[str, Any], title: str) -> str:
    """Self-Instruct's verb–noun figure as labelled bars (readable where a sunburst's small wedges are not):
    one bar per root verb, its top nouns as the first segments, and the nouns with their counts written
    beside the bar."""
    verbs = table["verbs"]
    if not verbs:
        return "<p><em>no verbs found</em></p>"
    top = max(v["count"] for v in verbs)
    rows = []
    for v in verbs:
        rest = v["count"]
        nouns = " · ".join(f"{n['noun']} {n['count']}" for n in v["nouns"])
        for j, n in enumerate(v["nouns"]):
            rows.append({"verb": v["verb"], "noun": n["noun"], "rank": j, "count": n["count"], "verb count": v["count"],
                         "nouns": nouns if j == 0 else ""})
            rest -= n["count"]
        if rest > 0 or not v["nouns"]:
            rows.append({"verb": v["verb"], "noun": "(other objects)", "rank": 9, "count": rest, "verb count": v["count"],
                         "nouns": nouns if not v["nouns"] else ""})
    y = {"field": "verb", "type": "nominal", "sort": [v["verb"] for v in verbs], "title": "root verb",
         "axis": {"labelFontSize": 13}}
    tip = _tip(("verb", "nominal"), ("noun", "nominal"), ("count", "quantitative", ","), ("verb count", "quantitative", ","))
    sub = f"{table['parsed']:,} of {table.get('sampled', table['rows']):,} sampled instructions with a root verb"
    return chart(title, {"title": {"text": title, "subtitle": sub}, "data": {"values": rows}, "height": {"step": 22},
                         "layer": [{"mark": {"type": "bar", "stroke": "white"},
                                    "encoding": {"y": y, "x": {"field": "count", "type": "quantitative", "stack": "zero",
                                                               "title": "instructions", "scale": {"domain": [0, top * 2.2]}},
                                                 "order": {"field": "rank", "type": "quantitative"}, "tooltip": tip,
                                                 "color": {"field": "rank", "type": "ordinal", "legend": None,
                                                           "scale": {"domain": [0, 1, 2, 3, 9],
                                                                     "range": ["#3366aa", "#5b8bd0", "#8fb3e6", "#c0d5f2", "#e6e6e6"]}}}},
                                   {"transform": [{"filter": "datum.nouns != ''"}],
                                    "mark": {"type": "text", "align": "left", "dx": 4, "fontSize": 12},
                                    "encoding": {"y": y, "x": {"field": "verb count", "type": "quantitative"},
                                                 "text": {"field": "nouns"}, "tooltip": tip}}]})


def binned(values: dict[str, np.ndarray], edges: np.ndarray, name: str = "value") -> list[dict]:
    """Histogram rows (group, bin, lo, hi, count, share) of each group on shared ``edges``."""
    rows = []
    for g, v in values.items():
        v = np.asarray(v, dtype=float)
        counts = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)[0] if len(v) else np.zeros(len(edges) - 1, int)
        n = max(1, len(v))
        for i, c in enumerate(counts):
            rows.append({"group": g, "bin": i, "lo": float(edges[i]), "hi": float(edges[i + 1]), "count": int(c),
                         "share": float(c / n)})
    return rows


def histogram_chart(rows: list[dict], title: str, xlabel: str, labels: list[str] | None = None) -> str:
    """Binned counts of several groups as lines of shares on a shared axis (hover: bin, count, share).
    ``labels``: a label per bin (ordinal bins), else the bins' lower edges on a linear axis."""
    data = [{**r, "range": labels[r["bin"]] if labels else f"{r['lo']:.3g}–{r['hi']:.3g}"} for r in rows]
    groups = list(dict.fromkeys(r["group"] for r in rows))
    x = ({"field": "range", "type": "ordinal", "sort": labels, "title": xlabel, "axis": {"labelAngle": -40}} if labels
         else {"field": "lo", "type": "quantitative", "title": xlabel})
    return chart(title, {"title": title, "data": {"name": "bins", "values": data},
                         "mark": {"type": "line", "interpolate": "step-after" if not labels else "linear", "point": True},
                         "encoding": {"x": x, "y": {"field": "share", "type": "quantitative", "axis": {"format": "%"},
                                                    "title": "share of the group's records"},
                                      "color": {"field": "group", "type": "nominal", "sort": groups},
                                      "tooltip": _tip(("group", "nominal"), ("range", "nominal"), ("count", "quantitative", ","),
                                                      ("share", "quantitative", ".2%"))}})


def novelty_chart(novelty: dict[str, np.ndarray], title: str) -> str:
    allv = np.concatenate([v for v in novelty.values() if len(v)]) if novelty else np.array([0.0])
    edges = np.linspace(0, max(0.05, float(np.quantile(allv, 0.995))), 41)
    return histogram_chart(binned(novelty, edges), title, "novelty: mean cosine distance to the 10 nearest neighbours")


def cluster_spread_chart(clusters: dict[str, dict], k: int, title: str) -> str:
    """Share of each group in each cluster (clusters sorted by total size)."""
    table = pd.DataFrame(clusters).fillna(0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False, kind="mergesort").index]
    share = table / table.sum(axis=0).where(lambda x: x > 0, 1)
    rows = [{"rank": i + 1, "cluster": int(c), "group": str(g), "count": int(table.loc[c, g]), "share": float(share.loc[c, g])}
            for i, c in enumerate(table.index) for g in table.columns]
    return chart(title, {"title": title, "data": {"values": rows}, "mark": "bar",
                         "encoding": {"x": {"field": "rank", "type": "ordinal", "title": f"cluster (shared clustering, k = {k}, sorted by size)"},
                                      "xOffset": {"field": "group", "type": "nominal"},
                                      "y": {"field": "share", "type": "quantitative", "axis": {"format": "%"},
                                            "title": "share of the group"},
                                      "color": {"field": "group", "type": "nominal"},
                                      "tooltip": _tip(("cluster", "nominal"), ("group", "nominal"), ("count", "quantitative", ","),
                                                      ("share", "quantitative", ".1%"))}})


COMPARISON_KEYS = [("vendi", "Vendi"), ("mean_cosine_distance", "mean cosine distance"),
                   ("coverage_max", "coverage radius (max)"), ("coverage_mean", "coverage (mean)"),
                   ("task_type_entropy", "task-type entropy")]


def comparison_chart(rows: list[dict]) -> str:
    data = [{"mixture": r["mixture"], "strategy": r["strategy"], "figure": lab, "value": r.get(k) or 0,
             "kind": "random" if r["strategy"] == "random" else "diversity-aware"} for k, lab in COMPARISON_KEYS for r in rows]
    return chart("mixture_comparison", {
        "title": "Mixtures compared in one embedding (grey: random; lower coverage = better covered pool)",
        "data": {"values": data}, "columns": 5, "width": 150,
        "facet": {"field": "figure", "type": "nominal", "sort": [lab for _, lab in COMPARISON_KEYS], "title": None},
        "resolve": {"scale": {"y": "independent"}},
        "spec": {"mark": "bar", "width": 150,
                 "encoding": {"x": {"field": "mixture", "type": "nominal", "title": None, "axis": {"labelAngle": -50}},
                              "y": {"field": "value", "type": "quantitative", "title": None},
                              "color": {"field": "kind", "type": "nominal",
                                        "scale": {"domain": ["random", "diversity-aware"], "range": ["#999999", "#1f77b4"]}},
                              "tooltip": _tip(("mixture", "nominal"), ("strategy", "nominal"), ("figure", "nominal"),
                                              ("value", "quantitative", ".4f"))}}})
