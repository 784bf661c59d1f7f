"""The experiment as Prefect flows: thin tasks over train/ (they pass paths and small values).

``build_tiny_task`` is cached by its inputs: its cache key is the tiny model's own content key
(pool bytes, excluded ids, spec, code version) and the folder it lives in; the flow refreshes the
record when that folder is gone, so a deleted model is rebuilt rather than served from the cache. Every other task is skipped by
the files it leaves (a finished fine-tune has summary.json), so Prefect's result cache is off there.
Runs are independent and are submitted to the task runner together (``--runner process --workers 2``
trains two at once, one torch thread each).
"""
from __future__ import annotations

from pathlib import Path

from . import settings  # noqa: F401  (Prefect env defaults before prefect is imported)
from prefect import flow, task

from .progress import TASK_OPTS
from .progress import progress as _log


def _tiny_dir(pool_path: str, models_dir: str, spec: dict, exclude_ids: list[str]) -> Path:
    from train.tiny import TinySpec, tiny_key

    return Path(models_dir).resolve() / f"tiny-{tiny_key(pool_path, TinySpec(**spec), exclude_ids)}"


def _tiny_cache_key(context, parameters: dict) -> str:
    import hashlib

    d = _tiny_dir(parameters["pool_path"], parameters["models_dir"], parameters["spec"], parameters["exclude_ids"])
    return f"{d.name}-{hashlib.sha256(str(d).encode()).hexdigest()[:12]}"


@task(name="build-tiny", cache_key_fn=_tiny_cache_key, persist_result=True)
def build_tiny_task(pool_path: str, models_dir: str, spec: dict, exclude_ids: list[str]) -> str:
    from train.tiny import TinySpec, build_tiny

    return str(build_tiny(pool_path, models_dir, TinySpec(**spec), exclude_ids, log=_log))


@task(name="prepare-experiment", **TASK_OPTS)
def prepare_task(cfg: dict) -> dict:
    from train.experiment import prepare

    return prepare(_config(cfg), log=_log)


@task(name="base-eval", **TASK_OPTS)
def base_eval_task(base: str, eval_path: str, out_path: str, template: str, cutoff_len: int, device: str,
                   gen_max_new_tokens: int = 48) -> dict:
    from train.experiment import evaluate_base

    row = evaluate_base(base, eval_path, out_path, template, cutoff_len, gen_max_new_tokens, device=device)
    return {k: v for k, v in row.items() if k != "generations"}


@task(name="train", **TASK_OPTS)
def train_task(mixture_path: str, output_dir: str, params: dict) -> str:
    """One LoRA fine-tune (``train.finetune.finetune``); returns its output folder."""
    from train.finetune import finetune

    s = finetune(mixture_path, output_dir, **params)
    _log(f"train: {Path(output_dir).name}: {s['steps']} steps, eval loss {s['final'].get('eval_loss', float('nan')):.4f}, "
         f"{s.get('response_tokens_seen')} trained-on tokens, {s['tokens_per_second']} tokens/s")
    return output_dir


@task(name="experiment-report", **TASK_OPTS)
def report_task(cfg: dict, runs: list[dict], prepared: dict, base_row: dict | None, seconds: float) -> dict:
    from train.experiment import report

    return report(_config(cfg), runs, prepared, base_row, seconds)


def _config(cfg: dict):
    from train.experiment import ExperimentConfig
    from train.tiny import TinySpec

    d = dict(cfg)
    d["tiny"] = TinySpec(**d.get("tiny", {}))
    return ExperimentConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def _one_at_a_time():
    from .runners import make_task_runner

    return make_task_runner("thread", 1)


# One run at a time unless the caller passes a runner (the CLI: processes, one per core): runs in
# threads of one process would share torch's global seed and thread settings.
@flow(name="tiger-experiment", task_runner=_one_at_a_time())
def experiment_flow(cfg: dict) -> dict:
    """mixtures × constraints × seeds → results table, plots and verdict (see train/experiment/)."""
    import time

    from prefect.artifacts import create_markdown_artifact

    from train.experiment import base_eval_path, grid

    t0 = time.time()
    c = _config(cfg)
    prepared = prepare_task(c.to_dict())
    if c.base_model == "tiny":
        # pretrained without the eval items and their twins (prepared["pretrain_exclude_ids"])
        args = (c.pool_path, c.models_dir, c.to_dict()["tiny"], prepared["pretrain_exclude_ids"])
        # A cache record is only as good as the folder it names: refresh it when the folder is gone.
        built = (_tiny_dir(*args) / "build.json").is_file()
        base = build_tiny_task.with_options(refresh_cache=not built)(*args)
    else:
        base = c.base_model
    base_row = base_eval_task(base, prepared["eval_path"], str(base_eval_path(c, prepared)), c.template,
                              c.cutoff_len, c.device, c.gen_max_new_tokens)
    runs = grid(c, prepared)
    _log(f"experiment: {len(runs)} runs ({sum(r['part'] == 'main' for r in runs)} main grid, "
         f"{sum(r['part'] == 'sweep' for r in runs)} constraint sweep, {sum(r['part'] == 'degeneration' for r in runs)} long)")
    futures = []
    for r in runs:
        params = {"base_model": base, "eval_path": prepared["eval_path"], "seed": r["seed"], "eval_generate": True,
                  **c.finetune_kwargs(), **r["params"]}
        params["target_modules"] = list(params["target_modules"])
        futures.append(train_task.with_options(name=f"train {r['arm']}").submit(r["mixture_path"], r["output_dir"], params))
    for f in futures:
        f.result()
    res = report_task(c.to_dict(), runs, prepared, base_row, round(time.time() - t0, 1))
    try:
        create_markdown_artifact(key="tiger-experiment-verdict", markdown=Path(res["verdict"]).read_text(encoding="utf-8"),
                                 description="tiger experiment: diverse data vs training constraints")
    except Exception as e:  # the artifact is a convenience; the files are the record
        _log(f"experiment: no Prefect artifact ({e})")
    return res
