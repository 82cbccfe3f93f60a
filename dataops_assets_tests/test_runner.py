"""``dataops run``'s path: the reference tables once, in process; then the months as one asset backfill through
the environment's run queue, launched by its daemon in their own processes, several at once; then, in process, the
check of the landing as a whole (freshness)."""

from __future__ import annotations

import json
import os
from itertools import combinations
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import BACKFILL_ID_TAG

from dataops_assets import environments
from dataops_assets.definitions import build_definitions
from dataops_assets.environments import current_settings
from dataops_assets.landing import weather_file
from dataops_assets.orchestration import landed_month_files, reference_tables
from dataops_assets.partitions import PARTITION_TAG
from dataops_assets.quality.freshness import CHECK_NAME
from dataops_assets.resources import LandingZone
from dataops_assets_tests.fixtures.landing import MONTHS, write_landing
from dataops_assets_tests.fixtures.pipeline import FIXTURE_BOUNDS
from dataops_ops.instance import open_instance
from dataops_ops.runner import FRESHNESS_LABEL, PartitionOutcome, run_partitions
from dataops_ops.sensor_state import sensor_cursor


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> environments.Settings:
    """dev under ``tmp_path``, thresholds fitted to the hand-made landing: as variables, since runs are processes."""
    monkeypatch.setenv(environments.ENV_VAR, "dev")
    monkeypatch.setenv(environments.DATA_ROOT_VAR, str(tmp_path))
    monkeypatch.setenv(environments.THRESHOLDS_VAR, json.dumps(FIXTURE_BOUNDS))
    monkeypatch.setenv(environments.MAX_RUNS_VAR, "2")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused_dagster_home"))
    settings = current_settings()
    write_landing(settings.landing_dir, MONTHS)
    return settings


def test_months_run_at_once_through_the_queue_after_the_reference_tables(
    environment: environments.Settings,
) -> None:
    heard: list[PartitionOutcome] = []
    defs = build_definitions(environment)
    outcomes = run_partitions(defs, environment, MONTHS, heard.append)

    assert heard == outcomes
    assert outcomes[0].partition == "reference" and outcomes[0].success
    *month_outcomes, freshness = outcomes[1:]
    assert sorted(outcome.partition for outcome in month_outcomes) == list(MONTHS)
    assert all(outcome.success for outcome in outcomes), [o.errors for o in outcomes]
    assert all(outcome.checks for outcome in month_outcomes)  # each month's checks ran in its run
    # the freshness check is judged once, after the months, never inside a month's run; a normal run passes it
    assert not [c for o in month_outcomes for c in o.checks if c.check == CHECK_NAME]
    assert freshness.partition == FRESHNESS_LABEL
    assert [(c.asset, c.check, c.passed) for c in freshness.checks] == [("publish/months", CHECK_NAME, True)]
    assert f"{MONTHS[-1]} landed at " in freshness.checks[0].description
    first_gx = [c for o in month_outcomes for c in o.checks if (c.asset, c.check) == ("staging/flights", "gx_suite")]
    assert len(first_gx) == len(MONTHS)
    # forked from the code server's preloaded parent (run_processes): no run imported GX itself
    assert all(check.metadata["gx_already_imported"] == "True" for check in first_gx)
    with open_instance(environment) as instance:
        [backfill] = instance.get_backfills()
        months = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill.backfill_id}))
        assert sorted(record.dagster_run.tags[PARTITION_TAG] for record in months) == list(MONTHS)
        assert any(_overlap(a, b) for a, b in combinations(months, 2)), "no two months ran at the same time"
        assert len(instance.get_runs(dg.RunsFilter(job_name=reference_tables.name))) == 1
        references = defs.resolve_job_def(reference_tables.name).asset_layer.selected_asset_keys
        assert len(references) == 6
        for record in months:  # each monthly run names its assets, and restages none of the references
            selection = record.dagster_run.asset_selection
            assert selection and not selection & references
    assert not (environment.dagster_home / "daemon.pid").exists()  # the runner stopped the daemon it started

    # right away again: the stopped daemon's heartbeats must not pass for a live daemon (the run would wait forever)
    again = run_partitions(build_definitions(environment), environment, ["2013-01"])
    assert [(o.partition, o.success) for o in again] == [("reference", True), ("2013-01", True), ("freshness", True)], [
        (o.errors, [f.description for f in o.findings]) for o in again
    ]


def test_a_month_that_cannot_load_its_file_is_reported_and_the_others_still_publish(
    environment: environments.Settings,
) -> None:
    (environment.landing_dir / "weather" / "2013-02.csv").unlink()
    outcomes = {o.partition: o for o in run_partitions(build_definitions(environment), environment, MONTHS)}
    assert outcomes["2013-01"].success and outcomes["2013-03"].success
    assert not outcomes["2013-02"].success
    assert any("2013-02.csv" in finding.description for finding in outcomes["2013-02"].findings)


def test_after_a_run_the_landing_sensor_requests_only_files_that_change(environment: environments.Settings) -> None:
    outcomes = run_partitions(build_definitions(environment), environment, MONTHS)
    assert all(outcome.success for outcome in outcomes), [o.errors for o in outcomes]

    with open_instance(environment) as instance:
        quiet = _sensor_tick(environment, instance, sensor_cursor(instance))
        assert not quiet.run_requests, "the sensor would load again what dataops run loaded"

        changed = weather_file(environment.landing_dir, "2013-02")
        stamp = changed.stat().st_mtime_ns + 1_000_000_000
        os.utime(changed, ns=(stamp, stamp))
        touched = _sensor_tick(environment, instance, quiet.cursor)
        assert [request.partition_key for request in touched.run_requests or ()] == ["2013-02"]


def _sensor_tick(settings: environments.Settings, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor, instance=instance, resources={"landing_zone": LandingZone(root=str(settings.landing_dir))}
    )
    result = landed_month_files(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _overlap(a: dg.RunRecord, b: dg.RunRecord) -> bool:
    assert a.start_time and a.end_time and b.start_time and b.end_time
    return a.start_time < b.end_time and b.start_time < a.end_time
