"""Staging of hourly weather (``stage_weather``) on hand-written raw rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dataops_assets.transforms.typing import QUARANTINE_COLUMNS, SchemaError, Staged
from dataops_assets.transforms.weather import MEASURES, SOURCE_COLUMNS, STAGED_SCHEMA, parse_utc, stage_weather
from dataops_assets_tests.fixtures.builders import observation, raw_weather

JAN = pd.Timestamp("2013-01-01")


def _stage(raw: pd.DataFrame, month_start: pd.Timestamp = JAN) -> Staged:
    staged = stage_weather(raw, month_start)
    assert len(raw) == len(staged.valid) + len(staged.quarantined)
    assert staged.valid.dtypes.astype(str).to_dict() == STAGED_SCHEMA
    assert list(staged.quarantined.columns) == list(QUARANTINE_COLUMNS)
    return staged


def _one_quarantined(raw: pd.DataFrame) -> pd.Series:
    staged = _stage(raw)
    assert staged.valid.empty
    assert len(staged.quarantined) == 1
    return staged.quarantined.iloc[0]


def test_observation_is_keyed_by_origin_and_utc_hour() -> None:
    staged = _stage(raw_weather(observation()))
    assert staged.quarantined.empty
    row = staged.valid.iloc[0]
    assert row["observation_id"] == "EWR/2013-01-01T06Z"
    assert row["origin"] == "EWR"
    assert row["time_hour_utc"] == pd.Timestamp("2013-01-01 06:00")
    assert row["observed_local"] == pd.Timestamp("2013-01-01 01:00")  # from the local year/month/day/hour
    assert row["temp"] == 39.02
    assert row["dewp"] == 26.06
    assert row["humid"] == 59.37
    assert row["wind_dir"] == 270.0
    assert row["wind_speed"] == pytest.approx(10.35702)
    assert np.isnan(row["wind_gust"])  # "NA"
    assert row["precip"] == 0.0
    assert row["pressure"] == 1012.0
    assert row["visib"] == 10.0


def test_valid_columns_follow_the_staged_schema_order() -> None:
    staged = _stage(raw_weather(observation()))
    assert list(staged.valid.columns) == ["observation_id", "origin", "time_hour_utc", "observed_local", *MEASURES]


def test_local_hour_late_in_the_month_may_be_next_month_in_utc() -> None:
    # 2013-01-31 22:00 EST is 2013-02-01 03:00 UTC: the local clock decides the partition.
    staged = _stage(raw_weather(observation(day="31", hour="22", time_hour="2013-02-01T03:00:00Z")))
    row = staged.valid.iloc[0]
    assert row["observation_id"] == "EWR/2013-02-01T03Z"
    assert row["observed_local"] == pd.Timestamp("2013-01-31 22:00")


def test_observation_of_another_local_month_breaks_year_month_vs_partition() -> None:
    row = _one_quarantined(raw_weather(observation(month="2", time_hour="2013-02-01T06:00:00Z")))
    assert row["rule"] == "year_month_vs_partition"
    assert row["detail"] == "observation time 2013-02-01 01:00:00 is not in 2013-01"


def test_duplicate_utc_key_is_quarantined_and_first_kept() -> None:
    raw = raw_weather(
        observation(),
        observation(temp="40.1"),  # same origin and UTC hour, another value
        observation(origin="JFK"),  # another airport, same hour: a different key
        observation(),  # exact repeat
    )
    staged = _stage(raw)
    assert staged.valid["observation_id"].tolist() == ["EWR/2013-01-01T06Z", "JFK/2013-01-01T06Z"]
    assert staged.valid["temp"].tolist() == [39.02, 39.02]
    assert staged.quarantined["rule"].tolist() == ["duplicate_key", "duplicate_row"]
    assert staged.quarantined["detail"].iloc[0] == "key EWR/2013-01-01T06Z already used by an earlier row"
    assert json.loads(staged.quarantined["raw_values"].iloc[0])["temp"] == "40.1"
    assert staged.quarantined["_source_line"].tolist() == [3, 5]


def test_text_in_a_measure_is_untypable() -> None:
    row = _one_quarantined(raw_weather(observation(temp="warm")))
    assert row["rule"] == "untypable"
    assert row["detail"] == "temp=warm"
    assert json.loads(row["raw_values"]) == observation(temp="warm")
    assert list(json.loads(row["raw_values"])) == SOURCE_COLUMNS


def test_fractional_hour_is_untypable() -> None:
    row = _one_quarantined(raw_weather(observation(hour="1.5")))
    assert row["rule"] == "untypable"
    assert row["detail"] == "hour=1.5"


@pytest.mark.parametrize("text", ["2013-01-01 06:00", "2013-01-01T06:00:00", "yesterday"])
def test_time_hour_that_is_not_iso_utc_is_untypable(text: str) -> None:
    row = _one_quarantined(raw_weather(observation(time_hour=text)))
    assert row["rule"] == "untypable"
    assert row["detail"] == "time_hour is not a UTC time"


@pytest.mark.parametrize("empty", ["NA", ""])
def test_empty_time_hour_is_a_null_key(empty: str) -> None:
    row = _one_quarantined(raw_weather(observation(time_hour=empty)))
    assert row["rule"] == "null_key"
    assert row["detail"] == "time_hour_utc is empty"


def test_empty_origin_is_a_null_key() -> None:
    row = _one_quarantined(raw_weather(observation(origin="NA")))
    assert row["rule"] == "null_key"
    assert row["detail"] == "origin is empty"


@pytest.mark.parametrize("overrides", [{"hour": "NA"}, {"day": "32"}, {"month": "13"}])
def test_invalid_local_clock_is_invalid_timestamp(overrides: dict[str, str]) -> None:
    row = _one_quarantined(raw_weather(observation(**overrides)))
    assert row["rule"] == "invalid_timestamp"
    assert row["detail"] == "observation time is not a valid date and time"


def test_all_quarantined_input_keeps_the_staged_schema() -> None:
    staged = _stage(raw_weather(observation(origin=""), observation(temp="x")))
    assert staged.valid.empty
    assert staged.quarantined["rule"].tolist() == ["null_key", "untypable"]  # source order


def test_missing_required_column_is_a_schema_error() -> None:
    raw = raw_weather(observation()).drop(columns=["visib"])
    with pytest.raises(SchemaError, match=r"weather file lacks required column.*visib"):
        stage_weather(raw, JAN)


def test_parse_utc() -> None:
    parsed = parse_utc(pd.Series(["2013-01-01T06:00:00Z", "2013-07-01T23:00:00Z", "NA"]))
    assert parsed.dt.tz is None
    assert parsed.iloc[:2].tolist() == [pd.Timestamp("2013-01-01 06:00"), pd.Timestamp("2013-07-01 23:00")]
    assert pd.isna(parsed.iloc[2])
