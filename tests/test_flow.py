"""End to end: the Prefect flow on a slice of the real mirror, through every stage to the report."""
import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from curate.pipeline import check_chain
from curate.recipe import DEFAULT_RECIPE, STAGES

SLICE = {
    "trans_chinese_alpaca": ["alpaca_chinese_part_0.json", "alpaca_chinese_part_52.json", "developer_instruction.json"],
    "alpaca_chinese": ["translated/alpaca_data-9407-12345-中文-未完成.json",
                       "translated/alpaca_data-0-3252-中文-已完成.json",
                       "translated/alpaca_data-18280-21320-中文-wys未完成.json",
                       "supplementary/整数加减法.json", "supplementary/名词解释类问题.json", "supplementary/翻译问题.json",
                       "supplementary/代码问题.json"],
    "belle": ["dev1K.json", "zh_seed_tasks.json"],
    "traditional": ["chinese_vicuna_chat_sample.jsonl"],
}


@pytest.fixture(scope="module")
def slice_run(tmp_path_factory, link_slice):
    root = tmp_path_factory.mktemp("e2e")
    m = link_slice(root / "mirror", SLICE)
    recipe = yaml.safe_load(DEFAULT_RECIPE.read_text(encoding="utf-8"))
    recipe["mixtures"] = ["random-800", "per_source-800", "diverse-800", "narrow-800"]
    recipe["diversity"][1]["cluster_tagger"]["n_clusters"] = 20
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")

    from flows.curate_flow import curate_flow

    run_dir = Path(curate_flow(recipe_path=str(root / "recipe.yaml"), mirror=str(m), data_dir=str(root / "data")))
    return root, m, run_dir


def _digest(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.suffix in {".parquet", ".json"}}


def test_every_stage_balances_and_chains(slice_run):
    _, _, run_dir = slice_run
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    ledger = manifest["ledger"]
    assert [row["stage"] for row in ledger] == STAGES
    check_chain(ledger)
    for stage in STAGES:
        kept = pd.read_parquet(run_dir / stage / "kept.parquet")
        row = next(r for r in ledger if r["stage"] == stage)
        path = run_dir / stage / "dropped.parquet"
        assert path.exists() == (row["dropped"] > 0), stage  # no 0-row file (datasets cannot load one)
        dropped = pd.read_parquet(path) if path.exists() else pd.DataFrame({"reason": pd.Series(dtype=str)})
        assert (len(kept), len(dropped)) == (row["kept"], row["dropped"])
        assert dropped["reason"].astype(str).str.len().gt(0).all(), f"{stage}: a drop without a reason"
        # the kept rows' digest, noted as they were written, is theirs (the next stage's key uses it)
        noted = (run_dir / stage / ".kept.parquet.sha256").read_text().split()[0]
        assert noted == hashlib.sha256((run_dir / stage / "kept.parquet").read_bytes()).hexdigest(), stage
    # every input file is in the manifest with its checksum
    assert len(manifest["inputs"]) == sum(len(v) for v in SLICE.values())
    assert all(len(f["sha256"]) == 64 for f in manifest["inputs"])


def test_real_defects_are_handled(slice_run):
    _, _, run_dir = slice_run
    parsed = pd.read_parquet(run_dir / "01_parse" / "kept.parquet")
    broken = parsed[parsed["file"].str.contains("9407-12345")]
    assert len(broken) >= 2790  # the broken file is recovered row by row
    stats = json.loads((run_dir / "01_parse" / "stats.json").read_text(encoding="utf-8"))
    repairs = next(v["repairs"] for k, v in stats["files"].items() if "9407-12345" in k)
    assert repairs and repairs[0]["kind"] == "trailing_comma"  # and the repair is reported with its position
    quarantine = pd.read_parquet(run_dir / "01_parse" / "dropped.parquet")
    # the one unparseable real row (all fields empty) is quarantined with file, row and reason
    assert quarantine[["file", "row", "reason"]].values.tolist() == [
        ["supplementary/名词解释类问题.json", 151, "missing_instruction_and_output"]]

    filtered = pd.read_parquet(run_dir / "03_filter" / "dropped.parquet")
    assert (filtered["reason"] == "not_chinese").sum() > 100  # untranslated English rows in the hikariming chunk

    pool = pd.read_parquet(run_dir / "05_diversity" / "kept.parquet")
    vicuna = pool[pool["source"] == "traditional"]
    assert len(vicuna) and not vicuna["instruction"].str.contains("個|來|這").any()  # traditional → simplified

    dd = pd.read_parquet(run_dir / "04_dedupe" / "dropped.parquet")
    assert set(dd["reason"]) <= {"exact_duplicate", "near_duplicate"} and len(dd) > 500
    survivors = pd.read_parquet(run_dir / "04_dedupe" / "kept.parquet").set_index("id")["source"]
    cross = [src != survivors.get(det.split()[0].split(":")[-1], src) for src, det in zip(dd["source"], dd["detail"])]
    assert any(cross), "no duplicate across sources found (the two alpaca translations overlap)"
    assert set(pool["task_type"]) >= {"math", "code", "rewrite"}


def test_mixtures_and_report(slice_run):
    _, _, run_dir = slice_run
    pool = pd.read_parquet(run_dir / "05_diversity" / "kept.parquet")
    for name in ["random-800", "per_source-800", "diverse-800", "narrow-800"]:
        rows = json.loads((run_dir / "mixtures" / f"{name}.json").read_text(encoding="utf-8"))
        assert 0 < len(rows) <= 800
        assert {"instruction", "input", "output"} <= set(rows[0])
        assert (run_dir / "mixtures" / f"{name}.manifest.json").exists()
    page = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    for section in ["summary", "ledger", "parse", "normalize", "filter", "dedupe", "diversity", "mixtures", "manifest"]:
        assert f"id='{section}'" in page
    assert page.count("<figure class='chart'") >= 4  # charts the browser draws (tests/test_browser.py)
    # drop examples are sortable tables with a column per field, not JSON lines
    assert "<ul class='ex'>" not in page and "data-table='examples'" in page
    dd = pd.read_parquet(run_dir / "04_dedupe" / "dropped.parquet")
    first = dd[dd["reason"] == "near_duplicate"].iloc[0]
    assert f"<td>{first['detail']}</td>" in page
    from curate.tasktype_model import MIN_CONFIDENCE

    low = int((pool["task_confidence"] < MIN_CONFIDENCE).sum())  # the labels that are guesses, counted
    assert f"Low-confidence task types (task_confidence &lt; {MIN_CONFIDENCE}): {low:,} of {len(pool):,} rows" in page
    assert (run_dir / "report" / "summary.md").read_text(encoding="utf-8").startswith("# tiger curation report")
    assert len(pool) > 1000


def test_drop_sections_count_every_reason_and_show_its_first_rows(slice_run, tmp_path):
    """Each stage's drop section counts every (stage, reason) of its dropped.parquet and shows the
    first three rows of each in file order. Texts are read only for the rows shown, so the same
    rows reordered to interleave the reasons, in row groups of 7, must be shown just as well."""
    import re

    import numpy as np
    import pyarrow.parquet as pq

    from curate.report.html import drops_html

    _, _, run_dir = slice_run
    for stage in ["01_parse", "03_filter", "04_dedupe"]:
        table = pq.read_table(run_dir / stage / "dropped.parquet")
        order = np.array(sorted(range(table.num_rows), key=lambda i: (i % 5, i)))
        (tmp_path / stage).mkdir()
        pq.write_table(table.take(order), tmp_path / stage / "dropped.parquet", row_group_size=7)
        for folder, frame in [(run_dir, table.to_pandas()), (tmp_path, table.take(order).to_pandas())]:
            page = drops_html(folder, stage)
            groups = frame.groupby(["stage", "reason"])
            sections = page.split("<h4>")[1:]
            assert len(sections) == groups.ngroups > 0, stage
            for sec, ((st, reason), part) in zip(sections, groups):
                assert sec.startswith(f"{st} — {reason}: {len(part):,}</h4>")
                shown = [int(v) for v in re.findall(r"<td data-v='(\d+)'>", sec)]
                assert shown == part["row"].head(3).tolist(), (stage, reason)


def test_rerun_resumes_and_is_byte_identical(slice_run, tmp_path):
    root, m, run_dir = slice_run
    before = _digest(run_dir)
    # Simulate a run killed inside the dedupe stage: its marker and outputs are gone, later stages stale.
    (run_dir / "04_dedupe" / "_SUCCESS.json").unlink()
    (run_dir / "04_dedupe" / "kept.parquet").unlink()
    parse_mtime = (run_dir / "01_parse" / "kept.parquet").stat().st_mtime_ns

    from flows.curate_flow import curate_flow

    again = Path(curate_flow(recipe_path=str(root / "recipe.yaml"), mirror=str(m), data_dir=str(root / "data")))
    assert again == run_dir
    assert (run_dir / "01_parse" / "kept.parquet").stat().st_mtime_ns == parse_mtime  # finished stages not redone
    assert _digest(run_dir) == before


def test_report_reuses_the_diversity_stages_embedding_and_writes_the_same_bytes(slice_run, tmp_path):
    """The diversity stage keeps its fitted embedding in <run>/_cache; the report loads that file
    instead of fitting the same embedding again (another fit under its name changes the page), and
    its page is the same bytes as a report that fits its own."""
    import pickle
    import shutil

    from curate.embed import Embedder, instruction_texts
    from curate.report.run_report import build_report

    _, _, run_dir = slice_run
    stored = sorted((run_dir / "_cache").glob("embedder-*.pkl"))
    assert len(stored) == 1
    # the flow computed the report's analysis of the pool beside the mixtures; the report found it
    analysed = sorted((run_dir / "_cache").glob("pool-analysis-*.pkl"))
    assert len(analysed) == 1
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    page = (copy / "report" / "report.html").read_bytes()
    build_report(copy)
    assert (copy / "report" / "report.html").read_bytes() == page
    kept = pickle.loads(analysed[0].read_bytes())
    (copy / "_cache" / analysed[0].name).write_bytes(pickle.dumps({**kept, "examples": {"all": []}}))
    build_report(copy)
    assert (copy / "report" / "report.html").read_bytes() != page  # the report read the analysis kept
    (copy / "_cache" / analysed[0].name).unlink()  # computed here now, from the stored fit
    build_report(copy)
    assert (copy / "report" / "report.html").read_bytes() == page
    # the report reads the stored fit: put another fit under its name and the figures move
    real = (copy / "_cache" / stored[0].name).read_bytes()
    pool = pd.read_parquet(copy / "05_diversity" / "kept.parquet", columns=["instruction", "input"])
    other = Embedder(seed=12345).fit(instruction_texts(pool))
    (copy / "_cache" / stored[0].name).write_bytes(pickle.dumps((other._vec, other._svd)))
    build_report(copy)
    assert (copy / "report" / "report.html").read_bytes() != page
    (copy / "_cache" / stored[0].name).write_bytes(real)
    shutil.rmtree(copy / "_cache")  # no store: the report fits the embedding itself (and writes no store)
    build_report(copy)
    assert (copy / "report" / "report.html").read_bytes() == page
    assert not (copy / "_cache").exists()


def test_report_in_a_process_of_its_own_writes_the_same_bytes(slice_run, tmp_path):
    """On a worker that ran other stages, the flow builds the report in a new Python process: the same
    page and summary as in this process, the Markdown returned; a failure there names the run."""
    import os
    import shutil

    from curate.report import build_report_fresh

    _, _, run_dir = slice_run
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    page = (run_dir / "report" / "report.html").read_bytes()
    shutil.rmtree(copy / "report")
    before = os.times().children_user
    html, md = build_report_fresh(copy)
    assert os.times().children_user > before  # the work ran in a child process
    assert html == copy / "report" / "report.html" and html.read_bytes() == page
    assert md == (run_dir / "report" / "summary.md").read_text(encoding="utf-8")
    (copy / "manifest.json").unlink()
    with pytest.raises(RuntimeError, match=f"report of {copy}.*own process"):
        build_report_fresh(copy)


def test_rows_are_read_a_row_group_at_a_time_in_the_order_asked(slice_run, tmp_path):
    """parquet_rows / rows_by_id (the report's reads of a few rows of a large file) give exactly what
    pandas gives from the whole frame, across row-group boundaries and in any order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.report.analysis import parquet_rows
    from curate.report.samples import rows_by_id

    _, _, run_dir = slice_run
    df = pd.read_parquet(run_dir / "05_diversity" / "kept.parquet", columns=["id", "source", "instruction", "output"])
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=97)
    assert pq.ParquetFile(path).num_row_groups > 10
    pos = np.random.default_rng(0).choice(len(df), size=150, replace=False)
    pos = np.concatenate([pos, [0, 96, 97, len(df) - 1, 96]])  # edges of row groups, a repeat
    got = parquet_rows(path, ["instruction", "id", "missing"])(pos)
    assert list(got.columns) == ["instruction", "id"]
    assert got.equals(df[["instruction", "id"]].iloc[pos].reset_index(drop=True))
    assert parquet_rows(path, ["id"])(np.empty(0, np.int64)).empty
    with pytest.raises(IndexError, match="groups.parquet"):
        parquet_rows(path, ["id"])(np.array([len(df)]))
    ids = df["id"].iloc[[400, 3, 250]].tolist() + ["not-an-id"]
    found = rows_by_id(path, ids, ["id", "output"])
    assert found["id"].tolist() == df["id"].iloc[[3, 250, 400]].tolist()  # file order
    assert found["output"].tolist() == df["output"].iloc[[3, 250, 400]].tolist()


def test_every_parquet_of_a_run_loads_with_datasets(slice_run, tmp_path):
    """Stage outputs and mixture exports open with `datasets.load_dataset("parquet", …)`, row counts
    intact (a stage that drops nothing leaves no 0-row file, which datasets refuses)."""
    import pyarrow.parquet as pq
    from datasets import load_dataset

    _, _, run_dir = slice_run
    files = sorted(p for p in run_dir.rglob("*.parquet") if "_cache" not in p.parts)
    assert any(p.name == "dropped.parquet" for p in files) and any(p.parent.name == "mixtures" for p in files)
    assert not (run_dir / "05_diversity" / "dropped.parquet").exists()  # the diversity stage drops nothing
    for p in files:
        ds = load_dataset("parquet", data_files=str(p), split="train", cache_dir=str(tmp_path / "hf"))
        assert len(ds) == pq.ParquetFile(p).metadata.num_rows > 0, p
        if "history" in ds.features:  # a list column is an Arrow list of [query, response] pairs, not JSON text
            assert str(pq.read_schema(p).field("history").type) == "list<element: list<element: string>>", p
            assert all(isinstance(h, list) for h in ds["history"][:50])
    # and every stage reads back the JSON text its operators work on, equal to what was written
    from curate.io import read_parquet

    kept = read_parquet(run_dir / "04_dedupe" / "kept.parquet")
    assert kept["history"].map(lambda h: isinstance(json.loads(h), list)).all()
    raw = pd.read_parquet(run_dir / "04_dedupe" / "kept.parquet", columns=["history"])["history"]
    assert [json.dumps([list(p) for p in h], ensure_ascii=False) for h in raw[:200]] == kept["history"][:200].tolist()
