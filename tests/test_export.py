"""Mixture exports on real curated rows: sharegpt JSON, Parquet and an HF dataset folder, each row
with its id, source and licence; they round-trip, and files get the mode the umask gives."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from curate.export import source_licenses
from curate.mix import build_mixture, parse_mixture_specs, write_mixture

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pool(mirror):
    """Real rows of three sources with different licences, multi-turn chats (with history) among them."""
    from curate.parse import parse_files

    picks = [("trans_chinese_alpaca", "alpaca_chinese_part_0.json", 60), ("belle", "dev1K.json", 30),
             ("traditional", "chinese_vicuna_chat_sample.jsonl", 1000)]
    frames = []
    for source, rel, n in picks:
        res = parse_files([{"source": source, "file": rel, "path": str(mirror / source / rel),
                            "format": "jsonl" if rel.endswith(".jsonl") else "json"}])
        kept = res.kept
        if source == "traditional":
            kept = kept[kept["history"].astype(str) != "[]"]
        frames.append(kept.head(n))
    df = pd.concat(frames, ignore_index=True)
    assert (df["history"].astype(str) != "[]").sum() >= 3
    df["task_type"] = "open qa"
    return df


def test_exports_round_trip_with_ids_sources_and_licences(pool, tmp_path):
    from datasets import load_dataset, load_from_disk

    spec = parse_mixture_specs([f"random-{len(pool)}"])[0]  # every row, the multi-turn ones included
    mix = build_mixture(pool, spec)
    man = write_mixture(mix, spec, tmp_path)
    lic = source_licenses()
    assert man["licenses"] == {s: lic[s] for s in sorted(set(mix["source"]))}
    assert man["blended_licenses"] is (len(set(man["licenses"].values())) > 1)

    share = json.loads((tmp_path / f"{spec.name}.sharegpt.json").read_text(encoding="utf-8"))
    assert [r["id"] for r in share] == list(mix["id"])
    for r, (_, row) in zip(share, mix.iterrows()):
        assert r["source"] == row["source"] and r["license"] == lic[row["source"]]
        conv = r["conversations"]
        assert [t["from"] for t in conv][-2:] == ["human", "gpt"] and conv[-1]["value"] == row["output"]
        want = row["instruction"] + ("\n\n" + row["input"] if row["input"] else "")
        assert conv[-2]["value"] == want
        assert len(conv) == 2 + 2 * len(json.loads(row["history"]))  # earlier turns first

    ds = load_from_disk(str(tmp_path / spec.name))
    assert ds.num_rows == len(pool) and list(ds["id"]) == list(mix["id"]) and set(ds["license"]) <= set(lic.values())
    multi = [h for h in ds["history"] if h]
    want = [json.loads(h) for h in mix["history"] if h != "[]"]
    assert multi == want and len(multi[0][0]) == 2  # history is a list of [query, response], not a JSON string
    card = (tmp_path / spec.name / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlicense: other") and "language:\n- zh" in card and "| trans_chinese_alpaca |" in card

    pq = load_dataset("parquet", data_files=str(tmp_path / f"{spec.name}.parquet"), split="train",
                      cache_dir=str(tmp_path / "hf"))
    assert list(pq["id"]) == list(mix["id"]) and list(pq["source"]) == list(mix["source"])

    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert info[f"{spec.name}_sharegpt"]["formatting"] == "sharegpt"
    assert info[f"{spec.name}_sharegpt"]["file_name"] == f"{spec.name}.sharegpt.json"


def test_a_blend_of_licences_says_so(pool, tmp_path):
    mix = build_mixture(pool, f"random-{len(pool)}")  # every row: all three sources
    man = write_mixture(mix, {"name": "all", "strategy": "random", "size": len(pool)}, tmp_path)
    assert len(set(man["licenses"].values())) == 3 and man["blended_licenses"] is True
    assert "blends 3 licences" in (tmp_path / "all" / "README.md").read_text(encoding="utf-8")
    one = write_mixture(pool[pool["source"] == "belle"], {"name": "belle-only", "strategy": "random", "size": 30}, tmp_path)
    assert one["blended_licenses"] is False


def test_files_take_the_mode_the_umask_gives(tmp_path):
    """In a process whose umask is 022, outputs are 0644 and the dataset folder 0755 (mkstemp alone gives 0600)."""
    code = ("import os, sys; os.umask(0o022)\n"
            "from curate.io import write_json, write_parquet\n"
            "import pandas as pd\n"
            "write_json(sys.argv[1] + '/a.json', {'x': 1}); write_parquet(sys.argv[1] + '/b.parquet', pd.DataFrame({'x': [1]}))\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=ROOT)
    for name in ("a.json", "b.parquet"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
    code = code.replace("0o022", "0o077")
    (tmp_path / "c").mkdir()
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], check=True, cwd=ROOT)
    assert stat.S_IMODE(os.stat(tmp_path / "c" / "a.json").st_mode) == 0o600
    pd.DataFrame()  # (pandas imported for the child's sake only)


def test_a_system_prompt_reaches_every_format_in_the_shape_llamafactory_reads(pool, tmp_path):
    """A chat's system prompt (parse keeps it in ``extra``) is the sharegpt row's first turn, a
    ``system`` field of the alpaca rows and a column of the Parquet; both dataset_info entries name
    it. LLaMA-Factory sets every tag a ``tags`` block leaves out to None, so without ``system_tag``
    its sharegpt converter takes the system turn for a misplaced user turn and drops the row."""
    from curate.parse import parse_files

    own = ROOT / "tests" / "data" / "own" / "chats.jsonl"
    chats = parse_files([{"source": "mychats", "file": own.name, "path": str(own), "format": "jsonl"}]).kept
    assert len(chats) == 2 and json.loads(chats["extra"].iloc[0])["system"] == "你是一个简洁的助手。"
    df = pd.concat([chats, pool.head(5)], ignore_index=True)
    df["task_type"] = "open qa"
    write_mixture(df, {"name": "sys", "strategy": "random", "size": len(df)}, tmp_path,
                  licenses={"mychats": "CC0-1.0"})
    systems = ["你是一个简洁的助手。"] + [""] * (len(df) - 1)

    share = json.loads((tmp_path / "sys.sharegpt.json").read_text(encoding="utf-8"))
    by_id = {r["id"]: r["conversations"] for r in share}
    first = by_id[chats["id"].iloc[0]]
    assert [t["from"] for t in first] == ["system", "human", "gpt", "human", "gpt"]
    assert first[0]["value"] == systems[0]
    for conv in by_id.values():  # after an optional system turn: human/gpt pairs, as LLaMA-Factory checks them
        turns = [t["from"] for t in conv if t["from"] != "system"]
        assert conv[0]["from"] in ("system", "human") and turns == ["human", "gpt"] * (len(turns) // 2)

    alpaca = json.loads((tmp_path / "sys.json").read_text(encoding="utf-8"))
    want = dict(zip(df["instruction"], systems))
    assert all(set(r) == {"instruction", "input", "output", "history", "system"} for r in alpaca)
    assert {r["instruction"]: r["system"] for r in alpaca} == want
    pq = pd.read_parquet(tmp_path / "sys.parquet")
    assert dict(zip(pq["id"], pq["system"])) == dict(zip(df["id"], systems))

    info = json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["sys"]["columns"] == {"prompt": "instruction", "query": "input", "response": "output",
                                      "history": "history", "system": "system"}
    assert info["sys_sharegpt"]["tags"] == {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                                            "assistant_tag": "gpt", "system_tag": "system"}
    # a mixture without any system prompt keeps the alpaca file as before: no system field
    write_mixture(pool.head(5), {"name": "plain", "strategy": "random", "size": 5}, tmp_path)
    assert "system" not in json.loads((tmp_path / "plain.json").read_text(encoding="utf-8"))[0]
    assert "system" not in json.loads((tmp_path / "dataset_info.json").read_text(encoding="utf-8"))["plain"]["columns"]
