"""A mixture in the formats trainers read, beside its alpaca JSON: sharegpt JSON (conversations),
Parquet and a Hugging Face dataset folder (``save_to_disk``) with a dataset card. Every row of these
carries its ``id``, ``source`` and the source's licence, so a blend of licences stays visible.

All of it is deterministic (same rows → same bytes) and written atomically: the dataset folder is
built beside its final place and renamed into it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from . import io
from .records import history_pairs

LANGUAGES = ["zh"]


def source_licenses() -> dict[str, str]:
    """Licence of each registry source, by source name."""
    from .download import load_registry

    return {s.name: s.license for s in load_registry()}


def _prompt(instruction: str, input: str) -> str:
    return f"{instruction}\n\n{input}" if input else instruction


def system_prompt(extra: Any, where: str = "record") -> str:
    """The system prompt a chat source gave (kept in ``extra`` as ``system``), or ""."""
    if extra is None or (isinstance(extra, float) and extra != extra) or extra == "":
        return ""
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where}: extra is not a JSON object ({e})") from None
    if not isinstance(extra, dict):
        raise ValueError(f"{where}: extra is a {type(extra).__name__}, not a JSON object")
    system = extra.get("system", "")
    if not isinstance(system, str):
        raise ValueError(f"{where}: extra.system is a {type(system).__name__}, not text")
    return system


def export_frame(df: pd.DataFrame, licenses: dict[str, str]) -> pd.DataFrame:
    """The columns every export holds: id, source, license, the text fields, history as a list of
    [query, response] pairs, the system prompt ("" when the source gave none), and the task type /
    cluster when the pool has them."""
    out = pd.DataFrame({
        "id": df["id"].astype(str).tolist(),
        "source": df["source"].astype(str).tolist(),
        "license": [licenses.get(s, "unknown") for s in df["source"].astype(str)],
        "instruction": df["instruction"].astype(str).tolist(),
        "input": df["input"].astype(str).tolist(),
        "output": df["output"].astype(str).tolist(),
        "history": [history_pairs(h) for h in df["history"]] if "history" in df.columns else [[] for _ in range(len(df))],
        "system": ([system_prompt(x, f"record {i}") for i, x in zip(df["id"].astype(str), df["extra"])]
                   if "extra" in df.columns else [""] * len(df)),
    })
    for c in ("task_type", "cluster"):
        if c in df.columns:
            out[c] = df[c].tolist()
    return out


def sharegpt_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """sharegpt rows: the system prompt as a first ``system`` turn when there is one, earlier turns,
    then the instruction (+ input) and the output."""
    rows = []
    for r in frame.to_dict("records"):
        conv = [{"from": "system", "value": r["system"]}] if r.get("system") else []
        for q, a in r["history"]:
            conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
        conv += [{"from": "human", "value": _prompt(r["instruction"], r["input"])}, {"from": "gpt", "value": r["output"]}]
        rows.append({"id": r["id"], "source": r["source"], "license": r["license"], "conversations": conv})
    return rows


def dataset_card(name: str, manifest: dict[str, Any], licenses: dict[str, str]) -> str:
    """README.md of the dataset folder: the Hugging Face metadata block, then what is inside and how it was made."""
    comp = manifest.get("composition", {})
    by_source = comp.get("by_source", {})
    used = sorted({licenses.get(s, "unknown") for s in by_source})
    rows = manifest.get("rows", 0)
    size = ("n<1K" if rows < 1_000 else "1K<n<10K" if rows < 10_000 else "10K<n<100K" if rows < 100_000
            else "100K<n<1M" if rows < 1_000_000 else "n>1M")
    meta = ["---", "license: other", f"license_name: {json.dumps('; '.join(used), ensure_ascii=False)}",
            "language:", *[f"- {x}" for x in LANGUAGES], "size_categories:", f"- {size}",
            "task_categories:", "- text-generation", "tags:", "- instruction-tuning", "- sft", "- tiger", "---", ""]
    lines = [f"# {name}", "",
             f"{rows:,} Chinese instruction records chosen by the `{manifest['spec']['strategy']}` strategy "
             f"(seed {manifest['spec']['seed']}) from a pool curated by tiger: parse, normalise (Unicode, "
             f"traditional → simplified), filter (empty, not Chinese), exact and near-duplicate removal, "
             f"task-type labels and clusters.", ""]
    if len(used) > 1:
        lines += [f"**This mixture blends {len(used)} licences; each row's `license` column says which applies.**", ""]
    lines += ["| source | rows | licence |", "|---|---:|---|"]
    lines += [f"| {s} | {n:,} | {licenses.get(s, 'unknown')} |" for s, n in by_source.items()]
    lines += ["", "| task type | rows |", "|---|---:|"]
    lines += [f"| {t} | {n:,} |" for t, n in comp.get("by_task_type", {}).items() if n]
    div = {k: v for k, v in comp.get("diversity", {}).items() if isinstance(v, (int, float))}
    if div:
        lines += ["", "| diversity figure | value |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in div.items()]
    lines += ["", "Files: `data-*.arrow` (this folder, `datasets.load_from_disk`), and beside it "
              f"`{name}.json` (alpaca), `{name}.sharegpt.json`, `{name}.parquet`, `{name}.manifest.json`.", ""]
    return "\n".join(meta + lines)


def _save_to_disk(frame: pd.DataFrame, folder: Path, card: str, fingerprint: str) -> None:
    """``Dataset.save_to_disk`` into ``folder`` atomically, with a fixed fingerprint (datasets draws a
    random one for an in-memory dataset, which would change the bytes of state.json every run)."""
    from datasets import Dataset

    ds = Dataset.from_pandas(frame, preserve_index=False)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        ds.save_to_disk(str(tmp))
        state = json.loads((tmp / "state.json").read_text(encoding="utf-8"))
        state["_fingerprint"] = fingerprint
        (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        (tmp / "README.md").write_text(card, encoding="utf-8")
        io.set_mode(tmp, directory=True)
        for p in tmp.iterdir():
            io.set_mode(p)
        old = folder.with_name(f".{folder.name}.old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_exports(df: pd.DataFrame, name: str, out_dir: Path, manifest: dict[str, Any],
                  licenses: dict[str, str] | None = None) -> dict[str, Any]:
    """Write the sharegpt JSON, the Parquet and the dataset folder of mixture ``name``; returns what
    the mixture manifest records of them (files with sha256, licences per source)."""
    licenses = source_licenses() if licenses is None else licenses
    frame = export_frame(df, licenses)
    sharegpt = io.write_text(out_dir / f"{name}.sharegpt.json",
                             json.dumps(sharegpt_records(frame), ensure_ascii=False, indent=2) + "\n")
    parquet = io.write_parquet(out_dir / f"{name}.parquet", frame)
    card = dataset_card(name, manifest, licenses)
    _save_to_disk(frame, out_dir / name, card, manifest["ids_sha256"][:16])
    used = {s: licenses.get(s, "unknown") for s in manifest.get("composition", {}).get("by_source", {})}
    return {
        "licenses": used,
        "blended_licenses": len(set(used.values())) > 1,
        "exports": {"sharegpt": {"file": sharegpt.name, "sha256": io.sha256_file(sharegpt)},
                    "parquet": {"file": parquet.name, "sha256": io.sha256_file(parquet)},
                    "hf_dataset": {"folder": name, "card": f"{name}/README.md"}},
    }


def sharegpt_dataset_info(name: str) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` entry for the sharegpt file. ``system_tag`` must be named:
    LLaMA-Factory sets every tag a ``tags`` block leaves out to None, and with no system tag a first
    ``system`` turn makes the row malformed (it is dropped)."""
    return {"file_name": f"{name}.sharegpt.json", "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                     "system_tag": "system"}}
