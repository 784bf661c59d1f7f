from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..duplicates import Decision, check_frame, dedupe_result, empty_stats, group_stats, ids_at, survivors
from ..exact import exact_keys
from ..jobs import RowJob
from ..minhash.config import DEFAULT_FIELDS
from ..records import StageResult, drop_frame
from .base import Deduplicator, register


@register("document_exact_deduplicator")
class DocumentExactDeduplicator(Deduplicator):
    """Drop exact duplicates (after key normalisation) of the selected fields; keep one per group.

    Params: ``fields`` (columns compared, default instruction/input/output), ``source_priority``
    (sources preferred as survivors, in order; default none), ``partitions`` (0: in memory; N > 0
    and a task runner: keys computed per row partition of ``partition_rows`` rows and grouped in N
    key-hash partitions as tasks, :class:`ExactJob`; the same survivors, byte for byte). Dropped:
    ``exact_duplicate``, detail = survivor id.
    """

    def __init__(self, fields: Sequence[str] = DEFAULT_FIELDS, source_priority: Sequence[str] = (),
                 partitions: int = 0, partition_rows: int = 200_000):
        self.fields = tuple(fields)
        self.source_priority = tuple(source_priority)
        if not self.fields:
            raise ValueError("fields must name at least one column")
        if int(partitions) < 0 or int(partition_rows) < 1:
            raise ValueError(f"need partitions ≥ 0 and partition_rows ≥ 1, got {partitions} and {partition_rows}")
        self.partitions, self.partition_rows = int(partitions), int(partition_rows)

    def _params(self) -> dict:
        return {"fields": list(self.fields), "source_priority": list(self.source_priority)}

    def __call__(self, df: pd.DataFrame) -> StageResult:
        check_frame(df, self.fields, self.name)
        n = len(df)
        if n == 0:
            return StageResult(df, drop_frame(df, self.name, "exact_duplicate", ""), empty_stats())
        keys = exact_keys(df, self.fields)
        _, first, inv = np.unique(keys, return_index=True, return_inverse=True)
        labels = first[inv]
        return self._result(df, labels, survivors(df, labels, self.source_priority))

    def _decision(self, df: pd.DataFrame, labels: np.ndarray, surv: np.ndarray, fetch=None) -> Decision:
        drop = surv != np.arange(len(df))
        details = np.full(len(df), "", dtype=object)  # only a dropped row's detail is read
        details[drop] = ids_at(df, surv[drop])
        stats = group_stats(df, labels, surv, "exact_duplicate", details, fetch=fetch)
        stats["params"] = self._params()
        return Decision(surv, details, "exact_duplicate", stats)

    def _result(self, df: pd.DataFrame, labels: np.ndarray, surv: np.ndarray) -> StageResult:
        d = self._decision(df, labels, surv)
        return dedupe_result(df, self.name, d)

    # --- the same groups as tasks on the run's workers

    def partition_job(self, in_path: str, work_dir: str, n: int, live: bool) -> "ExactJob | None":
        """Keys per row partition, then groups per key-hash partition, as tasks; only when the
        recipe asks for partitions and this is the stage's first step (it reads all input rows)."""
        if not self.partitions or live or not n:
            return None
        return ExactJob(str(in_path), str(work_dir), int(n), self.partition_rows, 1, self)

    def finish_job(self, df: pd.DataFrame, job: "ExactJob") -> StageResult:
        """``self(df)``'s result, byte for byte, from a finished job's files (``df``: the input rows)."""
        check_frame(df, self.fields, self.name)
        if len(df) != job.n:
            raise RuntimeError(f"{self.name}: the job covered {job.n} rows, the frame holds {len(df)}")
        labels, surv = job.groups()
        return self._result(df, labels, surv)

    def decide_job(self, light: pd.DataFrame, job: "ExactJob", fetch) -> Decision:
        """``finish_job``'s decision from a light frame (``id``, ``source``, ``file``, ``row`` and the
        output's length, ``duplicates.OUTLEN``; no texts): ``fetch(positions)`` gives example rows."""
        labels, surv = self._job_groups(light, job)
        return self._decision(light, labels, surv, fetch)

    def survivors_job(self, light: pd.DataFrame, job: "ExactJob") -> np.ndarray:
        """``decide_job``'s survivors alone (no figures, no examples): which rows it keeps."""
        return self._job_groups(light, job)[1]

    def _job_groups(self, light: pd.DataFrame, job: "ExactJob") -> tuple[np.ndarray, np.ndarray]:
        if len(light) != job.n:
            raise RuntimeError(f"{self.name}: the job covered {job.n} rows, the frame holds {len(light)}")
        return job.groups()


# a routed row: its key, input row, and its rank under the survivor rule (curate.duplicates)
_ROUTE_COLS = ["key", "row", "prio", "outlen", "id"]


@dataclass(frozen=True)
class ExactJob(RowJob):
    """``document_exact_deduplicator`` as tasks. Rounds:

    keys p    row partition p's exact keys (uint64), each row routed with its survivor-rule rank
              (source priority, output length, id) to key-hash partition ``key % partitions``
    groups q  every route file of hash partition q: rows sharing a key form a group (a group never
              spans partitions); each member's group label (its first row) and survivor → dups-q.npy
    mask 0    only with ``mask_to`` (a next job searches the rows this one keeps): the kept rows as
              a bool per input row, written there
    """

    op: DocumentExactDeduplicator | None = None
    mask_to: str | None = None

    def rounds(self) -> tuple[tuple[tuple[str, int], ...], ...]:
        out = [tuple(("keys", p) for p in range(len(self.row_parts()))),
               tuple(("groups", q) for q in range(self.op.partitions))]
        if self.mask_to:
            out.append((("mask", 0),))
        return tuple(out)

    def step(self, step: str, index: int) -> None:
        {"keys": self._keys, "groups": self._groups, "mask": self._mask}[step](index)

    def _keys(self, p: int) -> None:
        from ..duplicates import _HEX
        from ..io import read_rows

        a, b = self.row_parts()[p]
        cols = list(dict.fromkeys([*self.op.fields, "id", "source", "output"]))
        part = read_rows(self.in_path, a, b, columns=cols)
        check_frame(part, self.op.fields, self.op.name)
        hexkeys = exact_keys(part, self.op.fields)  # 16 hex digits each
        nib = _HEX[np.frombuffer("".join(hexkeys.tolist()).encode("ascii"), dtype=np.uint8)].reshape(-1, 16)
        key = np.ascontiguousarray((nib[:, 0::2] << 4) | nib[:, 1::2]).view(">u8").ravel().astype(np.uint64)
        prio_of = {s: k for k, s in enumerate(self.op.source_priority)}
        routed = pd.DataFrame({
            "key": key, "row": np.arange(a, b, dtype=np.int64),
            "prio": part["source"].astype(str).map(lambda s: prio_of.get(s, len(prio_of))).to_numpy(np.int64),
            "outlen": part["output"].str.len().to_numpy(dtype=np.int64),
            "id": part["id"].astype(str).to_numpy(dtype=object)})
        q = (key % np.uint64(self.op.partitions)).astype(np.int64)
        for k in range(self.op.partitions):
            self.save(f"route-{p:05d}-{k:05d}.pkl", routed[q == k].reset_index(drop=True))

    def _groups(self, q: int) -> None:
        routed = pd.concat([self.load(f"route-{p:05d}-{q:05d}.pkl") for p in range(len(self.row_parts()))],
                           ignore_index=True)
        routed = routed[routed["key"].duplicated(keep=False)]
        # the survivor rule's order: listed sources first, longest output, smallest id (strings:
        # ordered as curate.duplicates orders them), then the input row as the in-memory sort does
        routed = routed.assign(neg=-routed["outlen"]).sort_values(["key", "prio", "neg", "id", "row"], kind="stable")
        g = routed.groupby("key", sort=False)["row"]
        out = np.empty(len(routed), dtype=[("row", "<i8"), ("label", "<i8"), ("surv", "<i8")])
        out["row"] = routed["row"].to_numpy()
        out["label"] = g.transform("min").to_numpy()
        out["surv"] = g.transform("first").to_numpy()
        self.save(f"dups-{q:05d}.npy", out)

    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Each input row's group label (its group's first row) and survivor, as the in-memory path
        computes them."""
        labels, surv = np.arange(self.n, dtype=np.int64), np.arange(self.n, dtype=np.int64)
        for q in range(self.op.partitions):
            d = self.load(f"dups-{q:05d}.npy")
            labels[d["row"]] = d["label"]
            surv[d["row"]] = d["surv"]
        return labels, surv

    def _mask(self, _: int) -> None:
        from pathlib import Path

        from ..io import atomic_path

        _, surv = self.groups()
        Path(self.mask_to).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.mask_to) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, surv == np.arange(self.n))
