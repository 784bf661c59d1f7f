"""Curating your own data: sources in the recipe (local JSON lines, Parquet with its own column names,
a sharegpt chat file, a dataset folder loaded with datasets), and `tiger run --input FILE`."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from curate.io import read_json
from curate.parse import parse_files
from curate.recipe import RecipeError, load_recipe
from curate.usersources import SourceError, UserSource, user_source_files


def _rows(mirror: Path, rel: str, n: int) -> list[dict]:
    text = (mirror / rel).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        return json.loads(text)[:n]
    return [json.loads(line) for line in text.splitlines()[:n]]  # JSON lines


def _chats(mirror: Path, n: int) -> list[dict]:
    """Real multi-turn chats (the mirror's Vicuna sample) written as sharegpt conversations."""
    out = []
    for line in (mirror / "traditional" / "chinese_vicuna_chat_sample.jsonl").read_text(encoding="utf-8").splitlines()[:n]:
        r = json.loads(line)
        conv = [{"from": "system", "value": "你是一个乐于助人的助手。"}]
        for q, a in zip(r["input"], r["output"]):
            conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
        out.append({"conversations": conv})
    return out


@pytest.fixture(scope="module")
def user_files(mirror, tmp_path_factory):
    d = tmp_path_factory.mktemp("user")
    alpaca = _rows(mirror, "trans_chinese_alpaca/alpaca_chinese_part_0.json", 300)
    (d / "mine.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in alpaca), encoding="utf-8")
    belle = _rows(mirror, "belle/dev1K.json", 300)
    pd.DataFrame({"prompt": [r["instruction"] for r in belle], "context": [r["input"] for r in belle],
                  "response": [r["output"] for r in belle]}).to_parquet(d / "theirs.parquet")
    (d / "chats.json").write_text(json.dumps(_chats(mirror, 40), ensure_ascii=False), encoding="utf-8")
    (d / "hfset").mkdir()
    pd.DataFrame({"instruction": [r["instruction"] for r in belle[:50]], "input": [r["input"] for r in belle[:50]],
                  "output": [r["output"] for r in belle[:50]]}).to_parquet(d / "hfset" / "train.parquet")
    return d


def _recipe(d: Path, mixtures: list[str]) -> Path:
    doc = {"sources": [
        {"name": "mine", "path": "mine.jsonl", "format": "alpaca", "license": "CC BY-NC 4.0"},
        {"name": "theirs", "path": "*.parquet", "format": {"instruction": "prompt", "input": "context",
                                                            "output": "response"}, "license": "Apache-2.0"},
        {"name": "chats", "path": "chats.json", "format": "sharegpt", "license": "CC BY 4.0"},
        {"name": "hub", "hf": str(d / "hfset"), "license": "MIT"},
    ], "diversity": [{"task_type_tagger": {}}, {"cluster_tagger": {"n_clusters": 6, "seed": 0}}],
        "mixtures": mixtures}
    p = d / "recipe.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return p


def test_user_sources_are_parsed_with_their_format(user_files, tmp_path):
    r = load_recipe(_recipe(user_files, ["random-100"]))
    assert r.sources == ("mine", "theirs", "chats", "hub")
    assert r.licenses()["theirs"] == "Apache-2.0" and r.licenses()["belle"]  # the registry's too
    files = [f for s in r.user_sources for f in user_source_files(s, tmp_path / "raw")]
    assert {f["source"] for f in files} == {"mine", "theirs", "chats", "hub"}
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in files)
    res = parse_files(files)
    kept = res.kept
    theirs = kept[kept["source"] == "theirs"]
    assert len(theirs) == 300 and theirs["instruction"].str.len().gt(0).all()  # columns renamed
    chats = kept[kept["source"] == "chats"]
    assert len(chats) == len(json.loads((user_files / "chats.json").read_text(encoding="utf-8"))) >= 3
    first = chats.iloc[0]
    assert json.loads(first["extra"])["system"] == "你是一个乐于助人的助手。"
    src = _chats(Path(__file__).resolve().parent.parent.parent / "shared" / "corpora", 1)[0]["conversations"]
    assert first["instruction"] == src[-2]["value"] and first["output"] == src[-1]["value"]
    assert len(json.loads(first["history"])) == (len(src) - 1) // 2 - 1
    assert len(kept[kept["source"] == "hub"]) == 50


def test_a_declared_format_quarantines_rows_of_another_shape(user_files, tmp_path):
    (tmp_path / "mixed.jsonl").write_text(
        json.dumps({"instruction": "你好", "output": "你好！"}, ensure_ascii=False) + "\n"
        + json.dumps({"conversations": [{"from": "human", "value": "在吗"}, {"from": "gpt", "value": "在"}]},
                     ensure_ascii=False) + "\n"
        + json.dumps({"messages": [{"role": "user", "content": "问"}, {"role": "user", "content": "又问"}]},
                     ensure_ascii=False) + "\n", encoding="utf-8")
    src = UserSource("mixed", paths=(str(tmp_path / "mixed.jsonl"),), format="sharegpt")
    res = parse_files(user_source_files(src, tmp_path))
    assert len(res.kept) == 1 and res.kept.iloc[0]["instruction"] == "在吗"
    assert sorted(res.dropped["reason"]) == ["bad_chat", "wrong_format"]
    bad = res.dropped[res.dropped["reason"] == "bad_chat"].iloc[0]
    assert "two user turns in a row" in bad["detail"] and "mixed/mixed.jsonl row 2" in bad["detail"]


@pytest.mark.parametrize("source, message", [
    ({"name": "x"}, r"needs exactly one of path .* or hf"),
    ({"name": "x", "path": "nope.jsonl"}, r"nope\.jsonl does not exist"),
    ({"name": "x", "path": "mine.jsonl", "format": "csvish"}, r"format must be one of auto, alpaca, sharegpt, messages"),
    ({"name": "x", "path": "mine.jsonl", "format": {"prompt": "q"}}, r"unknown column target\(s\) prompt"),
    ({"name": "belle", "path": "mine.jsonl"}, r"is a registry source's name"),
    ({"name": "x", "path": "mine.jsonl", "licence": "MIT"}, r"unknown key\(s\) licence"),
])
def test_bad_user_sources_fail_at_load_or_read_with_the_source_named(user_files, source, message):
    p = user_files / "bad.yaml"
    p.write_text(yaml.safe_dump({"sources": [source]}), encoding="utf-8")
    with pytest.raises((RecipeError, SourceError), match=message):
        r = load_recipe(p)
        for s in r.user_sources:
            user_source_files(s, user_files / "raw")


def test_an_hf_dataset_not_in_the_cache_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    src = UserSource("hub", hf="nobody/no_such_dataset_here")
    with pytest.raises(SourceError, match=r"cannot load the Hugging Face dataset 'nobody/no_such_dataset_here'.*HF cache"):
        user_source_files(src, tmp_path / "raw")


@pytest.mark.slow
def test_a_recipe_of_user_sources_runs_end_to_end(user_files, tmp_path):
    from flows.curate_flow import curate_flow

    run = Path(curate_flow(recipe_path=str(_recipe(user_files, ["random-200", "per_source-200"])),
                           data_dir=str(tmp_path / "data")))
    manifest = read_json(run / "manifest.json")
    assert {i["source"] for i in manifest["inputs"]} == {"mine", "theirs", "chats", "hub"}
    assert all(i["url"].startswith(("file://", "hf://")) for i in manifest["inputs"])
    want = {"mine": "CC BY-NC 4.0", "theirs": "Apache-2.0", "chats": "CC BY 4.0", "hub": "MIT"}
    man = read_json(run / "mixtures" / "per_source-200.manifest.json")
    assert man["licenses"] == {s: want[s] for s in man["composition"]["by_source"]} and man["blended_licenses"]
    rows = json.loads((run / "mixtures" / "per_source-200.sharegpt.json").read_text(encoding="utf-8"))
    assert len(rows) == 200 and all(r["license"] == want[r["source"]] for r in rows)
    pool = pd.read_parquet(run / "05_diversity" / "kept.parquet", columns=["id", "source"])
    assert set(r["id"] for r in rows) <= set(pool["id"])
    ledger = manifest["ledger"]
    n_chats = len(json.loads((user_files / "chats.json").read_text(encoding="utf-8")))
    assert ledger[0]["in"] == 300 + 300 + n_chats + 50 and all(row["balanced"] for row in ledger)


@pytest.mark.slow
def test_tiger_run_input_curates_a_file_with_the_default_recipe(user_files, tmp_path, capsys):
    from flows.cli import main

    main(["run", "--input", str(user_files / "mine.jsonl"), "--data-dir", str(tmp_path / "data")])
    out = capsys.readouterr().out
    run = Path(out.split("done: ", 1)[1].split()[0])
    manifest = read_json(run / "manifest.json")
    assert [i["source"] for i in manifest["inputs"]] == ["input"]
    assert manifest["recipe"]["sources"][0]["path"] == [str(user_files / "mine.jsonl")]
    assert manifest["ledger"][0]["in"] == 300 and (run / "mixtures" / "random-5000.json").is_file()


def test_the_readme_example_recipe_loads_and_parses(tmp_path):
    """tests/data/own/recipe.yaml, the README's example: both sources read, the chats as chats."""
    recipe = load_recipe(Path(__file__).resolve().parent / "data" / "own" / "recipe.yaml")
    assert recipe.sources == ("mydata", "mychats") and recipe.licenses()["mychats"] == "CC0-1.0"
    res = parse_files([f for s in recipe.user_sources for f in user_source_files(s, tmp_path)])
    assert len(res.dropped) == 0 and res.kept["source"].value_counts().to_dict() == {"mydata": 10, "mychats": 2}
    chat = res.kept[res.kept["source"] == "mychats"].iloc[0]
    assert chat["instruction"] == "为什么推荐这本？" and len(json.loads(chat["history"])) == 1
