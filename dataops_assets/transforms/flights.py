"""Staging of flights: typed columns, a natural key, local and UTC departure times, cancellation and delay fields."""

from __future__ import annotations

import pandas as pd

from dataops_assets.transforms.typing import (
    RowRules,
    Staged,
    local_to_utc,
    reject_duplicates,
    reject_null_keys,
    reject_outside_month,
    require_columns,
    to_number,
    to_text,
    with_schema,
)

SOURCE_COLUMNS = [
    "year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time",
    "arr_delay", "carrier", "flight", "tailnum", "origin", "dest", "air_time", "distance", "hour", "minute",
    "time_hour",
]  # fmt: skip
_INTEGERS = ["year", "month", "day", "sched_dep_time", "sched_arr_time", "flight"]
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


def stage_flights(raw: pd.DataFrame, month_start: pd.Timestamp) -> Staged:
    """Type one month of landed flights; rows breaking a row rule go to quarantine, never away."""
    require_columns(raw, SOURCE_COLUMNS, "flights file")
    rules = RowRules(raw)
    typed = _typed_columns(raw, rules)
    reject_null_keys(typed, _KEY_PARTS, rules)
    # sched_arr_time is staged as int64: an empty one cannot be typed (and would fail the cast of every row).
    rules.reject(typed["sched_arr_time"].isna(), "untypable", "sched_arr_time is empty")
    typed["sched_dep_local"] = scheduled_local(typed)
    reject_outside_month(typed["sched_dep_local"], month_start, rules, "scheduled departure")
    typed["flight_id"] = flight_ids(typed)
    reject_duplicates(raw, SOURCE_COLUMNS, typed["flight_id"], rules)
    valid = add_departure_fields(typed.loc[rules.passed])
    return Staged(valid=with_schema(valid, STAGED_SCHEMA), quarantined=rules.quarantined(SOURCE_COLUMNS))


def _typed_columns(raw: pd.DataFrame, rules: RowRules) -> pd.DataFrame:
    typed = {column: to_number(raw, column, rules, integer=True) for column in _INTEGERS}
    typed |= {column: to_number(raw, column, rules) for column in _NUMBERS}
    typed |= {column: to_text(raw, column) for column in _TEXTS}
    return pd.DataFrame(typed, index=raw.index)


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
