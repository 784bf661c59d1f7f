"""Load every mixture of a tiger run with LLaMA-Factory's own dataset loader and check what it reads.

    python benchmarks/lf_load_mixtures.py RUN_OR_MIXTURES_DIR [--tokenizer DIR] [--template default]

Run it in an environment that has both ``tiger`` and ``llamafactory`` (benchmarks/coinstall_llamafactory.sh
makes one and calls this). For every mixture (``<name>.manifest.json``) and every entry of the folder's
``dataset_info.json`` that points at one of its files (alpaca ``<name>.json``, sharegpt
``<name>.sharegpt.json``), it goes through LLaMA-Factory's data path as ``llamafactory-cli train`` does:

1. ``get_dataset_list`` + ``_load_single_dataset`` (dataset_info entry → ``load_dataset`` → the
   alpaca/sharegpt converter): the aligned rows must number the mixture's rows, and every row's
   ``_prompt`` / ``_response`` / ``_system`` must hold that row's history, instruction, input, output
   and system prompt (compared with the mixture's Parquet, row by row); a row LLaMA-Factory found malformed (it empties
   ``_prompt`` and ``_response`` and later drops it) is a failure naming the row and its id;
2. ``get_dataset(stage="sft")`` with a tokenizer loaded by LLaMA-Factory's ``load_tokenizer`` and
   its template: the tokenized training set must keep every row, each with input ids and at least
   one label token.

One line per mixture × format (OK or FAIL, rows), exit status 1 on any failure, 2 on a usage error.
No network: the tokenizer is a local folder (``--tokenizer``; e.g. a tiny base tiger built under
``data/processed/models/``) or, by default, a byte-level BPE trained here on the mixtures' own text
with ``train.tiny.train_tokenizer``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("LLAMAFACTORY_VERBOSITY", "ERROR")  # read when llamafactory is imported
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

IGNORE_INDEX = -100


def mixtures_dir(path: Path) -> Path:
    """The folder holding ``dataset_info.json``: ``path`` itself or its ``mixtures/``."""
    for d in (path, path / "mixtures"):
        if (d / "dataset_info.json").is_file():
            return d
    raise SystemExit(f"error: {path}: no dataset_info.json here or in {path / 'mixtures'} "
                     "(give a run folder data/processed/run-* or its mixtures/ folder)")


def entries(mix_dir: Path) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(mixture, format, dataset_info name, manifest) for every dataset_info entry of a mixture, and a
    FAIL-worthy entry (format "missing") for a mixture with no alpaca or no sharegpt entry."""
    info = json.loads((mix_dir / "dataset_info.json").read_text(encoding="utf-8"))
    manifests = {}
    for p in sorted(mix_dir.glob("*.manifest.json")):
        m = json.loads(p.read_text(encoding="utf-8"))
        manifests[m["name"]] = m
    if not manifests:
        raise SystemExit(f"error: {mix_dir}: no <name>.manifest.json, so no mixture to check")
    by_file = {f"{n}.json": (n, "alpaca") for n in manifests} | {f"{n}.sharegpt.json": (n, "sharegpt") for n in manifests}
    out, seen = [], set()
    for key, attr in sorted(info.items()):
        hit = by_file.get(attr.get("file_name", ""))
        if hit is None:
            continue  # an entry of the user's own, not a mixture file
        out.append((hit[0], hit[1], key, manifests[hit[0]]))
        seen.add(hit)
    for n in manifests:
        for fmt in ("alpaca", "sharegpt"):
            if (n, fmt) not in seen:
                out.append((n, fmt, "", manifests[n]))
    return sorted(out, key=lambda e: (e[0], e[1]))


def expected_rows(mix_dir: Path, name: str) -> list[dict[str, Any]]:
    """The mixture's rows as tiger wrote them (its Parquet export), in file order."""
    import pyarrow.parquet as pq

    path = mix_dir / f"{name}.parquet"
    cols = ["id", "instruction", "input", "output", "history"]
    return pq.read_table(path, columns=cols + (["system"] if "system" in pq.read_schema(path).names else [])).to_pylist()


def check_aligned(aligned, want: list[dict[str, Any]]) -> str | None:
    """First disagreement between LLaMA-Factory's aligned rows and tiger's rows, or None."""
    if len(aligned) != len(want):
        return f"{len(aligned)} rows loaded, the mixture has {len(want)}"
    for i, (got, w) in enumerate(zip(aligned.select_columns(["_prompt", "_response", "_system"]), want)):
        where = f"row {i} (id {w['id']})"
        prompt, response = got["_prompt"], got["_response"]
        if not prompt or not response:
            return f"{where}: LLaMA-Factory found it malformed (empty _prompt/_response; it would drop it)"
        hist = w["history"] or []
        if len(prompt) != 2 * len(hist) + 1 or len(response) != 1:
            return f"{where}: {len(prompt)} prompt turns and {len(response)} responses, want {2 * len(hist) + 1} and 1"
        for k, (q, a) in enumerate(hist):
            if (prompt[2 * k]["role"], prompt[2 * k]["content"], prompt[2 * k + 1]["role"], prompt[2 * k + 1]["content"]) != ("user", q, "assistant", a):
                return f"{where}: history turn {k} differs"
        last = prompt[-1]
        if last["role"] != "user" or not last["content"].startswith(w["instruction"]) or not last["content"].endswith(w["input"]):
            return f"{where}: last prompt turn {last['content'][:60]!r} does not hold the instruction and input"
        if response[0]["role"] != "assistant" or response[0]["content"] != w["output"]:
            return f"{where}: response {response[0]['content'][:60]!r} is not the output"
        if (got["_system"] or "") != (w.get("system") or ""):
            return f"{where}: system prompt {got['_system']!r}, the mixture has {w.get('system')!r}"
    return None


def check_tokenized(train, n: int) -> str | None:
    if len(train) != n:
        return f"{len(train)} rows after tokenization, want {n}"
    for i, (ids, labels) in enumerate(zip(train["input_ids"], train["labels"])):
        if not ids or all(t == IGNORE_INDEX for t in labels):
            return f"tokenized row {i}: {len(ids)} input ids, no label token"
    return None


def train_tokenizer_from(mix_dir: Path, names: list[str], out: Path) -> Path:
    """A byte-level BPE (tiger's tiny-base recipe) trained on up to 2,000 rows of each mixture, saved to ``out``."""
    from train.tiny import train_tokenizer

    texts = []
    for n in names:
        for r in expected_rows(mix_dir, n)[:2000]:
            texts.append("\n".join([*(x for qa in (r["history"] or []) for x in qa), r["instruction"], r["input"], r["output"]]))
    train_tokenizer(texts, vocab_size=4000).save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path, help="a run folder (data/processed/run-*) or its mixtures/ folder")
    ap.add_argument("--tokenizer", type=Path, help="a local tokenizer folder (default: train one on the mixtures)")
    ap.add_argument("--template", default="default", help="LLaMA-Factory template (default: default)")
    ap.add_argument("--cutoff-len", type=int, default=1024)
    args = ap.parse_args(argv)

    import datasets
    from importlib.metadata import version
    from transformers import Seq2SeqTrainingArguments

    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.data.loader import _load_single_dataset, get_dataset
    from llamafactory.data.parser import get_dataset_list
    from llamafactory.hparams import DataArguments, ModelArguments
    from llamafactory.model import load_tokenizer

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    mix_dir = mixtures_dir(args.path.resolve())
    todo = entries(mix_dir)
    print(f"llamafactory {version('llamafactory')}, transformers {version('transformers')}, "
          f"datasets {version('datasets')}, torch {version('torch')}; {mix_dir}")
    work = Path(tempfile.mkdtemp(prefix="tiger-lf-load."))
    failures = 0
    try:
        tok_dir = args.tokenizer or train_tokenizer_from(mix_dir, sorted({e[0] for e in todo}), work / "tokenizer")
        model_args = ModelArguments(model_name_or_path=str(tok_dir), cache_dir=str(work / "hf-cache"))
        tokenizer = load_tokenizer(model_args)["tokenizer"]
        training_args = Seq2SeqTrainingArguments(output_dir=str(work / "out"), do_train=True, report_to=[])
        for name, fmt, key, manifest in todo:
            label = f"{name} {fmt}"
            if not key:
                print(f"FAIL {label}: no entry in dataset_info.json points at its file")
                failures += 1
                continue
            data_args = DataArguments(dataset=key, dataset_dir=str(mix_dir), template=args.template,
                                      cutoff_len=args.cutoff_len, overwrite_cache=True)
            template = get_template_and_fix_tokenizer(tokenizer, data_args)
            try:
                want = expected_rows(mix_dir, name)
                attr = get_dataset_list([key], str(mix_dir))[0]
                problem = None if len(want) == manifest["rows"] else \
                    f"{name}.parquet has {len(want)} rows, its manifest says {manifest['rows']}"
                if problem is None:
                    aligned = _load_single_dataset(attr, model_args, data_args, training_args)
                    problem = check_aligned(aligned, want)
                if problem is None:
                    with contextlib.redirect_stdout(io.StringIO()):  # get_dataset prints one decoded example
                        module = get_dataset(template, model_args, data_args, training_args, stage="sft", tokenizer=tokenizer)
                    problem = check_tokenized(module["train_dataset"], len(want))
            except Exception as e:  # a loader error is this entry's failure, not the end of the check
                problem = f"{type(e).__name__}: {e}"
            if problem:
                failures += 1
                print(f"FAIL {label} [{key}, {attr_file(mix_dir, key)}]: {problem}")
            else:
                print(f"OK   {label:28s} {len(want):>6,} rows  (dataset_info '{key}', converted + tokenized, "
                      f"row count and every row's prompt/response match)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(todo) - failures} of {len(todo)} mixture x format loads OK")
    return 1 if failures else 0


def attr_file(mix_dir: Path, key: str) -> str:
    info = json.loads((mix_dir / "dataset_info.json").read_text(encoding="utf-8"))
    return str(mix_dir / info.get(key, {}).get("file_name", "?"))


if __name__ == "__main__":
    sys.exit(main())
