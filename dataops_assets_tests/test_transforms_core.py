"""``enrich_flights``: left joins of staged flights with weather, planes, airlines and destination airports."""

from __future__ import annotations

import pandas as pd
import pytest

from dataops_assets.transforms.core import enrich_flights
from dataops_assets.transforms.flights import STAGED_SCHEMA, stage_flights
from dataops_assets.transforms.reference import REFERENCE_SPECS, stage_reference
from dataops_assets.transforms.weather import MEASURES, stage_weather
from dataops_assets_tests.fixtures.builders import flight, observation, raw_flights, raw_weather

JAN = pd.Timestamp("2013-01-01")


def _reference(table: str, rows: list[list[str]]) -> pd.DataFrame:
    raw = pd.DataFrame(rows, columns=list(REFERENCE_SPECS[table].source_columns), dtype=str)
    return stage_reference(table, raw)


@pytest.fixture
def flights() -> pd.DataFrame:
    staged = stage_flights(
        raw_flights(
            flight(),  # EWR 05:15 EST = 10:15 UTC: weather hour 10Z exists
            flight(flight="200", tailnum="N999ZZ", sched_dep_time="600", dep_time="600", dep_delay="0"),
            flight(carrier="B6", flight="725", tailnum="N804JB", origin="JFK", dest="BQN"),
            flight(carrier="ZZ", flight="1", tailnum="NA", origin="LGA"),
        ),
        JAN,
    )
    assert staged.quarantined.empty
    return staged.valid


@pytest.fixture
def weather() -> pd.DataFrame:
    staged = stage_weather(
        raw_weather(
            observation(hour="5", time_hour="2013-01-01T10:00:00Z", temp="35.1"),
            observation(hour="6", time_hour="2013-01-01T11:00:00Z", temp="36.0"),
            observation(origin="JFK", hour="5", time_hour="2013-01-01T10:00:00Z", temp="33.8", wind_gust="20.7"),
        ),
        JAN,
    )
    assert staged.quarantined.empty
    return staged.valid


@pytest.fixture
def planes() -> pd.DataFrame:
    return _reference(
        "planes",
        [
            ["N14228", "1999", "Fixed wing multi engine", "BOEING", "737-824", "2", "149", "NA", "Turbo-fan"],
            ["N804JB", "2010", "Fixed wing multi engine", "AIRBUS", "A320-232", "2", "200", "NA", "Turbo-fan"],
        ],
    )


@pytest.fixture
def airlines() -> pd.DataFrame:
    return _reference("airlines", [["UA", "United Air Lines Inc."], ["B6", "JetBlue Airways"]])


@pytest.fixture
def airports() -> pd.DataFrame:
    return _reference(
        "airports",
        [
            ["IAH", "George Bush Intercontinental", "29.984433", "-95.341442", "97", "-6", "A", "America/Chicago"],
            ["EWR", "Newark Liberty Intl", "40.6925", "-74.168667", "18", "-5", "A", "America/New_York"],
        ],
    )


@pytest.fixture
def enriched(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, airlines: pd.DataFrame, airports: pd.DataFrame
) -> pd.DataFrame:
    return enrich_flights(flights, weather, planes, airlines, airports).set_index("flight_id", drop=False)


def test_every_flight_is_kept_once_in_order(flights: pd.DataFrame, enriched: pd.DataFrame) -> None:
    assert len(enriched) == len(flights) == 4
    assert enriched["flight_id"].tolist() == flights["flight_id"].tolist()
    assert enriched["flight_id"].is_unique


def test_staged_columns_pass_through_unchanged(flights: pd.DataFrame, enriched: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(enriched[list(STAGED_SCHEMA)].reset_index(drop=True), flights)


def test_weather_of_the_origin_in_the_scheduled_utc_hour(enriched: pd.DataFrame) -> None:
    row = enriched.loc["2013-01-01T0515/UA1545/EWR"]
    assert row["has_weather"]
    assert row["weather_observation_id"] == "EWR/2013-01-01T10Z"
    assert row["temp"] == 35.1
    # 06:00 EST is 11:00 UTC: the next observation.
    later = enriched.loc["2013-01-01T0600/UA200/EWR"]
    assert later["weather_observation_id"] == "EWR/2013-01-01T11Z"
    assert later["temp"] == 36.0
    jfk = enriched.loc["2013-01-01T0515/B6725/JFK"]
    assert jfk["weather_observation_id"] == "JFK/2013-01-01T10Z"
    assert jfk["wind_gust"] == 20.7


def test_missing_weather_hour_keeps_the_flight_with_null_measures(enriched: pd.DataFrame) -> None:
    row = enriched.loc["2013-01-01T0515/ZZ1/LGA"]  # no LGA observation at all
    assert not row["has_weather"]
    assert pd.isna(row["weather_observation_id"])
    assert row[MEASURES].isna().all()


def test_unknown_tailnum_keeps_the_flight_with_plane_unknown(enriched: pd.DataFrame) -> None:
    row = enriched.loc["2013-01-01T0600/UA200/EWR"]
    assert not row["plane_known"]
    assert pd.isna(row["year_built"])
    assert pd.isna(row["manufacturer"])
    known = enriched.loc["2013-01-01T0515/UA1545/EWR"]
    assert known["plane_known"]
    assert known["year_built"] == 1999.0
    assert known["manufacturer"] == "BOEING"
    assert known["seats"] == 149.0


def test_missing_tailnum_is_plane_unknown(enriched: pd.DataFrame) -> None:
    assert not enriched.loc["2013-01-01T0515/ZZ1/LGA", "plane_known"]


def test_destination_not_in_airports_is_dest_unknown(enriched: pd.DataFrame) -> None:
    bqn = enriched.loc["2013-01-01T0515/B6725/JFK"]
    assert not bqn["dest_known"]
    assert pd.isna(bqn["dest_name"])
    assert pd.isna(bqn["dest_tzone"])
    iah = enriched.loc["2013-01-01T0515/UA1545/EWR"]
    assert iah["dest_known"]
    assert iah["dest_name"] == "George Bush Intercontinental"
    assert iah["dest_tzone"] == "America/Chicago"


def test_airline_name_and_unknown_carrier(enriched: pd.DataFrame) -> None:
    assert enriched.loc["2013-01-01T0515/UA1545/EWR", "airline_name"] == "United Air Lines Inc."
    assert enriched.loc["2013-01-01T0515/B6725/JFK", "airline_name"] == "JetBlue Airways"
    assert pd.isna(enriched.loc["2013-01-01T0515/ZZ1/LGA", "airline_name"])


def test_flags_are_boolean_columns(enriched: pd.DataFrame) -> None:
    assert enriched["has_weather"].tolist() == [True, True, True, False]
    assert enriched["plane_known"].tolist() == [True, False, True, False]
    assert enriched["dest_known"].tolist() == [True, True, False, True]
    for column in ("has_weather", "plane_known", "dest_known"):
        assert enriched[column].dtype == bool


def test_lookup_columns_do_not_clash_with_flight_columns(enriched: pd.DataFrame) -> None:
    assert not [column for column in enriched.columns if column.endswith(("_x", "_y"))]
    assert "name" not in enriched.columns


def test_duplicated_plane_key_raises_instead_of_fanning_out(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, airlines: pd.DataFrame, airports: pd.DataFrame
) -> None:
    doubled = pd.concat([planes, planes.iloc[[0]]], ignore_index=True)
    with pytest.raises(pd.errors.MergeError, match="not a many-to-one merge"):
        enrich_flights(flights, weather, doubled, airlines, airports)


@pytest.fixture
def lookups(
    weather: pd.DataFrame, planes: pd.DataFrame, airlines: pd.DataFrame, airports: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    return {"weather": weather, "planes": planes, "airlines": airlines, "airports": airports}


@pytest.mark.parametrize("lookup", ["weather", "airlines", "airports"])
def test_any_duplicated_lookup_key_raises(lookup: str, flights: pd.DataFrame, lookups: dict[str, pd.DataFrame]) -> None:
    lookups[lookup] = pd.concat([lookups[lookup], lookups[lookup]], ignore_index=True)
    with pytest.raises(pd.errors.MergeError, match="not a many-to-one merge"):
        enrich_flights(flights, **lookups)


def test_empty_lookups_keep_every_flight(flights: pd.DataFrame, weather: pd.DataFrame) -> None:
    enriched = enrich_flights(
        flights,
        weather.iloc[0:0],
        _reference("planes", []),
        _reference("airlines", []),
        _reference("airports", []),
    )
    assert len(enriched) == len(flights)
    assert not enriched[["has_weather", "plane_known", "dest_known"]].any().any()
