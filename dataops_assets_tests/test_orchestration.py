"""The job, the monthly replay schedule and the landed-files sensor, evaluated directly (no daemon)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from dataops_assets.environments import Settings
from dataops_assets.landing import flights_file, weather_file
from dataops_assets.orchestration import (
    flights_pipeline,
    landed_month_files,
    monthly_replay,
    reference_tables,
    replay_partition,
)
from dataops_assets.partitions import MONTH_KEYS, MONTHLY
from dataops_assets.resources import LandingZone
from dataops_assets_tests.fixtures.landing import write_flights, write_weather

NEW_YORK = ZoneInfo("America/New_York")


def _tick(landing_dir: Path, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(cursor=cursor, resources={"landing_zone": LandingZone(root=str(landing_dir))})
    result = landed_month_files(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _partitions(result: dg.SensorResult) -> list[str]:
    return [str(request.partition_key) for request in result.run_requests or ()]


@pytest.fixture
def landing_dir(settings: Settings) -> Path:
    return settings.landing_dir


def test_sensor_requests_a_month_once_both_files_have_landed(landing_dir: Path) -> None:
    empty = _tick(landing_dir, None)
    assert _partitions(empty) == []
    assert json.loads(empty.cursor or "{}") == {}

    write_flights(landing_dir, "2013-01")
    only_flights = _tick(landing_dir, empty.cursor)
    assert _partitions(only_flights) == []

    write_weather(landing_dir, "2013-01")
    both = _tick(landing_dir, only_flights.cursor)
    assert _partitions(both) == ["2013-01"]
    request = (both.run_requests or [])[0]
    assert isinstance(request, dg.RunRequest)
    mtimes = [
        path.stat().st_mtime_ns for path in (flights_file(landing_dir, "2013-01"), weather_file(landing_dir, "2013-01"))
    ]
    stamp = f"{mtimes[0]}:{mtimes[1]}"
    assert request.run_key == f"landed-2013-01-{stamp}"
    assert json.loads(both.cursor or "{}") == {"2013-01": stamp}

    again = _tick(landing_dir, both.cursor)
    assert _partitions(again) == []
    assert again.cursor == both.cursor


def test_sensor_requests_several_months_in_partition_order(landing_dir: Path) -> None:
    for month in ("2013-03", "2013-01", "2013-02"):
        write_flights(landing_dir, month)
        write_weather(landing_dir, month)
    first = _tick(landing_dir, None)
    assert _partitions(first) == ["2013-01", "2013-02", "2013-03"]
    assert sorted(json.loads(first.cursor or "{}")) == ["2013-01", "2013-02", "2013-03"]
    assert _partitions(_tick(landing_dir, first.cursor)) == []


def test_sensor_requests_a_month_again_after_a_file_is_rewritten(landing_dir: Path) -> None:
    for month in ("2013-01", "2013-02"):
        write_flights(landing_dir, month)
        write_weather(landing_dir, month)
    first = _tick(landing_dir, None)
    assert _partitions(first) == ["2013-01", "2013-02"]

    weather = weather_file(landing_dir, "2013-02")
    later = weather.stat().st_mtime_ns + 5_000_000_000
    os.utime(weather, ns=(later, later))
    rewritten = _tick(landing_dir, first.cursor)
    assert _partitions(rewritten) == ["2013-02"]
    request = (rewritten.run_requests or [])[0]
    assert isinstance(request, dg.RunRequest)
    assert request.run_key is not None and request.run_key.endswith(f":{later}")
    first_keys = {r.run_key for r in first.run_requests or [] if isinstance(r, dg.RunRequest)}
    assert request.run_key not in first_keys  # a new run key, so Dagster does not deduplicate it away
    assert json.loads(rewritten.cursor or "{}")["2013-01"] == json.loads(first.cursor or "{}")["2013-01"]

    assert _partitions(_tick(landing_dir, rewritten.cursor)) == []


def test_sensor_never_requests_a_month_with_only_one_of_its_files(landing_dir: Path) -> None:
    write_flights(landing_dir, "2013-01")
    write_weather(landing_dir, "2013-02")
    cursor = None
    for _ in range(3):
        result = _tick(landing_dir, cursor)
        assert _partitions(result) == []
        cursor = result.cursor
    assert json.loads(cursor or "{}") == {}


def test_sensor_ignores_files_outside_the_partitions(landing_dir: Path) -> None:
    (landing_dir / "flights").mkdir(parents=True)
    (landing_dir / "weather").mkdir(parents=True)
    for folder in ("flights", "weather"):
        (landing_dir / folder / "2014-01.csv").write_text("year\n2014\n")
    assert _partitions(_tick(landing_dir, None)) == []


@pytest.mark.parametrize(
    ("tick", "partition"),
    [
        (datetime(2026, 11, 2, 6, 0, tzinfo=NEW_YORK), "2013-10"),
        (datetime(2027, 1, 2, 6, 0, tzinfo=NEW_YORK), "2013-12"),
        (datetime(2026, 2, 2, 6, 0, tzinfo=NEW_YORK), "2013-01"),
        (datetime(2026, 12, 2, 6, 0, tzinfo=NEW_YORK), "2013-11"),
    ],
)
def test_schedule_replays_the_previous_calendar_month_of_2013(tick: datetime, partition: str) -> None:
    request = monthly_replay(dg.build_schedule_context(scheduled_execution_time=tick))
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == partition
    assert request.run_key == f"replay-{tick:%Y-%m}"


def test_schedule_replay_covers_every_partition_once_a_year() -> None:
    ticks = [datetime(2026, month, 2, 6, 0, tzinfo=NEW_YORK) for month in range(1, 13)]
    assert sorted(replay_partition(tick) for tick in ticks) == list(MONTH_KEYS)
    assert list(MONTH_KEYS) == MONTHLY.get_partition_keys()


def test_schedule_definition() -> None:
    assert monthly_replay.cron_schedule == "0 6 2 * *"
    assert monthly_replay.execution_timezone == "America/New_York"
    assert monthly_replay.job_name == "flights_pipeline"
    assert landed_month_files.job_name == "flights_pipeline"
    assert landed_month_files.minimum_interval_seconds == 30


def test_the_two_jobs_split_the_assets_into_months_and_references(definitions: dg.Definitions) -> None:
    defs = definitions
    job = defs.resolve_job_def(flights_pipeline.name)
    references = defs.resolve_job_def(reference_tables.name).asset_layer.selected_asset_keys
    asset_graph = defs.resolve_asset_graph()
    monthly = job.asset_layer.selected_asset_keys
    assert monthly | references == asset_graph.get_all_asset_keys()
    assert not monthly & references
    assert len(monthly) == 9 and len(references) == 6
    assert all(asset_graph.get(key).partitions_def == MONTHLY for key in monthly)
    assert all(asset_graph.get(key).partitions_def is None for key in references)
    assert job.partitions_def == MONTHLY
    # The job-scoped graph holds only what the job's selection picked (a job of core/flights alone has 3 checks).
    assert job.asset_layer.asset_graph.asset_check_keys == asset_graph.asset_check_keys
    assert len(asset_graph.asset_check_keys) > 0
    assert {d.name for d in defs.resolve_all_job_defs()} >= {"flights_pipeline"}
    assert defs.resolve_schedule_def("monthly_replay").job_name == "flights_pipeline"
    assert defs.resolve_sensor_def("landed_month_files").job_name == "flights_pipeline"
