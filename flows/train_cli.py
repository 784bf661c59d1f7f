"""``tiger train``, ``tiger build-tiny`` and ``tiger experiment``: registered on ``flows.cli``'s parser.

Hyper-parameter flags are generated from the signatures they feed (``finetune``'s arguments,
``TinySpec``'s fields, ``ExperimentConfig``'s fields), so a default lives in one place and
``--help`` shows it.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

POOL = Path("05_diversity") / "kept.parquet"
# the data folder `tiger run` writes to: the same default for every command, wherever it is run from
PROJECT_DATA = Path(__file__).resolve().parent.parent / "data"
MODELS_DIR = PROJECT_DATA / "processed" / "models"


# ---- locating a run, its pool and its mixtures ----------------------------------------------------


def find_run_dir(run_dir: str | None, run_id: str | None, data_dir: str) -> Path:
    """``--run-dir``, else ``<data-dir>/processed/<run-id>``, else the newest run with a curated pool."""
    if run_dir:
        p = Path(run_dir)
    elif run_id:
        from curate.paths import check_run_id

        p = Path(data_dir) / "processed" / check_run_id(run_id)
    else:
        runs = sorted((p.parent.parent for p in (Path(data_dir) / "processed").glob(f"*/{POOL}")),
                      key=lambda d: (d / POOL).stat().st_mtime)
        if not runs:
            sys.exit(f"tiger: no curated run under {Path(data_dir) / 'processed'} (run `tiger run` first, "
                     f"or pass --run-dir / --pool)")
        p = runs[-1]
    if not (p / POOL).is_file():
        sys.exit(f"tiger: {p} has no curated pool {POOL}")
    return p


def find_mixture(mixture: str, run_dir: Path | None) -> Path:
    """A path as given, else ``<run_dir>/mixtures/<name>.json``."""
    if Path(mixture).is_file():
        return Path(mixture)
    if run_dir is not None:
        for cand in [run_dir / "mixtures" / f"{mixture}.json", *sorted(run_dir.glob(f"**/{mixture}.json"))]:
            if cand.is_file():
                return cand
    sys.exit(f"tiger: mixture {mixture!r} is neither a file nor a mixture of run {run_dir}")


# ---- flags from signatures ------------------------------------------------------------------------


# What a default alone does not say.
FLAG_NOTES = {
    "max_steps": "0: train num_epochs passes over the mixture instead of a fixed number of steps",
    "save_total_limit": "keep only this many checkpoints (None: keep all)",
    "threads": "torch CPU threads (None: all cores)",
}


def _add_flags(parser, params: dict[str, Any], skip: set[str] = frozenset(), prefix: str = "",
               types: dict[str, type] | None = None, omit_unset: bool = False,
               notes: dict[str, str] | None = None) -> None:
    """One ``--flag`` per parameter: bools as --x/--no-x, tuples as several values. A flag's type is
    its default's; a parameter whose default is None takes its type from ``types`` (its annotation).
    ``omit_unset``: a flag not given is left out of the namespace (so a preset can fill it).
    ``notes``: help text per parameter (``FLAG_NOTES`` otherwise)."""
    notes = FLAG_NOTES if notes is None else {**FLAG_NOTES, **notes}
    for name, default in params.items():
        if name in skip:
            continue
        flag = "--" + (prefix + name).replace("_", "-")
        helptext = (f"default: {default}" + (f"; {notes[name]}" if name in notes else "")).replace("%", "%%")
        value = argparse.SUPPRESS if omit_unset else default
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value, help=helptext)
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else str
            parser.add_argument(flag, nargs="*" if omit_unset else "+", type=kind, default=value, help=helptext)
        elif default is None or isinstance(default, (int, float, str)):
            kind = type(default) if default is not None else (types or {}).get(name, str)
            parser.add_argument(flag, type=kind, default=value, help=helptext)


def finetune_params() -> dict[str, Any]:
    from train.finetune import finetune

    return {k: p.default for k, p in inspect.signature(finetune).parameters.items()
            if p.default is not inspect.Parameter.empty}


def finetune_types() -> dict[str, type]:
    """``finetune``'s parameters whose default is None, with the type their annotation names
    (``int | None`` → int); without this, argparse would hand them over as text."""
    import typing

    from train.finetune import finetune

    hints = typing.get_type_hints(finetune)
    out = {}
    for name, p in inspect.signature(finetune).parameters.items():
        if p.default is None and name in hints:
            args = [t for t in typing.get_args(hints[name]) if t is not type(None)]
            if len(args) == 1 and args[0] in (int, float, str):
                out[name] = args[0]
    return out


def tiny_params() -> dict[str, Any]:
    from train.tiny import TinySpec

    return {f.name: f.default for f in dataclasses.fields(TinySpec)}


def experiment_params() -> dict[str, Any]:
    from train.experiment import ExperimentConfig

    out = {}
    for f in dataclasses.fields(ExperimentConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
    return out


def _pick(ns: argparse.Namespace, names, prefix: str = "") -> dict[str, Any]:
    vals = vars(ns)
    return {k: (tuple(vals[prefix + k]) if isinstance(vals[prefix + k], list) else vals[prefix + k])
            for k in names if prefix + k in vals}


# ---- commands -------------------------------------------------------------------------------------


def cmd_train(a: argparse.Namespace) -> None:
    from curate.io import read_parquet

    from train.checks import check_base_model, check_rows, model_tag
    from train.evaluate import pretrain_exclusions, remove_eval_items, select_eval_set
    from train.experiment import eval_records
    from train.finetune import conflict_error, finetune, load_alpaca_json, settings_conflicts

    needs_run = a.base_model == "tiny" or a.eval_per_type > 0 or not Path(a.mixture).is_file()
    run_dir = find_run_dir(a.run_dir, a.run_id, a.data_dir) if needs_run else None
    mixture = find_mixture(a.mixture, run_dir)
    name = mixture.stem
    # the base model is in the name: a run on another base (or a corrected --base-model) is another folder
    out = Path(a.output_dir or (run_dir or Path(a.data_dir) / "processed") / "train"
               / f"{name}__{model_tag(a.base_model)}__{a.constraint}__s{a.seed}")
    params = _pick(a, finetune_params())
    params.pop("output_dir", None)
    # every input checked before a tiny base is built or a model loads
    check_base_model(a.base_model)
    check_rows(load_alpaca_json(mixture), f"mixture {mixture}")
    known = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()
             if not (k == "base_model" and v == "tiny")}  # the tiny base's path is known once built
    if "base_model" in known and Path(known["base_model"]).is_dir():  # as finetune records it
        known["base_model"] = str(Path(known["base_model"]).resolve())
    diff = settings_conflicts(out, known, partial=True)
    if diff:
        raise conflict_error(out, diff)
    eval_path = None
    exclude: list[str] = []
    train_path = mixture
    if run_dir is not None and a.eval_per_type > 0:
        # The eval set comes from the curated pool; its items and near-duplicates leave the mixture.
        import pandas as pd

        from curate.io import write_json

        pool = read_parquet(run_dir / POOL)
        eval_df = select_eval_set(pool, a.eval_per_type, a.eval_seed)
        exclude = pretrain_exclusions(pool, a.eval_per_type, a.eval_seed)
        recs = load_alpaca_json(mixture)
        mix_df = pd.DataFrame([{"id": f"mix-{i}", "instruction": r["instruction"], "input": r.get("input", ""),
                                "output": r["output"], "_i": i} for i, r in enumerate(recs)])
        kept, removed = remove_eval_items(mix_df, eval_df)
        check_rows(list(kept["_i"]), f"mixture {mixture} without the eval items")
        train_path = out / "train.json"
        eval_path = out / "eval.json"
        write_json(train_path, [recs[i] for i in kept["_i"]])
        write_json(eval_path, eval_records(eval_df))
        print(f"train: eval set {len(eval_df)} records; {len(removed)} eval items / near-duplicates taken out of {name}")
    if a.base_model == "tiny":
        from train.tiny import build_tiny

        params["base_model"] = str(build_tiny(run_dir / POOL, a.models_dir, exclude_ids=exclude))
    summary = finetune(train_path, out, eval_path=eval_path, **params)
    final = summary["final"]
    print(json.dumps({"output_dir": str(out), "steps": summary["steps"], "eval_loss": final.get("eval_loss"),
                      "rep_rate": final.get("rep_rate"), "distinct_2": final.get("distinct_2"),
                      "tokens_per_second": summary["tokens_per_second"]}, ensure_ascii=False, indent=2))


def cmd_build_tiny(a: argparse.Namespace) -> None:
    from curate.io import read_parquet

    from train.evaluate import pretrain_exclusions
    from train.tiny import TinySpec, build_tiny

    pool = Path(a.pool) if a.pool else find_run_dir(a.run_dir, a.run_id, a.data_dir) / POOL
    exclude: list[str] = []
    if a.eval_per_type > 0:  # leave out the eval set the experiment will use (same defaults: same model)
        exclude = pretrain_exclusions(read_parquet(pool), a.eval_per_type, a.eval_seed)
    spec = TinySpec(**_pick(a, tiny_params()))
    print(build_tiny(pool, a.models_dir, spec, exclude_ids=exclude))


def cmd_experiment(a: argparse.Namespace) -> None:
    from train.experiment import ExperimentConfig
    from train.tiny import TinySpec

    pool = Path(a.pool) if a.pool else None
    run_dir = None if pool else find_run_dir(a.run_dir, a.run_id, a.data_dir)
    pool = pool or run_dir / POOL
    out = a.out_dir or str((run_dir or pool.parent) / "experiment")
    from train.experiment import preset_values

    # the preset first, then every flag the user gave (flags not given are absent from the namespace)
    settings = {**preset_values(a.preset), **_pick(a, set(experiment_params()) - {"tiny"})}
    cfg = ExperimentConfig(pool_path=str(pool), out_dir=out, tiny=TinySpec(**_pick(a, tiny_params(), prefix="tiny_")),
                           **settings)
    from .experiment import experiment_flow
    from .runners import make_task_runner

    res = experiment_flow.with_options(task_runner=make_task_runner(a.runner, a.workers))(cfg.to_dict())
    print(f"verdict: {res['verdict']}\nresults: {res['results']}\nplots: {', '.join(res['plots'])}")


def _run_flags(p: argparse.ArgumentParser, pool: bool = False) -> None:
    g = p.add_argument_group("where the curated run is")
    g.add_argument("--run-dir", help="a run folder (holds 05_diversity/kept.parquet and mixtures/)")
    g.add_argument("--run-id", help="run folder name under <data-dir>/processed")
    g.add_argument("--data-dir", default=str(PROJECT_DATA),
                   help=f"default: {PROJECT_DATA}, where `tiger run` writes (the newest curated run is used)")
    if pool:
        g.add_argument("--pool", help="a curated pool parquet instead of a run folder")


def register(sub) -> None:
    """Add ``train``, ``build-tiny`` and ``experiment`` to an argparse subparsers object."""
    t = sub.add_parser("train", help="LoRA fine-tune of a Bloom-architecture model on one mixture",
                       description="LoRA fine-tune on a mixture (alpaca JSON). Every hyper-parameter below "
                                   "is an argument of train.finetune.finetune with the same default.")
    t.add_argument("--mixture", required=True, help="mixture name in the run (e.g. diverse-5000) or an alpaca JSON path")
    _run_flags(t)
    t.add_argument("--output-dir", help="default: <run>/train/<mixture>__<base model>__<constraint>__s<seed>")
    t.add_argument("--models-dir", default=str(MODELS_DIR), help="where the tiny base is built")
    t.add_argument("--eval-per-type", type=int, default=20,
                   help="held-out records per task type drawn from the pool (and removed from the mixture); 0: none")
    t.add_argument("--eval-seed", type=int, default=0)
    _add_flags(t, finetune_params(), skip={"eval_path", "callbacks"}, types=finetune_types())
    t.set_defaults(func=cmd_train)

    b = sub.add_parser("build-tiny", help="build (or find) the offline tiny Bloom base from a curated pool",
                       description="Train a byte-level BPE tokenizer and pretrain a small BloomConfig model on "
                                   "the pool's text; cached under <models-dir>/tiny-<hash of inputs>/.")
    _run_flags(b, pool=True)
    b.add_argument("--models-dir", default=str(MODELS_DIR))
    b.add_argument("--eval-per-type", type=int, default=20, help="leave out this eval set and its twins (as the experiment does); 0: none")
    b.add_argument("--eval-seed", type=int, default=0)
    _add_flags(b, tiny_params())
    b.set_defaults(func=cmd_build_tiny)

    from train.experiment import PRESETS

    e = sub.add_parser("experiment", help="mixtures × constraints × seeds → results table, plots, verdict",
                       description="The diverse-data-vs-constraints experiment as a Prefect flow: a positive "
                                   "control, matched token budgets, a constraint sweep and longer runs for "
                                   "degeneration. The defaults (preset cpu) fit a 2-core CPU with the tiny base; "
                                   "--preset gpu runs bloomz-560m on one GPU; --preset original uses "
                                   "Chinese-Tiger-LoRA's training settings. Flags override the preset.")
    _run_flags(e, pool=True)
    e.add_argument("--out-dir", help="default: <run>/experiment")
    e.add_argument("--preset", choices=sorted(PRESETS), default="cpu",
                   help="; ".join(f"{k}: {', '.join(f'{n}={v}' for n, v in PRESETS[k].items()) or 'the defaults below'}"
                                  for k in PRESETS))
    e.add_argument("--runner", default=os.environ.get("TIGER_RUNNER", "process"),
                   help="task runner for the fine-tunes: process (default), thread, dask or dask://HOST:PORT")
    e.add_argument("--workers", type=int, help="fine-tunes trained at once (default: cores; one torch thread each)")
    _add_flags(e, experiment_params(), skip={"pool_path", "out_dir", "tiny"}, omit_unset=True)
    e.set_defaults(models_dir=str(MODELS_DIR))
    tg = e.add_argument_group("tiny base (when --base-model tiny)")
    _add_flags(tg, tiny_params(), prefix="tiny_")
    e.set_defaults(func=cmd_experiment)
