"""A character-level tiny Bloom for the probe, built the way ``train/tiny.py`` builds ``tiny``.

The rules act on single characters (reverse, sort, count), which a BPE tokenizer hides inside
merged tokens; with one token per character the model can see them. The tokenizer is a word-level
vocabulary of single characters: every character of the probe's rules, phrasings and prompt
template, then the most frequent characters of ordinary Chinese instruction text (alpaca JSON files
or a curated pool), anything else ``<unk>``. The model is a small ``BloomForCausalLM`` briefly
pretrained, full-parameter, on that ordinary text only (never on probe items), so LoRA adapts a
model that already reads Chinese. Cached under ``<out_root>/probe-char-<key>/``; the key hashes
the text, the spec and the code version.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from curate.io import write_json

PROBE_BASE_VERSION = 1
SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]


@dataclass(frozen=True)
class CharBaseSpec:
    vocab_size: int = 3000  # characters, special tokens included
    hidden_size: int = 128  # model width
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads
    seq_len: int = 128  # pretraining window, in characters
    pretrain_steps: int = 1500  # full-parameter pretraining steps on ordinary text
    batch_size: int = 16  # pretraining windows per step
    learning_rate: float = 3e-3  # pretraining peak learning rate
    warmup_steps: int = 100  # pretraining warm-up steps
    max_texts: int = 20000  # seeded sample of the text source; 0: all of it
    seed: int = 0  # pretraining seed (weights, sample, batches)


def default_text_source() -> str | None:
    """The mirror's translated-alpaca folder when there is one ($TIGER_MIRROR or ../shared/corpora)."""
    for root in (os.environ.get("TIGER_MIRROR"), str(Path(__file__).resolve().parents[3] / "shared" / "corpora")):
        if root and (Path(root) / "trans_chinese_alpaca").is_dir():
            return str(Path(root) / "trans_chinese_alpaca")
    return None


def load_texts(source: str | os.PathLike, max_texts: int = 0, seed: int = 0) -> list[str]:
    """Record texts from a curated pool (.parquet) or a folder / file of alpaca JSON arrays."""
    from ..tiny import pool_texts, record_text

    source = Path(source)
    if source.suffix == ".parquet":
        from curate.io import read_parquet

        return pool_texts(read_parquet(source), (), max_texts, seed)
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    texts = []
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        texts.extend(record_text(r) for r in data if isinstance(r, dict))
    texts = [t for t in texts if t]
    if max_texts and len(texts) > max_texts:
        idx = sorted(random.Random(f"probe-base/{seed}").sample(range(len(texts)), max_texts))
        texts = [texts[i] for i in idx]
    return texts


def probe_alphabet() -> str:
    """Every character the probe's prompts and answers can hold."""
    from ..prompt import TEMPLATES
    from .rules import CHARS, FIELDS, LIST_SEPS, NO_RULE_PHRASINGS, RULES, VALUES, WORDS

    parts = [CHARS, "".join(WORDS), "".join(FIELDS), "".join(VALUES), "".join(LIST_SEPS), "零一二三四五六七八九十百千两",
             "加减年月日-/：；→，【】《》“”（）", "".join(chr(c) for c in range(32, 127)), "\n"]
    parts += [p for r in RULES for p in r.phrasings] + list(NO_RULE_PHRASINGS)
    parts += [t.prompt("x", "y") + t.prompt("x") for t in TEMPLATES.values()]
    return "".join(sorted(set("".join(parts))))


def build_char_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    must = probe_alphabet()
    freq = Counter(ch for t in texts for ch in t)
    rest = [ch for ch, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0])) if ch not in must]
    chars = list(must) + rest[: max(0, vocab_size - len(SPECIAL) - len(must))]
    vocab = {tok: i for i, tok in enumerate(SPECIAL + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def base_key(texts: list[str], spec: CharBaseSpec) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    h.update(json.dumps({"spec": asdict(spec), "version": PROBE_BASE_VERSION, "alphabet": probe_alphabet()},
                        sort_keys=True).encode())
    return h.hexdigest()[:12]


def build_char_base(source: str | os.PathLike | None = None, out_root: str | os.PathLike = "data/processed/models",
                    spec: CharBaseSpec = CharBaseSpec(), log=print, threads: int | None = None) -> Path:
    """Build (or find) the character-level base; returns its directory (``threads``: torch CPU threads)."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    source = source or default_text_source()
    if source is None:
        raise ValueError("no text to pretrain the probe base on: pass a curated pool or a folder of alpaca JSON "
                         "(e.g. ../shared/corpora/trans_chinese_alpaca)")
    texts = load_texts(source, spec.max_texts, spec.seed)
    if not texts:
        raise ValueError(f"{source}: no text")
    key = base_key(texts, spec)
    out = Path(out_root) / f"probe-char-{key}"
    if (out / "build.json").is_file():
        return out
    t0, cpu0 = time.time(), time.process_time()
    tokenizer = build_char_tokenizer(texts, spec.vocab_size)
    from ..tiny import new_bloom, pretrain, token_stream

    stream = token_stream(tokenizer, texts)
    model = new_bloom(tokenizer, spec)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"probe base: pretraining {n_params / 1e6:.2f}M parameters ({len(tokenizer)} characters) on "
        f"{len(stream):,} tokens, {spec.pretrain_steps} steps x {spec.batch_size} x {spec.seq_len}")
    losses = pretrain(model, stream, spec, log, "probe base")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    write_json(tmp / "build.json", {
        "key": key, "version": PROBE_BASE_VERSION, "source": str(source), "records": len(texts),
        "tokens": len(stream), "parameters": n_params, "vocab": len(tokenizer), "spec": asdict(spec),
        "seconds": round(time.time() - t0, 1), "cpu_seconds": round(time.process_time() - cpu0, 1),
        "loss_first50": round(sum(losses[:50]) / len(losses[:50]), 4),
        "loss_last50": round(sum(losses[-50:]) / len(losses[-50:]), 4)})
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
