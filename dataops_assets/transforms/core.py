"""Core flights: each staged flight with the weather at its origin in the scheduled hour, its plane and airline."""

from __future__ import annotations

import pandas as pd

from dataops_assets.transforms.weather import MEASURES

_PLANE_COLUMNS = ["tailnum", "year_built", "manufacturer", "model", "engines", "seats"]


def enrich_flights(
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    planes: pd.DataFrame,
    airlines: pd.DataFrame,
    airports: pd.DataFrame,
) -> pd.DataFrame:
    """Left-join the lookups; a missing match leaves nulls and a ``*_known`` flag false, never drops the flight.

    ``validate="many_to_one"`` raises pandas' MergeError if a lookup key repeats, so a flight is never duplicated.
    """
    enriched = (
        flights.merge(_weather_lookup(weather), on=["origin", "time_hour_utc"], how="left", validate="many_to_one")
        .merge(planes[_PLANE_COLUMNS], on="tailnum", how="left", validate="many_to_one")
        .merge(airlines.rename(columns={"name": "airline_name"}), on="carrier", how="left", validate="many_to_one")
        .merge(_destination_lookup(airports), on="dest", how="left", validate="many_to_one")
    )
    enriched["has_weather"] = enriched["weather_observation_id"].notna()
    enriched["plane_known"] = enriched["manufacturer"].notna() | enriched["year_built"].notna()
    enriched["dest_known"] = enriched["dest_name"].notna()
    return enriched


def _weather_lookup(weather: pd.DataFrame) -> pd.DataFrame:
    lookup = weather[["observation_id", "origin", "time_hour_utc", *MEASURES]]
    return lookup.rename(columns={"observation_id": "weather_observation_id"})


def _destination_lookup(airports: pd.DataFrame) -> pd.DataFrame:
    lookup = airports[["faa", "name", "tzone"]]
    return lookup.rename(columns={"faa": "dest", "name": "dest_name", "tzone": "dest_tzone"})
