import time

import pandas as pd
import pytest

from curate.io import read_parquet, write_parquet
from curate.records import LedgerError, StageResult, drop_frame, make_record, records_frame


def test_id_is_stable_and_location_sensitive():
    a = make_record("belle", "dev1K.json", 3, "你好", "", "世界")
    b = make_record("belle", "dev1K.json", 3, "你好", "", "世界")
    c = make_record("belle", "dev1K.json", 4, "你好", "", "世界")
    assert a["id"] == b["id"] and a["id"] != c["id"]


def test_history_and_extra_are_the_json_dumps_writes():
    import json

    for hist, extra in [(None, None), ([], {}), ([["问", "答"]], {"b": "二", "a": 1}), ([["q", "a"], ["甲", ""]], {"k": [1, {"x": None}]})]:
        r = make_record("s", "f", 0, "i", history=hist, extra=extra)
        assert r["history"] == json.dumps(hist or [], ensure_ascii=False)
        assert r["extra"] == json.dumps(extra or {}, ensure_ascii=False, sort_keys=True)


def test_nesting_depth_of_flat_and_nested_values():
    from curate.parse import _depth_over

    assert not _depth_over({"a": "x", "b": 1}, 1) and _depth_over({"a": "x"}, 0)
    assert _depth_over({"a": [[1]]}, 2) and not _depth_over({"a": [[1]]}, 3)
    assert not _depth_over({}, 1) and not _depth_over(None, 1) and _depth_over([[[]]], 2)


def test_ledger_check_fails_when_rows_vanish():
    df = records_frame([make_record("s", "f", i, f"问题{i}", "", "答") for i in range(3)])
    ok = StageResult(df.iloc[:2], drop_frame(df.iloc[2:], "x", "because"))
    ok.check(3, "x")
    with pytest.raises(LedgerError):
        StageResult(df.iloc[:1], drop_frame(df.iloc[2:], "x", "because")).check(3, "x")


def test_parquet_roundtrip_is_byte_identical(tmp_path):
    df = records_frame([make_record("s", "f", i, f"问题{i}，", "", "答。") for i in range(5)])
    write_parquet(tmp_path / "a.parquet", df)
    write_parquet(tmp_path / "b.parquet", read_parquet(tmp_path / "a.parquet"))
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "a.parquet"), df)


def test_history_is_an_arrow_list_on_disk_and_json_text_in_memory(tmp_path):
    """write_parquet stores history as list<list<string>> (datasets and pandas read lists); read_parquet
    gives back the same JSON text the operators work on; a history that is not string pairs is refused
    with the file and row named."""
    import pandas as pd
    import pyarrow.parquet as pq

    from curate.io import read_parquet, write_parquet
    from curate.records import make_record

    recs = [make_record("s", "a.json", 0, "问", "", "答", [["你好", "你好！"], ["再见", ""]]),
            make_record("s", "a.json", 1, "问2", "入", "答2"),
            make_record("s", "a.json", 2, "问3", "", "答3", [["一", "二"]])]
    df = pd.DataFrame(recs).astype({"history": "str"})
    path = write_parquet(tmp_path / "k.parquet", df)
    assert str(pq.read_schema(path).field("history").type) == "list<element: list<element: string>>"
    assert pq.read_table(path).column("history").to_pylist() == [[["你好", "你好！"], ["再见", ""]], [], [["一", "二"]]]
    back = read_parquet(path)
    assert back.equals(df)
    bad = df.assign(history=['[["只有一个"], 3]', "[]", "[]"])
    with pytest.raises(ValueError, match=r"bad\.parquet: row 0: history"):
        write_parquet(tmp_path / "bad.parquet", bad)
    assert not (tmp_path / "bad.parquet").exists()


def test_written_in_parts_the_bytes_equal_the_whole(tmp_path, monkeypatch, mirror):
    """write_parquet_parts (a stage's shards, one at a time) writes the bytes write_parquet writes for
    their concatenation, row groups included, whatever the part sizes; datasets reads the file."""
    import datasets
    import pyarrow.parquet as pq

    from curate import io
    from curate.parse import parse_files

    files = [{"source": "belle", "file": "dev1K.json", "path": str(mirror / "belle" / "dev1K.json"), "format": "json"},
             {"source": "traditional", "file": "chinese_vicuna_chat_sample.jsonl",
              "path": str(mirror / "traditional" / "chinese_vicuna_chat_sample.jsonl"), "format": "jsonl"}]
    df = parse_files(files).kept  # real rows, histories included
    assert (df["history"] != "[]").any()
    df["note"] = [None if i % 500 else "注" for i in range(len(df))]  # some parts hold only nulls here
    monkeypatch.setattr(io, "ROW_GROUP_BYTES", 50_000)  # many row groups from a small file
    whole = io.write_parquet(tmp_path / "whole.parquet", df)
    groups = pq.ParquetFile(whole).metadata.num_row_groups
    assert groups > 5
    for size in (1, 97, 400, len(df)):
        parts = [(lambda a=a: df.iloc[a:a + size].reset_index(drop=True)) for a in range(0, len(df), size)]
        if size == 1:
            parts = parts[:300]
            io.write_parquet(tmp_path / "head.parquet", df.iloc[:300])
            assert io.write_parquet_parts(tmp_path / "p.parquet", parts).read_bytes() == \
                (tmp_path / "head.parquet").read_bytes()
            continue
        assert io.write_parquet_parts(tmp_path / "p.parquet", parts).read_bytes() == whole.read_bytes(), size
        # with each part's facts kept by the task that wrote it: loaded once, the same bytes
        loads: list[int] = []
        counted = [(lambda k=k, p=p: loads.append(k) or p()) for k, p in enumerate(parts)]
        facts = [io.part_facts(p()) for p in parts]
        assert io.write_parquet_parts(tmp_path / "f.parquet", counted, facts).read_bytes() == whole.read_bytes()
        assert sorted(loads) == list(range(len(parts)))
    full = io.read_parquet(whole)  # rows read from the row groups that hold them, as slices of the whole
    for a, b in ((0, 1), (5, 5), (333, 2222), (len(df) - 7, len(df) + 9)):
        assert io.read_rows(whole, a, b).equals(full.iloc[a:b].reset_index(drop=True)), (a, b)
    at = [3, 4, 900, 901, len(df) - 1]
    assert io.read_positions(whole, at, ["id", "history"]).equals(full.iloc[at][["id", "history"]].reset_index(drop=True))
    far = [0, 1, len(df) // 2, len(df) // 2, len(df) - 1]  # groups between are skipped; a repeat is read twice
    assert io.read_positions(whole, far).equals(full.iloc[far].reset_index(drop=True))
    back = datasets.load_dataset("parquet", data_files=str(whole), split="train")
    assert back.num_rows == len(df) and back.column_names == list(df.columns)
    pd.testing.assert_frame_equal(io.read_parquet(whole), df.astype({"note": "object"}), check_dtype=False)
    with pytest.raises(ValueError, match=r"x\.parquet: parts have different columns"):
        io.write_parquet_parts(tmp_path / "x.parquet", [lambda: df.iloc[:3], lambda: df.iloc[3:6, :-1]])
    assert not (tmp_path / "x.parquet").exists()


def test_a_noted_write_gives_the_digest_without_reading_the_file_again(tmp_path, mirror):
    """A stage's kept rows are hashed as they are written (``note``): the same bytes, a hidden note
    beside them, and ``sha256_file`` answers from the note only while the file is the one noted."""
    import hashlib
    import os

    from curate import io
    from curate.parse import parse_files

    df = parse_files([{"source": "belle", "file": "dev1K.json", "path": str(mirror / "belle" / "dev1K.json"),
                       "format": "json"}]).kept
    plain = io.write_parquet(tmp_path / "plain.parquet", df)
    noted = io.write_parquet_parts(tmp_path / "kept.parquet", [lambda: df.iloc[:400], lambda: df.iloc[400:]], note=True)
    real = hashlib.sha256(noted.read_bytes()).hexdigest()
    assert noted.read_bytes() == plain.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".kept.parquet.sha256", "kept.parquet", "plain.parquet"]
    note = tmp_path / ".kept.parquet.sha256"
    assert note.read_text().split()[0] == real == io.sha256_file(noted)
    assert note.read_text() == f"{real} {noted.stat().st_size}\n"  # no time in it: equal runs, equal notes
    # the note is what answers: another digest in it is believed while the file is the one noted …
    fake = "0" * 64
    note.write_text(f"{fake} {noted.stat().st_size}\n")
    assert io.sha256_file(noted) == fake
    # … and not once the file is modified after the note, has another size, or the note is not one
    st = note.stat()
    os.utime(noted, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert io.sha256_file(noted) == real
    os.utime(noted, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert io.sha256_file(noted) == fake
    note.write_text(f"{fake} {noted.stat().st_size + 1}\n")
    assert io.sha256_file(noted) == real
    note.write_text("garbage")
    assert io.sha256_file(noted) == real


def test_the_digesting_file_writes_on_its_thread_and_raises_what_the_file_raised(tmp_path):
    """The noted write's file takes the bytes on a thread of its own: they arrive whole and in order
    with their digest, ``tell`` counts them as given, and a failing file (a full disk) fails the
    writer's next call instead of passing unseen."""
    import hashlib

    from curate.io import _Digesting

    blocks = [bytes([k % 251]) * (1000 + 37 * k) for k in range(300)]
    f = _Digesting(tmp_path / "f.bin")
    for k, b in enumerate(blocks):
        buf = bytearray(b)
        assert f.write(memoryview(buf)) == len(b)
        buf[:] = b"\0" * len(buf)  # the writer reuses its buffer at once: what was given stays given
        assert f.tell() == sum(map(len, blocks[:k + 1]))
    f.flush()
    f.close()
    want = b"".join(blocks)
    assert (tmp_path / "f.bin").read_bytes() == want and f.hexdigest() == hashlib.sha256(want).hexdigest()
    broken = _Digesting(tmp_path / "g.bin")
    broken._f.close()  # every write to the file now fails, as on a full disk
    broken.write(b"abc")
    with pytest.raises(ValueError):
        broken.flush()
    with pytest.raises(ValueError):
        broken.close()


def test_ahead_gives_the_items_in_order_one_made_ahead_and_raises_where_the_source_does(tmp_path):
    """io.ahead (the writers load the next part while one is encoded): the same items in order, the
    next one made in another thread before the caller asks, at most one ahead; an error in making
    an item reaches the caller at that item; a partly written file is not left behind."""
    import threading

    from curate import io

    made: list[tuple[int, str]] = []

    def items(n):
        for k in range(n):
            made.append((k, threading.current_thread().name))
            yield k

    got = []
    for k in io.ahead(items(6)):
        # while the caller works on item k, item k + 1 is made (and no more: one is held ahead)
        want = list(range(min(6, k + 2)))
        deadline = time.monotonic() + 30
        while len(made) < len(want) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [m for m, _ in made] == want
        got.append(k)
    assert got == list(range(6)) and all(name.startswith("tiger-ahead") for _, name in made)

    def broken():
        yield pd.DataFrame({"a": ["x"]})
        raise ValueError("part 2 of f.parquet is unreadable")

    with pytest.raises(ValueError, match="part 2 of f.parquet"):
        list(io.ahead(broken()))
    parts = [lambda: pd.DataFrame({"a": ["x"]}), lambda: (_ for _ in ()).throw(OSError("part 1 is gone"))]
    facts = [io.part_facts(pd.DataFrame({"a": ["x"]}))] * 2
    with pytest.raises(OSError, match="part 1 is gone"):
        io.write_parquet_parts(tmp_path / "f.parquet", parts, facts)
    assert not list(tmp_path.iterdir())  # no file, no temporary file


def test_a_parts_facts_and_empty_drops_hold_none_of_its_rows(tmp_path, mirror):
    """part_facts keeps each part's empty head for its dtypes, and empty_drops an empty frame like the
    rows': ``df.iloc[:0]`` of Arrow-backed columns would keep a whole Arrow chunk alive (a 10M-row
    merge held 1.6 GiB of such heads)."""
    import gc

    import pyarrow as pa

    from curate import io
    from curate.parse import parse_files
    from curate.records import empty_drops, empty_like

    files = [{"source": "belle", "file": "dev1K.json", "path": str(mirror / "belle" / "dev1K.json"), "format": "json"}]
    path = io.write_parquet(tmp_path / "rows.parquet", parse_files(files).kept)
    gc.collect()
    base = pa.total_allocated_bytes()
    df = io.read_rows(path, 0, 1000)  # Arrow-backed strings, as every stage reads its input
    held = pa.total_allocated_bytes() - base
    assert held > 100_000 and isinstance(df["instruction"].array, pd.arrays.ArrowStringArray)
    facts, drops, like = io.part_facts(df), empty_drops(df, "s"), empty_like(df)
    assert like.empty and like.dtypes.equals(df.dtypes) and list(like.columns) == list(df.columns)
    assert facts["head"].dtypes.equals(df.dtypes) and drops.empty
    assert list(drops.columns) == list(df.columns) + ["stage", "reason", "detail"]
    assert (df.iloc[:0]["instruction"].array._pa_array.get_total_buffer_size() > 10_000), \
        "pandas no longer keeps a chunk in an empty slice: empty_like may go"
    del df
    gc.collect()
    assert pa.total_allocated_bytes() - base < held / 20


def test_a_stage_that_reruns_sweeps_the_temp_files_a_kill_left(tmp_path):
    """atomic_path's temp files survive a SIGKILL; sweep_temps (run where a stage starts over)
    removes them, and only them."""
    from curate.io import atomic_path, sweep_temps, write_json

    write_json(tmp_path / "ledger.json", {"a": 1})
    (tmp_path / "_work" / "step00").mkdir(parents=True)
    stale = [tmp_path / ".kept.parquet.k2j3.tmp", tmp_path / "_work" / "step00" / ".sig-00001.npy.x9.tmp"]
    for p in stale:
        p.write_bytes(b"PAR1 half-written")
    keep = [tmp_path / "ledger.json", tmp_path / "notes.tmp", tmp_path / "_work" / "step00" / "sig-00000.npy"]
    keep[1].write_text("a user's file, not ours")
    keep[2].write_bytes(b"\x93NUMPY")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.json") as tmp:
            tmp.write_text("{")
            raise RuntimeError("a failure (not a kill) cleans up at once")
    assert sorted(sweep_temps(tmp_path)) == sorted(str(p.relative_to(tmp_path)) for p in stale)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in stale)
    assert sweep_temps(tmp_path / "absent") == []
