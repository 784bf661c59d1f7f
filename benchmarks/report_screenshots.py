"""Screenshots of a run report's sections for the README, with headless Chromium:
``python benchmarks/report_screenshots.py RUN_DIR OUT_DIR section[,section…]:name.png …``.
Each shot is the page with only the named sections shown (a copy of the page, one style added)."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def shot(page: Path, sections: list[str], out: Path, size: str = "1280,1500") -> None:
    keep = ",".join(f"section#{s}" for s in sections)
    style = f"<style>section{{display:none}}{keep}{{display:block}}nav,h1{{display:none}}</style></head>"
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(page.read_text(encoding="utf-8").replace("</head>", style, 1), encoding="utf-8")
        subprocess.run(["/usr/bin/chromium", *FLAGS, f"--user-data-dir={tmp}/profile", "--virtual-time-budget=15000",
                        f"--window-size={size}", f"--screenshot={out.resolve()}", copy.as_uri()],
                       check=True, capture_output=True, timeout=180)


if __name__ == "__main__":
    run, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    for arg in sys.argv[3:]:
        secs, name = arg.split(":")
        shot(run / "report" / "report.html", secs.split(","), outdir / name)
        print(outdir / name)
