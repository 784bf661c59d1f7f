"""Environment defaults for Prefect, set before prefect is imported.

Prefect runs on its local ephemeral API: nothing to install, no analytics, its home inside the
project (or wherever PREFECT_HOME points), and a start-up timeout far above the 20 s default,
which a loaded 2-core machine exceeds.
"""
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_DEFAULTS = {
    "PREFECT_HOME": str(PROJECT_ROOT / ".prefect"),
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "TOKENIZERS_PARALLELISM": "false",
    # quiet logs: no third-party progress bars in the run log (tiger prints its own progress)
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
}
for _k, _v in _DEFAULTS.items():
    os.environ.setdefault(_k, _v)
