import pandas as pd
import pytest

from curate.io import read_parquet, write_parquet
from curate.records import LedgerError, StageResult, drop_frame, make_record, records_frame


def test_id_is_stable_and_location_sensitive():
    a = make_record("belle", "dev1K.json", 3, "你好", "", "世界")
    b = make_record("belle", "dev1K.json", 3, "你好", "", "世界")
    c = make_record("belle", "dev1K.json", 4, "你好", "", "世界")
    assert a["id"] == b["id"] and a["id"] != c["id"]


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
            make_record("s", "a.json", 1, "问2", "入", "答2")]
    df = pd.DataFrame(recs).astype({"history": "str"})
    path = write_parquet(tmp_path / "k.parquet", df)
    assert str(pq.read_schema(path).field("history").type) == "list<element: list<element: string>>"
    assert pq.read_table(path).column("history").to_pylist() == [[["你好", "你好！"], ["再见", ""]], []]
    back = read_parquet(path)
    assert back.equals(df)
    bad = df.assign(history=['[["只有一个"], 3]', "[]"])
    with pytest.raises(ValueError, match=r"bad\.parquet: row 0: history"):
        write_parquet(tmp_path / "bad.parquet", bad)
    assert not (tmp_path / "bad.parquet").exists()
