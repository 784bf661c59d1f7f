"""text_length_filter: keeps every real row of the mirror, drops the outliers with a reason naming the field."""
from __future__ import annotations

import pandas as pd
import pytest

from curate.ops import build_op
from curate.ops.text_length_filter import TextLengthFilter
from curate.recipe import DEFAULT_RECIPE, load_recipe
from curate.records import make_record, records_frame


def frame(*rows) -> pd.DataFrame:
    return records_frame([make_record("s", "f.json", i, *r) for i, r in enumerate(rows)])


def test_field_and_record_bounds_with_reasons():
    df = frame(("短", "", "好"), ("问", "文" * 50, "答"), ("问", "", "答" * 31), ("问" * 20, "文" * 20, "答" * 20))
    res = TextLengthFilter(max_field_chars=30, max_record_chars=50)(df)
    assert res.kept["row"].tolist() == [0]
    assert res.dropped["reason"].tolist() == ["field_too_long", "field_too_long", "record_too_long"]
    assert res.dropped["detail"].iloc[0] == "input has 50 characters > max_field_chars 30"
    assert res.dropped["detail"].iloc[1].startswith("output has 31 characters")
    assert res.stats["reasons"] == {"field_too_long": 2, "record_too_long": 1}
    res.check(len(df), "t")


def test_history_counts():
    rec = make_record("s", "f.json", 0, "问", "", "答", [["长" * 40, "答"]])
    res = TextLengthFilter(max_field_chars=30)(records_frame([rec]))
    assert res.dropped["reason"].tolist() == ["field_too_long"] and res.dropped["detail"].iloc[0].startswith("history has")


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True])
def test_bad_parameters_fail_at_build(bad):
    with pytest.raises(ValueError, match="text_length_filter"):
        build_op("text_length_filter", {"max_field_chars": bad})


def test_in_the_default_recipe_first_in_filter_and_row_local():
    first = load_recipe(DEFAULT_RECIPE).stage("03_filter").steps[0]
    assert first.op == "text_length_filter" and first.row_local
    assert first.build().max_field_chars >= 100_000


def test_defaults_keep_every_real_row_and_drop_a_5mb_one(mirror):
    """Every parsed row of the whole mirror passes the recipe's bounds; a 5 MB row does not."""
    from curate.download import fetch_source, load_registry
    from curate.parse import parse_files

    files = [f for s in load_registry() for f in fetch_source(s, "/nonexistent", mirror=mirror, progress=False)]
    pool = parse_files(files).kept
    op = load_recipe(DEFAULT_RECIPE).stage("03_filter").steps[0].build()
    res = op(pool)
    assert len(res.dropped) == 0 and len(res.kept) == len(pool) > 90_000
    big = frame(("请总结这篇文章。", "文" * 5_000_000, "好"))
    assert op(big).dropped["reason"].tolist() == ["field_too_long"]
