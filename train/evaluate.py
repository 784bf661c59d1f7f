"""Evaluation: a held-out set balanced over task types, loss and perplexity per task type, and
repetition figures of greedy generations for a fixed prompt set.

The eval set is drawn from the curated pool. Before any mixture is built, the eval items and their
near-duplicates (same id, same text, or MinHash Jaccard over character 5-grams above a threshold)
are taken out of the pool (and their prompt twins: ``remove_eval_items``), and every mixture is checked
again by an independent exact method (``check_decontaminated``).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from curate.records import content_hash

from .prompt import IGNORE_INDEX, Template, encode_prompt, tokenize_example

# A fixed prompt set for the generation figures: one per task type, none taken from the corpora.
FIXED_PROMPTS: list[dict[str, str]] = [
    {"instruction": "写一首关于秋天的短诗。", "input": ""},
    {"instruction": "把下面的句子改写得更正式一些。", "input": "这个东西挺好用的，大家都喜欢。"},
    {"instruction": "列出五种保持健康的方法。", "input": ""},
    {"instruction": "为什么天空是蓝色的？", "input": ""},
    {"instruction": "根据下面的短文回答：小明几点出门？", "input": "小明早上七点起床，吃完早饭后八点出门去上学。"},
    {"instruction": "判断下面这句话的情感是积极还是消极。", "input": "今天的电影太精彩了，我非常喜欢。"},
    {"instruction": "从下面的句子中提取所有的地名。", "input": "他先去了北京，然后坐火车到上海，最后飞往广州。"},
    {"instruction": "用一句话总结下面的段落。", "input": "随着城市化进程加快，越来越多的人从农村搬到城市，城市人口迅速增长，交通和住房压力也随之增大。"},
    {"instruction": "计算：25加上17等于多少？", "input": ""},
    {"instruction": "写一个Python函数，返回列表中的最大值。", "input": ""},
    {"instruction": "介绍一下长城。", "input": ""},
]


# ---- eval set --------------------------------------------------------------------------------


def select_eval_set(pool: pd.DataFrame, per_type: int = 20, seed: int = 0) -> pd.DataFrame:
    """Up to ``per_type`` records of every task type (all of a type when it has fewer), seeded.

    Records with an empty output are skipped (they have no response to score). Rows come out
    sorted by task type, then id, so the set does not depend on the pool's order.
    """
    if "task_type" not in pool.columns:
        raise ValueError("the pool has no task_type column: eval sets are balanced over task types")
    usable = pool[pool["output"].str.strip() != ""]
    parts = []
    for t in sorted(usable["task_type"].unique()):
        part = usable[usable["task_type"] == t].sort_values("id")
        parts.append(part.sample(n=min(per_type, len(part)), random_state=seed))
    out = pd.concat(parts) if parts else usable.iloc[0:0]
    return out.sort_values(["task_type", "id"]).reset_index(drop=True)


def record_key_text(rec: dict) -> str:
    """The text compared for near-duplicates: instruction, input and output."""
    return "\n".join(str(rec.get(c, "") or "") for c in ("instruction", "input", "output"))


def near_dup_mask(reference: Sequence[str], texts: Sequence[str], jaccard: float = 0.7, ngram: int = 5,
                  num_perm: int = 128) -> np.ndarray:
    """For each of ``texts``, whether it is a near-duplicate of one of ``reference`` (the curation
    stage's ``curate.minhash.NearDupIndex``: one definition of "near-duplicate" for the project)."""
    from curate.minhash import NearDupIndex

    if not len(texts):
        return np.zeros(0, dtype=bool)
    index = NearDupIndex(list(reference), threshold=jaccard, ngram=ngram, num_perm=num_perm)
    return np.asarray(index.query(list(texts)), dtype=bool)


def prompt_text(rec: dict) -> str:
    """What the model is asked: the instruction and its input (earlier turns aside), without the answer."""
    return "\n".join(str(rec.get(c, "") or "") for c in ("instruction", "input")).strip()


# Decontamination, in two independent parts. Removal uses the project's MinHash detector twice: on
# whole records (Jaccard >= ``jaccard`` over character 5-grams) and on prompts alone (>= ``prompt_jaccard``
# over 3-grams), which catches same-prompt twins with another answer. The after-check computes exact
# 3-gram Jaccard on prompts with another tokeniser (scikit-learn's), and fails at CHECK_JACCARD: set
# well above the removal threshold, so only a removal that failed can leave such a pair behind.
PROMPT_JACCARD = 0.4
PROMPT_NGRAM = 3
CHECK_JACCARD = 0.6


class ContaminationError(AssertionError):
    """A training set holds an eval item's twin (found by the independent after-check)."""


def eval_overlap_reasons(df: pd.DataFrame, eval_df: pd.DataFrame, jaccard: float = 0.7,
                         prompt_jaccard: float = PROMPT_JACCARD) -> np.ndarray:
    """Per row of ``df``: why it is an eval item or a twin of one ("" when it is not), the first
    that applies of ``eval_id``, ``same_text``, ``near_dup_record``, ``near_dup_prompt``."""
    ids = set(eval_df["id"])
    hashes = {content_hash(r["instruction"], r["input"], r["output"]) for r in eval_df.to_dict("records")}
    recs = df.to_dict("records")
    ev = eval_df.to_dict("records")
    reasons = np.full(len(recs), "", dtype=object)
    checks = [
        ("eval_id", lambda: np.array([r.get("id") in ids for r in recs], dtype=bool)),
        ("same_text", lambda: np.array([content_hash(r.get("instruction", ""), r.get("input", ""), r.get("output", ""))
                                        in hashes for r in recs], dtype=bool)),
        ("near_dup_record", lambda: near_dup_mask([record_key_text(r) for r in ev], [record_key_text(r) for r in recs],
                                                  jaccard=jaccard)),
        ("near_dup_prompt", lambda: near_dup_mask([prompt_text(r) for r in ev], [prompt_text(r) for r in recs],
                                                  jaccard=prompt_jaccard, ngram=PROMPT_NGRAM)),
    ]
    for name, mask in checks:
        if len(recs):
            reasons[(reasons == "") & mask()] = name
    return reasons


def eval_overlap_mask(df: pd.DataFrame, eval_df: pd.DataFrame, jaccard: float = 0.7,
                      prompt_jaccard: float = PROMPT_JACCARD) -> np.ndarray:
    """Rows of ``df`` that are an eval item: same id, same text, or a near-duplicate (record or prompt)."""
    return eval_overlap_reasons(df, eval_df, jaccard, prompt_jaccard) != ""


def remove_eval_items(df: pd.DataFrame, eval_df: pd.DataFrame, jaccard: float = 0.7,
                      prompt_jaccard: float = PROMPT_JACCARD) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(kept, removed)``: the rows of ``df`` that are not / are eval items or their twins; ``removed``
    has a ``removed_because`` column (see ``eval_overlap_reasons``)."""
    reasons = eval_overlap_reasons(df, eval_df, jaccard, prompt_jaccard) if len(df) else np.zeros(0, dtype=object)
    mask = reasons != ""
    removed = df[mask].reset_index(drop=True).assign(removed_because=reasons[mask].astype(str))
    return df[~mask].reset_index(drop=True), removed


def pretrain_exclusions(pool: pd.DataFrame, per_type: int = 20, seed: int = 0, jaccard: float = 0.7) -> list[str]:
    """Ids the tiny base must not pretrain on: the eval set of ``select_eval_set(pool, per_type, seed)``
    and every pool row ``remove_eval_items`` takes out with it (the experiment's own exclusion)."""
    eval_df = select_eval_set(pool, per_type, seed)
    _, removed = remove_eval_items(pool, eval_df, jaccard)
    return sorted(set(eval_df["id"]) | set(removed["id"]))


def prompt_jaccard_pairs(texts: Sequence[str], eval_texts: Sequence[str], threshold: float = CHECK_JACCARD,
                         ngram: int = PROMPT_NGRAM) -> list[tuple[int, int, float]]:
    """Every ``(row, eval item, Jaccard)`` with exact character ``ngram`` Jaccard >= ``threshold``.

    Exact, not estimated: binary n-gram count vectors (scikit-learn) multiplied as sparse matrices give
    each pair's intersection, and the union follows from the set sizes. Whitespace is removed; a text
    shorter than ``ngram`` is one shingle, itself."""
    from sklearn.feature_extraction.text import CountVectorizer

    def grams(t: str) -> list[str]:
        t = re.sub(r"\s+", "", t)
        return [t[i:i + ngram] for i in range(len(t) - ngram + 1)] if len(t) >= ngram else ([t] if t else [])

    if not len(texts) or not len(eval_texts):
        return []
    vec = CountVectorizer(analyzer=grams, binary=True)
    vec.fit(list(texts) + list(eval_texts))
    a, b = vec.transform(texts), vec.transform(eval_texts)
    inter = (a @ b.T).tocoo()
    size_a = np.asarray(a.sum(1)).ravel()
    size_b = np.asarray(b.sum(1)).ravel()
    jac = inter.data / (size_a[inter.row] + size_b[inter.col] - inter.data)
    ok = jac >= threshold
    return sorted(zip(inter.row[ok].tolist(), inter.col[ok].tolist(), jac[ok].round(4).tolist()))


def check_decontaminated(mixture: pd.DataFrame, eval_df: pd.DataFrame, name: str = "mixture",
                         threshold: float = CHECK_JACCARD) -> None:
    """The after-check: raise ``ContaminationError`` when ``mixture`` holds an eval item's id, its text,
    or a prompt whose exact 3-gram Jaccard with an eval prompt is >= ``threshold``."""
    recs, ev = mixture.to_dict("records"), eval_df.to_dict("records")
    ids = set(eval_df["id"])
    bad = [f"row {i} has eval id {r['id']}" for i, r in enumerate(recs) if r.get("id") in ids]
    pairs = prompt_jaccard_pairs([prompt_text(r) for r in recs], [prompt_text(r) for r in ev], threshold)
    bad += [f"row {i} ~ eval {ev[j]['id']} (prompt 3-gram Jaccard {jac:.2f}: {prompt_text(recs[i])[:40]!r} vs "
            f"{prompt_text(ev[j])[:40]!r})" for i, j, jac in pairs]
    if bad:
        raise ContaminationError(f"{name}: {len(bad)} eval items or twins left after decontamination: "
                                 + "; ".join(bad[:5]))


# ---- loss and perplexity per task type ---------------------------------------------------------


def pad_batch(features: list[dict], pad_id: int, side: str = "right") -> dict:
    """Pad ``input_ids`` / ``attention_mask`` / ``labels`` to the longest row (labels with -100)."""
    import torch

    n = max(len(f["input_ids"]) for f in features)
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    for f in features:
        k = n - len(f["input_ids"])
        fill = {"input_ids": [pad_id] * k, "attention_mask": [0] * k, "labels": [IGNORE_INDEX] * k}
        for key in out:
            if key in f:
                out[key].append(fill[key] + list(f[key]) if side == "left" else list(f[key]) + fill[key])
    return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items() if v}


def item_losses(model, tokenizer, template: Template, records: list[dict], cutoff_len: int = 256,
                batch_size: int = 16) -> list[tuple[float, int]]:
    """Per record: ``(sum of response-token cross-entropy, response tokens)``, prompt tokens masked."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[tuple[float, int]] = []
    feats = [tokenize_example(tokenizer, template, r, cutoff_len, train_on_inputs=False) for r in records]
    with torch.no_grad():
        for i in range(0, len(feats), batch_size):
            batch = pad_batch(feats[i: i + batch_size], tokenizer.pad_token_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            labels = batch["labels"][:, 1:]
            nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
            mask = labels != IGNORE_INDEX
            for j in range(len(batch["input_ids"])):
                out.append((float(nll[j][mask[j]].sum()), int(mask[j].sum())))
    if was_training:
        model.train()
    return out


def eval_loss_by_type(model, tokenizer, template: Template, records: list[dict], cutoff_len: int = 256,
                      batch_size: int = 16) -> dict:
    """Response-token cross-entropy per task type (token-weighted) and its perplexity.

    Returns ``{"by_type": {type: {"loss", "ppl", "tokens", "n"}}, "loss": macro mean over types,
    "ppl": exp(macro loss), "loss_micro": over all tokens}``. The macro mean weighs each task type
    equally, as the balanced eval set intends.
    """
    return loss_by_type(records, item_losses(model, tokenizer, template, records, cutoff_len, batch_size))


def loss_by_type(records: list[dict], losses: Sequence[tuple[float, int]]) -> dict:
    """``eval_loss_by_type``'s figures from per-record ``(nll sum, tokens)`` already computed."""
    sums: Counter = Counter()
    counts: Counter = Counter()
    items: Counter = Counter()
    for rec, (nll, n) in zip(records, losses):
        t = rec.get("task_type", "all")
        sums[t] += nll
        counts[t] += n
        items[t] += 1
    by_type = {}
    for t in sorted(items):
        loss = sums[t] / max(counts[t], 1)
        by_type[t] = {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "tokens": counts[t], "n": items[t]}
    macro = float(np.mean([v["loss"] for v in by_type.values()])) if by_type else float("nan")
    micro = sum(sums.values()) / max(sum(counts.values()), 1)
    return {"by_type": by_type, "loss": macro, "ppl": math.exp(min(macro, 50.0)), "loss_micro": micro}


# ---- answers scored against the reference -----------------------------------------------------------

# Task types whose answer can be checked by exact match (a label, a number, a span); the rest are
# scored by character overlap only.
CHECKABLE_TYPES = ("math", "classification", "closed qa", "extract")
_EDGE_PUNCT = "。．.！!？?，,；;：:、\"'“”‘’「」『』《》（）()【】[] "
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def normalize_answer(text: str) -> str:
    """Exact-match normalisation: NFKC (full-width letters and digits to ASCII), whitespace removed,
    punctuation stripped from both ends, Latin letters lower-cased."""
    import unicodedata

    t = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or ""))
    return t.strip(_EDGE_PUNCT).lower()


def exact_match(prediction: str, reference: str, task_type: str = "") -> bool:
    """Normalised strings equal; for ``math``, also the last number of each equal (answers that
    show their working end in the result)."""
    p, r = normalize_answer(prediction), normalize_answer(reference)
    if p and p == r:
        return True
    if task_type == "math":
        pn, rn = _NUMBER.findall(p), _NUMBER.findall(r)
        return bool(pn and rn) and float(pn[-1]) == float(rn[-1])
    return False


def chrf(prediction: str, reference: str) -> float:
    """Character n-gram F-score (chrF, n ≤ 6, β = 2; sacrebleu), 0–100; whitespace ignored, so it
    suits Chinese, which has none between words."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(prediction or "", [reference or ""]).score)


# ---- generations and their repetition ------------------------------------------------------------


def generate(model, tokenizer, template: Template, prompts: Iterable[dict], max_new_tokens: int = 64,
             cutoff_len: int = 256, batch_size: int = 16) -> list[str]:
    """Greedy continuations (deterministic, and the decoding under which repetition loops show)."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    prompts = list(prompts)
    outs: list[str] = []
    for i in range(0, len(prompts), batch_size):
        ids = [encode_prompt(tokenizer, template, p, cutoff_len - max_new_tokens) for p in prompts[i: i + batch_size]]
        batch = pad_batch([{"input_ids": x, "attention_mask": [1] * len(x)} for x in ids], tokenizer.pad_token_id,
                          side="left")  # left padding: every row continues from its own last token
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.no_grad():
            gen = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new = gen[:, batch["input_ids"].shape[1]:]
        outs.extend(tokenizer.decode(row, skip_special_tokens=True) for row in new.tolist())
    if was_training:
        model.train()
    return outs


_UNIT = re.compile(r"[A-Za-z]+|\d+|\S")


def units(text: str) -> list[str]:
    """Chinese characters one by one, Latin words and numbers whole, punctuation as itself."""
    return _UNIT.findall(text)


def _ngrams(seq: list[str], n: int) -> list[tuple]:
    return [tuple(seq[i: i + n]) for i in range(len(seq) - n + 1)]


def repetition_metrics(texts: Sequence[str], n: int = 4) -> dict[str, float]:
    """Repetition figures of a set of generations.

    - ``rep_rate``: share of a text's ``n``-grams (units above) that already occurred earlier in the
      same text, over all texts (Welleck et al.'s seq-rep-n); 0 for no loops, near 1 for a loop.
    - ``distinct_1`` / ``distinct_2``: distinct uni-/bi-grams over all uni-/bi-grams of the whole
      set (Li et al. 2016); low when every answer says the same thing.
    - ``mean_len``: mean number of units per generation.
    """
    toks = [units(t) for t in texts]
    total = rep = 0
    for u in toks:
        grams = _ngrams(u, n)
        total += len(grams)
        rep += len(grams) - len(set(grams))
    out = {"rep_rate": rep / total if total else 0.0}
    for k in (1, 2):
        grams = [g for u in toks for g in _ngrams(u, k)]
        out[f"distinct_{k}"] = len(set(grams)) / len(grams) if grams else 0.0
    out["mean_len"] = float(np.mean([len(u) for u in toks])) if toks else 0.0
    return out
