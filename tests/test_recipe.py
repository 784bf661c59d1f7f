"""The recipe is checked when it is loaded: every key, source, operator and parameter, with the
file and line named; stages left out come from the default recipe; custom operators from a user file."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from curate.io import write_parquet
from curate.pipeline import plan_stage, run_shard, run_stage
from curate.recipe import DEFAULT_RECIPE, RecipeError, load_recipe
from curate.records import make_record, records_frame

ROOT = Path(__file__).resolve().parent.parent

CUSTOM_OP = '''
from curate.ops import Filter, register
from curate.records import StageResult, drop_frame


@register("min_chars_filter_{tag}")
class MinChars(Filter):
    def __init__(self, n: int = 2):
        if int(n) < 1:
            raise ValueError("n must be >= 1")
        self.n = int(n)

    def __call__(self, df):
        short = (df["output"].str.len() < self.n).to_numpy()
        return StageResult(df[~short], drop_frame(df[short], self.name, "short_output", ""), {{"short": int(short.sum())}})
'''


def _recipe(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text, message", [
    ("sources: [belle]\nfilters:\n  - empty_text_filter\n", r"recipe\.yaml:2: unknown key 'filters' \(did you mean 'filter'\?\)"),
    ("sources: [belle, mydata]\n", r"recipe\.yaml:1: unknown source 'mydata'"),
    ("sources:\n  - belle\n  - bele\n", r"recipe\.yaml:3: unknown source 'bele' \(did you mean 'belle'\?\)"),
    ("sources: [belle]\nfilter:\n  - empty_text_filter\n  - chinese_language_filtr\n",
     r"recipe\.yaml:4: filter: unknown operator 'chinese_language_filtr' \(did you mean 'chinese_language_filter'\?\)"),
    ("sources: [belle]\ndedupe:\n  - document_minhash_deduplicator: {threshhold: 0.5}\n",
     r"recipe\.yaml:3: dedupe: operator 'document_minhash_deduplicator': unknown parameter\(s\) threshhold "
     r"\(did you mean 'threshold'\?\)"),
    ("sources: [belle]\nfilter:\n  - chinese_language_filter: {min_cjk_ratio: 2}\n",
     r"recipe\.yaml:3: filter: operator 'chinese_language_filter': .*min_cjk_ratio"),
    ("sources: [belle]\nfilter:\n  - chinese_language_filter: {min_latin_words: many}\n",
     r"recipe\.yaml:3: filter: operator 'chinese_language_filter': .*many"),
    ("sources: [belle]\nseed: abc\n", r"recipe\.yaml:2: seed must be an integer"),
    ("sources: [belle]\nmixtures: [random-x]\n", r"recipe\.yaml:2: mixtures: "),
    ("sources: [belle]\nfilter: empty_text_filter\n", r"recipe\.yaml:2: filter: expected a list of steps"),
    ("- just a list\n", r"recipe\.yaml: a recipe is a mapping"),
    ("sources: [belle\n", r"recipe\.yaml: not valid YAML"),
])
def test_a_bad_recipe_fails_at_load_naming_the_line(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(_recipe(tmp_path, text))


def test_a_missing_recipe_file_is_named(tmp_path):
    with pytest.raises(RecipeError, match=r"nope\.yaml: cannot read the recipe"):
        load_recipe(tmp_path / "nope.yaml")


def test_stages_left_out_come_from_the_default_and_an_empty_list_runs_none(tmp_path):
    default = load_recipe(DEFAULT_RECIPE)
    r = load_recipe(_recipe(tmp_path, "sources: [belle]\nfilter: []\n"))
    assert r.stage("03_filter").steps == ()
    for name in ("02_normalize", "04_dedupe", "05_diversity"):
        assert r.stage(name).steps == default.stage(name).steps
    assert r.data["normalize"] == default.data["normalize"]  # the manifest records what ran
    assert r.mixtures == ()


def test_a_custom_operator_from_a_user_file_runs_sharded_and_in_a_fresh_process(tmp_path):
    (tmp_path / "my_ops.py").write_text(CUSTOM_OP.format(tag="a"), encoding="utf-8")
    r = load_recipe(_recipe(tmp_path, "sources: [belle]\ncustom_operator_paths: [my_ops.py]\n"
                                      "filter:\n  - empty_text_filter\n  - min_chars_filter_a: {n: 3}\n"))
    stage = r.stage("03_filter")
    assert [s.op for s in stage.steps] == ["empty_text_filter", "min_chars_filter_a"]
    assert stage.local_prefix() == 2  # a Filter: it may run on shards
    rows = records_frame([make_record("s", "f.json", i, "问题", "", o) for i, o in enumerate(["好", "很好的回答", "对", "可以的"])])
    write_parquet(tmp_path / "in.parquet", rows)
    ledger = run_stage(stage, tmp_path / "in.parquet", tmp_path / "one")
    assert (ledger["kept"], ledger["reasons"]) == (2, {"short_output": 2})
    # a shard in another interpreter (as a process or Dask worker runs it) loads the user's file itself
    plan = plan_stage(stage, tmp_path / "in.parquet", tmp_path / "sharded", shard_rows=2)
    import pickle

    (tmp_path / "plan.pkl").write_bytes(pickle.dumps(plan))
    code = ("import pickle, sys; from curate.pipeline import run_shard; plan = pickle.load(open(sys.argv[1], 'rb'));"
            "[run_shard(plan, a, b) for a, b in plan.shards]")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "plan.pkl")], check=True, cwd=ROOT)
    from curate.pipeline import finish_stage

    assert finish_stage(plan) == ledger


def test_a_custom_operator_file_is_part_of_the_cache_key(tmp_path):
    ops = tmp_path / "my_ops.py"
    ops.write_text(CUSTOM_OP.format(tag="b"), encoding="utf-8")
    recipe = _recipe(tmp_path, "sources: [belle]\ncustom_operator_paths: [my_ops.py]\nfilter:\n  - min_chars_filter_b\n")
    rows = records_frame([make_record("s", "f.json", 0, "问题", "", "好的")])
    write_parquet(tmp_path / "in.parquet", rows)
    first = plan_stage(load_recipe(recipe).stage("03_filter"), tmp_path / "in.parquet", tmp_path / "out")
    ops.write_text(CUSTOM_OP.format(tag="b") + "\n# changed\n", encoding="utf-8")
    second = plan_stage(load_recipe(recipe).stage("03_filter"), tmp_path / "in.parquet", tmp_path / "out")
    assert first.key != second.key


@pytest.mark.parametrize("text, message", [
    ("sources: [belle]\ncustom_operator_paths: [missing.py]\n", r"recipe\.yaml:2: custom operator file 'missing.py' not found"),
    ("sources: [belle]\ncustom_operator_paths: [broken.py]\n", r"broken\.py: the custom operator file fails to import: ZeroDivisionError"),
])
def test_bad_custom_operator_files(tmp_path, text, message):
    (tmp_path / "broken.py").write_text("1 / 0\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=message):
        load_recipe(_recipe(tmp_path, text))


def test_the_report_names_a_stage_that_runs_no_operator():
    from curate.report.run_report import _summary

    ledger = [{"in": 10, "kept": 8}, {"in": 8, "kept": 8}]
    manifest = {"ledger": ledger, "inputs": [{}], "mixtures": [],
                "recipe": {"sources": ["belle"], "normalize": [{"unicode_clean_mapper": {}}], "filter": [],
                           "dedupe": [{"document_exact_deduplicator": {}}], "diversity": [{"task_type_tagger": {}}]}}
    md: list[str] = []
    assert "Stages that run no operator:</b> filter." in _summary(manifest, md)
    assert "**Stages that run no operator:** filter." in md
    manifest["recipe"]["filter"] = [{"empty_text_filter": {}}]
    assert "no operator" not in _summary(manifest, [])
