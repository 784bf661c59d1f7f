import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path(os.environ.get("TIGER_MIRROR", ROOT.parent / "shared" / "corpora"))


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not MIRROR.is_dir():
        pytest.fail(f"offline mirror not found at {MIRROR} (set TIGER_MIRROR)")
    return MIRROR
