"""Freshness: the newest landed month is published within the environment's hours of its landing. The check runs
through the environment's own job (``newest_month_freshness``, as ``dataops run`` launches it after the months) on
the hand-made landing, its times read from the control records and the instance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from dataops_assets.definitions import build_definitions
from dataops_assets.environments import Settings, settings_for
from dataops_assets.orchestration import LANDING_CHECKS, landing_checks_sensor, newest_month_freshness
from dataops_assets.quality.freshness import CHECK_NAME, PUBLISH_MONTHS, LandedMonth, freshness_result
from dataops_assets_tests.fixtures.landing import MONTHS, backdate_landing, write_landing
from dataops_assets_tests.fixtures.pipeline import materialize_partition

NEWEST = MONTHS[-1]
LIMIT_HOURS = settings_for("dev").thresholds.max_hours_landed_to_published


def evaluate(settings: Settings, instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    """The check, evaluated by the environment's job on its own, as after the months of ``dataops run``."""
    job = build_definitions(settings).resolve_job_def(newest_month_freshness.name)
    result = job.execute_in_process(instance=instance)
    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.asset_key, evaluation.check_name) == (PUBLISH_MONTHS, CHECK_NAME)
    return evaluation


def test_a_month_landed_past_the_limit_and_not_published_warns(landed: Settings) -> None:
    when = backdate_landing(landed.landing_dir, LIMIT_HOURS + 1)
    evaluation = evaluate(landed, dg.DagsterInstance.ephemeral())
    assert (evaluation.passed, evaluation.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert evaluation.description == (
        f"{NEWEST} landed at {when:%Y-%m-%d %H:%M:%S} UTC and is not published {LIMIT_HOURS + 1:.1f} h later "
        f"(limit {LIMIT_HOURS:g} h): run it again with `dataops run {NEWEST}`"
    )
    assert evaluation.metadata["published_at"].value == "not published"


def test_the_newest_month_published_after_its_landing_passes(landed: Settings) -> None:
    """A normal run: the landing, then the newest month's run, then the check."""
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_partition(landed, NEWEST, instance).success
    evaluation = evaluate(landed, instance)
    description = evaluation.description or ""
    assert evaluation.passed, description
    assert description.startswith(f"{NEWEST} landed at ")
    assert " and was published 0.0 h later (limit " in description
    assert evaluation.metadata["published_at"].value != "not published"


def test_a_month_landed_within_the_limit_and_not_yet_published_passes(landed: Settings) -> None:
    backdate_landing(landed.landing_dir, LIMIT_HOURS - 1)
    evaluation = evaluate(landed, dg.DagsterInstance.ephemeral())
    description = evaluation.description or ""
    assert evaluation.passed, description
    assert description.startswith(f"{NEWEST} landed at ")
    assert "is not published yet, " in description


def test_the_newest_month_is_the_one_landed_last(landed: Settings) -> None:
    """A month landed again (a correction) is the newest landing, whatever its place in the year."""
    backdate_landing(landed.landing_dir, LIMIT_HOURS + 1)
    write_landing(landed.landing_dir, ["2013-01"])
    evaluation = evaluate(landed, dg.DagsterInstance.ephemeral())
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["month"].value == "2013-01"


def test_nothing_landed_passes(settings: Settings) -> None:
    evaluation = evaluate(settings, dg.DagsterInstance.ephemeral())
    assert evaluation.passed
    assert evaluation.description == "no month has landed yet: nothing to publish"


LANDED = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("published", "now", "passed", "says"),
    [
        (LANDED + timedelta(hours=2), LANDED + timedelta(days=3), True, "was published 2.0 h later (limit 6 h)"),
        (LANDED + timedelta(hours=7), LANDED + timedelta(hours=8), False, "published 7.0 h later (limit 6 h): "),
        # a publication before the landing is an earlier landing's: this one is not published
        (LANDED - timedelta(hours=1), LANDED + timedelta(hours=5), True, "not published yet, 5.0 h later"),
        (LANDED - timedelta(hours=1), LANDED + timedelta(hours=9), False, "not published 9.0 h later (limit 6 h)"),
    ],
    ids=["published-in-time", "published-late", "older-publication-waiting", "older-publication-late"],
)
def test_the_verdict_from_the_two_times(published: datetime, now: datetime, passed: bool, says: str) -> None:
    result = freshness_result(LandedMonth(NEWEST, LANDED, published), limit_hours=6, now=now)
    assert (result.passed, result.severity) == (passed, dg.AssetCheckSeverity.WARN)
    assert result.description is not None and says in result.description


def test_no_month_run_evaluates_the_check() -> None:
    """The month's job leaves it out; an asset backfill of the months does too, because the check has its own
    automation condition (``test_runner`` runs one)."""
    defs = build_definitions(settings_for("dev"))
    flights_pipeline_checks = defs.resolve_job_def("flights_pipeline").asset_layer.asset_graph.asset_check_keys
    assert dg.AssetCheckKey(PUBLISH_MONTHS, CHECK_NAME) not in flights_pipeline_checks
    assert defs.resolve_asset_graph().get(dg.AssetCheckKey(PUBLISH_MONTHS, CHECK_NAME)).automation_condition


def test_its_automation_condition_requests_it_once_an_hour(tmp_path: Path) -> None:
    defs = build_definitions(settings_for("dev", data_root=tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    start = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
    requested = []
    cursor = None
    for minutes in (0, 20, 35, 50, 95):  # 10:30, 10:50, 11:05, 11:20, 12:05
        result = dg.evaluate_automation_conditions(
            defs, instance, LANDING_CHECKS, start + timedelta(minutes=minutes), cursor
        )
        requested.append(result.total_requested)
        cursor = result.cursor
    assert requested == [0, 0, 1, 0, 1]


@pytest.mark.parametrize(("environment", "status"), [("dev", "STOPPED"), ("stage", "RUNNING"), ("prod", "RUNNING")])
def test_its_sensor_runs_by_default_in_stage_and_prod(environment: str, status: str) -> None:
    assert landing_checks_sensor(settings_for(environment)).default_status.value == status
