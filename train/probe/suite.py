"""The probe suite: seeded eval splits, training mixtures of chosen rule diversity, and scoring.

Eval splits (each an alpaca JSON array whose rows also carry ``split``, ``rule``, ``family``,
``kind``, ``phrasing``):

- ``seen``: seen rules × their trainable phrasings (in-distribution);
- ``heldout_phrasing``: seen rules × their held-out phrasings (the meaning, not the wording?);
- ``heldout_rule``: rules never trained on: new rules of seen families and compositions;
- ``no_rule``: unanswerable instructions over ordinary inputs (made-up answers; ``candidates``
  lists what a memorised rule or a copy of the input would give).

A training mixture draws a fixed number of examples from the first k rules of a seeded,
family-interleaved order of the seen rules, with 1 or all trainable phrasings; its inputs never
equal any eval input. Every random choice comes from ``random.Random`` seeded by a string naming
the suite seed and what is drawn, so the same seed gives byte-identical files.
"""
from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from curate.io import sha256_file, write_json

from .rules import (NO_RULE_INPUTS, NO_RULE_PHRASINGS, RULES, RULES_BY_NAME, SEEN_PHRASINGS, Rule, answer, fill)

SPLITS = ("seen", "heldout_phrasing", "heldout_rule", "no_rule")


@dataclass(frozen=True)
class SuiteSpec:
    seed: int = 0
    seen_items: int = 8  # per seen rule, on its trainable phrasings
    heldout_phrasing_items: int = 8  # per seen rule, on its held-out phrasings
    heldout_rule_items: int = 16  # per held-out rule (new or composition)
    no_rule_items: int = 32


def _rng(*parts) -> random.Random:
    return random.Random("/".join(str(p) for p in parts))  # str seeds hash with SHA-512: stable


def seen_rules() -> list[Rule]:
    return [r for r in RULES if r.kind == "seen"]


def heldout_rules() -> list[Rule]:
    return [r for r in RULES if r.kind != "seen"]


def make_item(rule: Rule, phrasing: int, rng: random.Random, split: str) -> dict:
    inp, params = rule.gen(rng)
    return {"instruction": fill(rule.phrasings[phrasing], params), "input": inp,
            "output": answer(rule, inp, params), "split": split, "rule": rule.name,
            "family": rule.family, "kind": rule.kind, "phrasing": phrasing}


def _draw(rule: Rule, phrasings: list[int], n: int, rng: random.Random, split: str,
          taken: set[tuple[str, str]], avoid_inputs: set[str] = frozenset(), max_tries: int = 200) -> list[dict]:
    """n distinct items of ``rule`` cycling over ``phrasings``; none whose input is in ``avoid_inputs``."""
    out = []
    for i in range(n):
        for _ in range(max_tries):
            it = make_item(rule, phrasings[i % len(phrasings)], rng, split)
            key = (it["instruction"], it["input"])
            if key not in taken and it["input"] not in avoid_inputs:
                break
        else:
            raise RuntimeError(f"{rule.name}: no new {split} item after {max_tries} tries")
        taken.add(key)
        out.append(it)
    return out


def no_rule_candidates(inp: str) -> list[str]:
    """What a model that ignores the instruction might say: a parameter-free seen rule's answer, or the input."""
    cands = {inp}
    for r in seen_rules():
        try:
            cands.add(r.answer(inp))
        except Exception:  # the rule needs parameters, or does not apply to this input
            pass
    return sorted(cands)


def eval_splits(spec: SuiteSpec) -> dict[str, list[dict]]:
    taken: set[tuple[str, str]] = set()
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    seen_idx = list(range(SEEN_PHRASINGS))
    for r in seen_rules():
        held = list(range(SEEN_PHRASINGS, len(r.phrasings)))
        out["seen"] += _draw(r, seen_idx, spec.seen_items, _rng(spec.seed, "seen", r.name), "seen", taken)
        out["heldout_phrasing"] += _draw(r, held, spec.heldout_phrasing_items,
                                         _rng(spec.seed, "heldout_phrasing", r.name), "heldout_phrasing", taken)
    for r in heldout_rules():
        out["heldout_rule"] += _draw(r, list(range(len(r.phrasings))), spec.heldout_rule_items,
                                     _rng(spec.seed, "heldout_rule", r.name), "heldout_rule", taken)
    rng = _rng(spec.seed, "no_rule")
    for i in range(spec.no_rule_items):
        inp, _ = NO_RULE_INPUTS[i % len(NO_RULE_INPUTS)](rng)
        out["no_rule"].append({"instruction": NO_RULE_PHRASINGS[i % len(NO_RULE_PHRASINGS)], "input": inp,
                               "output": "", "split": "no_rule", "rule": "no_rule", "family": "no_rule",
                               "kind": "no_rule", "phrasing": i % len(NO_RULE_PHRASINGS),
                               "candidates": no_rule_candidates(inp)})
    return out


def rule_order(seed: int) -> list[str]:
    """The seen rules in a seeded order that interleaves families, so the first k span min(k, families)."""
    rng = _rng(seed, "rule_order")
    fams: dict[str, list[str]] = {}
    for r in seen_rules():
        fams.setdefault(r.family, []).append(r.name)
    names = sorted(fams)
    rng.shuffle(names)
    queues = [rng.sample(fams[f], len(fams[f])) for f in names]
    order = []
    while any(queues):
        for q in queues:
            if q:
                order.append(q.pop(0))
    return order


def mixture_name(n_rules: int | str, phrasings: int | str, size: int, seed: int) -> str:
    return f"probe-r{n_rules}-p{phrasings}-n{size}-s{seed}"


def mixture_records(spec: SuiteSpec, rules: list[str], phrasings: int, size: int, seed: int,
                    avoid_inputs: set[str]) -> list[dict]:
    """``size`` examples spread evenly over ``rules`` (phrasings 0..phrasings-1 drawn at random), shuffled.

    Repeats of one (instruction, input) are avoided while possible (a rule with a small input space
    may have to repeat when one rule fills a large mixture).
    """
    if not 1 <= phrasings <= SEEN_PHRASINGS:
        raise ValueError(f"phrasings must be 1..{SEEN_PHRASINGS}")
    recs: list[dict] = []
    taken: set[tuple[str, str]] = set()
    for j, name in enumerate(rules):
        rule = RULES_BY_NAME[name]
        if rule.kind != "seen":
            raise ValueError(f"{name} is a held-out rule; mixtures take seen rules only")
        rng = _rng(spec.seed, "train", seed, name)
        n = size // len(rules) + (1 if j < size % len(rules) else 0)
        for _ in range(n):
            for _try in range(50):
                it = make_item(rule, rng.randrange(phrasings), rng, "train")
                if it["input"] not in avoid_inputs and (it["instruction"], it["input"]) not in taken:
                    break
            else:  # input space nearly used up: allow a repeat, but still never an eval input
                while it["input"] in avoid_inputs:
                    it = make_item(rule, rng.randrange(phrasings), rng, "train")
            taken.add((it["instruction"], it["input"]))
            recs.append(it)
    _rng(spec.seed, "shuffle", seed, len(rules), phrasings, size).shuffle(recs)
    return recs


def write_suite(out_dir: str | Path, spec: SuiteSpec = SuiteSpec()) -> dict:
    """Write the eval splits and ``suite.manifest.json`` under ``out_dir``; returns the manifest."""
    out_dir = Path(out_dir)
    splits = eval_splits(spec)
    files = {}
    for name, items in splits.items():
        write_json(out_dir / f"{name}.json", items)
        files[name] = {"path": f"{name}.json", "items": len(items), "sha256": sha256_file(out_dir / f"{name}.json")}
    manifest = {
        "spec": asdict(spec),
        "splits": files,
        "seen_phrasings": SEEN_PHRASINGS,
        "rules": [{"name": r.name, "family": r.family, "kind": r.kind,
                   "phrasings": [{"text": p, "trainable": r.kind == "seen" and i < SEEN_PHRASINGS}
                                 for i, p in enumerate(r.phrasings)]} for r in RULES],
        "no_rule_phrasings": list(NO_RULE_PHRASINGS),
    }
    write_json(out_dir / "suite.manifest.json", manifest)
    return manifest


def eval_inputs(splits: dict[str, list[dict]]) -> set[str]:
    return {it["input"] for items in splits.values() for it in items}


def blend_tag(blend: str | Path, fraction: float) -> str:
    """A blended mixture's name part: the pool mixture's file stem and the blended share in percent."""
    return f"{Path(blend).stem}-{round(fraction * 100)}"


def heldout_fragments() -> list[str]:
    """The literal pieces (six characters or more, slots cut out) of every phrasing never trained on."""
    out = set()
    for r in RULES:
        held = r.phrasings if r.kind != "seen" else r.phrasings[SEEN_PHRASINGS:]
        for ph in held:
            out.update(c for c in re.split(r"\{[a-z]+\}", ph) if len(c) >= 6)
    out.update(NO_RULE_PHRASINGS)
    return sorted(out)


def blend_records(pool_path: str | Path, n: int, seed: int, splits: dict[str, list[dict]]) -> list[dict]:
    """``n`` single-turn rows of a curated alpaca mixture (a seeded sample), none holding an eval input
    or a held-out phrasing, so blending keeps the splits disjoint. Marked ``rule: "pool"``."""
    from ..finetune import load_alpaca_json

    pool_path = Path(pool_path)
    rows = load_alpaca_json(pool_path)
    avoid = eval_inputs(splits) | {it["instruction"] for items in splits.values() for it in items}
    frags = heldout_fragments()
    ok = []
    for r in rows:
        if r.get("history") or r.get("input", "") in avoid or r["instruction"] in avoid:
            continue
        text = r["instruction"] + "\n" + r.get("input", "")
        if any(f in text for f in frags):
            continue
        ok.append({"instruction": r["instruction"], "input": r.get("input", ""), "output": r["output"],
                   "split": "train", "rule": "pool", "family": "pool", "kind": "pool", "phrasing": -1})
    if len(ok) < n:
        raise ValueError(f"{pool_path}: {len(ok)} usable single-turn rows, {n} needed for the blend")
    return _rng("blend", seed, pool_path.name, n).sample(ok, n)


def write_mixture(out_dir: str | Path, spec: SuiteSpec, n_rules: int, phrasings: int, size: int,
                  seed: int, splits: dict[str, list[dict]] | None = None, blend: str | Path | None = None,
                  blend_fraction: float = 0.25) -> Path:
    """Write ``<name>.json`` (alpaca) and ``<name>.manifest.json`` for the first ``n_rules`` rules.

    With ``blend`` (a curated alpaca mixture, e.g. a run's ``diverse``/``narrow`` export), that share
    of the ``size`` examples comes from it instead: the budget stays fixed, the rules get fewer."""
    splits = splits if splits is not None else eval_splits(spec)
    order = rule_order(seed)
    if not 1 <= n_rules <= len(order):
        raise ValueError(f"n_rules must be 1..{len(order)}")
    if not 0 < blend_fraction < 1:
        raise ValueError(f"blend_fraction must be in (0, 1), got {blend_fraction}")
    rules = order[:n_rules]
    n_pool = round(size * blend_fraction) if blend else 0
    recs = mixture_records(spec, rules, phrasings, size - n_pool, seed, eval_inputs(splits))
    name = mixture_name(n_rules, phrasings, size, seed)
    extra = {}
    if blend:
        recs += blend_records(blend, n_pool, seed, splits)
        _rng(spec.seed, "shuffle-blend", seed, len(rules), phrasings, size, Path(blend).name).shuffle(recs)
        name += f"-{blend_tag(blend, blend_fraction)}"
        extra = {"blend": {"path": str(blend), "sha256": sha256_file(blend), "rows": n_pool,
                           "fraction": blend_fraction}}
    path = Path(out_dir) / f"{name}.json"
    write_json(path, recs)
    counts: dict[str, int] = {}
    for r in recs:
        if r["rule"] != "pool":
            counts[r["rule"]] = counts.get(r["rule"], 0) + 1
    write_json(Path(out_dir) / f"{name}.manifest.json", {
        "name": name, "suite_spec": asdict(spec), "seed": seed, "n_rules": n_rules, "phrasings": phrasings,
        "size": size, "rules": rules, "families": sorted({RULES_BY_NAME[r].family for r in rules}),
        "per_rule": counts, "distinct_items": len({(r["instruction"], r["input"]) for r in recs}),
        **extra, "sha256": sha256_file(path)})
    return path


# ---- scoring --------------------------------------------------------------------------------------


def normalize_answer(s: str) -> str:
    """The only normalisation before exact match: full-width ASCII (U+FF01–FF5E) and the ideographic
    space folded to half-width, then every whitespace character removed. Chinese punctuation outside
    that block (、《》【】“”) is left as it is."""
    out = []
    for ch in s:
        o = ord(ch)
        if 0xFF01 <= o <= 0xFF5E:
            ch = chr(o - 0xFEE0)
        elif o == 0x3000:
            ch = " "
        if not ch.isspace():
            out.append(ch)
    return "".join(out)


def exact_match(pred: str, gold: str) -> bool:
    return normalize_answer(pred) == normalize_answer(gold)


def score_item(item: dict, pred: str) -> dict:
    """``correct`` for rule items; for ``no_rule`` items ``made_up`` (any answer at all) and
    ``rule_applied`` (the answer a seen rule, or a copy, would give: the instruction was ignored)."""
    p = normalize_answer(pred)
    if item["split"] == "no_rule":
        return {"correct": None, "made_up": bool(p),
                "rule_applied": p in {normalize_answer(c) for c in item.get("candidates", [])}}
    return {"correct": p == normalize_answer(item["output"]), "made_up": None, "rule_applied": None}
