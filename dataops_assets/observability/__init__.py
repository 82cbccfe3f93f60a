"""Observability of the pipeline (issue 5): alerting, OpenLineage lineage, run metrics and structured logs.

- ``alerts``: PagerDuty and Slack alerts on failed runs and failed asset checks (sensors, cursor, retries);
- ``runs``: for every finished run, its ``ops`` records (``metrics``) and OpenLineage events (``lineage``), from the
  ``dataops`` runner or from run-status sensors;
- ``metrics``: the ``ops`` schema of the warehouse and its Prometheus exposition (``dataops metrics``, ``cli``);
- ``logging``: JSON-lines logs for runs and for the ``dataops`` command (``settings.json_logs``).

Wiring for the Definitions of an environment::

    dg.Definitions(..., sensors=[*sensors, *observability_sensors], resources={**build_resources(settings),
                   **observability_resources(settings)}, loggers=run_loggers(settings))

Importing this package loads neither Great Expectations nor openlineage-python (lineage imports it when a run is
observed).
"""

from typing import Any

import dagster as dg

from dataops_assets.environments import Settings
from dataops_assets.observability.alerts import alert_sensors, build_alerting_resource
from dataops_assets.observability.config import build_observability_resource
from dataops_assets.observability.logging import run_loggers
from dataops_assets.observability.runs import observation_sensors

observability_sensors: list[dg.SensorDefinition] = [*alert_sensors, *observation_sensors]


def observability_resources(settings: Settings) -> dict[str, Any]:
    """The resources the observability sensors need (``alerting``, ``observability``), destinations from env vars."""
    return {"alerting": build_alerting_resource(settings), "observability": build_observability_resource(settings)}


__all__ = ["observability_resources", "observability_sensors", "run_loggers"]
