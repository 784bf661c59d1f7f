"""``tiger probe``: the rule-probe grid (a Prefect flow) or, with ``--evaluate``, one model scored on the suite.

Flags are generated from ``ProbeConfig`` and ``CharBaseSpec`` (``--base-*``), so each default lives in
one place and ``--help`` shows it.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path


def _fields(cls) -> dict:
    return {f.name: (f.default if f.default is not dataclasses.MISSING else None) for f in dataclasses.fields(cls)}


def field_notes(cls) -> dict[str, str]:
    """Each dataclass field's comment (trailing, else the comment lines just above it): its ``--help``."""
    import inspect
    import re

    notes, pending = {}, []
    for line in inspect.getsource(cls).splitlines():
        text = line.strip()
        if text.startswith("#"):
            pending.append(text.lstrip("# "))
            continue
        m = re.match(r"(\w+): [^=]+=.*?(?:#\s*(.*))?$", text)
        if m:
            note = m.group(2) or " ".join(pending)  # a trailing comment wins over a section heading
            if note:
                notes[m.group(1)] = note
        pending = []
    return notes


def cmd_probe(a: argparse.Namespace) -> None:
    from train.probe.base import CharBaseSpec
    from train.probe.experiment import ProbeConfig

    from .train_cli import _pick

    cfg = ProbeConfig(base=CharBaseSpec(**_pick(a, _fields(CharBaseSpec), prefix="base_")),
                      **_pick(a, set(_fields(ProbeConfig)) - {"base"}))
    if a.evaluate:
        from train.probe.evaluate import dumps, score_model
        from train.probe.suite import write_suite

        suite_dir = a.suite_dir or str(Path(cfg.out_dir) / "suite")
        if not a.suite_dir:
            write_suite(suite_dir, cfg.suite_spec())
        out = a.eval_out or str(Path(cfg.out_dir) / "evaluate" / Path(a.evaluate.rstrip("/")).name)
        s = score_model(a.evaluate, suite_dir, out, cfg.template, cfg.device, cfg.eval_batch_size,
                        base_model=a.eval_base, threads=cfg.threads)
        print(dumps(s))
        print(f"predictions: {Path(out) / 'predictions.parquet'}")
        return
    if a.report_only:
        from train.probe.experiment import grid, report

        res = report(cfg, grid(cfg))
    elif a.no_prefect:
        from train.probe.experiment import run_probe

        res = run_probe(cfg)
    else:
        from .probe import probe_flow
        from .runners import make_task_runner

        flow = probe_flow.with_options(task_runner=make_task_runner(a.runner, a.workers))
        res = flow(cfg.to_dict())
    per = ", ".join(f"{k} rules {'passes' if ok else 'FAILS'}" for k, ok in res.get("control", {}).items())
    print(f"verdict: {res['verdict']}\nresults: {res['results']}\nplot: {res['plot']}\n"
          f"positive control: {'passed' if res['control_passed'] else 'FAILED'}" + (f" ({per})" if per else ""))


def register(sub) -> None:
    """Add ``probe`` to an argparse subparsers object."""
    from train.probe.base import CharBaseSpec
    from train.probe.experiment import ProbeConfig

    from .train_cli import _add_flags

    p = sub.add_parser(
        "probe", help="rule probe: does rule diversity teach a model to follow unseen instructions?",
        description="Generate the rule suite and mixtures of 2/8/all training rules (same number of examples), "
                    "LoRA-train each under each constraint arm and seed, score exact match per split and family, "
                    "and write results.csv/.parquet, plots/probe_accuracy_vs_rules.png and verdict.md under "
                    "--out-dir. Arms are none, gravity-W (loss (1-W)*CE + W*mean LoRA Frobenius norm) and "
                    "kl-C (CE + C*KL to the base). The defaults fit ~30 min of a quiet 2-core CPU; on a GPU "
                    "pass e.g. --device cuda --base-model bigscience/bloomz-560m --template alpaca_zh "
                    "--size 20000 --max-steps 2500 --seeds 0 1 2. With --evaluate MODEL only that model "
                    "(a LoRA adapter folder, a model folder or a hub name) is scored.")
    p.add_argument("--evaluate", metavar="ADAPTER_OR_MODEL", help="score this model on the suite and stop")
    p.add_argument("--eval-base", help="with --evaluate on an adapter: its base (default: the adapter's own record)")
    p.add_argument("--suite-dir", help="with --evaluate: a written suite (default: written from --suite-seed)")
    p.add_argument("--eval-out", help="with --evaluate: output folder (default <out-dir>/evaluate/<name>)")
    p.add_argument("--runner", default=os.environ.get("TIGER_RUNNER", "process"),
                   help="task runner for the runs: process (default), thread, dask or dask://HOST:PORT")
    p.add_argument("--workers", type=int, help="runs trained at once (default: cores)")
    p.add_argument("--no-prefect", action="store_true", help="run the same steps one by one without Prefect")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report from the runs of this grid that have finished")
    _add_flags(p, _fields(ProbeConfig), skip={"base"}, notes=field_notes(ProbeConfig))
    g = p.add_argument_group("character-level base (when --base-model char)")
    _add_flags(g, _fields(CharBaseSpec), prefix="base_", notes=field_notes(CharBaseSpec))
    p.set_defaults(func=cmd_probe)
