"""The observation sensors emit each finished run's lineage, except runs of ``dataops run``, which the runner emits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from dataops_assets.assets.raw import raw_flights
from dataops_assets.definitions import build_definitions
from dataops_assets.environments import Settings
from dataops_assets.observability.config import ObservabilityResource, build_observability_config
from dataops_assets.observability.runs import RUNNER_TAGS, observation_sensors, observe_run
from dataops_assets.resources import build_resources
from dataops_assets_tests.fixtures.observability import TINY_MONTH, temp_instance, tiny_landed_settings

SUCCEEDED, FAILED, _CANCELED = observation_sensors


@dataclass
class Env:
    settings: Settings
    instance: dg.DagsterInstance

    def materialize(self, partition: str, **tags: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [raw_flights],
            resources=build_resources(self.settings),
            partition_key=partition,
            instance=self.instance,
            tags=tags,
            raise_on_error=False,
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    settings = tiny_landed_settings(tmp_path_factory.mktemp("runs"))
    with temp_instance(settings.dagster_home) as instance:
        yield Env(settings, instance)


def _sense(sensor: dg.SensorDefinition, env: Env, result: dg.ExecuteInProcessResult, lineage_file: Path) -> list[str]:
    """Run the sensor on the run; the event types it wrote to ``lineage_file``."""
    run = env.instance.get_run_by_id(result.run_id)
    assert run is not None
    resource = ObservabilityResource(environment=env.settings.name, lineage_file=str(lineage_file))
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=env.instance,
        dagster_run=run,
        dagster_event=result.get_run_success_event() if result.success else result.get_run_failure_event(),
        resources={"observability": resource},
        repository_def=build_definitions(env.settings).get_repository_def(),
    )
    sensor(context)
    lines = lineage_file.read_text().splitlines() if lineage_file.exists() else []
    return [json.loads(line)["eventType"] for line in lines]


def test_a_succeeded_run_is_emitted_by_the_sensor(env: Env, tmp_path: Path) -> None:
    result = env.materialize(TINY_MONTH)
    assert result.success
    assert _sense(SUCCEEDED, env, result, tmp_path / "events.jsonl") == ["START", "START", "COMPLETE", "COMPLETE"]


def test_a_failed_run_is_emitted_with_its_failure(env: Env, tmp_path: Path) -> None:
    result = env.materialize("2013-02")  # nothing landed: the blocking file check fails the step
    assert not result.success
    assert _sense(FAILED, env, result, tmp_path / "events.jsonl") == ["START", "START", "FAIL", "FAIL"]


def test_runs_of_the_runner_are_left_to_the_runner(env: Env, tmp_path: Path) -> None:
    result = env.materialize(TINY_MONTH, **RUNNER_TAGS)
    assert _sense(SUCCEEDED, env, result, tmp_path / "events.jsonl") == []
    graph = build_definitions(env.settings).resolve_asset_graph()
    observation = observe_run(env.instance, result.run_id, graph, build_observability_config(env.settings))
    assert observation.lineage_events == 4  # run START/COMPLETE, asset START/COMPLETE
    assert observation.digest.run_id == result.run_id and observation.digest.status == "SUCCESS"
    assert (env.settings.env_dir / "lineage" / "events.jsonl").exists()
