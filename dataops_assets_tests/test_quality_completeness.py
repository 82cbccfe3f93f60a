"""Complete months from the staged data: every calendar day has flights, every hour has weather at each airport.

On the real data every month passes: flights on every day, and at least 95.97 % of the local hours at each
airport (December 2013 at EWR is the worst airport-month: 714 of 744 hours). A well-formed file missing its last
days, and an airport missing its last eleven days of weather, fail as blocking ERRORs naming the partition and
the days or the airport; the month then goes no further than staging.
"""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dataops_assets import landing
from dataops_assets.assets.raw import raw_flights
from dataops_assets.assets.staging import stage_flights_asset
from dataops_assets.environments import Settings, settings_for
from dataops_assets.partitions import MONTH_KEYS, MONTHLY
from dataops_assets.quality.completeness import (
    FLIGHT_DAYS_CHECK,
    STAGED_FLIGHTS,
    WEATHER_HOURS_CHECK,
    column_check,
    expected_hours,
    flight_days_result,
    weather_hours_result,
)
from dataops_assets.resources import build_resources
from dataops_assets.transforms.weather import stage_weather
from dataops_assets_tests.fixtures.pipeline import materialize_partition, read_table, table_names

MONTH = "2013-01"
STAGE = settings_for("stage").thresholds
DOWNSTREAM = {"core/flights", "marts/carrier_monthly", "marts/route_monthly"}


def _evaluation(result: dg.ExecuteInProcessResult, check: str) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == check]
    return evaluation


def _published(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


def _landed_january(data_root: Path) -> Settings:
    """dev (the 10 % sample) with the real January and the reference files landed."""
    settings = settings_for("dev", data_root=data_root)
    landing.land(settings, months=(MONTH,))
    return settings


def _keep_rows(path: Path, keep: "pd.Series[bool] | None" = None) -> pd.DataFrame:
    """The landed rows; with ``keep``, the file is rewritten (well formed) with those rows only."""
    rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    if keep is not None:
        landing.write_atomically(rows[keep], path)
    return rows


@pytest.fixture(scope="module")
def good_january(tmp_path_factory: pytest.TempPathFactory) -> dg.ExecuteInProcessResult:
    return materialize_partition(_landed_january(tmp_path_factory.mktemp("good")), MONTH)


@pytest.mark.real_data
def test_the_real_january_has_every_day_and_hour_and_is_published(good_january: dg.ExecuteInProcessResult) -> None:
    days = _evaluation(good_january, FLIGHT_DAYS_CHECK)
    assert days.passed, days.description
    assert days.metadata["days_present"] == days.metadata["days_expected"] == dg.MetadataValue.int(31)
    hours = _evaluation(good_january, WEATHER_HOURS_CHECK)
    assert hours.passed, hours.description
    assert hours.metadata["hours_expected_per_airport"] == dg.MetadataValue.int(744)
    for airport in ("EWR", "JFK", "LGA"):  # 742 of 744 hours each
        assert hours.metadata[f"coverage/{airport}"] == dg.MetadataValue.float(0.9973)
        assert hours.metadata[f"hours_missing/{airport}"] == dg.MetadataValue.int(2)
    assert _published(good_january) >= DOWNSTREAM


@pytest.mark.real_data
def test_a_file_missing_its_last_days_fails_naming_them_and_stops_at_staging(tmp_path: Path) -> None:
    settings = _landed_january(tmp_path)
    path = landing.flights_file(settings.landing_dir, MONTH)
    rows = _keep_rows(path)
    _keep_rows(path, rows["day"].astype(int) <= 29)  # well formed; the 30th and 31st are gone

    result = materialize_partition(settings, MONTH)

    days = _evaluation(result, FLIGHT_DAYS_CHECK)
    assert (days.passed, days.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert days.description == (
        "staging.flights 2013-01: no flights on 2 of 31 days (2013-01-30 to 2013-01-31); at most 0 allowed. "
        "Is the landing file cut off?"
    )
    assert days.metadata["missing_days"] == dg.MetadataValue.json([30, 31])
    assert days.metadata["days_present"] == dg.MetadataValue.int(29)
    assert _evaluation(result, WEATHER_HOURS_CHECK).passed
    # blocking: the staged month is written (checks run after it), nothing downstream of it is
    assert "staging/flights" in _published(result)
    assert not DOWNSTREAM & _published(result)
    assert "core.flights" not in table_names(settings)
    staged_days = read_table(settings, "staging.flights")["day"]
    assert staged_days.max() == 29


@pytest.mark.real_data
def test_an_airport_missing_days_of_weather_fails_naming_it_and_stops_at_staging(tmp_path: Path) -> None:
    settings = _landed_january(tmp_path)
    path = landing.weather_file(settings.landing_dir, MONTH)
    rows = _keep_rows(path)
    _keep_rows(path, ~((rows["origin"] == "JFK") & (rows["day"].astype(int) > 20)))

    result = materialize_partition(settings, MONTH)

    hours = _evaluation(result, WEATHER_HOURS_CHECK)
    assert (hours.passed, hours.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert hours.metadata["coverage/JFK"] == dg.MetadataValue.float(0.6425)  # 478 of 744 hours
    assert hours.metadata["coverage/EWR"] == dg.MetadataValue.float(0.9973)
    assert hours.description == (
        "staging.weather 2013-01: below the 95% hourly coverage: JFK has 478 of 744 hours (64.2%), missing (UTC) "
        "2013-01-01T05Z, 2013-01-01T17Z, 2013-01-21T05Z to 2013-02-01T04Z"
    )
    assert _evaluation(result, FLIGHT_DAYS_CHECK).passed
    assert "staging/weather" in _published(result)
    assert not DOWNSTREAM & _published(result)


@pytest.mark.real_data
def test_every_real_month_is_complete_at_each_airport() -> None:
    """The full source, month by month, against stage's thresholds; the worst coverage is December at EWR."""
    source_flights, source_weather = landing.read_source("flights"), landing.read_source("weather")
    worst: dict[str, dg.MetadataValue] = {}
    for key in MONTH_KEYS:
        month = str(int(key[-2:]))
        days = flight_days_result(source_flights.loc[source_flights["month"] == month, "day"], key, 0)
        assert days.passed, days.description
        raw = source_weather[source_weather["month"] == month].assign(
            _source_file="weather.csv", _source_line=0, _partition_month=pd.Timestamp(f"{key}-01")
        )
        hours = weather_hours_result(
            stage_weather(raw, pd.Timestamp(f"{key}-01")).valid, key, STAGE.min_weather_coverage
        )
        assert hours.passed, hours.description
        worst[key] = hours.metadata["worst_coverage"]
    assert worst["2013-12"] == dg.MetadataValue.float(0.9597)  # EWR: 714 of 744 hours
    assert all(coverage.value >= 0.9597 for coverage in worst.values())  # type: ignore[operator]


def test_the_hours_of_a_month_follow_the_local_clock() -> None:
    """Daylight time starts on 10 March (23 hours) and ends on 3 November (25 hours)."""
    assert [len(expected_hours(key)) for key in ("2013-01", "2013-02", "2013-03", "2013-11")] == [744, 672, 743, 721]
    assert expected_hours("2013-01")[0] == pd.Timestamp("2013-01-01T05:00")


def test_days_allowed_missing_come_from_the_thresholds() -> None:
    days = pd.Series([1, 2, 3])
    assert not flight_days_result(days, "2013-02", 0).passed
    assert flight_days_result(days, "2013-02", 25).passed
    assert not flight_days_result(days, "2013-02", 24).passed


def test_a_check_loads_only_the_columns_it_counts(landed: Settings) -> None:
    """The lake I/O manager reads just the ``columns`` of the check's input (its partition column dropped)."""
    seen: list[list[str]] = []

    def record(data: pd.DataFrame, month: str, _: object) -> dg.AssetCheckResult:
        seen.append([*data.columns])
        return dg.AssetCheckResult(passed=True, metadata={"rows": len(data), "month": month})

    spec = dg.AssetCheckSpec("probe", asset=STAGED_FLIGHTS, partitions_def=MONTHLY)
    probe = column_check(spec, ["day", "carrier"], record)
    result = dg.materialize(
        [raw_flights, stage_flights_asset, probe], resources=build_resources(landed), partition_key=MONTH
    )
    assert seen == [["day", "carrier"]]
    evaluation = _evaluation(result, "probe")
    assert evaluation.metadata["month"] == dg.MetadataValue.text(MONTH)
    assert evaluation.metadata["rows"].value == len(read_table(landed, "staging.flights"))
