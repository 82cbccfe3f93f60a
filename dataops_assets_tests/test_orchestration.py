"""The job, the monthly replay schedule and the landed-files sensor, evaluated directly (no daemon)."""

from __future__ import annotations

import json
import os
from collections.abc import Set as AbstractSet
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from dataops_assets.environments import Settings
from dataops_assets.landing import flights_file, reference_file, weather_file
from dataops_assets.orchestration import (
    LANDING_CHECKS,
    REFERENCE_CURSOR_KEY,
    flights_pipeline,
    landed_month_files,
    monthly_replay,
    reference_tables,
    references_stamp,
    replay_partition,
)
from dataops_assets.partitions import MONTH_KEYS, MONTHLY
from dataops_assets.resources import LandingZone
from dataops_assets.transforms.reference import REFERENCE_SPECS
from dataops_assets_tests.fixtures.landing import write_flights, write_reference, write_weather

NEW_YORK = ZoneInfo("America/New_York")


def _tick(landing_dir: Path, cursor: str | None, instance: dg.DagsterInstance | None = None) -> dg.SensorResult:
    """One evaluation; a cursor of None starts after the reference tables' load (see the reference tests)."""
    if cursor is None:
        cursor = json.dumps({REFERENCE_CURSOR_KEY: references_stamp(landing_dir)})
    context = dg.build_sensor_context(
        cursor=cursor,
        resources={"landing_zone": LandingZone(root=str(landing_dir))},
        instance=instance or dg.DagsterInstance.ephemeral(),
    )
    result = landed_month_files(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _months(cursor: str | None) -> dict[str, str]:
    return {k: v for k, v in json.loads(cursor or "{}").items() if k != REFERENCE_CURSOR_KEY}


def _partitions(result: dg.SensorResult) -> list[str]:
    return [str(request.partition_key) for request in result.run_requests or ()]


@pytest.fixture
def landing_dir(settings: Settings) -> Path:
    """The landing folder with the reference files landed."""
    for table in REFERENCE_SPECS:
        write_reference(settings.landing_dir, table)
    return settings.landing_dir


def _jobs(result: dg.SensorResult) -> list[str | None]:
    return [request.job_name for request in result.run_requests or () if isinstance(request, dg.RunRequest)]


def test_sensor_loads_the_references_first_and_holds_the_months_until_then(landing_dir: Path) -> None:
    write_flights(landing_dir, "2013-01")
    write_weather(landing_dir, "2013-01")
    with dg.DagsterInstance.ephemeral() as instance:
        first = landed_month_files(
            dg.build_sensor_context(resources={"landing_zone": LandingZone(root=str(landing_dir))}, instance=instance)
        )
        assert isinstance(first, dg.SensorResult)
        assert _jobs(first) == [reference_tables.name]
        assert _months(first.cursor) == {}
        # while the reference load runs, the month waits
        instance.add_run(dg.DagsterRun(job_name=reference_tables.name, status=dg.DagsterRunStatus.STARTED))
        held = _tick(landing_dir, first.cursor, instance)
        assert _jobs(held) == [] and held.skip_reason == dg.SkipReason("waiting for the reference tables")
        assert _months(held.cursor) == {}
    # once it has ended, the month is requested; a changed reference file loads the references again
    ready = _tick(landing_dir, first.cursor)
    assert (_jobs(ready), _partitions(ready)) == ([flights_pipeline.name], ["2013-01"])
    planes = reference_file(landing_dir, "planes")
    later = planes.stat().st_mtime_ns + 5_000_000_000
    os.utime(planes, ns=(later, later))
    assert _jobs(_tick(landing_dir, ready.cursor)) == [reference_tables.name]


def test_sensor_requests_no_month_while_a_reference_file_is_missing(landing_dir: Path) -> None:
    write_flights(landing_dir, "2013-01")
    write_weather(landing_dir, "2013-01")
    reference_file(landing_dir, "airlines").unlink()
    result = _tick(landing_dir, "{}")
    assert _jobs(result) == [] and result.skip_reason == dg.SkipReason("waiting for the reference tables")


def test_sensor_requests_a_month_once_both_files_have_landed(landing_dir: Path) -> None:
    empty = _tick(landing_dir, None)
    assert _partitions(empty) == []
    assert _months(empty.cursor) == {}

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
    assert _months(both.cursor) == {"2013-01": stamp}

    again = _tick(landing_dir, both.cursor)
    assert _partitions(again) == []
    assert again.cursor == both.cursor


def test_sensor_requests_several_months_in_partition_order(landing_dir: Path) -> None:
    for month in ("2013-03", "2013-01", "2013-02"):
        write_flights(landing_dir, month)
        write_weather(landing_dir, month)
    first = _tick(landing_dir, None)
    assert _partitions(first) == ["2013-01", "2013-02", "2013-03"]
    assert sorted(_months(first.cursor)) == ["2013-01", "2013-02", "2013-03"]
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
    assert _months(cursor) == {}


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
    assert {target.job_name for target in landed_month_files.targets} == {"flights_pipeline", "reference_tables"}
    assert landed_month_files.minimum_interval_seconds == 30


def test_the_two_jobs_split_the_assets_into_months_and_references(definitions: dg.Definitions) -> None:
    defs = definitions
    job = defs.resolve_job_def(flights_pipeline.name)
    references = defs.resolve_job_def(reference_tables.name).asset_layer.selected_asset_keys
    asset_graph = defs.resolve_asset_graph()
    monthly = job.asset_layer.selected_asset_keys
    assert monthly | references == asset_graph.get_all_asset_keys()
    assert not monthly & references
    assert len(monthly) == 10 and len(references) == 6
    assert dg.AssetKey(["publish", "months"]) in monthly  # the months are published by the same run
    assert all(asset_graph.get(key).partitions_def == MONTHLY for key in monthly)
    assert all(asset_graph.get(key).partitions_def is None for key in references)
    assert job.partitions_def == MONTHLY
    # The job-scoped graph holds only what the job's selection picked (a job of core/flights alone has 3 checks).

    def checks_on(keys: AbstractSet[dg.AssetKey]) -> set[dg.AssetCheckKey]:
        return {check for check in asset_graph.asset_check_keys if check.asset_key in keys}

    # every check of the months' assets but the landing's, which are judged after the months, not in each one
    landing_checks = LANDING_CHECKS.resolve_checks(asset_graph)
    assert landing_checks and landing_checks <= checks_on(monthly)
    assert job.asset_layer.asset_graph.asset_check_keys == checks_on(monthly) - landing_checks
    reference_job = defs.resolve_job_def(reference_tables.name)
    assert reference_job.asset_layer.asset_graph.asset_check_keys == checks_on(references)  # the reference gates
    assert checks_on(monthly) and checks_on(references)
    assert {d.name for d in defs.resolve_all_job_defs()} >= {"flights_pipeline"}
    assert defs.resolve_schedule_def("monthly_replay").job_name == "flights_pipeline"
    sensor = defs.resolve_sensor_def("landed_month_files")
    assert {target.job_name for target in sensor.targets} == {"flights_pipeline", "reference_tables"}
