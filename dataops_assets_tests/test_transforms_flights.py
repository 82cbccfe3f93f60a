"""Staging of flights (``stage_flights``) on hand-written raw rows, with expected values worked out by hand."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dataops_assets.transforms.flights import SOURCE_COLUMNS, STAGED_SCHEMA, stage_flights
from dataops_assets.transforms.typing import QUARANTINE_COLUMNS, SchemaError, Staged
from dataops_assets_tests.fixtures.builders import flight, raw_flights

JAN = pd.Timestamp("2013-01-01")
JUL = pd.Timestamp("2013-07-01")


def _stage(raw: pd.DataFrame, month_start: pd.Timestamp = JAN) -> Staged:
    """Stage and check the invariants every staging result must hold."""
    staged = stage_flights(raw, month_start)
    assert len(raw) == len(staged.valid) + len(staged.quarantined)
    assert staged.valid.dtypes.astype(str).to_dict() == STAGED_SCHEMA
    assert list(staged.valid.columns) == list(STAGED_SCHEMA)
    assert list(staged.quarantined.columns) == list(QUARANTINE_COLUMNS)
    return staged


def _one_valid(raw: pd.DataFrame, month_start: pd.Timestamp = JAN) -> pd.Series:
    staged = _stage(raw, month_start)
    assert staged.quarantined.empty, staged.quarantined[["rule", "detail"]].to_dict("records")
    assert len(staged.valid) == 1
    return staged.valid.iloc[0]


def _one_quarantined(raw: pd.DataFrame, month_start: pd.Timestamp = JAN) -> pd.Series:
    staged = _stage(raw, month_start)
    assert staged.valid.empty
    assert len(staged.quarantined) == 1
    return staged.quarantined.iloc[0]


def _one_quarantined_of(raw: pd.DataFrame) -> pd.Series:
    """The single quarantined row of a batch that also has valid rows."""
    staged = _stage(raw)
    assert len(staged.quarantined) == 1
    return staged.quarantined.iloc[0]


# --- typed rows ------------------------------------------------------------------------------------------------


def test_normal_winter_flight() -> None:
    row = _one_valid(raw_flights(flight()))
    assert row["flight_id"] == "2013-01-01T0515/UA1545/EWR"
    assert (row["carrier"], row["flight"], row["tailnum"], row["origin"], row["dest"]) == (
        "UA",
        1545,
        "N14228",
        "EWR",
        "IAH",
    )
    assert (row["year"], row["month"], row["day"], row["sched_dep_time"], row["sched_arr_time"]) == (
        2013,
        1,
        1,
        515,
        819,
    )
    assert row["dep_time"] == 517.0
    assert row["arr_time"] == 830.0
    assert row["sched_dep_local"] == pd.Timestamp("2013-01-01 05:15")
    assert row["sched_dep_utc"] == pd.Timestamp("2013-01-01 10:15")  # EST = UTC-5
    assert row["dep_local"] == pd.Timestamp("2013-01-01 05:17")  # schedule + dep_delay 2
    assert row["dep_utc"] == pd.Timestamp("2013-01-01 10:17")
    assert row["time_hour_utc"] == pd.Timestamp("2013-01-01 10:00")  # floored to the hour
    assert row["dep_delay"] == 2.0
    assert row["arr_delay"] == 11.0
    assert row["air_time"] == 227.0
    assert row["distance"] == 1400.0
    assert not row["cancelled"]
    assert not row["diverted"]
    assert not row["dep_delayed_15"]
    assert row["on_time"]
    assert row["delay_gain"] == 2.0 - 11.0


def test_summer_flight_is_four_hours_behind_utc() -> None:
    raw = raw_flights(
        flight(month="7", day="4", sched_dep_time="1759", dep_time="1812", dep_delay="13", hour="17", minute="59"),
        partition="2013-07",
    )
    row = _one_valid(raw, JUL)
    assert row["flight_id"] == "2013-07-04T1759/UA1545/EWR"
    assert row["sched_dep_local"] == pd.Timestamp("2013-07-04 17:59")
    assert row["sched_dep_utc"] == pd.Timestamp("2013-07-04 21:59")  # EDT = UTC-4
    assert row["sched_dep_utc"] - row["sched_dep_local"] == pd.Timedelta(hours=4)
    assert row["time_hour_utc"] == pd.Timestamp("2013-07-04 21:00")
    assert row["dep_local"] == pd.Timestamp("2013-07-04 18:12")
    assert row["dep_utc"] == pd.Timestamp("2013-07-04 22:12")


def test_departure_after_midnight_lands_on_the_next_day() -> None:
    raw = raw_flights(flight(sched_dep_time="2350", dep_time="20", dep_delay="30", hour="23", minute="50"))
    row = _one_valid(raw)
    assert row["flight_id"] == "2013-01-01T2350/UA1545/EWR"
    assert row["sched_dep_local"] == pd.Timestamp("2013-01-01 23:50")
    assert row["dep_time"] == 20.0  # the clock time wraps ...
    assert row["dep_local"] == pd.Timestamp("2013-01-02 00:20")  # ... the timestamp does not
    assert row["sched_dep_utc"] == pd.Timestamp("2013-01-02 04:50")
    assert row["dep_utc"] == pd.Timestamp("2013-01-02 05:20")
    assert row["time_hour_utc"] == pd.Timestamp("2013-01-02 04:00")
    assert row["dep_delayed_15"]


def test_early_departure_has_negative_delay() -> None:
    row = _one_valid(raw_flights(flight(dep_time="510", dep_delay="-5", arr_delay="-20")))
    assert row["dep_local"] == pd.Timestamp("2013-01-01 05:10")
    assert row["on_time"]
    assert not row["dep_delayed_15"]
    assert row["delay_gain"] == 15.0


def test_cancelled_flight_stays_valid_and_is_not_on_time() -> None:
    raw = raw_flights(flight(dep_time="NA", dep_delay="NA", arr_time="NA", arr_delay="NA", air_time="NA"))
    row = _one_valid(raw)
    assert row["cancelled"]
    assert not row["diverted"]
    assert not row["on_time"]
    assert not row["dep_delayed_15"]
    assert pd.isna(row["dep_local"])
    assert pd.isna(row["dep_utc"])
    assert pd.isna(row["delay_gain"])
    # The schedule is still known.
    assert row["sched_dep_utc"] == pd.Timestamp("2013-01-01 10:15")
    assert row["time_hour_utc"] == pd.Timestamp("2013-01-01 10:00")


def test_diverted_flight_departed_but_has_no_arrival_delay() -> None:
    row = _one_valid(raw_flights(flight(arr_time="NA", arr_delay="NA", air_time="NA")))
    assert row["diverted"]
    assert not row["cancelled"]
    assert not row["on_time"]
    assert row["dep_local"] == pd.Timestamp("2013-01-01 05:17")


@pytest.mark.parametrize(
    ("arr_delay", "on_time"),
    [("-30", True), ("0", True), ("14", True), ("15", False), ("16", False), ("14.9", True)],
)
def test_on_time_means_less_than_15_minutes_late(arr_delay: str, on_time: bool) -> None:
    assert _one_valid(raw_flights(flight(arr_delay=arr_delay)))["on_time"] == on_time


@pytest.mark.parametrize(("dep_delay", "delayed"), [("14", False), ("15", True), ("NA", False)])
def test_dep_delayed_15_from_15_minutes(dep_delay: str, delayed: bool) -> None:
    assert _one_valid(raw_flights(flight(dep_delay=dep_delay)))["dep_delayed_15"] == delayed


def test_numbers_are_stripped_before_typing() -> None:
    row = _one_valid(raw_flights(flight(dep_delay=" 2 ", distance="1400 ")))
    assert row["dep_delay"] == 2.0
    assert row["distance"] == 1400.0


def test_identifiers_are_kept_as_landed_not_cleaned() -> None:
    # The suite's format rules judge them (and quarantine " UA "); typing must not hide the spaces.
    row = _one_valid(raw_flights(flight(carrier=" UA ", origin="EWR ", tailnum="N14228\n")))
    assert (row["carrier"], row["origin"], row["tailnum"]) == (" UA ", "EWR ", "N14228\n")


@pytest.mark.parametrize("text", [" 1545", "1545\n", "+1545", "1e3", "1545.0", "15\u200b45"])
def test_a_flight_number_not_written_in_digits_only_is_untypable(text: str) -> None:
    row = _one_quarantined(raw_flights(flight(flight=text)))
    assert row["rule"] == "untypable"
    assert row["detail"] == f"flight={text!r} is not written in digits only"


def test_missing_tailnum_is_not_a_key_and_stays_valid() -> None:
    row = _one_valid(raw_flights(flight(tailnum="NA")))
    assert pd.isna(row["tailnum"])


def test_many_rows_keep_source_order_and_a_fresh_index() -> None:
    raw = raw_flights(flight(flight="3"), flight(flight="1"), flight(flight="2"))
    staged = _stage(raw)
    assert staged.valid["flight"].tolist() == [3, 1, 2]
    assert staged.valid.index.tolist() == [0, 1, 2]


# --- quarantine rules -------------------------------------------------------------------------------------------


def test_text_in_numeric_column_is_untypable_and_names_the_column() -> None:
    row = _one_quarantined(raw_flights(flight(dep_delay="abc")))
    assert row["rule"] == "untypable"
    assert row["detail"] == "dep_delay=abc"
    assert json.loads(row["raw_values"])["dep_delay"] == "abc"


def test_fractional_flight_number_is_untypable() -> None:
    row = _one_quarantined(raw_flights(flight(flight="1545.5")))
    assert row["rule"] == "untypable"
    assert row["detail"] == "flight='1545.5' is not written in digits only"


def test_empty_scheduled_arrival_is_quarantined_not_a_crash() -> None:
    # sched_arr_time is staged as int64; an empty one must not fail the whole partition.
    raw = raw_flights(flight(flight="1"), flight(flight="2", sched_arr_time="NA"))
    staged = _stage(raw)
    assert staged.valid["flight"].tolist() == [1]
    assert staged.quarantined["rule"].tolist() == ["untypable"]
    assert staged.quarantined["detail"].tolist() == ["sched_arr_time is empty"]


@pytest.mark.parametrize("empty", ["", "NA"])
def test_empty_carrier_is_null_key(empty: str) -> None:
    row = _one_quarantined(raw_flights(flight(carrier=empty)))
    assert row["rule"] == "null_key"
    assert row["detail"] == "carrier is empty"
    assert json.loads(row["raw_values"])["carrier"] == empty


@pytest.mark.parametrize("column", ["year", "month", "day", "sched_dep_time", "flight", "origin"])
def test_every_key_part_is_required(column: str) -> None:
    row = _one_quarantined(raw_flights(flight(**{column: "NA"})))
    assert row["rule"] == "null_key"
    assert row["detail"] == f"{column} is empty"


def test_row_of_another_month_breaks_year_month_vs_partition() -> None:
    row = _one_quarantined(raw_flights(flight(month="2")))
    assert row["rule"] == "year_month_vs_partition"
    assert row["detail"] == "scheduled departure 2013-02-01 05:15:00 is not in 2013-01"


def test_last_minute_of_the_month_is_inside_and_the_next_minute_is_outside() -> None:
    raw = raw_flights(
        flight(day="31", sched_dep_time="2359", flight="1"),
        flight(month="2", day="1", sched_dep_time="0", flight="2"),
        flight(year="2012", month="12", day="31", sched_dep_time="2359", flight="3"),
    )
    staged = _stage(raw)
    assert staged.valid["flight_id"].tolist() == ["2013-01-31T2359/UA1/EWR"]
    assert staged.quarantined["rule"].tolist() == ["year_month_vs_partition", "year_month_vs_partition"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"month": "13"},
        {"day": "32"},
        {"month": "2", "day": "30"},
        {"sched_dep_time": "2575"},
        {"sched_dep_time": "2400"},
        {"sched_dep_time": "960"},
        {"sched_dep_time": "-5"},
    ],
)
def test_impossible_date_or_clock_time_is_invalid_timestamp(overrides: dict[str, str]) -> None:
    row = _one_quarantined(raw_flights(flight(**overrides)))
    assert row["rule"] == "invalid_timestamp"
    assert row["detail"] == "scheduled departure is not a valid date and time"


def test_exact_duplicate_keeps_the_first_row() -> None:
    raw = raw_flights(flight(), flight())
    staged = _stage(raw)
    assert len(staged.valid) == 1
    assert staged.quarantined["rule"].tolist() == ["duplicate_row"]
    assert staged.quarantined["_source_line"].tolist() == [3]  # the second data line


def test_same_key_with_other_values_is_duplicate_key() -> None:
    raw = raw_flights(flight(dep_delay="2"), flight(dep_delay="5", dep_time="520"))
    staged = _stage(raw)
    assert staged.valid["dep_delay"].tolist() == [2.0]  # the first one stays
    row = staged.quarantined.iloc[0]
    assert row["rule"] == "duplicate_key"
    assert row["detail"] == "key 2013-01-01T0515/UA1545/EWR already used by an earlier row"
    assert json.loads(row["raw_values"])["dep_delay"] == "5"


def test_same_flight_number_from_another_origin_is_another_flight() -> None:
    staged = _stage(raw_flights(flight(), flight(origin="JFK")))
    assert staged.valid["flight_id"].tolist() == ["2013-01-01T0515/UA1545/EWR", "2013-01-01T0515/UA1545/JFK"]


def test_first_broken_rule_wins() -> None:
    # Untypable and in another month: untypable is checked first.
    row = _one_quarantined(raw_flights(flight(month="2", dep_delay="x")))
    assert row["rule"] == "untypable"


def test_raw_values_hold_the_original_text_of_every_source_column() -> None:
    source = flight(dep_delay="abc", tailnum="NA")
    row = _one_quarantined(raw_flights(source))
    values = json.loads(row["raw_values"])
    assert list(values) == SOURCE_COLUMNS
    assert values == source  # "NA" stays the string "NA"


def test_quarantined_rows_carry_lineage() -> None:
    raw = raw_flights(flight(flight="1"), flight(flight="2", carrier=""), flight(flight="3"))
    row = _one_quarantined_of(raw)
    assert row["_partition_month"] == JAN
    assert row["_source_file"] == "landing/flights/2013-01.csv"
    assert row["_source_line"] == 3


def test_mixed_batch_accounting_and_rule_counts() -> None:
    raw = raw_flights(
        flight(flight="1"),
        flight(flight="2", dep_time="NA", dep_delay="NA", arr_time="NA", arr_delay="NA", air_time="NA"),
        flight(flight="3", arr_delay="NA"),
        flight(flight="4", dep_delay="abc"),
        flight(flight="5", carrier=""),
        flight(flight="6", month="2"),
        flight(flight="7", month="13"),
        flight(flight="8", sched_dep_time="2575"),
        flight(flight="1"),
        flight(flight="1", dep_delay="9"),
    )
    staged = _stage(raw)
    assert len(raw) == 10
    assert staged.valid["flight"].tolist() == [1, 2, 3]
    assert staged.quarantined["rule"].tolist() == [
        "untypable",
        "null_key",
        "year_month_vs_partition",
        "invalid_timestamp",
        "invalid_timestamp",
        "duplicate_row",
        "duplicate_key",
    ]
    assert staged.quarantined["_source_line"].tolist() == [5, 6, 7, 8, 9, 10, 11]


def test_all_quarantined_input_gives_an_empty_valid_frame_with_the_staged_schema() -> None:
    staged = _stage(raw_flights(flight(carrier=""), flight(month="2")))
    assert staged.valid.empty
    assert len(staged.quarantined) == 2


def test_empty_input_gives_empty_outputs_with_their_schemas() -> None:
    staged = _stage(raw_flights())
    assert staged.valid.empty
    assert staged.quarantined.empty
    assert staged.quarantined["raw_values"].dtype == object


def test_missing_required_column_is_a_schema_error_naming_it() -> None:
    raw = raw_flights(flight()).drop(columns=["dep_delay"])
    with pytest.raises(SchemaError, match=r"flights file lacks required column.*dep_delay"):
        stage_flights(raw, JAN)


def test_staging_does_not_modify_its_input() -> None:
    raw = raw_flights(flight(), flight(carrier=""))
    before = raw.copy()
    stage_flights(raw, JAN)
    pd.testing.assert_frame_equal(raw, before)
