"""A tagger's work on row partitions, as tasks a runner can spread over cores or Dask workers.

A tagger whose tags are fitted on a seeded sample and then applied row by row (``cluster_tagger``,
``novelty_tagger``) offers ``op.tag_job(...)``: a :class:`RowJob` whose first round fits on the
sample (``fit 0``) and whose second round applies the fit to one row partition per task
(``rows p``). Tasks read the stage's input Parquet by row range (only the columns they need) and
pass files under ``work_dir``, never frames; each leaves a marker ``done-<step>-<index>.json``, so a
killed stage resumes without redoing finished tasks. The merge then calls
``op.finish_job(df, job)``, which reads the partitions' files in order and gives, byte for byte,
what ``op(df)`` gives in one process (partition edges sit on the operator's own chunk edges, so
even float sums are added in the same order).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_path, write_json


class TaskJob:
    """Tasks in rounds, each leaving a marker ``done-<step>-<index>.json`` under ``work_dir`` once it
    has finished, so a killed stage resumes without redoing them. Subclasses give ``rounds()`` and
    ``step(step, index)``."""

    work_dir: str

    def path(self, name: str) -> Path:
        return Path(self.work_dir) / name

    def rounds(self) -> tuple[tuple[tuple[str, int], ...], ...]:
        raise NotImplementedError

    def step(self, step: str, index: int) -> None:
        raise NotImplementedError

    def marker(self, step: str, index: int) -> Path:
        return self.path(f"done-{step}-{index:05d}.json")

    def missing(self) -> list[str]:
        """The tasks not done yet, as "step index"."""
        return [f"{s} {i}" for r in self.rounds() for s, i in r if not self.marker(s, i).exists()]

    def run(self, step: str, index: int) -> str:
        """Run one task unless its marker says it is done; returns the marker's path."""
        marker = self.marker(step, index)
        if marker.exists():
            return str(marker)
        Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        self.step(step, index)
        write_json(marker, {"step": step, "index": index})
        return str(marker)


@dataclass(frozen=True)
class RowJob(TaskJob):
    """A fit on a sample, then one task per row partition (see the module docstring). Subclasses
    define ``fit_step()`` and ``rows_step(p, start, stop)``; ``unit``: partition edges are multiples
    of it (the operator's chunk), ``partition_rows`` is rounded up to one."""

    in_path: str
    work_dir: str
    n: int
    partition_rows: int
    unit: int = 1

    @property
    def step_rows(self) -> int:
        u = max(1, self.unit)
        return max(u, -(-self.partition_rows // u) * u)

    def row_parts(self) -> list[tuple[int, int]]:
        return [(a, min(self.n, a + self.step_rows)) for a in range(0, self.n, self.step_rows)]

    def rounds(self) -> tuple[tuple[tuple[str, int], ...], ...]:
        return ((("fit", 0),), tuple(("rows", p) for p in range(len(self.row_parts()))))

    def step(self, step: str, index: int) -> None:
        if step == "fit":
            self.fit_step()
        elif step == "rows":
            a, b = self.row_parts()[index]
            self.rows_step(index, a, b)
        else:
            raise ValueError(f"{type(self).__name__}: unknown step {step!r}")

    # the work of a row task per row, relative to other jobs' (a stage runs its longest tasks first)
    cost_per_row = 1.0

    def task_cost(self, step: str, index: int) -> float:
        """About how long task ``(step, index)`` takes, in units shared by every job's tasks of a round."""
        if step != "rows":
            return 0.0
        a, b = self.row_parts()[index]
        return self.cost_per_row * (b - a)

    def fit_step(self) -> None:
        raise NotImplementedError

    def rows_step(self, p: int, start: int, stop: int) -> None:
        raise NotImplementedError

    # files
    def save(self, name: str, obj: Any) -> None:
        with atomic_path(self.path(name)) as tmp:
            if isinstance(obj, np.ndarray):
                with open(tmp, "wb") as f:
                    np.save(f, obj)
            else:
                tmp.write_bytes(pickle.dumps(obj, protocol=5))

    def load(self, name: str) -> Any:
        p = self.path(name)
        if p.suffix == ".npy":
            return np.load(p)
        return pickle.loads(p.read_bytes())

    def rows_files(self, name: str) -> list[str]:
        """``name`` (a format string over the partition index) for every partition, in order."""
        return [name.format(p) for p in range(len(self.row_parts()))]
