"""Shared data of the Great Expectations tests (no tests here): one small, clean January and its references.

Eight flights on Jan 1st to 3rd, one of them cancelled, every destination in ``airports`` and every tail number
in ``planes``; a weather hour for every scheduled hour at its origin. The suites pass on it with
``SMALL_PARAMETERS`` (row-count bands fitted to eight rows, and a cancellation band that admits 1 in 8); every
test that wants a failure breaks one thing in a copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dataops_assets import landing
from dataops_assets.environments import Settings, settings_for
from dataops_assets.transforms import flights, marts, weather
from dataops_assets.transforms.core import enrich_flights
from dataops_assets.transforms.flights import stage_flights
from dataops_assets.transforms.reference import REFERENCE_SPECS, stage_reference
from dataops_assets.transforms.weather import stage_weather
from dataops_assets_tests import builders

MONTH = "2013-01"
MONTH_START = pd.Timestamp("2013-01-01")

# Bands a hand-made month of eight flights and eight weather hours can meet; the rest comes from dev Settings.
SMALL_PARAMETERS: dict[str, Any] = {
    "min_rows": 1,
    "max_rows": 50,
    "weather_min_rows": 1,
    "weather_max_rows": 50,
    "cancellation_rate_max": 0.2,
}


def _clock_plus(hhmm: int, minutes: int) -> str:
    total = (hhmm // 100) * 60 + hhmm % 100 + minutes
    return str((total // 60 % 24) * 100 + total % 60)


def flight_row(  # noqa: PLR0917 - the rows below read best as one positional line each
    day: int,
    sched_dep: int,
    flight: str,
    route: tuple[str, str, int],
    tailnum: str,
    delays: tuple[int, int] | None,
) -> dict[str, str]:
    """A landed January flight; ``flight`` is like ``UA1545``, ``route`` is (origin, dest, distance) and
    ``delays`` (departure, arrival) in minutes, None for a cancelled flight. Times are in standard time (UTC-5)."""
    origin, dest, distance = route
    hour, minute = sched_dep // 100, sched_dep % 100
    sched_arr = int(_clock_plus(sched_dep, 180))
    return builders.flight(
        day=str(day),
        dep_time="NA" if delays is None else _clock_plus(sched_dep, delays[0]),
        sched_dep_time=str(sched_dep),
        dep_delay="NA" if delays is None else str(delays[0]),
        arr_time="NA" if delays is None else _clock_plus(sched_arr, delays[1]),
        sched_arr_time=str(sched_arr),
        arr_delay="NA" if delays is None else str(delays[1]),
        carrier=flight[:2],
        flight=flight[2:],
        tailnum=tailnum,
        origin=origin,
        dest=dest,
        air_time="NA" if delays is None else "150",
        distance=str(distance),
        hour=str(hour),
        minute=str(minute),
        time_hour=f"2013-01-{day:02d}T{hour + 5:02d}:00:00Z",
    )


FLIGHT_ROWS: list[dict[str, str]] = [
    flight_row(1, 515, "UA1545", ("EWR", "IAH", 1400), "N14228", (2, 11)),
    flight_row(1, 529, "UA1714", ("LGA", "IAH", 1416), "N24211", (4, 10)),
    flight_row(1, 540, "AA1141", ("JFK", "MIA", 1089), "N619AA", (2, 33)),
    flight_row(1, 600, "B6507", ("JFK", "FLL", 1069), "N804JB", (-4, -9)),
    flight_row(2, 600, "UA1000", ("EWR", "ORD", 719), "N14228", None),
    flight_row(2, 700, "AA1800", ("LGA", "MIA", 1096), "N619AA", (10, 5)),
    flight_row(3, 830, "B6725", ("JFK", "MIA", 1089), "N804JB", (0, -5)),
    flight_row(3, 900, "UA300", ("EWR", "ORD", 719), "N24211", (25, 20)),
]


def weather_row(origin: str, day: int, hour: int, **overrides: str) -> dict[str, str]:
    return builders.observation(
        origin=origin,
        day=str(day),
        hour=str(hour),
        time_hour=f"2013-01-{day:02d}T{hour + 5:02d}:00:00Z",
        **overrides,
    )


WEATHER_ROWS: list[dict[str, str]] = [
    weather_row("EWR", 1, 5),
    weather_row("LGA", 1, 5),
    weather_row("JFK", 1, 5),
    weather_row("JFK", 1, 6),
    weather_row("EWR", 2, 6),
    weather_row("LGA", 2, 7),
    weather_row("JFK", 3, 8),
    weather_row("EWR", 3, 9),
]

_AIRPORTS = [
    ("EWR", "Newark Liberty Intl", "America/New_York"),
    ("JFK", "John F Kennedy Intl", "America/New_York"),
    ("LGA", "La Guardia", "America/New_York"),
    ("IAH", "George Bush Intercontinental", "America/Chicago"),
    ("MIA", "Miami Intl", "America/New_York"),
    ("FLL", "Fort Lauderdale Hollywood Intl", "America/New_York"),
    ("ORD", "Chicago Ohare Intl", "America/Chicago"),
]
REFERENCE_ROWS: dict[str, list[dict[str, str]]] = {
    "airports": [
        {"faa": faa, "name": name, "lat": "40", "lon": "-74", "alt": "10", "tz": "-5", "dst": "A", "tzone": tzone}
        for faa, name, tzone in _AIRPORTS
    ],
    "airlines": [
        {"carrier": "AA", "name": "American Airlines Inc."},
        {"carrier": "B6", "name": "JetBlue Airways"},
        {"carrier": "UA", "name": "United Air Lines Inc."},
    ],
    "planes": [
        {
            "tailnum": tailnum,
            "year": "2000",
            "type": "Fixed wing multi engine",
            "manufacturer": "BOEING",
            "model": "737-824",
            "engines": "2",
            "seats": "149",
            "speed": "NA",
            "engine": "Turbo-fan",
        }
        for tailnum in ("N14228", "N24211", "N619AA", "N804JB")
    ],
}


def reference_frames() -> dict[str, pd.DataFrame]:
    """The staged reference tables, as the check inputs receive them."""
    return {
        table: stage_reference(table, pd.DataFrame(rows, columns=list(REFERENCE_SPECS[table].source_columns)))
        for table, rows in REFERENCE_ROWS.items()
    }


def good_frames() -> dict[str, pd.DataFrame]:
    """The checked assets of the clean January, built by the flow's own transforms, keyed by suite name."""
    references = reference_frames()
    staged = stage_flights(builders.raw_flights(*FLIGHT_ROWS), MONTH_START)
    observed = stage_weather(builders.raw_weather(*WEATHER_ROWS), MONTH_START)
    assert staged.quarantined.empty and observed.quarantined.empty
    core = enrich_flights(
        staged.valid, observed.valid, references["planes"], references["airlines"], references["airports"]
    )
    return {
        "staging.flights": staged.valid,
        "staging.weather": observed.valid,
        "core.flights": core,
        "marts.carrier_monthly": marts.carrier_monthly(core, MONTH_START),
        "marts.route_monthly": marts.route_monthly(core, MONTH_START),
    }


def small_settings(data_root: Path) -> Settings:
    return settings_for("dev", data_root=data_root)


def write_small_landing(landing_dir: Path, flight_rows: list[dict[str, str]] | None = None) -> None:
    """Land the clean January (or ``flight_rows`` instead of its flights), its weather and the references."""
    rows = FLIGHT_ROWS if flight_rows is None else flight_rows
    landing.write_atomically(
        pd.DataFrame(rows, columns=flights.SOURCE_COLUMNS, dtype=str), landing.flights_file(landing_dir, MONTH)
    )
    landing.write_atomically(
        pd.DataFrame(WEATHER_ROWS, columns=weather.SOURCE_COLUMNS, dtype=str), landing.weather_file(landing_dir, MONTH)
    )
    for table, table_rows in REFERENCE_ROWS.items():
        frame = pd.DataFrame(table_rows, columns=list(REFERENCE_SPECS[table].source_columns), dtype=str)
        landing.write_atomically(frame, landing.reference_file(landing_dir, table))
