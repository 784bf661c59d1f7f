"""The HTML reports in a real browser: headless Chromium loads each page, and the test reads back the
DOM it built (every section, every plot decoded), the console (no errors) and a screenshot.

Chromium comes from Debian (``.ci/run`` installs ``chromium``); the test skips only on a machine
without it, and never in CI.
"""
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from curate.recipe import DEFAULT_RECIPE
from curate.report import DIVERSITY_SECTIONS, SECTIONS

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]

SLICE = {
    "trans_chinese_alpaca": ["alpaca_chinese_part_0.json", "alpaca_chinese_part_1.json"],
    "alpaca_chinese": ["supplementary/整数加减法.json", "supplementary/建议类问题.json", "supplementary/翻译问题.json"],
    "belle": ["dev1K.json"],
    "traditional": ["chinese_vicuna_chat_sample.jsonl"],
}


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing in CI: .ci/run installs it")
        pytest.skip("no /usr/bin/chromium on this machine (apt-get install chromium)")
    return CHROMIUM


def render(page: Path, tmp: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """The DOM after load (scripts run) and the page's console lines, from one headless run."""
    profile = tmp / f"profile-{page.stem}"
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    if screenshot is not None:
        shot = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}-shot", "--window-size=1280,2400",
                               f"--screenshot={screenshot}", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=180)
        assert shot.returncode == 0, shot.stderr[-2000:]
    return res.stdout, console


def _body_attrs(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


def _check_page(dom: str, console: list[str], sections: list[str], plots: list[str], min_plots: int) -> None:
    assert console == [], console  # no console output at all: no errors, no warnings
    attrs = _body_attrs(dom)
    assert attrs.get("data-ready") == "1", attrs  # the page's script ran after load
    total, ok = int(attrs["data-plots-total"]), int(attrs["data-plots-ok"])
    assert total >= min_plots and ok == total, attrs  # every plot decoded as an image
    for s in sections:
        assert re.search(rf"<section id=\"{s}\">\s*<h2>", dom), f"section {s} missing"
    names = set(re.findall(r'data-plot="([^"]+)"', dom))
    for p in plots:
        assert any(p in n for n in names), (p, sorted(names))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, link_slice):
    """A small real run with the diversity stage and the diversity-aware mixtures of this issue."""
    root = tmp_path_factory.mktemp("browser-run")
    m = link_slice(root / "mirror", SLICE)
    recipe = yaml.safe_load(DEFAULT_RECIPE.read_text(encoding="utf-8"))
    recipe["diversity"] = [{"task_type_tagger": {}}, {"cluster_tagger": {"n_clusters": 12, "seed": 0}},
                           {"novelty_tagger": {"k": 10}}]
    recipe["mixtures"] = ["random-400", "kcenter-400", "deita-400", "diverse-400"]
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    from flows.curate_flow import curate_flow

    return Path(curate_flow(recipe_path=str(root / "recipe.yaml"), mirror=str(m), data_dir=str(root / "data")))


def test_run_report_in_chromium(chromium, run_dir, tmp_path):
    page = run_dir / "report" / "report.html"
    assert page.exists()
    dom, console = render(page, tmp_path, screenshot=tmp_path / "run.png")
    _check_page(dom, console, SECTIONS,
                ["ledger", "Task types per source", "cluster_sizes", "Diversity figures per source",
                 "Root verbs and their objects: all", "Novelty per source", "mixture_comparison",
                 "Task types per mixture", "Sources per mixture"], min_plots=9)
    # the figures the issue asks for are in the page: Vendi per source, the novelty column, kcenter
    # and deita next to random at the same size
    assert "vendi" in dom and "the <code>novelty</code> column of the records" in dom
    assert "Each strategy next to random at the same size" in dom
    for name in ("kcenter-400", "deita-400", "random-400"):
        assert name in dom
    w, h = _png_size(tmp_path / "run.png")
    assert (w, h) == (1280, 2400) and (tmp_path / "run.png").stat().st_size > 50_000  # something was drawn


def test_diversity_report_in_chromium(chromium, mirror, tmp_path):
    from flows.cli import main

    main(["diversity", str(mirror / "belle/dev1K.json"), str(mirror / "trans_chinese_alpaca/alpaca_chinese_part_4.json"),
          str(mirror / "traditional/chinese_vicuna_chat_sample.jsonl"), "--out", str(tmp_path / "div")])
    page = tmp_path / "div" / "diversity.html"
    dom, console = render(page, tmp_path, screenshot=tmp_path / "div.png")
    _check_page(dom, console, DIVERSITY_SECTIONS,
                ["Diversity figures per file", "Task types per file", "Share of each file per cluster",
                 "Root verbs and their objects: dev1K", "Root verbs and their objects: alpaca_chinese_part_4",
                 "Novelty per file"], min_plots=7)
    assert _png_size(tmp_path / "div.png") == (1280, 2400)


def test_the_browser_check_catches_a_broken_page(chromium, tmp_path):
    """The checks above can fail: a script error, a console error and an undecodable plot are all seen."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'></head><body>"
                    "<section id=\"summary\"><h2>x</h2><img class=\"plot\" data-plot=\"p\" src=\"data:image/png;base64,AAAA\"></section>"
                    "<script>console.error('boom'); notDefined();</script>"
                    "<script>window.addEventListener('load', function () { var i = document.querySelectorAll('img.plot'), ok = 0;"
                    "i.forEach(function (m) { if (m.complete && m.naturalWidth > 0) ok++; });"
                    "document.body.setAttribute('data-plots-total', String(i.length));"
                    "document.body.setAttribute('data-plots-ok', String(ok)); document.body.setAttribute('data-ready', '1'); });"
                    "</script></body></html>", encoding="utf-8")
    dom, console = render(page, tmp_path)
    assert any("boom" in c for c in console) and any("notDefined" in c for c in console)
    attrs = _body_attrs(dom)
    assert attrs["data-plots-total"] == "1" and attrs["data-plots-ok"] == "0"
    with pytest.raises(AssertionError):
        _check_page(dom, console, ["summary"], ["p"], min_plots=1)
