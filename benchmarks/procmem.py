"""Resident memory of this process from /proc (standard library only: dj_runner.py imports it from
Data-Juicer's own virtual environment)."""
from __future__ import annotations


def proc_mib(field: str = "VmHWM") -> float:
    """VmHWM (peak) or VmRSS (now) of this process in MiB. Not ru_maxrss: Linux carries that over
    from the parent across fork and exec, so a small child started by a big parent reports the
    parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")
