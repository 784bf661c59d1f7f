"""A learned second opinion for the task-type rules, and a confidence for every label.

The rules (``curate.tasktype``) decide most rows with a specific rule ("翻译…" → rewrite). Some rows
only reach a generic one (``GENERIC_RULES``: any question → open qa, a question with a context →
closed qa, the fallbacks). For those, ``TaskTypeModel`` — TF-IDF character 1–3-grams of the request
(plus a token saying whether a context was given) → logistic regression — can decide instead.

It is trained at run time, deterministically, on the hand-labelled ``authored_tune`` rows, shipped
with the package as ``tasktype_train.jsonl`` (written from ``tests/data`` by
``benchmarks/labeleval.py``, kept in step by a test; nothing downloaded; about a second). Those rows are
single-field prompts and chat turns, so the model helps on such data and not on the mirror's
alpaca-shaped rows; it is therefore **off by default** (``task_type_tagger: {model: true}`` turns it
on; figures for both in ``tests/data/README.md``).

Every label gets a ``decided_by`` (``rule:<name>`` or ``model``) and a confidence: for a rule, its
smoothed precision on the hand-labelled tuning rows (``RULE_PRECISION_JSON``, (correct + 1) /
(rows + 2), 0.5 for a rule never seen there); for the model, its probability. A label below
``MIN_CONFIDENCE`` is *low-confidence*: the report counts those rows, and the ``diverse`` mixture can
balance on confident labels only.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from .tasktype import match_rule_and_context, request_and_context

TRAIN_JSONL = Path(__file__).resolve().parent / "tasktype_train.jsonl"
RULE_PRECISION_JSON = Path(__file__).resolve().parent / "rule_precision.json"
GENERIC_RULES = frozenset({"question", "fallback", "bare_topic", "question_with_context", "task_on_given_text",
                           "no_rule", "empty"})
TRAIN_SPLITS = ("authored_tune",)
MIN_CONFIDENCE = 0.75


def feature_text(request: str, context: str) -> str:
    """What the model reads: the request, and whether it came with a context."""
    return request.lower() + (" ⟪ctx⟫" if len(context.strip()) >= 15 else " ⟪noctx⟫")


def training_rows(path: Path = TRAIN_JSONL) -> tuple[list[str], list[str]]:
    """``(feature texts, labels)`` of the hand-labelled training rows (``instruction``, ``input``,
    ``history``, ``label`` per line), Traditional script converted to simplified as the pipeline's
    normalize stage does (so the n-grams match the rows it labels)."""
    from .normalize import convert_chinese

    texts, ys = [], []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            hist = [[convert_chinese(q), convert_chinese(a)] for q, a in r["history"]]
            req, ctx, _ = request_and_context(convert_chinese(r["instruction"]), convert_chinese(r["input"]), hist)
            texts.append(feature_text(req, ctx))
            ys.append(r["label"])
    return texts, ys


class TaskTypeModel:
    """TF-IDF character n-grams → logistic regression (lbfgs: deterministic for the same rows)."""

    def __init__(self, c: float = 1.0, ngram_range: tuple[int, int] = (1, 3)):
        self.c = c
        self.ngram_range = ngram_range
        self.vectorizer = None
        self.classifier = None

    def fit(self, texts: list[str], labels: list[str]) -> "TaskTypeModel":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        if len(set(labels)) < 2:
            raise ValueError(f"TaskTypeModel: need at least two labels to fit, got {sorted(set(labels))}")
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=self.ngram_range, sublinear_tf=True,
                                          lowercase=False, dtype=np.float64)
        x = self.vectorizer.fit_transform(texts)
        self.classifier = LogisticRegression(C=self.c, max_iter=5000)
        self.classifier.fit(x, labels)
        return self

    def predict(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        """``(labels, probabilities)``: the most probable type of each text and its probability."""
        if not texts:
            return [], np.zeros(0)
        p = self.classifier.predict_proba(self.vectorizer.transform(texts))
        best = p.argmax(axis=1)
        return [str(self.classifier.classes_[k]) for k in best], p[np.arange(len(best)), best]


@functools.lru_cache(maxsize=1)
def default_model() -> TaskTypeModel:
    """The model fitted on the authored tune rows (once per process)."""
    return TaskTypeModel().fit(*training_rows())


@functools.lru_cache(maxsize=1)
def rule_precision() -> dict[str, dict[str, int]]:
    """``{rule: {"rows": n, "correct": k}}`` on the hand-labelled tuning rows (``RULE_PRECISION_JSON``)."""
    return json.loads(RULE_PRECISION_JSON.read_text(encoding="utf-8"))["rules"]


def rule_confidence(rule: str) -> float:
    """Smoothed precision of ``rule``: (correct + 1) / (rows + 2); 0.5 for a rule never seen."""
    r = rule_precision().get(rule)
    return 0.5 if r is None else (r["correct"] + 1) / (r["rows"] + 2)


def label_rows(instructions: Iterable[str], inputs: Iterable[str], outputs: Iterable[str],
               histories: Iterable | None = None, model: TaskTypeModel | bool = False
               ) -> tuple[list[str], list[str], list[float]]:
    """``(labels, decided_by, confidence)`` for rows: the rules, and with ``model`` (True: the default
    model, or a fitted ``TaskTypeModel``) the model for the rows only a generic rule decided."""
    labels, decided, conf = [], [], []
    generic: list[int] = []
    texts: list[str] = []
    hist = histories if histories is not None else iter(lambda: None, 0)
    confidence = {r: rule_confidence(r) for r in rule_precision()}
    for k, (ins, inp, out, h) in enumerate(zip(instructions, inputs, outputs, hist)):
        lab, rule, req, ctx = match_rule_and_context(ins, inp, out, h)
        labels.append(lab)
        decided.append("rule:" + rule)
        conf.append(confidence.get(rule, 0.5))
        if model and rule in GENERIC_RULES:
            generic.append(k)
            texts.append(feature_text(req, ctx))
    if model and generic:
        m = default_model() if model is True else model
        got, prob = m.predict(texts)
        for k, lab, p in zip(generic, got, prob):
            labels[k], decided[k], conf[k] = lab, "model", float(p)
    return labels, decided, conf
