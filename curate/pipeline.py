"""The curation pipeline as a readable list of stages, each with explicit inputs and outputs on disk.

Every stage reads the previous stage's ``kept.parquet`` and writes into its own folder:

    <run_dir>/<stage>/kept.parquet     records that go on
    <run_dir>/<stage>/dropped.parquet  records dropped here, each with stage, reason and detail
    <run_dir>/<stage>/stats.json       what each operator did, with examples
    <run_dir>/<stage>/ledger.json      in / kept / dropped, by source and reason
    <run_dir>/<stage>/_SUCCESS.json    completion marker holding the stage's cache key

The cache key hashes the stage's input files, its parameters and the code of ``curate/``; a stage
whose marker matches is skipped, so a killed run resumes where it stopped and a changed recipe or
code re-runs what it affects. No Prefect here: flows/ orchestrates these functions.

Fault injection (for the kill-and-resume tests): with ``TIGER_FAULT=<stage>:<point>`` set, the
process SIGKILLs itself at that point, as a crash or an OOM kill would. ``<stage>`` is one of
``STAGES`` or ``mixtures``; ``<point>`` is ``before`` (the stage is not done and about to start),
``writing`` (half-way through the atomic write of ``kept.parquet``: only a temp file exists),
``mid`` (``kept.parquet`` written — for mixtures the first mixture file — but no ``_SUCCESS`` marker)
or ``after`` (marker written). Unset, it does nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import yaml

from .io import atomic_path, read_json, read_parquet, sha256_file, write_json, write_parquet
from .ops import parse_steps, run_steps
from .records import LedgerError, StageResult, ledger_row

CURATE_DIR = Path(__file__).resolve().parent
DEFAULT_RECIPE = CURATE_DIR.parent / "configs" / "default.yaml"
STAGES = ["01_parse", "02_normalize", "03_filter", "04_dedupe", "05_diversity"]
RECIPE_KEY = {"02_normalize": "normalize", "03_filter": "filter", "04_dedupe": "dedupe", "05_diversity": "diversity"}
PACKAGES = ["tiger", "datasets", "pandas", "pyarrow", "numpy", "opencc", "jieba", "datasketch", "langdetect",
            "scikit-learn", "prefect", "torch", "transformers", "peft"]

Progress = Callable[[str], None] | None


def load_recipe(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path or DEFAULT_RECIPE)
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(recipe, dict):
        raise ValueError(f"{path}: a recipe is a mapping with keys sources, normalize, filter, dedupe, diversity, mixtures")
    for key in RECIPE_KEY.values():
        parse_steps(recipe.get(key, []))  # fails early, naming the bad step
    recipe.setdefault("seed", 42)
    return recipe


def code_version() -> str:
    """Hash of the library's source: a code change invalidates cached stages."""
    h = hashlib.sha256()
    for p in sorted(CURATE_DIR.rglob("*")):
        if p.suffix in {".py", ".yaml", ".json"} and "__pycache__" not in p.parts:
            h.update(p.relative_to(CURATE_DIR).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def cache_key(inputs: list[str | Path], params: Any) -> str:
    h = hashlib.sha256()
    for p in inputs:
        h.update(sha256_file(p).encode())
    h.update(json.dumps(params, sort_keys=True, ensure_ascii=False, default=str).encode())
    h.update(code_version().encode())
    return h.hexdigest()[:16]


def is_done(out_dir: Path, key: str) -> bool:
    marker = out_dir / "_SUCCESS.json"
    if not marker.exists():
        return False
    try:
        return read_json(marker).get("key") == key
    except (ValueError, OSError):
        return False


FAULT_ENV = "TIGER_FAULT"


def fault_point(stage: str, point: str) -> None:
    """SIGKILL this process if ``TIGER_FAULT`` names this point (see the module docstring)."""
    if os.environ.get(FAULT_ENV) == f"{stage}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)


def _finish(out_dir: Path, key: str, stage: str, n_in: int, res: StageResult) -> dict[str, Any]:
    res.check(n_in, stage)
    if os.environ.get(FAULT_ENV) == f"{stage}:writing":  # die with a half-written temp file, as a crash would
        with atomic_path(out_dir / "kept.parquet") as tmp:
            tmp.write_bytes(b"PAR1 half-written")
            fault_point(stage, "writing")
    write_parquet(out_dir / "kept.parquet", res.kept)
    fault_point(stage, "mid")
    write_parquet(out_dir / "dropped.parquet", res.dropped)
    write_json(out_dir / "stats.json", res.stats)
    ledger = ledger_row(stage, n_in, res.kept, res.dropped)
    write_json(out_dir / "ledger.json", ledger)
    write_json(out_dir / "_SUCCESS.json", {"key": key, "stage": stage})  # last: marks the stage complete
    fault_point(stage, "after")
    return ledger


def parse_stage(files: list[dict], out_dir: str | Path, progress: Progress = None) -> dict[str, Any]:
    """Raw files → records (+ quarantine as dropped rows)."""
    from .parse import parse_files

    out_dir = Path(out_dir)
    key = cache_key([f["path"] for f in files], {"files": [(f["source"], f["file"]) for f in files]})
    if is_done(out_dir, key):
        return read_json(out_dir / "ledger.json")
    fault_point("01_parse", "before")
    if progress:
        progress(f"parse: {len(files)} files")
    res = parse_files(files)
    # rows seen in the files, counted by the parser independently of what it kept or quarantined
    return _finish(out_dir, key, "01_parse", int(res.stats["in"]), res)


def ops_stage(stage: str, in_path: str | Path, out_dir: str | Path, steps_spec: list,
              progress: Progress = None) -> dict[str, Any]:
    """Run a stage's operators (from the recipe) over the previous stage's kept records."""
    out_dir = Path(out_dir)
    steps = parse_steps(steps_spec)
    key = cache_key([in_path], {"stage": stage, "steps": steps})
    if is_done(out_dir, key):
        return read_json(out_dir / "ledger.json")
    fault_point(stage, "before")
    df = read_parquet(in_path)
    res = run_steps(df, steps, stage, progress=progress)
    if stage == "05_diversity":
        from .diversity import diversity_by, diversity_metrics

        res.stats["diversity"] = {"all": diversity_metrics(res.kept), "by_source": diversity_by(res.kept, "source")}
    return _finish(out_dir, key, stage, len(df), res)


def check_chain(ledgers: list[dict[str, Any]]) -> None:
    """Each stage balances, and each stage's input is exactly the previous stage's output."""
    for prev, cur in zip([None] + ledgers[:-1], ledgers):
        if not cur["balanced"]:
            raise LedgerError(f"stage {cur['stage']}: {cur['in']} in != {cur['kept']} kept + {cur['dropped']} dropped")
        if prev is not None and prev["kept"] != cur["in"]:
            raise LedgerError(f"stage {cur['stage']} read {cur['in']} records but {prev['stage']} kept {prev['kept']}")


def mixtures_stage(in_path: str | Path, out_dir: str | Path, specs_spec: list, seed: int,
                   progress: Progress = None) -> list[dict[str, Any]]:
    from .mix import build_mixture, parse_mixture_specs, write_mixture

    out_dir = Path(out_dir)
    specs = parse_mixture_specs(specs_spec, default_seed=seed)
    key = cache_key([in_path], {"mixtures": [s.to_dict() for s in specs]})
    if is_done(out_dir, key):
        return read_json(out_dir / "mixtures.json")
    fault_point("mixtures", "before")
    pool = read_parquet(in_path)
    results = []
    for spec in specs:
        if progress:
            progress(f"mixtures: {spec.name}")
        mix = build_mixture(pool, spec)
        # keep the manifest free of absolute paths so equal runs write equal bytes
        results.append({k: v for k, v in write_mixture(mix, spec, out_dir).items() if k != "paths"})
        fault_point("mixtures", "mid")
    write_json(out_dir / "mixtures.json", results)
    write_json(out_dir / "_SUCCESS.json", {"key": key, "stage": "mixtures"})
    fault_point("mixtures", "after")
    return results


def run_dir_for(data_dir: str | Path, recipe: dict[str, Any], files: list[dict], run_id: str | None = None) -> Path:
    """The run id hashes the recipe and the input checksums: the same command finds the same folder."""
    if not run_id:
        h = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode())
        for f in files:
            h.update(f"{f['source']}/{f['file']}:{f['sha256']}".encode())
        run_id = "run-" + h.hexdigest()[:10]
    return Path(data_dir) / run_id


def load_stage(run_dir: str | Path, stage: str, which: str = "kept") -> pd.DataFrame:
    return read_parquet(Path(run_dir) / stage / f"{which}.parquet")
