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


def _offline_without_mirror(a: argparse.Namespace, mirror: str | None) -> None:
    """No mirror and the sources' hosts cannot even be resolved: stop now with the fix, instead of
    minutes of download retries. A raw-data cache holding every file is enough to go on."""
    import socket
    from urllib.parse import urlsplit

    from curate.download import load_registry, safe_dest
    from curate.recipe import load_recipe

    if mirror:
        return
    recipe = load_recipe(a.recipe)
    sources = [s for s in load_registry() if s.name in recipe.sources]
    raw = Path(a.data_dir or settings.PROJECT_ROOT / "data") / "raw"
    needed = [f for s in sources for f in s.files if not f.optional and not safe_dest(raw, s.name, f.path).is_file()]
    hosts = sorted({urlsplit(f.url).hostname for f in needed if f.url})
    unreachable = []
    for h in hosts:
        try:
            socket.getaddrinfo(h, 443)
        except OSError:
            unreachable.append(h)
    if unreachable:
        default = settings.PROJECT_ROOT.parent / "shared" / "corpora"
        hint = f" (one is at {default})" if default.is_dir() else ""
        sys.exit(f"tiger run: offline: cannot resolve {', '.join(unreachable)} and {len(needed)} source file(s) "
                 f"are not in {raw}; pass --mirror DIR or set TIGER_MIRROR to an offline mirror{hint}")


def _run_folder(path: str) -> Path:
    """A curated run's folder, or a one-line error saying what is missing."""
    p = Path(path)
    if not (p / "manifest.json").is_file():
        what = "does not exist" if not p.exists() else "has no manifest.json (not a finished run; `tiger run` makes one)"
        raise FileNotFoundError(f"run folder {p} {what}")
    return p


def _input_recipe(inputs: list[str], recipe: str | None, data_dir: Path) -> str:
    """``tiger run --input FILE…``: the recipe (default: configs/default.yaml) with one source, ``input``,
    holding the given files, folders or globs; written under ``<data-dir>/recipes/`` and returned."""
    import hashlib

    import yaml

    from curate.recipe import DEFAULT_RECIPE

    base = Path(recipe or DEFAULT_RECIPE)
    doc = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
    doc["sources"] = [{"name": "input", "path": [str(Path(p).expanduser().resolve()) if not any(c in p for c in "*?[")
                                                 else str(Path.cwd() / p) for p in inputs]}]
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    out = data_dir / "recipes" / f"input-{hashlib.sha256(text.encode()).hexdigest()[:10]}.yaml"
    from curate.io import write_text

    write_text(out, text)
    return str(out)


def cmd_run(a: argparse.Namespace) -> None:
    from .runners import launch_local_api, make_task_runner

    api = launch_local_api(a.runner)  # the run's API server boots while the flow's modules import

    from curate.paths import check_run_id
    from curate.recipe import load_recipe

    from .curate_flow import curate_flow

    if a.run_id:
        check_run_id(a.run_id)  # before any work: a run id is a folder name, never a path
    if a.input:
        a.recipe = _input_recipe(a.input, a.recipe, Path(a.data_dir or settings.PROJECT_ROOT / "data"))
    load_recipe(a.recipe)  # a bad recipe fails here, naming its line, before Prefect starts
    mirror = _mirror(a.mirror)
    _offline_without_mirror(a, mirror)

    if a.runner.startswith("dask://"):  # say where to watch it
        from distributed import Client

        with Client(f"tcp://{a.runner[len('dask://'):]}", timeout=30) as client:
            print(f"dask: {len(client.scheduler_info()['workers'])} workers at {a.runner}; dashboard "
                  f"{client.dashboard_link}", flush=True)
    if a.runner.strip() == "process":  # the report is built in this process: its imports while it waits
        from .runners import preload_report

        preload_report()
    if api is not None:
        api.wait()
    flow = curate_flow.with_options(task_runner=make_task_runner(a.runner, a.workers))
    run_dir = flow(recipe_path=a.recipe, mirror=mirror, data_dir=a.data_dir, run_id=a.run_id,
                   shard_rows=a.shard_rows)
    print(f"done: {run_dir}")  # the flow ended with the per-stage summary and the report's path


def cmd_report(a: argparse.Namespace) -> None:
    from curate.report import build_report

    html, _ = build_report(_run_folder(a.run_dir), tokenizer=a.tokenizer)
    print(html)


def cmd_ledger(a: argparse.Namespace) -> None:
    from curate.io import read_json

    m = read_json(_run_folder(a.run_dir) / "manifest.json")
    print(f"{'stage':<14}{'in':>9}{'kept':>9}{'dropped':>9}  reasons")
    for row in m["ledger"]:
        reasons = ", ".join(f"{k}={v}" for k, v in row["reasons"].items())
        print(f"{row['stage']:<14}{row['in']:>9}{row['kept']:>9}{row['dropped']:>9}  {reasons}")
        f = row.get("files")
        if f:  # the parse stage: files read, empty, lost whole (their rows are in `dropped`), skipped
            lost = ", ".join(f"{k} ({v['rows']:,} rows{' est.' if v['estimated'] else ''})" for k, v in f["lost_whole"].items())
            print(f"{'':<14}files: {f['read']} read, {len(f['empty'])} empty{': ' + ', '.join(f['empty']) if f['empty'] else ''}; "
                  f"{len(f['lost_whole'])} lost whole{': ' + lost if lost else ''}; {len(f['skipped'])} not read"
                  f"{': ' + ', '.join(f['skipped']) if f['skipped'] else ''}")


def cmd_dropped(a: argparse.Namespace) -> None:
    """Show dropped / quarantined rows of a run, optionally for one stage and reason."""
    import pandas as pd

    from curate.recipe import STAGES

    run = _run_folder(a.run_dir)
    if a.stage and a.stage not in STAGES:
        raise ValueError(f"no stage {a.stage!r}; the stages are {', '.join(STAGES)}")
    stages = [a.stage] if a.stage else STAGES
    frames = [pd.read_parquet(run / s / "dropped.parquet") for s in stages if (run / s / "dropped.parquet").exists()]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if a.reason:
        reasons = sorted(set(df["reason"])) if len(df) else []
        if a.reason not in reasons:
            where = f"stage {a.stage}" if a.stage else "this run"
            raise ValueError(f"no reason {a.reason!r} in {where}; its reasons are {', '.join(reasons) or 'none'}")
        df = df[df["reason"] == a.reason]
    if not len(df):
        print("no dropped rows match")
        return
    print(df.groupby(["stage", "reason"]).size().to_string())
    if getattr(a, "show_survivor", False):
        _print_with_survivors(run, df.head(a.n))
        return
    for rec in df.head(a.n).to_dict("records"):
        print(json.dumps({k: rec[k] for k in ("stage", "reason", "detail", "source", "file", "row", "instruction")},
                         ensure_ascii=False)[:400])


def _print_with_survivors(run: Path, df) -> None:
    """Each dedupe-dropped row under the row that was kept in its place, differing characters marked."""
    from curate.report.html import char_diff
    from curate.report.samples import row_text, survivors_of

    dup = df[df["stage"].astype(str).str.startswith("04_dedupe")]
    if len(dup) < len(df):
        print(f"({len(df) - len(dup)} shown row(s) are not from 04_dedupe: they have no survivor)")
    if not len(dup):
        return
    surv = survivors_of(run, dup)
    for (i, rec), (_, s) in zip(dup.iterrows(), surv.iterrows()):
        jac = "" if s["jaccard"] != s["jaccard"] else f", Jaccard {s['jaccard']:.3f}"
        print(f"\n{rec['reason']}{jac}: dropped {rec['id']} ({rec['source']} {rec['file']} row {rec['row']}), "
              f"kept {s['survivor']} ({s['s_source']} {s['s_file']} row {s['s_row']})")
        if s["s_instruction"] is None:
            print("  kept row not found in 04_dedupe")
            continue
        kept, dropped = char_diff(row_text({k[2:]: s[k] for k in s.index if k.startswith("s_")})[:600], row_text(rec)[:600])
        print("  kept:    " + kept.replace("\n", "\n           "))
        print("  dropped: " + dropped.replace("\n", "\n           "))


def cmd_label(a: argparse.Namespace) -> None:
    """Label the task type of every row of an alpaca-format JSON/JSONL file."""
    from curate.paths import check_output_path
    from curate.userfiles import InputError, default_label_path, label_file

    # default: the current folder, never beside the input (in a mirror the next run would read it as data)
    target = check_output_path(a.out or Path.cwd() / default_label_path(a.file).name, [a.file], chosen=bool(a.out))
    try:
        out, counts = label_file(a.file, target)
    except InputError as e:
        sys.exit(f"tiger label: {e}")
    total = sum(counts.values())
    for t, n in counts.items():
        print(f"{t:<15}{n:>8}  {n / total:6.1%}" if total else f"{t:<15}{n:>8}")
    print(f"{total:,} rows labelled → {out}")


def cmd_diversity(a: argparse.Namespace) -> None:
    """Write the diversity report of one or more alpaca-format files, side by side."""
    from curate.paths import check_output_path
    from curate.report import build_diversity_report
    from curate.userfiles import InputError

    out = check_output_path(a.out or "diversity-report", a.files, chosen=bool(a.out))
    try:
        html, figures = build_diversity_report(a.files, out, names=a.names, seed=a.seed)
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


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tiger")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="tiger", description="Chinese instruction-data curation pipeline with a LoRA training stage.")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error (default: one line)")
    p.add_argument("--version", action="version", version=f"tiger {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="run the whole curation flow (download → … → mixtures → report)")
    r.add_argument("--mirror", help="offline mirror folder (one subfolder per source); default $TIGER_MIRROR, else download")
    r.add_argument("--recipe", help="recipe YAML (default configs/default.yaml)")
    r.add_argument("--input", nargs="+", metavar="FILE",
                   help="curate these files, folders or globs (JSON, JSON lines, CSV/TSV, Parquet; alpaca, sharegpt "
                        "or OpenAI messages rows) as one source 'input', with the recipe's stages and mixtures")
    r.add_argument("--data-dir", help=f"where raw/ and processed/ live (default {settings.PROJECT_ROOT / 'data'}, "
                                      f"the same for every command)")
    r.add_argument("--run-id", help="name of the run folder (default: a hash of recipe and inputs, so a rerun resumes)")
    r.add_argument("--runner", default=os.environ.get("TIGER_RUNNER", "thread"),
                   help="task runner: thread (default), process, dask (local cluster) or dask://HOST:PORT")
    r.add_argument("--workers", type=int, help="workers of the thread/process pool or local Dask cluster (default: cores)")
    r.add_argument("--shard-rows", type=int, default=250_000,
                   help="rows per shard of the stages that run sharded (normalize, filter, task types)")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser("report", help="rebuild the HTML/Markdown report of a run folder")
    rp.add_argument("run_dir")
    rp.add_argument("--tokenizer", help="a local tokenizer.json (or its folder) for the token-length figures; "
                                        "default: the run's tiny base when one was built")
    rp.set_defaults(func=cmd_report)

    lg = sub.add_parser("ledger", help="print a run's ledger: in / kept / dropped per stage")
    lg.add_argument("run_dir")
    lg.set_defaults(func=cmd_ledger)

    dr = sub.add_parser("dropped", help="inspect dropped and quarantined rows of a run")
    dr.add_argument("run_dir")
    dr.add_argument("--stage", help="e.g. 01_parse (the quarantine), 03_filter, 04_dedupe")
    dr.add_argument("--reason", help="e.g. invalid_json, not_chinese, near_duplicate")
    dr.add_argument("-n", type=int, default=10, help="rows to show")
    dr.add_argument("--show-survivor", action="store_true",
                    help="with --stage 04_dedupe: each dropped row under the row kept in its place, "
                         "differing characters marked [-kept only-] {+dropped only+}, with the Jaccard")
    dr.set_defaults(func=cmd_dropped)

    la = sub.add_parser("label", help="label the task type of every row of an alpaca-format JSON/JSONL file")
    la.add_argument("file")
    la.add_argument("--out", help="output file (.jsonl → JSON lines, else a JSON array); default "
                                  "./<name>.labelled.json[l] in the current folder (never beside the input)")
    la.set_defaults(func=cmd_label)

    dv = sub.add_parser("diversity", help="diversity report (HTML) of alpaca-format JSON/JSONL files, side by side")
    dv.add_argument("files", nargs="+")
    dv.add_argument("--out", help="output folder (default ./diversity-report; never inside a mirror)")
    dv.add_argument("--names", nargs="+", help="a short name per file (default: file names)")
    dv.add_argument("--seed", type=int, default=0, help="seed of every sample and fit (default 0)")
    dv.set_defaults(func=cmd_diversity)

    so = sub.add_parser("sources", help="list the source registry")
    so.set_defaults(func=cmd_sources)

    # The training commands' options are read off their configs, whose modules import torch (about
    # 2 s): only built when the command is not one of the above, so `tiger run` launches its API
    # server and `tiger ledger` answers without waiting on them (`tiger --help` still lists all).
    command = next((t for t in (sys.argv[1:] if argv is None else argv) if not t.startswith("-")), None)
    if command not in sub.choices:
        from .probe_cli import register as register_probe
        from .train_cli import register

        register(sub)
        register_probe(sub)

    for sp in sub.choices.values():  # `tiger CMD ... --debug` as well as `tiger --debug CMD ...`
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error (default: one line)")
    a = p.parse_args(argv)
    try:
        a.func(a)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001  (one line naming the problem; the traceback with --debug)
        if a.debug:
            raise
        sys.exit(f"tiger {a.cmd}: {one_line(e)} (rerun with --debug for the traceback)")


def one_line(e: BaseException) -> str:
    """An error as one line: its message (the type too when it is not one of ours, which say the fix)."""
    msg = " ".join(str(e).split()) or type(e).__name__
    ours = type(e).__module__.split(".")[0] in ("curate", "train", "flows")
    return msg if ours or isinstance(e, (ValueError, FileNotFoundError)) else f"{type(e).__name__}: {msg}"


if __name__ == "__main__":
    main()
