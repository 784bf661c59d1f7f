"""The offline base model ``tiny``: a byte-level BPE tokenizer and a small Bloom, both trained here.

No machine in this project can download weights, so LoRA needs a base it can build: a tokenizer
trained on the pool's text and a few-million-parameter ``BloomForCausalLM`` briefly pretrained,
full-parameter, on the same text, so that the adapters adapt a model that already knows some
Chinese. The result is saved with ``save_pretrained`` under ``<out_root>/tiny-<key>/``, where the
key hashes every input (pool bytes, excluded ids, spec, code version): the same inputs find the
finished model and build nothing.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

from curate.io import read_parquet, sha256_file, write_json

# Bump when the build changes in a way that changes the weights.
TINY_VERSION = 1
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]


@dataclass(frozen=True)
class TinySpec:
    vocab_size: int = 6000  # covers the common Chinese characters plus frequent merges (~1.6 chars/token)
    hidden_size: int = 256
    n_layer: int = 4
    n_head: int = 4  # ~4.6M parameters with the tied embedding
    seq_len: int = 128  # pretraining window
    pretrain_steps: int = 500
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 50
    seed: int = 0
    max_texts: int = 0  # 0: every record of the pool; else a seeded sample of that many


def record_text(rec: dict) -> str:
    """Plain text of a record for pretraining: earlier turns, then instruction, input and output."""
    parts = []
    hist = rec.get("history") or "[]"
    for turn in (json.loads(hist) if isinstance(hist, str) else hist):
        parts.extend(str(x) for x in turn if x)
    parts.extend(rec.get(c, "") for c in ("instruction", "input", "output"))
    return "\n".join(p for p in parts if p)


def pool_texts(pool: pd.DataFrame, exclude_ids: Iterable[str] = (), max_texts: int = 0, seed: int = 0) -> list[str]:
    excl = set(exclude_ids)
    df = pool[~pool["id"].isin(excl)] if excl else pool
    if max_texts and len(df) > max_texts:
        df = df.sample(n=max_texts, random_state=seed).sort_index()
    return [record_text(r) for r in df.to_dict("records")]


def tiny_key(pool_path: str | os.PathLike, spec: TinySpec, exclude_ids: Iterable[str] = ()) -> str:
    h = hashlib.sha256()
    h.update(sha256_file(pool_path).encode())
    h.update("\n".join(sorted(set(exclude_ids))).encode())
    h.update(json.dumps({"spec": asdict(spec), "version": TINY_VERSION}, sort_keys=True).encode())
    return h.hexdigest()[:12]


def train_tokenizer(texts: list[str], vocab_size: int):
    """Byte-level BPE with no normalizer: NFKC would turn Chinese full-width punctuation (，。：) into ASCII."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from .prompt import TEMPLATES

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # The templates' fixed text goes in too (weighted like a few hundred records) so their
    # headers become a handful of tokens instead of dozens.
    template_text = [t.prompt("", "x") + t.prompt("") for t in TEMPLATES.values()] * 200
    tok.train_from_iterator(list(texts) + template_text, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def build_tiny(pool_path: str | os.PathLike, out_root: str | os.PathLike = "data/processed/models",
               spec: TinySpec = TinySpec(), exclude_ids: Iterable[str] = (), log=print) -> Path:
    """Build (or find) the tiny base for ``pool_path``; returns its directory."""
    exclude_ids = sorted(set(exclude_ids))
    key = tiny_key(pool_path, spec, exclude_ids)
    out = Path(out_root) / f"tiny-{key}"
    if (out / "build.json").is_file():
        return out
    t0, cpu0 = time.time(), time.process_time()
    texts = pool_texts(read_parquet(pool_path), exclude_ids, spec.max_texts, spec.seed)
    if not texts:
        raise ValueError(f"{pool_path}: no text to build the tiny base from")
    log(f"tiny: training a {spec.vocab_size}-token byte-level BPE on {len(texts):,} records")
    tokenizer = train_tokenizer(texts, spec.vocab_size)

    stream = token_stream(tokenizer, texts)
    if len(stream) <= spec.seq_len + 1:
        raise ValueError(f"{pool_path}: only {len(stream)} tokens, fewer than one {spec.seq_len}-token window")

    model = new_bloom(tokenizer, spec)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"tiny: pretraining {n_params / 1e6:.1f}M parameters on {len(stream):,} tokens, "
        f"{spec.pretrain_steps} steps x {spec.batch_size} x {spec.seq_len}")
    losses = pretrain(model, stream, spec, log, "tiny")

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)  # safetensors
    tokenizer.save_pretrained(tmp)
    write_json(tmp / "build.json", {
        "key": key, "version": TINY_VERSION, "pool": str(pool_path), "pool_sha256": sha256_file(pool_path),
        "excluded_ids": len(exclude_ids), "records": len(texts), "tokens": len(stream),
        "parameters": n_params, "spec": asdict(spec), "seconds": round(time.time() - t0, 1), "cpu_seconds": round(time.process_time() - cpu0, 1),
        "loss_first50": round(sum(losses[:50]) / len(losses[:50]), 4),
        "loss_last50": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "loss_every50": [round(sum(losses[i:i + 50]) / len(losses[i:i + 50]), 4) for i in range(0, len(losses), 50)],
    })
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def token_stream(tokenizer, texts: list[str]):
    """One stream of token ids, records separated by EOS; pretraining draws windows from it at random."""
    import torch

    ids: list[int] = []
    for row in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(row)
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)


def new_bloom(tokenizer, spec):
    """A freshly initialised (seeded) small Bloom for ``tokenizer``: ``spec`` gives its size and seed."""
    import torch
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(spec.seed)
    config = BloomConfig(vocab_size=len(tokenizer), hidden_size=spec.hidden_size, n_layer=spec.n_layer,
                         n_head=spec.n_head, hidden_dropout=0.0, attention_dropout=0.0,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    return BloomForCausalLM(config)


def pretrain(model, stream, spec, log, name: str) -> list[float]:
    """Causal-LM pretraining of ``model`` on seeded random ``spec.seq_len``-token windows of ``stream``:
    AdamW, linear warm-up then cosine decay to 10 %, gradients clipped at 1; returns the losses.
    ``spec`` has learning_rate, warmup_steps, pretrain_steps, batch_size, seq_len and seed."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < spec.warmup_steps:
            return (step + 1) / spec.warmup_steps
        p = (step - spec.warmup_steps) / max(1, spec.pretrain_steps - spec.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(spec.seed)
    model.train()
    losses = []
    for step in range(spec.pretrain_steps):
        starts = torch.randint(0, len(stream) - spec.seq_len, (spec.batch_size,), generator=gen)
        batch = torch.stack([stream[s: s + spec.seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == spec.pretrain_steps:
            log(f"{name}: step {step + 1}/{spec.pretrain_steps} loss {sum(losses[-50:]) / len(losses[-50:]):.3f}")
    return losses
