"""Kill a real `tiger run` with SIGKILL — at every stage boundary, mid-stage, mid-write, and from
outside at a random (seeded) moment — rerun the same command, and get outputs byte-identical to an
uninterrupted run, with finished stages left alone and unfinished ones redone.

The runs are real CLI processes on a slice of the mirror (~2,700 rows). They talk to one Prefect
server started for this module: a per-process temporary server would cost ~20 s of start-up per run.
The kill points inside a run come from ``TIGER_FAULT`` (curate/pipeline.py: ``fault_point``).
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from curate.recipe import DEFAULT_RECIPE, STAGES

pytestmark = pytest.mark.slow

SLICE = {
    "trans_chinese_alpaca": ["alpaca_chinese_part_0.json", "alpaca_chinese_part_52.json"],
    "alpaca_chinese": ["supplementary/翻译问题.json", "supplementary/整数加减法.json"],
    "belle": ["dev1K.json", "zh_seed_tasks.json"],
    "traditional": ["chinese_vicuna_chat_sample.jsonl"],
}
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------- helpers (shared by
# test_determinism.py and test_bad_input.py, which import them)

def slice_mirror(dst: Path, mirror: Path, files: dict[str, list[str]] = SLICE) -> Path:
    """A mirror folder of symlinks to a few real files (nothing copied)."""
    from conftest import _link_slice

    return _link_slice(mirror, dst, files)


def small_recipe(path: Path, mixture_rows: int = 300, clusters: int = 8, sources: list[str] | None = None,
                 mixtures: list[str] | None = None) -> Path:
    """The default recipe with small mixtures and few clusters (the slice is small)."""
    recipe = yaml.safe_load(DEFAULT_RECIPE.read_text(encoding="utf-8"))
    recipe["mixtures"] = mixtures or [f"{kind}-{mixture_rows}" for kind in ("random", "per_source", "diverse", "narrow")]
    if sources:
        recipe["sources"] = sources
    recipe["diversity"][1]["cluster_tagger"]["n_clusters"] = clusters
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


def digest(run_dir: Path) -> dict[str, str]:
    """sha256 of every Parquet and JSON file of a run (stages, mixtures, manifests)."""
    return {p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.suffix in {".parquet", ".json"}}


def snapshot_code(dst: Path) -> Path:
    """A copy of the project's packages, put first on PYTHONPATH for the runs.

    Stage markers are keyed on the code of curate/ (a code change rightly invalidates them), so the
    runs of one test must all see the same code even if the working tree is edited meanwhile.
    """
    for pkg in ("curate", "flows", "train", "configs"):  # configs: the default recipe a partial one inherits
        if (ROOT / pkg).is_dir():
            shutil.copytree(ROOT / pkg, dst / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_prefect(home: Path):
    """Start a local Prefect API server; return (env for CLI runs on a code snapshot, server process)."""
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k not in ("TIGER_FAULT", "TIGER_MIRROR")}
    base.update({"PYTHONPATH": str(snapshot_code(home / "code")), "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                 "PREFECT_LOGGING_LEVEL": "WARNING", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
                 "TOKENIZERS_PARALLELISM": "false"})
    log = open(home / "server.log", "wb")
    server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
                               "--no-ui", "--no-services", "--analytics-off"],
                              env=base, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop(server)
            pytest.fail(f"Prefect server did not start:\n{(home / 'server.log').read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)
    return {**base, "PREFECT_API_URL": url}, server


def stop(proc: subprocess.Popen) -> None:
    """Kill a process we started in its own session, with whatever it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


# One Prefect server (with one code snapshot) and one uninterrupted baseline run serve every module
# that imports these fixtures (test_determinism.py, test_bad_input.py). pytest would build module
# fixtures once per module, so they are kept here; the server is stopped when pytest exits.
_SHARED: dict[str, Any] = {}


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict:
    if "env" not in _SHARED:
        env, server = start_prefect(tmp_path_factory.mktemp("prefect"))
        atexit.register(stop, server)
        _SHARED["env"] = env
    return _SHARED["env"]


def tiger_cmd(mirror: Path, data_dir: Path, recipe: Path) -> list[str]:
    return [str(BIN / "tiger"), "run", "--mirror", str(mirror), "--data-dir", str(data_dir), "--recipe", str(recipe)]


def run_tiger(cmd: list[str], env: dict, cwd: Path, fault: str | None = None,
              extra_env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**env, **(extra_env or {})}
    if fault:
        env["TIGER_FAULT"] = fault
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        stop(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out.decode("utf-8", "replace"))


# ---------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def case(tmp_path_factory, mirror):
    """A folder with a mirror slice and a small recipe."""
    if "case" not in _SHARED:
        root = tmp_path_factory.mktemp("resume")
        _SHARED["case"] = root, slice_mirror(root / "mirror", mirror), small_recipe(root / "recipe.yaml")
    return _SHARED["case"]


def run_dir_of(r: subprocess.CompletedProcess) -> Path:
    return Path(next(line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("done: ")))


@pytest.fixture(scope="module")
def baseline(case, cli_env):
    """One uninterrupted run (hash seed 1, UTC): its run folder, digest and wall time."""
    if "baseline" not in _SHARED:
        root, m, recipe = case
        t0 = time.monotonic()
        r = run_tiger(tiger_cmd(m, root / "base", recipe), cli_env, root, extra_env={"PYTHONHASHSEED": "1", "TZ": "UTC"})
        wall = time.monotonic() - t0
        assert r.returncode == 0, r.stdout[-3000:]
        run_dir = run_dir_of(r)
        d = digest(run_dir)
        assert {f"{s}/{f}" for s in STAGES for f in ("kept.parquet", "_SUCCESS.json")} <= set(d)
        ledger = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))["ledger"]
        # a stage writes dropped.parquet when it dropped rows, and only then
        assert {f"{r['stage']}/dropped.parquet" for r in ledger if r["dropped"]} == {k for k in d if k.endswith("/dropped.parquet")}
        assert "manifest.json" in d and "mixtures/random-300.json" in d
        _SHARED["baseline"] = run_dir, d, wall
    return _SHARED["baseline"]


def mtimes(stage_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(stage_dir.glob("*")) if p.is_file()}


def tmp_files(stage_dir: Path) -> list[str]:
    return sorted(p.name for p in stage_dir.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------- tests

# One kill per process, each later than the last: every stage boundary (after:X / before:Y), mid-stage
# (kept.parquet written, no marker) and mid-write (only the temp file exists) are each hit.
KILLS = [
    ("01_parse", "before"),  # download | parse
    ("01_parse", "writing"),
    ("01_parse", "after"),  # parse | normalize
    ("02_normalize", "mid"),
    ("03_filter", "before"),  # normalize | filter
    ("03_filter", "after"),  # filter | dedupe
    ("04_dedupe", "writing"),
    ("05_diversity", "before"),  # dedupe | diversity
    ("mixtures", "before"),  # diversity | mixtures
    ("mixtures", "mid"),
    ("mixtures", "after"),  # mixtures | manifest and report
]
ORDER = STAGES + ["mixtures"]


def test_killed_at_every_boundary_and_mid_stage_resumes_byte_identical(case, cli_env, baseline):
    root, m, recipe = case
    base_dir, base_digest, _ = baseline
    data = root / "chain"
    run_dir = data / "processed" / base_dir.name
    cmd = tiger_cmd(m, data, recipe)
    done_mtimes: dict[str, dict[str, int]] = {}  # stages finished so far -> file mtimes
    half_done: dict[str, tuple[Path, int]] = {}  # stage killed mid-stage -> its unmarked output, mtime

    for stage, point in KILLS:
        r = run_tiger(cmd, cli_env, root, fault=f"{stage}:{point}")
        where = f"killed at {stage}:{point}"
        assert r.returncode == -signal.SIGKILL, f"{where}: the run was not killed (rc {r.returncode})\n{r.stdout[-2000:]}"
        # finished stages were skipped, not redone: their files are untouched
        for s, before in done_mtimes.items():
            assert mtimes(run_dir / s) == before, f"{where}: finished stage {s} was redone"
        # a stage left without its marker was redone
        for s, (path, old) in half_done.items():
            if (run_dir / s / "_SUCCESS.json").exists():
                assert path.stat().st_mtime_ns != old, f"{where}: {s} not redone"
        half_done.clear()

        sdir = run_dir / stage
        marker = sdir / "_SUCCESS.json"
        if point in ("before", "writing", "mid"):
            assert not marker.exists(), where
        if point == "writing":
            # only the temp file: nothing at kept.parquet that a rerun could take for complete
            assert not (sdir / "kept.parquet").exists() and any(t.startswith(".kept.parquet.") for t in tmp_files(sdir))
        if point == "mid":
            kept = sdir / ("kept.parquet" if stage != "mixtures" else "random-300.json")
            assert kept.exists(), where
            half_done[stage] = kept, kept.stat().st_mtime_ns
        if point == "after":
            assert marker.exists(), where
        assert not (run_dir / "manifest.json").exists(), f"{where}: manifest written before the run ended"
        finished = ORDER[:ORDER.index(stage) + (point == "after")]
        for s in finished:
            assert (run_dir / s / "_SUCCESS.json").exists(), f"{where}: {s} should be finished"
            done_mtimes.setdefault(s, mtimes(run_dir / s))

    r = run_tiger(cmd, cli_env, root)
    assert r.returncode == 0, r.stdout[-3000:]
    for s, before in done_mtimes.items():
        assert mtimes(run_dir / s) == before, f"final run: finished stage {s} was redone"
    assert digest(run_dir) == base_digest
    # the temp files left by the mid-write kills were never taken for outputs, and the reruns of
    # those stages swept them
    assert not tmp_files(run_dir / "01_parse") and not tmp_files(run_dir / "04_dedupe")
    assert not [p for p in run_dir.rglob(".*.tmp")]


def test_external_sigkill_at_seeded_random_times_resumes_byte_identical(case, cli_env, baseline):
    """os.kill(pid, SIGKILL) from outside at a seeded random moment, then a clean finish."""
    root, m, recipe = case
    base_dir, base_digest, wall = baseline
    data = root / "external"
    run_dir = data / "processed" / base_dir.name
    cmd = tiger_cmd(m, data, recipe)
    rng = random.Random(20240601)
    killed = 0
    for attempt in range(4):
        delay = wall * rng.uniform(0.45, 0.85) / (1 + attempt // 2)
        proc = subprocess.Popen(cmd, env=cli_env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        finally:
            stop(proc)
        if proc.returncode == -signal.SIGKILL:
            killed += 1
            break
        else:
            assert proc.returncode == 0  # finished before the kill: a later rerun is then a no-op
    assert killed >= 1, "no kill landed while the run was going"
    r = run_tiger(cmd, cli_env, root)
    assert r.returncode == 0, r.stdout[-3000:]
    assert digest(run_dir) == base_digest


def test_a_half_written_or_stale_marker_means_the_stage_is_redone(tmp_path, mirror):
    """In process, no Prefect: the marker is what makes a stage complete, and only a whole marker
    with this stage's key counts."""
    from curate.pipeline import parse_stage

    files = [{"source": "belle", "file": "zh_seed_tasks.json", "path": str(mirror / "belle" / "zh_seed_tasks.json")}]
    out = tmp_path / "01_parse"
    ledger = parse_stage(files, out)
    kept, marker = out / "kept.parquet", out / "_SUCCESS.json"
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    t0 = kept.stat().st_mtime_ns
    assert parse_stage(files, out) == ledger and kept.stat().st_mtime_ns == t0  # done: skipped

    for bad in (marker.read_bytes()[:10], b'{"key": "0000000000000000", "stage": "01_parse"}\n', None):
        if bad is None:
            marker.unlink()
        else:
            marker.write_bytes(bad)  # cut short, or left by other inputs / params / code
        t = kept.stat().st_mtime_ns
        assert parse_stage(files, out) == ledger
        assert kept.stat().st_mtime_ns != t, f"stage not redone with marker {bad!r}"
        assert {p.name: p.read_bytes() for p in out.iterdir()} == first
