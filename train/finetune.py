"""LoRA fine-tune of a Bloom-architecture model on one mixture, in the spirit of alpaca-lora's finetune.py.

``finetune(mixture_path, output_dir, ...)`` reads top to bottom: every hyper-parameter is an
argument with its default; the data is tokenised with the chosen template (prompt tokens masked
out of the loss unless ``train_on_inputs``); the Trainer's loss is the chosen constraint arm's;
every ``save_steps`` a checkpoint (safetensors adapter + optimizer state) is written and the eval
figures are computed; a run that finds checkpoints in ``output_dir`` resumes from the last one.

Outputs in ``output_dir``: ``checkpoint-<step>/`` (adapter + eval.json), ``metrics.jsonl`` (one
line of eval figures per checkpoint), ``train_log.jsonl`` (training loss and its parts),
``generations.jsonl``, ``adapter/`` (the final adapter) and ``summary.json`` (config + final figures).
"""
from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from curate.io import read_json, sha256_file, write_json

from .checks import TrainInputError, check_base_model, check_rows
from .constraints import adapter_delta_norm, build_constraint, response_ce
from .evaluate import FIXED_PROMPTS, generate, item_losses, loss_by_type, pad_batch, repetition_metrics
from .prompt import get_template, tokenize_example

# Arguments that change how a run is carried out or logged, not what it learns.
_NOT_SETTINGS = {"output_dir", "resume", "log_every", "threads", "eval_batch_size"}


def settings_conflicts(output_dir: str | os.PathLike, settings: dict[str, Any], partial: bool = False) -> list[str]:
    """The settings in which ``settings`` differ from the run already in ``output_dir`` (``partial``:
    only the keys given). None when the folder holds no run, or one that never trained (no
    checkpoint, no summary): such a folder is free, so a corrected mistake is not refused."""
    output_dir = Path(output_dir)
    if not (output_dir / "run_config.json").is_file():
        return []
    if not any(output_dir.glob("checkpoint-*")) and not (output_dir / "summary.json").is_file():
        return []
    old = read_json(output_dir / "run_config.json")
    keys = set(settings) & set(old) if partial else set(old) | set(settings)
    return sorted(k for k in keys if k not in _NOT_SETTINGS and old.get(k) != settings.get(k))


def conflict_error(output_dir: str | os.PathLike, diff: list[str]) -> TrainInputError:
    return TrainInputError(f"{output_dir} holds a run with other settings ({', '.join(diff)}); pass another "
                           f"--output-dir, or delete that folder to start over")


def load_alpaca_json(path: str | os.PathLike) -> list[dict]:
    """An alpaca JSON array; every item needs string ``instruction`` and ``output`` (``input`` optional)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON array of alpaca records, got {type(data).__name__}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: row {i} is {type(rec).__name__}, not an object")
        for key in ("instruction", "output"):
            if not isinstance(rec.get(key), str):
                raise ValueError(f"{path}: row {i} has no string {key!r}")
        if not isinstance(rec.get("input", ""), str):
            raise ValueError(f"{path}: row {i} has a non-string 'input'")
    return data


def finetune(
    mixture_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    base_model: str = "tiny",  # any AutoModelForCausalLM name or folder; "tiny": build it first (train.tiny)
    eval_path: str | os.PathLike | None = None,  # alpaca JSON with task_type: per-type loss at checkpoints
    # LoRA
    lora_r: int = 8,
    lora_alpha: int = 16,
    lora_dropout: float = 0.05,
    target_modules: tuple[str, ...] = ("query_key_value",),
    # data
    template: str = "alpaca_zh",  # or "alpaca" (English)
    cutoff_len: int = 256,
    train_on_inputs: bool = False,
    response_logits_only: bool = False,  # the output head only where the loss is taken (same loss, less compute)
    # optimisation
    learning_rate: float = 3e-4,
    max_steps: int = 150,  # > 0: this many optimizer steps; 0: num_epochs passes over the mixture
    response_token_budget: int = 0,  # > 0: steps follow from it (matched budgets), overriding max_steps
    num_epochs: float = 1.0,
    micro_batch_size: int = 8,
    gradient_accumulation_steps: int = 1,
    warmup_steps: int = 10,
    weight_decay: float = 0.0,
    # constraint arm
    constraint: str = "none",  # none | gravity | kl
    gravity_weights: tuple[float, float] = (0.7, 0.3),  # (cross-entropy, mean LoRA Frobenius norm)
    kl_coef: float = 1.0,
    # checkpoints and evaluation
    save_steps: int = 75,  # a checkpoint (and an evaluation) every this many steps, and at the end
    save_total_limit: int | None = None,
    gen_max_new_tokens: int = 48,
    eval_batch_size: int = 16,
    eval_generate: bool = False,  # at the end: greedy answers to every eval item, exact match and chrF
    # run
    seed: int = 42,
    device: str = "cpu",  # or "cuda" (bf16 when the card supports it)
    threads: int | None = None,  # torch CPU threads; None: all cores
    resume: bool = True,
    log_every: int = 10,
    callbacks: list | None = None,  # extra TrainerCallbacks (tests use one to stop a run)
) -> dict[str, Any]:
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    output_dir = Path(output_dir)
    if Path(base_model).is_dir():  # a local model: one folder, however it was named (relative or absolute)
        base_model = str(Path(base_model).resolve())
    config = {k: (list(v) if isinstance(v, tuple) else (str(v) if isinstance(v, Path) else v))
              for k, v in locals().items()
              if k in finetune.__code__.co_varnames[: finetune.__code__.co_argcount] and k != "callbacks"}
    config["mixture_sha256"] = sha256_file(mixture_path)
    config["eval_sha256"] = sha256_file(eval_path) if eval_path else None
    # Inputs first: a mistake must not cost a model load (or a tiny build) to be found.
    check_base_model(base_model)
    check_rows(load_alpaca_json(mixture_path), str(mixture_path))
    # A folder is one run: resuming or reusing it under other settings would mix two experiments.
    if resume and (output_dir / "run_config.json").is_file():
        diff = settings_conflicts(output_dir, config)
        if diff:
            raise conflict_error(output_dir, diff)
        if (output_dir / "summary.json").is_file():
            return read_json(output_dir / "summary.json")  # finished earlier with these settings
    output_dir.mkdir(parents=True, exist_ok=True)
    if device == "cpu":
        torch.set_num_threads(threads or os.cpu_count() or 1)
    elif device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for but torch sees no CUDA device")
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    transformers.set_seed(seed)
    t_start, cpu_start = time.time(), time.process_time()

    # ---- model and tokenizer ----
    if base_model == "tiny":  # the CLI and the experiment build the tiny base and pass its folder
        raise ValueError("base_model 'tiny' names the project's tiny base: build it with train.tiny.build_tiny "
                         "(or `tiger build-tiny`) and pass its folder")
    base_path = base_model
    config["base_model_path"] = base_path
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    # only now: a folder whose model never loaded holds no settings that would refuse a corrected rerun
    write_json(output_dir / "run_config.json", {k: v for k, v in config.items() if k != "base_model_path"})
    lora = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                      target_modules=list(target_modules), bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    if device == "cuda":
        model.to("cuda")

    # ---- data ----
    tmpl = get_template(template)
    records = load_alpaca_json(mixture_path)
    train_data = [tokenize_example(tokenizer, tmpl, r, cutoff_len, train_on_inputs) for r in records]
    eval_records = load_alpaca_json(eval_path) if eval_path else []
    if response_token_budget > 0:  # every arm sees the same number of response tokens, in expectation
        max_steps = steps_for_budget(train_data, response_token_budget, micro_batch_size * gradient_accumulation_steps)

    # ---- evaluation at every checkpoint ----
    scored: dict[int, list] = {}  # the eval items' losses at the last step evaluated in this process

    def evaluate_now(step: int) -> dict:
        t0 = time.time()
        row: dict[str, Any] = {"step": step}
        if eval_records:
            scored.clear()
            scored[step] = item_losses(model, tokenizer, tmpl, eval_records, cutoff_len, eval_batch_size)
            ev = loss_by_type(eval_records, scored[step])
            row.update(eval_loss=ev["loss"], eval_ppl=ev["ppl"], eval_loss_micro=ev["loss_micro"],
                       by_type=ev["by_type"])
        gens = generate(model, tokenizer, tmpl, FIXED_PROMPTS, gen_max_new_tokens, cutoff_len, eval_batch_size)
        row.update(repetition_metrics(gens))
        row["eval_seconds"] = round(time.time() - t0, 2)
        with open(output_dir / "generations.jsonl", "a", encoding="utf-8") as f:
            for p, g in zip(FIXED_PROMPTS, gens):
                f.write(json.dumps({"step": step, "instruction": p["instruction"], "generation": g},
                                   ensure_ascii=False) + "\n")
        with open(output_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return row

    class CheckpointEval(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            row = evaluate_now(state.global_step)
            write_json(output_dir / f"checkpoint-{state.global_step}" / "eval.json", row)

        def on_log(self, args, state, control, logs=None, **kw):
            with open(output_dir / "train_log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.global_step, **(logs or {})}) + "\n")

    # ---- the loss: cross-entropy plus the constraint arm ----
    arm = build_constraint(constraint, gravity_weights, kl_coef)

    class ConstrainedTrainer(Trainer):
        loss_is_scaled_for_ga = False  # our loss is a per-micro-batch mean; the Trainer divides by GA

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.tokens_seen = 0
            self.response_tokens_seen = 0
            self._parts: dict[str, list[float]] = {}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if response_logits_only and not train_on_inputs:
                ce, logits = response_ce(self.accelerator.unwrap_model(model), inputs)
                outputs = SimpleNamespace(loss=ce, logits=logits)  # logits at the labelled positions only
            else:
                outputs = model(**inputs)  # labels in inputs: outputs.loss is the mean response-token CE
            loss, parts = arm(self.accelerator.unwrap_model(model), inputs, outputs, outputs.loss)
            if model.training:
                self.tokens_seen += int(inputs["attention_mask"].sum())
                self.response_tokens_seen += int((inputs["labels"][:, 1:] != -100).sum())
                for k, v in parts.items():
                    self._parts.setdefault(k, []).append(v)
            return (loss, outputs) if return_outputs else loss

        def log(self, logs, *args, **kwargs):
            for k, v in self._parts.items():
                logs[k] = sum(v) / len(v)
            self._parts = {}
            super().log(logs, *args, **kwargs)

    args = TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=micro_batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        max_steps=max_steps if max_steps > 0 else -1,
        num_train_epochs=num_epochs,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        lr_scheduler_type="linear",
        logging_steps=log_every,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        eval_strategy="no",  # our callback evaluates at each checkpoint, per task type
        **_length_grouping(TrainingArguments),  # less padding: CPU time is the budget
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        bf16=bf16,
        report_to="none",
        dataloader_pin_memory=device == "cuda",
        disable_tqdm=not sys.stderr.isatty(),
    )
    trainer = ConstrainedTrainer(model=model, args=args, train_dataset=train_data,
                                 data_collator=lambda feats: pad_batch(feats, tokenizer.pad_token_id),
                                 callbacks=[CheckpointEval(), *(callbacks or [])])

    last = get_last_checkpoint(str(output_dir)) if resume and output_dir.is_dir() else None
    if last is None:  # a fresh start: no figures from an earlier, different run may linger
        for name in ("metrics.jsonl", "train_log.jsonl", "generations.jsonl"):
            (output_dir / name).unlink(missing_ok=True)
    t_train = time.time()
    result = trainer.train(resume_from_checkpoint=last)
    train_seconds = time.time() - t_train

    # ---- final adapter and summary ----
    model.save_pretrained(output_dir / "adapter")  # adapter_model.safetensors + adapter_config.json
    metrics = read_metrics(output_dir)
    final = metrics[-1] if metrics else evaluate_now(trainer.state.global_step)
    if eval_generate and eval_records:
        from curate.io import write_parquet

        write_parquet(output_dir / "eval_items.parquet",
                      score_items(model, tokenizer, tmpl, eval_records, cutoff_len, gen_max_new_tokens, eval_batch_size,
                                  losses=scored.get(trainer.state.global_step)))  # the final checkpoint's, if scored here
    train_losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    summary = {
        "config": config,
        "resumed_from": last,
        "steps": trainer.state.global_step,
        "examples": len(train_data),
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": train_losses[-1] if train_losses else None,
        "train_loss_mean": float(result.training_loss),
        "final": final,
        # how far the adapters move the base at the end (0: the adapted model is the base)
        "adapter_delta_norm": adapter_delta_norm(model),
        "tokens_seen": trainer.tokens_seen,
        "response_tokens_seen": trainer.response_tokens_seen,
        "max_steps": max_steps,
        "train_seconds": round(train_seconds, 2),
        "tokens_per_second": round(trainer.tokens_seen / train_seconds, 1) if train_seconds > 0 else None,
        "peak_memory_mb": round(peak_mb, 1),
        "seconds": round(time.time() - t_start, 2),
        # CPU time of this process: on a shared machine, wall time / threads understates idle speed
        "cpu_seconds": round(time.process_time() - cpu_start, 2),
    }
    write_json(output_dir / "summary.json", summary)
    return summary


def steps_for_budget(train_data: list[dict], budget: int, batch: int) -> int:
    """Optimizer steps whose expected response tokens (a random batch of ``batch`` examples) reach ``budget``."""
    per_example = sum(sum(1 for x in f["labels"][1:] if x != -100) for f in train_data) / max(len(train_data), 1)
    if per_example <= 0:
        raise TrainInputError("no response tokens in the mixture: nothing to train on")
    return max(1, math.ceil(budget / (per_example * batch)))


def score_items(model, tokenizer, tmpl, records: list[dict], cutoff_len: int, max_new_tokens: int,
                batch_size: int, losses: list[tuple[float, int]] | None = None):
    """One row per eval item: its loss and response tokens, the greedy answer, exact match (checkable
    task types only) and chrF. ``losses``: the items' ``item_losses`` on this model, when known."""
    import pandas as pd

    from .evaluate import CHECKABLE_TYPES, chrf, exact_match

    if losses is None:
        losses = item_losses(model, tokenizer, tmpl, records, cutoff_len, batch_size)
    gens = generate(model, tokenizer, tmpl, records, max_new_tokens, cutoff_len, batch_size)
    rows = []
    for i, (r, (nll, n), g) in enumerate(zip(records, losses, gens)):
        t = r.get("task_type", "all")
        rows.append({"item": i, "id": r.get("id", str(i)), "task_type": t, "nll": nll, "tokens": n,
                     "loss": nll / n if n else float("nan"), "generation": g,
                     "exact": float(exact_match(g, r["output"], t)) if t in CHECKABLE_TYPES else float("nan"),
                     "chrf": chrf(g, r["output"])})
    return pd.DataFrame(rows)


def _length_grouping(training_args_cls) -> dict:
    """Batches of similar length; the argument's name changed within transformers 5."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(training_args_cls)}
    if "train_sampling_strategy" in names:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True} if "group_by_length" in names else {}


def read_metrics(output_dir: str | os.PathLike) -> list[dict]:
    """The eval rows of a run, one per step (a step evaluated twice, after a resume, keeps its last)."""
    path = Path(output_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows: dict[int, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            rows[int(r["step"])] = r
    return [rows[k] for k in sorted(rows)]


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
