"""One large JSON-lines file through the parse stage: read whole, and a window at a time.

    .venv/bin/python benchmarks/bench_parse_big.py 1000000 [--scale /tmp/tiger-scale/2500000] [--encoding gb18030]

Makes ``/tmp/tiger-parse-big/<N>.jsonl`` (N rows of ``scale_gen.py``'s mirror, one JSON object a
line, like BELLE's released sets; ``--encoding``: written in another encoding, e.g. GB18030, which
is found not UTF-8 on the way and read again in its encoding), then runs the parse stage on it in a fresh process two ways: one
group as large as the file (``parse_files`` reads it whole), and the default group size (the file is
read a window of ``PARSE_GROUP_BYTES`` at a time, its rows saved a piece at a time). Prints seconds,
the process's peak RSS (VmHWM) and whether both wrote the same bytes.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from procmem import proc_mib  # noqa: E402

OUT = Path("/tmp/tiger-parse-big")


def make(n: int, scale: Path, encoding: str = "utf-8") -> Path:
    path = OUT / (f"{n}.jsonl" if encoding == "utf-8" else f"{n}-{encoding}.jsonl")
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp, left = path.with_suffix(".tmp"), n
    with open(tmp, "w", encoding=encoding, errors="replace") as fh:
        for f in sorted((scale / "mirror").rglob("*.json")):
            for row in json.loads(f.read_text(encoding="utf-8"))[:left]:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                left -= 1
            if not left:
                break
    if left:
        raise SystemExit(f"{scale} holds {n - left:,} rows, fewer than {n:,}")
    tmp.rename(path)
    return path


def _child(path: str, out: str, group_bytes: int | None, q) -> None:
    from curate import pipeline

    t = time.perf_counter()
    files = [{"source": "belle", "file": Path(path).name, "path": path}]
    plan = pipeline.plan_parse(files, out, group_bytes=group_bytes)
    for a, b in plan.groups:
        pipeline.run_parse_group(plan, a, b)
    ledger = pipeline.finish_parse(plan)
    q.put({"seconds": time.perf_counter() - t, "peak_mib": proc_mib("VmHWM"), "rows": ledger["in"]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("--scale", default="/tmp/tiger-scale/2500000", help="a scale_gen.py output to take rows from")
    ap.add_argument("--encoding", default="utf-8", help="write the file in this encoding (e.g. gb18030)")
    a = ap.parse_args()
    path = make(a.n, Path(a.scale), a.encoding)
    print(f"{path}: {path.stat().st_size / 2**20:,.0f} MiB")
    ctx = mp.get_context("spawn")
    got = {}
    for name, group_bytes in (("whole", 1 << 50), ("windows", None)):
        out = OUT / f"out-{name}"
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(str(path), str(out), group_bytes, q))
        p.start()
        r = q.get()
        p.join()
        got[name] = (out / "kept.parquet").read_bytes()
        print(f"  {name:<8} {r['rows']:>10,} rows  {r['seconds']:>7.1f} s  peak {r['peak_mib']:>8,.0f} MiB", flush=True)
    print(f"  same kept.parquet bytes: {got['whole'] == got['windows']}")


if __name__ == "__main__":
    main()
