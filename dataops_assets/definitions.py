"""The Definitions of the current environment (``DATAOPS_ENV``). Entry point for dagster, dg and code servers."""

from __future__ import annotations

import dagster as dg

from dataops_assets.assets.core import core_assets
from dataops_assets.assets.marts import mart_assets
from dataops_assets.assets.raw import raw_assets
from dataops_assets.assets.staging import staging_assets
from dataops_assets.environments import Settings, current_settings
from dataops_assets.observability import observability_resources, observability_sensors, run_loggers
from dataops_assets.orchestration import jobs, schedules, sensors
from dataops_assets.quality.gx_checks import gx_asset_checks
from dataops_assets.quality.native import native_checks
from dataops_assets.resources import build_resources


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[*raw_assets, *staging_assets, *core_assets, *mart_assets],
        jobs=jobs,
        schedules=schedules,
        sensors=[*sensors, *observability_sensors],
        asset_checks=[*native_checks(settings), *gx_asset_checks(settings)],
        resources={**build_resources(settings), **observability_resources(settings)},
        loggers=run_loggers(settings),
        # Materializations launched from the UI run their steps in one process too, like the job: DuckDB has one
        # writer per file, and the warehouse I/O manager keeps the file open for the run (warehouse.py).
        executor=dg.in_process_executor,
    )


defs = build_definitions(current_settings())
