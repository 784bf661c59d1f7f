"""A tagger's work on row partitions, as tasks a runner can spread over cores or Dask workers.

A tagger whose tags are fitted on a seeded sample and then applied row by row (``cluster_tagger``,
``novelty_tagger``) offers ``op.tag_job(...)``: a :class:`RowJob` whose first round fits on the
sample (``fit 0``) and whose second round applies the fit to one row partition per task
(``rows p``). Tasks read the stage's input Parquet by row range (only the columns they need) and
pass files under ``work_dir``, never frames; each leaves a marker ``done-<step>-<index>.json``, so a
killed stage resumes without redoing finished tasks. The merge then calls
``op.finish_job(df, job)``, which reads the partitions' files in order and gives, byte for byte,
what ``op(df)`` gives in one process (partition edges sit on the operator's own chunk edges, so
even float sums are added in the same order). Jobs whose rows steps start from the same TF-IDF
rows share one task per partition (:class:`SharedTfidfJob`).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
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


def guided_sizes(units: int, full: int) -> list[int]:
    """``units`` split into parts of at most ``full``: full-size parts first, then each about a
    quarter of what is left (at least a quarter of ``full``), so a round of tasks ends on short
    ones and its workers end it nearly together (guided scheduling). At most ``full``: one part."""
    full = max(1, int(full))
    sizes, left = [], int(units)
    while left > 0:
        size = left if units <= full else min(full, max(-(-full // 4), -(-left // 4)), left)
        sizes.append(size)
        left -= size
    return sizes


def guided_ranges(n: int, rows: int, unit: int = 1) -> list[tuple[int, int]]:
    """The row ranges of ``guided_sizes`` over ``n`` rows in whole ``unit``s, none over ``rows``
    (a multiple of ``unit`` or rounded down to one); none for no rows."""
    u = max(1, int(unit))
    ends = np.minimum(np.cumsum(guided_sizes(-(-n // u), max(1, rows // u)), dtype=np.int64) * u, n)
    return [(int(a), int(b)) for a, b in zip(np.concatenate([[0], ends[:-1]]), ends)]


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
    # explicit partition edges (0, ..., n), each a multiple of ``unit`` but the last: a job that
    # shares its partitions' rows with another job's (``SharedTfidfJob``)
    edges: tuple[int, ...] = field(default=(), kw_only=True)
    # where the rows are read before ``in_path`` exists: (the stage before's input, the .npy of the
    # rows it keeps), ``io.read_selected`` (``pipeline.plan_selected``)
    select: tuple[str, str] | None = field(default=None, kw_only=True)

    def read_rows(self, start: int, stop: int, columns: list[str] | None = None) -> Any:
        """Rows ``start:stop`` of the stage's input (``io.read_rows``)."""
        from .io import read_rows, read_selected

        return read_selected(self.select, start, stop, columns) if self.select else read_rows(self.in_path, start, stop, columns)

    def read_positions(self, positions: Any, columns: list[str] | None = None) -> Any:
        """The stage's input rows at ``positions`` (sorted; ``io.read_positions``)."""
        from .io import read_positions, read_selected_positions

        if self.select:
            return read_selected_positions(self.select, positions, columns)
        return read_positions(self.in_path, positions, columns)

    @property
    def step_rows(self) -> int:
        u = max(1, self.unit)
        return max(u, -(-self.partition_rows // u) * u)

    def row_parts(self) -> list[tuple[int, int]]:
        """The partitions, in whole units, none larger than ``step_rows``: full-size ones first, then
        smaller and smaller ones (each about a quarter of what is left, at least a quarter of the
        full size; guided scheduling), so the round ends on short tasks and two workers end it
        nearly together whatever their tasks' speeds. A job of at most ``step_rows`` rows is one."""
        if self.edges:
            return list(zip(self.edges[:-1], self.edges[1:]))
        return guided_ranges(self.n, self.step_rows, self.unit)

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


def same_tfidf(a: Any, b: Any) -> bool:
    """Whether two fitted TfidfVectorizers give the same rows for every text: the same settings,
    vocabulary and idf weights, and (as the embedder writes an empty text as " ") the same row for
    "" as for " "."""
    from .embed import tfidf_transform

    if a is b:
        return True
    if type(a) is not type(b) or a.get_params() != b.get_params() or a.vocabulary_ != b.vocabulary_:
        return False
    if not np.array_equal(a.idf_, b.idf_):
        return False
    x = tfidf_transform(a, ["", " "])
    return (x[0] != x[1]).nnz == 0


@dataclass(frozen=True)
class SharedTfidfJob(TaskJob):
    """Row jobs whose rows steps start from the same TF-IDF rows (``cluster_tagger``'s and
    ``novelty_tagger``'s, fitted on the same sample with the same settings): each keeps its own fit
    task, files and markers, but one task per partition reads the rows and computes their TF-IDF
    once for all of them, then hands each job its rows (``rows_from_tfidf``). The partitions are
    those of the job with the largest unit; the others' edges are those rounded up to their own
    units, so every job computes what it computes alone, byte for byte. If the fitted vectorisers
    differ after all (tiny or degenerate samples), a partition's task runs each job's own rows
    step instead.

    A member offers ``tfidf_source()`` (its text's ``input_chars`` and its fitted vectoriser) and
    ``rows_from_tfidf(p, start, stop, x, at)`` (its rows are those of ``x`` from ``at`` on)."""

    members: tuple[tuple[int, RowJob], ...]

    @property
    def work_dir(self) -> str:  # type: ignore[override]
        return self.members[0][1].work_dir

    @property
    def in_path(self) -> str:
        return self.members[0][1].in_path

    def jobs(self) -> list[RowJob]:
        return [j for _, j in self.members]

    def rounds(self) -> tuple[tuple[tuple[str, int], ...], ...]:
        parts = len(self.members[0][1].row_parts())
        return (tuple(("fit", i) for i in range(len(self.members))), tuple(("rows", p) for p in range(parts)))

    def missing(self) -> list[str]:
        return [f"{k}:{m}" for k, j in self.members for m in j.missing()]

    def task_cost(self, step: str, index: int) -> float:
        return sum(j.task_cost(step, index) for j in self.jobs()) if step == "rows" else 0.0

    def run(self, step: str, index: int) -> str:
        if step == "fit":
            return self.jobs()[index].run("fit", 0)
        if step != "rows":
            raise ValueError(f"SharedTfidfJob: unknown step {step!r}")
        todo = [j for j in self.jobs() if not j.marker("rows", index).exists()]
        if todo:
            self._rows(index, todo)
        return str(self.jobs()[0].marker("rows", index))

    def _rows(self, p: int, todo: list[RowJob]) -> None:
        from .embed import instruction_texts, tfidf_transform

        sources = [j.tfidf_source() for j in todo]
        chars, vec = sources[0]
        if len(todo) < 2 or any(c != chars or not same_tfidf(vec, v) for c, v in sources[1:]):
            for j in todo:
                j.run("rows", p)
            return
        parts = [j.row_parts()[p] for j in todo]
        a, b = min(s for s, _ in parts), max(e for _, e in parts)
        texts = instruction_texts(todo[0].read_rows(a, b, columns=["instruction", "input"]), chars)
        x = tfidf_transform(vec, texts)
        del texts
        for j, (s, e) in zip(todo, parts):
            Path(j.work_dir).mkdir(parents=True, exist_ok=True)
            j.rows_from_tfidf(p, s, e, x, s - a)
            write_json(j.marker("rows", p), {"step": "rows", "index": p})


def share_tfidf(jobs: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """``jobs`` (step index, job) with the row jobs that would compute the same TF-IDF rows
    (equal ``tfidf_key()``, not None) joined into one :class:`SharedTfidfJob`, at the first one's
    place; the partitions of the one with the largest unit are kept and the others' aligned to them."""
    import dataclasses

    keys = [j.tfidf_key() if hasattr(j, "tfidf_key") else None for _, j in jobs]
    groups: dict[Any, list[tuple[int, Any]]] = {}
    for (k, j), key in zip(jobs, keys):
        if key is not None:
            groups.setdefault(key, []).append((k, j))
    out = []
    for (k, j), key in zip(jobs, keys):
        group = groups.get(key) if key is not None else None
        if group is None or len(group) < 2:
            out.append((k, j))
        elif group[0][0] == k:
            lead = max(group, key=lambda kj: kj[1].unit)[1]  # the coarsest partitions
            ends = [e for _, e in lead.row_parts()]
            members = []
            for kk, other in group:
                u = max(1, other.unit)
                edges = (0, *(min(other.n, -(-e // u) * u) for e in ends))
                members.append((kk, other if other is lead else dataclasses.replace(other, edges=edges)))
            out.append((k, SharedTfidfJob(tuple(members))))
    return out
