import os
from pathlib import Path

import pytest

# The tests' flow runs go to a Prefect home of their own, not into the user's run history.
if "PREFECT_HOME" not in os.environ:
    import tempfile

    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="tiger-tests-prefect-")
import flows.settings  # noqa: E402,F401  Prefect's settings before any test module imports prefect

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("TIGER_MIRROR", ROOT.parent / "shared" / "corpora"))
# Mirror slices are folders of symlinks into the real mirror: the symlink policy (curate/paths.py)
# follows links only into the mirror itself or a folder named here. Runs started by tests inherit it.
os.environ.setdefault("TIGER_LINK_ROOTS", str(MIRROR))


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not MIRROR.is_dir():
        pytest.fail(f"offline mirror not found at {MIRROR} (set TIGER_MIRROR)")
    return MIRROR


def _link_slice(mirror: Path, dest: Path, files: dict[str, list[str]]) -> Path:
    """A mirror folder at ``dest`` holding only ``files`` ({source: [relative paths]}), as symlinks
    into the real mirror (read in place, never copied)."""
    for source, rels in files.items():
        for rel in rels:
            dst = dest / source / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(mirror / source / rel)
    return dest


@pytest.fixture(scope="session")
def link_slice(mirror):
    """``link_slice(dest, files)`` → a small mirror of real files for end-to-end runs."""
    return lambda dest, files: _link_slice(mirror, Path(dest), files)
