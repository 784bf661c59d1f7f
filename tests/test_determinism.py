"""Same inputs, recipe and seed → the same bytes: two real `tiger run`s that differ in everything that
must not matter (data folder, mirror folder path, working directory, hash seed, time zone, time of day)
write identical files — every Parquet, JSON, mixture, manifest and the report."""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

# cli_env, case, baseline: fixtures shared with test_resume.py (one Prefect server, one baseline run)
from test_resume import baseline, case, cli_env, run_dir_of, run_tiger, slice_mirror, tiger_cmd  # noqa: F401

pytestmark = pytest.mark.slow


def all_files(run_dir: Path) -> dict[str, str]:
    return {p.relative_to(run_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, mirror, case, cli_env, baseline):
    """The baseline run (hash seed 1, UTC) and one more with other paths, hash seed 2, Shanghai time."""
    base_root, _, recipe = case
    root = tmp_path_factory.mktemp("det")
    m = slice_mirror(root / "some" / "other" / "place" / "mirror", mirror)
    r = run_tiger(tiger_cmd(m, root / "elsewhere", recipe), cli_env, cwd=root,
                  extra_env={"PYTHONHASHSEED": "2", "TZ": "Asia/Shanghai"})
    assert r.returncode == 0, r.stdout[-3000:]
    return [(base_root, baseline[0]), (root, run_dir_of(r))]


def test_two_runs_write_identical_bytes(two_runs):
    (_, a), (_, b) = two_runs
    assert a.name == b.name and a.parent != b.parent  # the run id hashes recipe and input checksums, not paths
    fa, fb = all_files(a), all_files(b)
    assert set(fa) == set(fb)
    assert {"manifest.json", "mixtures/mixtures.json", "mixtures/random-300.manifest.json",
            "05_diversity/kept.parquet", "report/report.html"} <= set(fa)
    differ = sorted(k for k in fa if fa[k] != fb[k])
    assert not differ, f"files that differ between equal runs: {differ}"


def test_no_paths_or_dates_leak_into_outputs(two_runs):
    today = dt.date.today().isoformat().encode()
    for root, run_dir in two_runs:
        for p in sorted(run_dir.rglob("*")):
            if p.is_file():
                data = p.read_bytes()
                assert str(root).encode() not in data, f"{p.name} holds the path {root}"
                assert b"pytest-of-" not in data and today not in data, p
