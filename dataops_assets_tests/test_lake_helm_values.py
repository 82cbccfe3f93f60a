"""The Helm values for a cluster say what the code reads: the environment variables ``environments.py`` knows, a
lake on object storage whose credentials reach every run pod, one pod per run and room for the 12 months at once.
(No cluster here: the chart itself is not installed; see README, "Scaling out".)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML comes with dagster, its stubs do not

from dataops_assets import environments
from dataops_assets.partitions import MONTH_KEYS
from dataops_ops.lake import table_uri

VALUES = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "values-stage.yaml"


def _values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return values


def test_the_code_location_gets_the_environment_and_a_lake_on_object_storage() -> None:
    [location] = _values()["dagster-user-deployments"]["deployments"]
    env = {item["name"]: item["value"] for item in location["env"]}
    assert set(env) == {environments.ENV_VAR, environments.LAKE_URI_VAR, environments.DATA_ROOT_VAR}
    settings = environments.settings_for(env[environments.ENV_VAR], lake_uri=env[environments.LAKE_URI_VAR])
    assert table_uri(settings, "core.flights") == "s3://dataops-stage-lake/lake/core/flights"
    assert location["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_each_run_is_a_pod_with_the_lake_credentials_and_the_months_run_at_once() -> None:
    values = _values()
    [location] = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert (
        location["envSecrets"] == launcher["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": "dataops-stage-lake"}]
    )
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] >= len(MONTH_KEYS)
    assert values["postgresql"]["enabled"] is False
    assert values["global"]["postgresqlSecretName"]
