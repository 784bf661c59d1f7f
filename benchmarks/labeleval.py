"""How well the task-type labeller agrees with people: hand-labelled rows, silver labels, figures.

The labelled sets live in ``tests/data/`` and hold only where each row is (source, file, row and
its id) plus its label; the text is read back from the offline mirror here, parsed and normalised
exactly as the pipeline does (so the labeller sees what it sees in production), and the id is
checked so a changed mirror file fails loudly instead of silently scoring other rows.

* ``load_devset``       the hand-labelled development set (``split`` = ``tune`` or ``test`` for mirror
                        rows, ``authored_tune`` or ``authored_test`` for the rows written for it,
                        whose text is in ``tasktype_authored.jsonl``).
* ``load_seed_silver``  BELLE's 175 Chinese seed tasks, labelled from their task *names*
                        (``synonym_generation`` …) mapped by hand to the taxonomy: held-out silver labels.
* ``load_drcd_silver``  DRCD reading-comprehension questions with their paragraph: closed qa by
                        construction (a second held-out check, on a source no rule was written for).
* ``evaluate``          accuracy, macro-F1 over the types present, per-type precision/recall/F1 and
                        the confusion matrix (rows: gold, columns: predicted).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from curate.pipeline import normalize_frame
from curate.records import make_record, records_frame
from curate.tasktype import TASK_TYPES, label_task_type, match_rule

DATA_DIR = Path(__file__).resolve().parent.parent / "tests" / "data"  # the hand labels
DEVSET_CSV = DATA_DIR / "tasktype_devset.csv"
SEED_CSV = DATA_DIR / "seed_task_types.csv"
# Rows written by hand for the labeller (not drawn from the mirror): single-field prompts with inline
# passages, chat turns, short questions, Traditional script. See tests/data/README.md.
AUTHORED_SOURCE = "authored"
AUTHORED_JSONL = DATA_DIR / "tasktype_authored.jsonl"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with Path(path).open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    bad = [(i + 2, r.get("label")) for i, r in enumerate(rows) if r.get("label") not in TASK_TYPES]
    if bad:
        raise ValueError(f"{path}: labels not in the taxonomy at lines {bad[:5]}")
    return rows


def load_authored(path: str | Path = AUTHORED_JSONL) -> list[dict]:
    """The authored rows as records (``history`` kept; ``extra`` holds their ``kind``)."""
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rec = make_record(AUTHORED_SOURCE, Path(path).name, r["row"], r["instruction"], r["input"], "",
                              history=r["history"], extra={"kind": r["kind"]})
            if rec["id"] != r["id"]:
                raise ValueError(f"{path}: row {r['row']} has id {r['id']}, its text hashes to {rec['id']}")
            out.append(rec)
    return out


def load_devset(mirror: str | Path, csv_path: str | Path = DEVSET_CSV, normalize: bool = True) -> pd.DataFrame:
    """The hand-labelled rows with their text: record columns + ``split`` and ``label``."""
    from curate.parse import parse_file

    mirror = Path(mirror)
    wanted = _read_csv(Path(csv_path))
    by_file: dict[tuple[str, str], dict[int, dict]] = {}
    for w in wanted:
        by_file.setdefault((w["source"], w["file"]), {})[int(w["row"])] = w
    records, meta = [], []
    for (source, rel), rows in sorted(by_file.items()):
        if source == AUTHORED_SOURCE:  # written for this set: the text lives next to the labels
            index = {int(r["row"]): r for r in load_authored(Path(csv_path).parent / rel)}
        else:
            index = {int(r["row"]): r for r in parse_file(mirror / source / rel, source, rel).records}
        for row, w in sorted(rows.items()):
            rec = index.get(row)
            if rec is None:
                raise ValueError(f"{csv_path}: {source}/{rel} row {row} is not in the mirror (quarantined or missing)")
            if rec["id"] != w["id"]:
                raise ValueError(f"{csv_path}: {source}/{rel} row {row}: id {rec['id']} in the mirror, "
                                 f"{w['id']} in the labels (the file changed?)")
            records.append(rec)
            meta.append((w.get("split", ""), w["label"]))
    df = records_frame(records)
    if normalize:
        df = normalize_frame(df)
    df["split"] = [m[0] for m in meta]
    df["label"] = [m[1] for m in meta]
    return df


def load_seed_silver(mirror: str | Path, csv_path: str | Path = SEED_CSV, normalize: bool = True) -> pd.DataFrame:
    """BELLE's seed tasks (first instance of each) with the label mapped from the task name."""
    mirror = Path(mirror)
    lines = (mirror / "belle" / "zh_seed_tasks.json").read_text(encoding="utf-8").splitlines()
    records, labels, names = [], [], []
    for w in _read_csv(Path(csv_path)):
        line = int(w["line"])
        r = json.loads(lines[line - 1])
        if r["id"] != w["id"] or r["name"] != w["name"]:
            raise ValueError(f"{csv_path}: zh_seed_tasks.json line {line} is {r['id']}/{r['name']}, "
                             f"labels say {w['id']}/{w['name']}")
        inst = r["instances"][0]
        records.append(make_record("belle", "zh_seed_tasks.json", line - 1, r["instruction"],
                                   inst.get("input", ""), inst.get("output", "")))
        labels.append(w["label"])
        names.append(w["name"])
    df = records_frame(records)
    if normalize:
        df = normalize_frame(df)
    df["label"] = labels
    df["seed_name"] = names
    return df


def load_drcd_silver(mirror: str | Path, exclude_ids: set[str] | None = None, n: int | None = None,
                     seed: int = 0, normalize: bool = True) -> pd.DataFrame:
    """DRCD questions with their paragraph as input, labelled ``closed qa`` (``n`` seeded rows, or all)."""
    from curate.parse import parse_file

    res = parse_file(Path(mirror) / "traditional" / "DRCD_dev.json", "traditional", "DRCD_dev.json")
    df = records_frame(res.records)
    if exclude_ids:
        df = df[~df["id"].isin(exclude_ids)].reset_index(drop=True)
    if n is not None and n < len(df):
        pick = np.sort(np.random.default_rng(seed).choice(len(df), size=n, replace=False))
        df = df.iloc[pick].reset_index(drop=True)
    if normalize:
        df = normalize_frame(df)
    df["label"] = "closed qa"
    return df


def predict(df: pd.DataFrame, labeller: Callable[..., str] = label_task_type) -> list[str]:
    """One label per row: ``labeller(instruction, input, output, history)``."""
    hist = df["history"] if "history" in df.columns else [None] * len(df)
    return [labeller(i, x, o, h) for i, x, o, h in zip(df["instruction"], df["input"], df["output"], hist)]


def evaluate(gold: list[str], pred: list[str], labels: list[str] | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1 (over the types that occur in gold or predictions), per-type figures and
    the confusion matrix (``confusion[g][p]``: rows with gold g predicted as p)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    if len(gold) != len(pred):
        raise ValueError(f"evaluate: {len(gold)} gold labels but {len(pred)} predictions")
    if not gold:
        raise ValueError("evaluate: no rows")
    present = [t for t in (labels or TASK_TYPES) if t in set(gold) | set(pred)]
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=present, zero_division=0)
    cm = confusion_matrix(gold, pred, labels=present)
    return {
        "rows": len(gold),
        "accuracy": round(float(np.mean([a == b for a, b in zip(gold, pred)])), 4),
        "macro_f1": round(float(f1_score(gold, pred, labels=present, average="macro", zero_division=0)), 4),
        "labels": present,
        "per_type": {t: {"precision": round(float(p[i]), 3), "recall": round(float(r[i]), 3),
                         "f1": round(float(f[i]), 3), "support": int(s[i])} for i, t in enumerate(present)},
        "confusion": {g: {q: int(cm[i, j]) for j, q in enumerate(present)} for i, g in enumerate(present)},
    }


_SHORT = {"generation": "gen", "rewrite": "rew", "brainstorming": "brain", "open qa": "openqa",
          "closed qa": "closedqa", "classification": "class", "extract": "extr", "summarization": "summ",
          "math": "math", "code": "code", "other": "other"}


def confusion_markdown(result: dict[str, Any]) -> str:
    """The confusion matrix as a Markdown table (rows: gold, columns: predicted)."""
    labels = result["labels"]
    head = "| gold \\ predicted | " + " | ".join(_SHORT.get(t, t) for t in labels) + " | n | recall |"
    lines = [head, "|---" * (len(labels) + 3) + "|"]
    for g in labels:
        row = result["confusion"][g]
        n = sum(row.values())
        lines.append(f"| {g} | " + " | ".join(str(row[q]) if row[q] else "·" for q in labels)
                     + f" | {n} | {result['per_type'][g]['recall']:.2f} |")
    return "\n".join(lines)


def misses(df: pd.DataFrame, pred: list[str], n: int = 50) -> list[dict[str, str]]:
    """Rows where the labeller disagrees with the gold label (for reading while tuning), with the rule
    that decided (``rule``), so misses can be counted by the rule that made them."""
    out = []
    for (_, r), p in zip(df.iterrows(), pred):
        if r["label"] != p and len(out) < n:
            out.append({"gold": r["label"], "pred": p, "rule": match_rule(r["instruction"], r["input"], r["output"], r.get("history"))[1],
                        "file": f"{r['source']}/{r['file']}:{r['row']}",
                        "instruction": r["instruction"][:120], "input": r["input"][:60]})
    return out


RULE_PRECISION_SPLITS = ("tune", "authored_tune")


def rule_precision_table(dev: pd.DataFrame, splits: tuple[str, ...] = RULE_PRECISION_SPLITS) -> dict[str, Any]:
    """How often each rule is right on the hand-labelled tuning rows: ``{"splits", "rules": {rule: {rows,
    correct}}}`` — the rules' confidences (``curate.tasktype_model.rule_confidence``). Only tuning
    splits: the test splits stay a check of the labels, confidences included."""
    out: dict[str, dict[str, int]] = {}
    part = dev[dev["split"].isin(splits)]
    for ins, inp, o, h, gold in zip(part["instruction"], part["input"], part["output"], part["history"], part["label"]):
        lab, rule = match_rule(ins, inp, o, h)
        r = out.setdefault(rule, {"rows": 0, "correct": 0})
        r["rows"] += 1
        r["correct"] += int(lab == gold)
    return {"splits": list(splits), "rules": dict(sorted(out.items()))}


def model_training_rows(splits: tuple[str, ...] = ("authored_tune",)) -> list[dict]:
    """The hand-labelled rows the task-type model trains on, as ``curate/tasktype_train.jsonl`` holds them."""
    with DEVSET_CSV.open(encoding="utf-8", newline="") as f:
        labels = {r["id"]: r["label"] for r in csv.DictReader(f) if r["split"] in splits}
    out = []
    with AUTHORED_JSONL.open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["id"] in labels:
                out.append({"instruction": r["instruction"], "input": r["input"], "history": r["history"],
                            "label": labels[r["id"]]})
    return out


def model_training_text() -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in model_training_rows())


if __name__ == "__main__":  # python benchmarks/labeleval.py MIRROR: rewrite curate/rule_precision.json
    import sys

    from curate.tasktype_model import TRAIN_JSONL

    TRAIN_JSONL.write_text(model_training_text(), encoding="utf-8")  # and the model's training rows

    from curate.tasktype_model import RULE_PRECISION_JSON

    table = rule_precision_table(load_devset(sys.argv[1] if len(sys.argv) > 1 else DATA_DIR.parent.parent.parent / "shared" / "corpora"))
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in table["rules"].items()]
    RULE_PRECISION_JSON.write_text('{"splits": ' + json.dumps(table["splits"]) + ', "rules": {\n' + ",\n".join(lines) + "\n}}\n",
                                   encoding="utf-8")
    print(f"{RULE_PRECISION_JSON}: {len(table['rules'])} rules")
