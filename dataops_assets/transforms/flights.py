"""Staging of flights: typed columns, a natural key, local and UTC departure times, cancellation and delay fields.

The source repeats the scheduled departure three times: ``sched_dep_time`` (local HHMM), ``hour`` and ``minute``, and
``time_hour`` (the scheduled hour in UTC, ``2013-01-01T10:00:00Z`` for 05:15 New York time). A row whose copies
disagree is quarantined with a rule naming the columns; on the 2013 data none does.
"""

from __future__ import annotations

import pandas as pd

from dataops_assets.transforms.row_expectations import NO_EXPECTATIONS, RowExpectations
from dataops_assets.transforms.typing import (
    RowRules,
    Staged,
    local_to_utc,
    null_text,
    parse_utc,
    reject_duplicates,
    reject_null_keys,
    reject_outside_month,
    require_columns,
    to_digits,
    to_identifier,
    to_number,
    with_schema,
)

SOURCE_COLUMNS = [
    "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time",
    "arr_delay", "carrier", "flight", "tailnum", "origin", "dest", "air_time", "distance", "hour", "minute",
    "time_hour",
]  # fmt: skip
_INTEGERS = ["year", "month", "day", "sched_dep_time", "sched_arr_time"]
_NUMBERS = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "distance"]
_TEXTS = ["carrier", "tailnum", "origin", "dest"]
_KEY_PARTS = ["year", "month", "day", "sched_dep_time", "carrier", "flight", "origin"]
# An arrival less than 15 minutes after schedule is on time (the US DOT's definition).
ON_TIME_MINUTES = 15

STAGED_SCHEMA = {
    "flight_id": "object",
    "carrier": "object",
    "flight": "int64",
    "tailnum": "object",
    "origin": "object",
    "dest": "object",
    "year": "int64",
    "month": "int64",
    "day": "int64",
    "sched_dep_time": "int64",
    "sched_arr_time": "int64",
    "dep_time": "float64",
    "arr_time": "float64",
    "sched_dep_local": "datetime64[ns]",
    "sched_dep_utc": "datetime64[ns]",
    "dep_local": "datetime64[ns]",
    "dep_utc": "datetime64[ns]",
    "time_hour_utc": "datetime64[ns]",
    "dep_delay": "float64",
    "arr_delay": "float64",
    "air_time": "float64",
    "distance": "float64",
    "cancelled": "bool",
    "diverted": "bool",
    "dep_delayed_15": "bool",
    "on_time": "bool",
    "delay_gain": "float64",
}


def stage_flights(
    raw: pd.DataFrame, month_start: pd.Timestamp, expectations: RowExpectations = NO_EXPECTATIONS
) -> Staged:
    """Type one month of landed flights; rows breaking a row rule, or a quarantine-marked expectation of the
    staging suite (``expectations``), go to quarantine, never away."""
    require_columns(raw, SOURCE_COLUMNS, "flights file")
    rules = RowRules(raw, expectations.names)
    typed = _typed_columns(raw, rules)
    reject_null_keys(typed, _KEY_PARTS, rules)
    # sched_arr_time is staged as int64: an empty one cannot be typed (and would fail the cast of every row).
    rules.reject(typed["sched_arr_time"].isna(), "untypable", "sched_arr_time is empty")
    typed["sched_dep_local"] = scheduled_local(typed)
    reject_outside_month(typed["sched_dep_local"], month_start, rules, "scheduled departure")
    reject_inconsistent_copies(raw, typed, rules)
    typed["flight_id"] = flight_ids(typed)
    reject_duplicates(raw, SOURCE_COLUMNS, typed["flight_id"], rules)
    staged = with_schema(add_departure_fields(typed.loc[rules.passed]), STAGED_SCHEMA, keep_index=True)
    expectations.reject_offending(staged, rules)
    valid = staged.loc[rules.passed.loc[staged.index]].reset_index(drop=True)
    return Staged(valid=valid, quarantined=rules.quarantined(SOURCE_COLUMNS))


def _typed_columns(raw: pd.DataFrame, rules: RowRules) -> pd.DataFrame:
    typed = {column: to_number(raw, column, rules, integer=True) for column in _INTEGERS}
    typed["flight"] = to_digits(raw, "flight", rules)
    typed |= {column: to_number(raw, column, rules) for column in _NUMBERS}
    typed |= {column: to_identifier(raw, column) for column in _TEXTS}
    return pd.DataFrame(typed, index=raw.index)


def reject_inconsistent_copies(raw: pd.DataFrame, typed: pd.DataFrame, rules: RowRules) -> None:
    """Rows whose ``hour``, ``minute`` or ``time_hour`` disagree with ``sched_dep_time`` on its date."""
    clock = typed["sched_dep_time"]
    for column, expected in (("hour", clock // 100), ("minute", clock % 100)):
        copy = pd.to_numeric(raw[column].astype("string").where(~null_text(raw[column])), errors="coerce")
        differs = copy.isna() | (copy != expected)
        detail = f"{column} " + raw[column][differs].astype(str) + " but sched_dep_time " + _clock_text(clock, differs)
        rules.reject(differs, f"{column}_vs_sched_dep_time", detail)
    expected_hour = local_to_utc(typed["sched_dep_local"]).dt.floor("h")
    differs = parse_utc(raw["time_hour"]) != expected_hour  # NaT (not a UTC time) never equals
    detail = (
        "time_hour " + raw["time_hour"][differs].astype(str) + " but the scheduled departure "
        + typed["sched_dep_local"][differs].dt.strftime("%Y-%m-%d %H:%M") + " New York time is in hour "
        + expected_hour[differs].dt.strftime("%Y-%m-%dT%H:00:00Z")
    )  # fmt: skip
    rules.reject(differs, "time_hour_vs_sched_dep", detail)


def _clock_text(clock: pd.Series, rows: pd.Series) -> pd.Series:
    return clock[rows].astype("Int64").astype(str)


def scheduled_local(typed: pd.DataFrame) -> pd.Series:
    """Local scheduled departure from the date and the HHMM clock time; NaT when either is not valid."""
    date = pd.to_datetime(typed[["year", "month", "day"]], errors="coerce")
    hours, minutes = typed["sched_dep_time"] // 100, typed["sched_dep_time"] % 100
    clock_ok = hours.between(0, 23) & minutes.between(0, 59)
    offset = pd.to_timedelta(hours * 60 + minutes, unit="min")
    return (date + offset).where(clock_ok)


def flight_ids(typed: pd.DataFrame) -> pd.Series:
    """Natural key: scheduled local departure, carrier and flight number, origin (e.g. 2013-01-01T0515/UA1545/EWR)."""
    flight = typed["flight"].astype("Int64").astype("string")
    return (
        typed["sched_dep_local"].dt.strftime("%Y-%m-%dT%H%M") + "/" + typed["carrier"] + flight + "/" + typed["origin"]
    )


def add_departure_fields(flights: pd.DataFrame) -> pd.DataFrame:
    """UTC and actual departure times, the scheduled hour for weather, cancellation and delay fields."""
    out = flights.copy()
    out["sched_dep_utc"] = local_to_utc(out["sched_dep_local"])
    # Actual departure = schedule + delay: correct across midnight, where the HHMM clock time wraps.
    delay = pd.to_timedelta(out["dep_delay"], unit="min")
    out["dep_local"] = out["sched_dep_local"] + delay
    out["dep_utc"] = out["sched_dep_utc"] + delay
    out["time_hour_utc"] = out["sched_dep_utc"].dt.floor("h")
    out["cancelled"] = out["dep_time"].isna()
    out["diverted"] = ~out["cancelled"] & out["arr_delay"].isna()
    out["dep_delayed_15"] = out["dep_delay"].ge(ON_TIME_MINUTES).fillna(False).astype(bool)
    out["on_time"] = out["arr_delay"].lt(ON_TIME_MINUTES).fillna(False).astype(bool)
    out["delay_gain"] = out["dep_delay"] - out["arr_delay"]
    return out
