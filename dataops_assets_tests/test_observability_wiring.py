"""The observability sensors, resources and loggers load with the project's Definitions, and stay light."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg

from dataops_assets.definitions import build_definitions
from dataops_assets.environments import settings_for

# what definitions.py imports of the package; lineage (openlineage-python) is imported when a run is observed
_PROBE = """
import json, sys
import dataops_assets.observability
bare = "dagster" in sys.modules
from dataops_assets.observability import alerts, config, logging, runlog, runs
heavy = ("great_expectations", "openlineage.client")
print(json.dumps({"dagster": bare, **{name: name in sys.modules for name in heavy}}))
"""


def test_sensors_resources_and_loggers_load_with_the_definitions(tmp_path: Path) -> None:
    defs = build_definitions(settings_for("prod", data_root=tmp_path))
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
    assert set(defs.loggers or {}) == {"console"}  # prod logs JSON lines through the console logger


def test_importing_the_package_loads_neither_great_expectations_nor_openlineage() -> None:
    output = subprocess.run(
        [sys.executable, "-c", _PROBE], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert json.loads(output.strip().splitlines()[-1]) == {
        "dagster": False,
        "great_expectations": False,
        "openlineage.client": False,
    }
