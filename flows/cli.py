"""`tiger` command line: each subcommand starts a Prefect flow or reads a run's outputs."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import settings


def _mirror(arg: str | None) -> str | None:
    m = arg or os.environ.get("TIGER_MIRROR")
    if m and not Path(m).is_dir():
        sys.exit(f"tiger: mirror folder not found: {m}")
    return str(Path(m).resolve()) if m else None


def cmd_run(a: argparse.Namespace) -> None:
    from .curate_flow import curate_flow

    from .runners import make_task_runner

    flow = curate_flow.with_options(task_runner=make_task_runner(a.runner, a.workers))
    run_dir = flow(recipe_path=a.recipe, mirror=_mirror(a.mirror), data_dir=a.data_dir, run_id=a.run_id,
                   shard_rows=a.shard_rows)
    print(f"done: {run_dir}\nreport: {Path(run_dir) / 'report' / 'report.html'}")


def cmd_report(a: argparse.Namespace) -> None:
    from curate.report import build_report

    html, _ = build_report(Path(a.run_dir))
    print(html)


def cmd_ledger(a: argparse.Namespace) -> None:
    from curate.io import read_json

    m = read_json(Path(a.run_dir) / "manifest.json")
    print(f"{'stage':<14}{'in':>9}{'kept':>9}{'dropped':>9}  reasons")
    for row in m["ledger"]:
        reasons = ", ".join(f"{k}={v}" for k, v in row["reasons"].items())
        print(f"{row['stage']:<14}{row['in']:>9}{row['kept']:>9}{row['dropped']:>9}  {reasons}")


def cmd_dropped(a: argparse.Namespace) -> None:
    """Show dropped / quarantined rows of a run, optionally for one stage and reason."""
    import pandas as pd

    from curate.pipeline import STAGES

    stages = [a.stage] if a.stage else STAGES
    frames = [pd.read_parquet(Path(a.run_dir) / s / "dropped.parquet") for s in stages
              if (Path(a.run_dir) / s / "dropped.parquet").exists()]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if a.reason and len(df):
        df = df[df["reason"] == a.reason]
    if not len(df):
        print("no dropped rows match")
        return
    print(df.groupby(["stage", "reason"]).size().to_string())
    for rec in df.head(a.n).to_dict("records"):
        print(json.dumps({k: rec[k] for k in ("stage", "reason", "detail", "source", "file", "row", "instruction")},
                         ensure_ascii=False)[:400])


def cmd_label(a: argparse.Namespace) -> None:
    """Label the task type of every row of an alpaca-format JSON/JSONL file."""
    from curate.userfiles import InputError, label_file

    try:
        out, counts = label_file(a.file, a.out)
    except InputError as e:
        sys.exit(f"tiger label: {e}")
    total = sum(counts.values())
    for t, n in counts.items():
        print(f"{t:<15}{n:>8}  {n / total:6.1%}" if total else f"{t:<15}{n:>8}")
    print(f"{total:,} rows labelled → {out}")


def cmd_diversity(a: argparse.Namespace) -> None:
    """Write the diversity report of one or more alpaca-format files, side by side."""
    from curate.report import build_diversity_report
    from curate.userfiles import InputError

    try:
        html, figures = build_diversity_report(a.files, a.out, names=a.names, seed=a.seed)
    except (InputError, ValueError) as e:
        sys.exit(f"tiger diversity: {e}")
    for name, m in figures["metrics"].items():
        print(f"{name}: {m['rows']:,} rows, task-type entropy {m['task_type_entropy']:.2f} bits, "
              f"Vendi {m.get('vendi', 0):.1f}, distinct-2 {m['distinct_2']:.3f}")
    print(html)


def cmd_sources(a: argparse.Namespace) -> None:
    from curate.download import load_registry

    for s in load_registry():
        print(f"{s.name}: {len(s.files)} files — {s.description} [{s.license}]")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="tiger", description="Chinese instruction-data curation pipeline with a LoRA training stage.")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the whole curation flow (download → … → mixtures → report)")
    r.add_argument("--mirror", help="offline mirror folder (one subfolder per source); default $TIGER_MIRROR, else download")
    r.add_argument("--recipe", help="recipe YAML (default configs/default.yaml)")
    r.add_argument("--data-dir", help="where data/raw and data/processed live (default ./data)")
    r.add_argument("--run-id", help="name of the run folder (default: a hash of recipe and inputs, so a rerun resumes)")
    r.add_argument("--runner", default=os.environ.get("TIGER_RUNNER", "thread"),
                   help="task runner: thread (default), process, dask (local cluster) or dask://HOST:PORT")
    r.add_argument("--workers", type=int, help="workers of the thread/process pool or local Dask cluster (default: cores)")
    r.add_argument("--shard-rows", type=int, default=250_000,
                   help="rows per shard of the stages that run sharded (normalize, filter, task types)")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("report", help="rebuild the HTML/Markdown report of a run folder")
    rp.add_argument("run_dir")
    rp.set_defaults(func=cmd_report)

    lg = sub.add_parser("ledger", help="print a run's ledger: in / kept / dropped per stage")
    lg.add_argument("run_dir")
    lg.set_defaults(func=cmd_ledger)

    dr = sub.add_parser("dropped", help="inspect dropped and quarantined rows of a run")
    dr.add_argument("run_dir")
    dr.add_argument("--stage", help="e.g. 01_parse (the quarantine), 03_filter, 04_dedupe")
    dr.add_argument("--reason", help="e.g. invalid_json, not_chinese, near_duplicate")
    dr.add_argument("-n", type=int, default=10, help="rows to show")
    dr.set_defaults(func=cmd_dropped)

    la = sub.add_parser("label", help="label the task type of every row of an alpaca-format JSON/JSONL file")
    la.add_argument("file")
    la.add_argument("--out", help="output file (.jsonl → JSON lines, else a JSON array); default FILE.labelled.json[l]")
    la.set_defaults(func=cmd_label)

    dv = sub.add_parser("diversity", help="diversity report (HTML) of alpaca-format JSON/JSONL files, side by side")
    dv.add_argument("files", nargs="+")
    dv.add_argument("--out", default="diversity-report", help="output folder (default ./diversity-report)")
    dv.add_argument("--names", nargs="+", help="a short name per file (default: file names)")
    dv.add_argument("--seed", type=int, default=0, help="seed of every sample and fit (default 0)")
    dv.set_defaults(func=cmd_diversity)

    so = sub.add_parser("sources", help="list the source registry")
    so.set_defaults(func=cmd_sources)

    try:
        from train import cli as train_cli
    except ImportError:
        train_cli = None
    if train_cli is not None and hasattr(train_cli, "register"):
        train_cli.register(sub)
        from train.probe import cli as probe_cli

        probe_cli.register(sub)

    a = p.parse_args(argv)
    a.func(a)


if __name__ == "__main__":
    main()
