"""The package's shape: no import cycles, layers import one way, every operator declares what it is,
and the README's worked example of a new operator works as written."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("curate", "flows", "train")
# a layer may import the ones after it, never the ones before
LAYERS = ["flows", "train", "curate"]


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (function-level imports included)."""
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            # the module itself, or the nearest enclosing project module it names
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = _graph()
    assert len(graph) > 30 and "curate.ops.base" in graph and "curate.minhash.lsh" in graph
    assert _cycles(graph) == []


def test_layers_import_one_way():
    upward = []
    for mod, deps in _graph().items():
        rank = LAYERS.index(mod.split(".")[0])
        upward += [f"{mod} -> {d}" for d in deps if LAYERS.index(d.split(".")[0]) < rank]
    assert upward == []
    # the library runs without Prefect: no curate module imports it
    for p in (ROOT / "curate").rglob("*.py"):
        assert not re.search(r"^\s*(from|import) prefect", p.read_text(encoding="utf-8"), re.M), p


def test_every_curate_module_imports_on_its_own():
    """In a fresh interpreter each module imports first, before anything else could prepare it."""
    mods = sorted(m for m in _modules() if m.startswith("curate"))
    # two interpreters at a time (one per core of a CI machine)
    code = ("import subprocess, sys\n"
            "from concurrent.futures import ThreadPoolExecutor\n"
            "def one(m):\n"
            "    r = subprocess.run([sys.executable, '-c', 'import ' + m], capture_output=True, text=True)\n"
            "    return m + ': ' + r.stderr.strip().splitlines()[-1] if r.returncode else ''\n"
            "with ThreadPoolExecutor(2) as pool:\n"
            "    bad = [b for b in pool.map(one, sys.argv[1:]) if b]\n"
            "print('\\n'.join(bad))\n")
    r = subprocess.run([sys.executable, "-c", code, *mods], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_every_operator_declares_what_it_is():
    from curate.ops import OPS, Deduplicator, Filter, Mapper, Tagger

    files = sorted(p.stem for p in (ROOT / "curate" / "ops").glob("*.py") if p.stem not in ("__init__", "base"))
    builtin = {n: c for n, c in OPS.items() if c.__module__.startswith("curate.ops.")}
    assert len(files) >= 12 and sorted(builtin) == files  # one operator per file, the file named after it
    for name, cls in builtin.items():
        assert issubclass(cls, (Mapper, Filter, Deduplicator, Tagger)), name
        assert isinstance(cls.row_local, bool), name
        assert cls.__module__ == f"curate.ops.{name}", (name, cls.__module__)
    assert OPS["document_minhash_deduplicator"].row_local is False
    assert OPS["chinese_language_filter"].row_local is True


def test_a_bad_recipe_fails_when_loaded(tmp_path):
    from curate.recipe import load_recipe

    p = tmp_path / "r.yaml"
    p.write_text("sources: [belle]\nfilter:\n  - text_length_filtr: {}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"r\.yaml:3: filter: unknown operator 'text_length_filtr'"):
        load_recipe(p)
    p.write_text("sources: [belle]\ndedupe:\n  - document_minhash_deduplicator: {threshold: 2}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"r\.yaml:3: dedupe: operator 'document_minhash_deduplicator': threshold"):
        load_recipe(p)
    p.write_text("sources: [belle]\nnormalize:\n  - unicode_clean_mapper: {colour: red}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"normalize: operator 'unicode_clean_mapper'.*colour"):
        load_recipe(p)


def test_the_readme_operator_example_works_as_written(tmp_path):
    """The README's worked example: the operator file and its test, run as written."""
    from curate.ops import OPS
    from curate.pipeline import run_stage
    from curate.io import write_parquet
    from curate.recipe import load_recipe
    from curate.records import make_record, records_frame

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Adding an operator"):]
    op_code, test_code = re.findall(r"```python\n(.*?)```", section, re.S)[:2]
    try:
        ns: dict = {"__name__": "curate.ops.min_output_chars_filter"}
        exec(compile(op_code, "min_output_chars_filter.py", "exec"), ns)  # registers the operator
        assert OPS["min_output_chars_filter"].row_local  # a Filter: the pipeline may shard it
        g = {"MinOutputCharsFilter": ns["MinOutputCharsFilter"]}
        exec(compile(test_code.replace("from curate.ops.min_output_chars_filter import MinOutputCharsFilter", ""),
                     "test_min_output_chars_filter.py", "exec"), g)
        g["test_short_outputs_are_dropped_with_a_reason"]()
        # and named in a recipe, it runs as a stage step with its drops in the ledger
        recipe = tmp_path / "r.yaml"
        recipe.write_text("sources: [belle]\nfilter:\n  - min_output_chars_filter: {min_chars: 3}\n", encoding="utf-8")
        stage = load_recipe(recipe).stage("03_filter")
        rows = records_frame([make_record("s", "f.json", i, "问题", "", o) for i, o in enumerate(["好", "很好的回答"])])
        write_parquet(tmp_path / "in.parquet", rows)
        ledger = run_stage(stage, tmp_path / "in.parquet", tmp_path / "03_filter")
        assert (ledger["in"], ledger["kept"], ledger["dropped"]) == (2, 1, 1)
        assert ledger["reasons"] == {"short_output": 1}
        assert len(pd.read_parquet(tmp_path / "03_filter" / "dropped.parquet")) == 1
    finally:
        OPS.pop("min_output_chars_filter", None)
