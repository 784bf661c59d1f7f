"""The reports' figures (matplotlib, embedded as PNG), drawn from figures the analysis computed."""
from __future__ import annotations

import base64
import glob
import io
import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .html import esc

_FONT_READY = False


def setup_fonts() -> None:
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


def png_img(fig, name: str = "plot") -> str:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a glyph missing from the font is not an error of the data
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return (f'<img class="plot" data-plot="{esc(name)}" alt="{esc(name)}" '
            f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">')


def ledger_plot(ledger: list[dict]) -> str:
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
    return png_img(fig, "ledger")


def stacked_share_plot(table: pd.DataFrame, title: str) -> str:
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
    return png_img(fig, title)


def cluster_plot(sizes: pd.Series) -> str:
    fig, ax = plt.subplots(figsize=(8, 3))
    s = sizes.sort_values(ascending=False)
    ax.bar(range(len(s)), s.values)
    ax.set_xlabel("cluster (sorted by size)")
    ax.set_ylabel("records")
    ax.set_title(f"Cluster sizes ({len(s)} clusters)")
    return png_img(fig, "cluster_sizes")


def metrics_plot(rows: list[dict], title: str) -> str:
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
    return png_img(fig, title)


def verb_noun_plot(table: dict[str, Any], title: str) -> str:
    """Self-instruct's sunburst: inner ring the top root verbs, outer ring each verb's top nouns."""
    verbs = table["verbs"]
    fig, ax = plt.subplots(figsize=(7.5, 7.5))
    if not verbs:
        ax.text(0.5, 0.5, "no verbs found", ha="center", va="center")
        ax.axis("off")
        return png_img(fig, title)
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
    return png_img(fig, title)


def novelty_plot(novelty: dict[str, np.ndarray], title: str) -> str:
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
    return png_img(fig, title)


def cluster_spread_plot(clusters: dict[str, dict], k: int, title: str) -> str:
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
    return png_img(fig, title)


def comparison_plot(rows: list[dict]) -> str:
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
    return png_img(fig, "mixture_comparison")
