"""The Definitions of the current environment (``DATAOPS_ENV``). Entry point for dagster, dg and code servers."""

from __future__ import annotations

# First: the asset modules below warn about the preview and beta features they use as they are imported.
import dataops_assets.warning_filters  # noqa: F401

# isort: split
import dagster as dg

from dataops_assets.assets.core import core_assets
from dataops_assets.assets.marts import mart_assets
from dataops_assets.assets.publish import publish_assets
from dataops_assets.assets.raw import raw_assets
from dataops_assets.assets.staging import ACCEPTED, staging_assets
from dataops_assets.catalog import describe_assets
from dataops_assets.environments import Settings, current_settings
from dataops_assets.maintenance import build_lake_maintenance
from dataops_assets.observability.alerts import alert_sensors, build_alerting_resource
from dataops_assets.observability.config import build_observability_resource
from dataops_assets.observability.logging import run_loggers
from dataops_assets.observability.runs import observation_sensors
from dataops_assets.orchestration import jobs, landing_checks_sensor, schedules, sensors
from dataops_assets.quality.completeness import completeness_checks
from dataops_assets.quality.freshness import freshness_checks
from dataops_assets.quality.gx_checks import gx_asset_checks
from dataops_assets.quality.native import native_checks
from dataops_assets.quality.reconciliation import reconciliation_checks
from dataops_assets.quality.volume import volume_checks
from dataops_assets.resources import build_resources


def build_definitions(settings: Settings) -> dg.Definitions:
    # Columns with descriptions, table names, groups, code versions and source links, all from the catalog.
    assets = describe_assets([*raw_assets, *staging_assets, *core_assets, *mart_assets, *publish_assets])
    maintenance_job, maintenance_schedule = build_lake_maintenance(settings, [k for a in assets for k in a.keys])
    return dg.Definitions(
        assets=assets,
        jobs=[*jobs, maintenance_job],
        schedules=[*schedules, maintenance_schedule],
        sensors=[*sensors, landing_checks_sensor(settings), *alert_sensors, *observation_sensors],
        asset_checks=[
            *native_checks(assets, settings.thresholds),
            *gx_asset_checks(accepted=ACCEPTED),  # the file staging read: read once
            *reconciliation_checks,
            *completeness_checks,
            *volume_checks,
            *freshness_checks,
        ],
        resources={
            **build_resources(settings),
            "alerting": build_alerting_resource(settings),
            "observability": build_observability_resource(settings),
        },
        loggers=run_loggers(settings),
        # Materializations launched from the UI run their steps in one process too, like the jobs: each step
        # process would import Great Expectations again.
        executor=dg.in_process_executor,
    )


defs = build_definitions(current_settings())
