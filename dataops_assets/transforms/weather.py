"""Staging of hourly weather at the three New York airports."""

from __future__ import annotations

import pandas as pd

from dataops_assets.transforms.row_expectations import NO_EXPECTATIONS, RowExpectations
from dataops_assets.transforms.typing import (
    RowRules,
    Staged,
    null_text,
    parse_utc,
    reject_duplicates,
    reject_null_keys,
    reject_outside_month,
    require_columns,
    to_identifier,
    to_number,
    with_schema,
)

SOURCE_COLUMNS = [
    "origin", "year", "month", "day", "hour", "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust",
    "precip", "pressure", "visib", "time_hour",
]  # fmt: skip
MEASURES = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
_CLOCK = ["year", "month", "day", "hour"]

STAGED_SCHEMA = {
    "observation_id": "object",
    "origin": "object",
    "time_hour_utc": "datetime64[ns]",
    "observed_local": "datetime64[ns]",
    **dict.fromkeys(MEASURES, "float64"),
}


def stage_weather(
    raw: pd.DataFrame, month_start: pd.Timestamp, expectations: RowExpectations = NO_EXPECTATIONS
) -> Staged:
    """Type one month of landed weather, keyed by airport and UTC hour; rows breaking a row rule, or a
    quarantine-marked expectation of the staging suite (``expectations``), go to quarantine."""
    require_columns(raw, SOURCE_COLUMNS, "weather file")
    rules = RowRules(raw, expectations.names)
    typed = pd.DataFrame({column: to_number(raw, column, rules, integer=True) for column in _CLOCK}, index=raw.index)
    typed = typed.assign(**{column: to_number(raw, column, rules) for column in MEASURES})
    typed["origin"] = to_identifier(raw, "origin")
    typed["time_hour_utc"] = parse_utc(raw["time_hour"])
    unparsed = typed["time_hour_utc"].isna() & ~null_text(raw["time_hour"])  # an empty time_hour is a null key
    rules.reject(unparsed, "untypable", "time_hour is not a UTC time")
    reject_null_keys(typed, ["origin", "time_hour_utc"], rules)
    # The local clock (not the UTC hour) decides the month, as it does for flights.
    local_date = pd.to_datetime(typed[["year", "month", "day"]], errors="coerce")
    typed["observed_local"] = local_date + pd.to_timedelta(typed["hour"], unit="h")
    reject_outside_month(typed["observed_local"], month_start, rules, "observation time")
    typed["observation_id"] = typed["origin"] + "/" + typed["time_hour_utc"].dt.strftime("%Y-%m-%dT%HZ")
    reject_duplicates(raw, SOURCE_COLUMNS, typed["observation_id"], rules)
    staged = with_schema(typed.loc[rules.passed], STAGED_SCHEMA, keep_index=True)
    expectations.reject_offending(staged, rules)
    valid = staged.loc[rules.passed.loc[staged.index]].reset_index(drop=True)
    return Staged(valid=valid, quarantined=rules.quarantined(SOURCE_COLUMNS))
