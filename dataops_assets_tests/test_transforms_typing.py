"""Row rules and typing helpers of ``dataops_assets.transforms.typing``, on hand-made text frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dataops_assets.transforms.typing import (
    QUARANTINE_COLUMNS,
    RowRules,
    SchemaError,
    local_to_utc,
    null_text,
    reject_duplicates,
    reject_null_keys,
    reject_outside_month,
    require_columns,
    to_number,
    to_text,
    with_schema,
)

JAN = pd.Timestamp("2013-01-01")


def _text(values: dict[str, list[str]]) -> pd.DataFrame:
    """A raw frame of text columns plus lineage columns (lines 2, 3, ... of one file)."""
    frame = pd.DataFrame(values, dtype=str)
    frame["_partition_month"] = JAN
    frame["_source_file"] = "landing/x/2013-01.csv"
    frame["_source_line"] = range(2, len(frame) + 2)
    return frame


def test_null_text_treats_empty_blank_and_na_as_null() -> None:
    values = pd.Series(["", "NA", "  ", " NA ", "0", "N/A", None], dtype=object)
    assert null_text(values).tolist() == [True, True, True, True, False, False, True]


def test_to_number_parses_strips_and_keeps_nulls() -> None:
    raw = _text({"x": ["12", " 7 ", "-3.5", "NA", ""]})
    rules = RowRules(raw)
    numbers = to_number(raw, "x", rules)
    assert numbers.dtype == "float64"
    assert numbers.iloc[:3].tolist() == [12.0, 7.0, -3.5]
    assert numbers.iloc[3:].isna().all()
    assert rules.passed.all()


def test_to_number_rejects_text_as_untypable_naming_column_and_value() -> None:
    raw = _text({"dep_delay": ["5", "abc", "1x"]})
    rules = RowRules(raw)
    numbers = to_number(raw, "dep_delay", rules)
    assert rules.passed.tolist() == [True, False, False]
    assert rules.rule.iloc[1:].tolist() == ["untypable", "untypable"]
    assert rules.detail.iloc[1] == "dep_delay=abc"
    assert rules.detail.iloc[2] == "dep_delay=1x"
    assert numbers.iloc[0] == 5.0
    assert numbers.iloc[1:].isna().all()


def test_to_number_integer_rejects_fractions_but_accepts_whole_floats() -> None:
    raw = _text({"flight": ["1545", "9.5", "12.0"]})
    rules = RowRules(raw)
    numbers = to_number(raw, "flight", rules, integer=True)
    assert rules.passed.tolist() == [True, False, True]
    assert rules.detail.iloc[1] == "flight=9.5"
    assert numbers.iloc[0] == 1545.0
    assert numbers.iloc[2] == 12.0
    # The same text without ``integer`` is a valid number.
    assert to_number(raw, "flight", RowRules(raw)).iloc[1] == 9.5


def test_to_number_truncates_long_text_in_detail_to_40_characters() -> None:
    raw = _text({"x": ["y" * 100]})
    rules = RowRules(raw)
    to_number(raw, "x", rules)
    assert rules.detail.iloc[0] == "x=" + "y" * 40


def test_to_text_strips_and_nulls() -> None:
    raw = _text({"carrier": [" UA ", "NA", "", "AA"]})
    text = to_text(raw, "carrier")
    assert text.iloc[0] == "UA"
    assert text.iloc[1:3].isna().all()
    assert text.iloc[3] == "AA"


def test_row_keeps_the_first_rule_it_broke() -> None:
    raw = _text({"x": ["a", "b", "c"]})
    rules = RowRules(raw)
    rules.reject(pd.Series([True, False, False]), "untypable", "first")
    rules.reject(pd.Series([True, True, False]), "null_key", pd.Series(["d0", "d1", "d2"]))
    assert rules.rule.iloc[0] == "untypable"
    assert rules.detail.iloc[0] == "first"
    assert rules.rule.iloc[1] == "null_key"
    assert rules.detail.iloc[1] == "d1"
    assert rules.passed.tolist() == [False, False, True]


def test_reject_treats_missing_mask_values_as_false() -> None:
    raw = _text({"x": ["a", "b"]})
    rules = RowRules(raw)
    rules.reject(pd.Series([pd.NA, True], dtype="boolean"), "null_key", "x")
    assert rules.passed.tolist() == [True, False]


def test_reject_refuses_unknown_rule() -> None:
    rules = RowRules(_text({"x": ["a"]}))
    with pytest.raises(ValueError, match="unknown rule 'made_up'"):
        rules.reject(pd.Series([True]), "made_up", "x")


def test_quarantined_rows_carry_rule_detail_original_text_and_lineage() -> None:
    raw = _text({"a": ["1", "oops", "NA"], "b": ["x", " y ", "z"]})
    rules = RowRules(raw)
    rules.reject(pd.Series([False, True, False]), "untypable", "a=oops")
    quarantined = rules.quarantined(["a", "b"])
    assert list(quarantined.columns) == list(QUARANTINE_COLUMNS)
    assert len(quarantined) == 1
    row = quarantined.iloc[0]
    assert row["rule"] == "untypable"
    assert row["detail"] == "a=oops"
    # The original text, unstripped, in source column order.
    assert row["raw_values"] == '{"a": "oops", "b": " y "}'
    assert row["_partition_month"] == JAN
    assert row["_source_file"] == "landing/x/2013-01.csv"
    assert row["_source_line"] == 3
    assert quarantined.index.tolist() == [0]


def test_quarantined_raw_values_write_missing_values_as_json_null() -> None:
    raw = _text({"a": ["1"], "b": ["x"]})
    raw.loc[0, "b"] = np.nan
    rules = RowRules(raw)
    rules.reject(pd.Series([True]), "null_key", "b is empty")
    assert json.loads(rules.quarantined(["a", "b"])["raw_values"].iloc[0]) == {"a": "1", "b": None}


def test_quarantined_is_empty_with_text_columns_when_every_row_passes() -> None:
    raw = _text({"a": ["1", "2"]})
    quarantined = RowRules(raw).quarantined(["a"])
    assert quarantined.empty
    assert list(quarantined.columns) == list(QUARANTINE_COLUMNS)
    # Text columns stay object even with no rows, so the warehouse declares them VARCHAR rather than DOUBLE.
    for column in ("rule", "detail", "raw_values", "_source_file"):
        assert quarantined[column].dtype == object, column


def test_require_columns_names_every_missing_column() -> None:
    raw = _text({"a": ["1"]})
    require_columns(raw, ["a"], "test file")  # nothing missing: no error
    with pytest.raises(SchemaError, match=r"test file lacks required column\(s\) b, c; found a"):
        require_columns(raw, ["a", "b", "c"], "test file")


def test_schema_error_is_a_value_error() -> None:
    assert issubclass(SchemaError, ValueError)


def test_with_schema_orders_casts_and_resets_index() -> None:
    frame = pd.DataFrame({"b": [1.0, 2.0], "a": ["x", "y"], "extra": [0, 0]}, index=[5, 9])
    out = with_schema(frame, {"a": "object", "b": "int64"})
    assert list(out.columns) == ["a", "b"]
    assert out.dtypes.astype(str).to_dict() == {"a": "object", "b": "int64"}
    assert out.index.tolist() == [0, 1]
    assert out["b"].tolist() == [1, 2]


def test_reject_null_keys_names_the_first_empty_key_column() -> None:
    frame = pd.DataFrame({"k1": ["a", None, None], "k2": ["x", "y", None]})
    rules = RowRules(frame)
    reject_null_keys(frame, ["k1", "k2"], rules)
    assert rules.passed.tolist() == [True, False, False]
    assert rules.rule.iloc[1:].tolist() == ["null_key", "null_key"]
    assert rules.detail.iloc[1:].tolist() == ["k1 is empty", "k1 is empty"]


def test_reject_outside_month_bounds_are_start_inclusive_end_exclusive() -> None:
    times = pd.to_datetime(
        pd.Series(["2013-01-01 00:00", "2013-01-31 23:59", "2013-02-01 00:00", "2012-12-31 23:59", None])
    )
    rules = RowRules(pd.DataFrame(index=times.index))
    reject_outside_month(times, JAN, rules, "scheduled departure")
    assert rules.passed.tolist() == [True, True, False, False, False]
    assert rules.rule.iloc[2:].tolist() == ["year_month_vs_partition", "year_month_vs_partition", "invalid_timestamp"]
    assert rules.detail.iloc[2] == "scheduled departure 2013-02-01 00:00:00 is not in 2013-01"
    assert rules.detail.iloc[4] == "scheduled departure is not a valid date and time"


def test_reject_duplicates_keeps_first_and_separates_exact_repeats_from_key_reuse() -> None:
    raw = _text({"k": ["a", "a", "a", "b"], "v": ["1", "1", "2", "3"]})
    rules = RowRules(raw)
    reject_duplicates(raw, ["k", "v"], raw["k"], rules)
    assert rules.passed.tolist() == [True, False, False, True]
    assert rules.rule.iloc[1] == "duplicate_row"
    assert rules.detail.iloc[1] == "exact repeat of an earlier row"
    assert rules.rule.iloc[2] == "duplicate_key"
    assert rules.detail.iloc[2] == "key a already used by an earlier row"


def test_reject_duplicates_ignores_lineage_columns() -> None:
    # Same source values on different lines of the file: still an exact repeat.
    raw = _text({"k": ["a", "a"]})
    assert raw["_source_line"].tolist() == [2, 3]
    rules = RowRules(raw)
    reject_duplicates(raw, ["k"], raw["k"], rules)
    assert rules.rule.tolist()[1] == "duplicate_row"


def test_reject_duplicates_lets_a_key_of_a_quarantined_row_be_used_again() -> None:
    raw = _text({"k": ["a", "a"], "v": ["bad", "1"]})
    rules = RowRules(raw)
    rules.reject(pd.Series([True, False]), "untypable", "v=bad")
    reject_duplicates(raw, ["k", "v"], raw["k"], rules)
    assert rules.passed.tolist() == [False, True]


def test_local_to_utc_uses_standard_time_in_winter_and_daylight_time_in_summer() -> None:
    local = pd.Series(pd.to_datetime(["2013-01-01 05:15", "2013-07-01 05:15"]))
    assert local_to_utc(local).tolist() == [pd.Timestamp("2013-01-01 10:15"), pd.Timestamp("2013-07-01 09:15")]


def test_local_to_utc_shifts_the_spring_gap_forward_and_takes_daylight_time_for_the_repeated_hour() -> None:
    # 2013-03-10 02:30 does not exist in New York (shifted to 03:00 EDT); 2013-11-03 01:30 happens twice.
    local = pd.Series(pd.to_datetime(["2013-03-10 02:30", "2013-11-03 01:30"]))
    utc = local_to_utc(local)
    assert utc.dt.tz is None
    assert utc.tolist() == [pd.Timestamp("2013-03-10 07:00"), pd.Timestamp("2013-11-03 05:30")]
