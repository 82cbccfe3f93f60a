"""``dataops run`` records the files it loaded in the landing sensor's cursor, in the instance: merged into every
state the instance keeps for the sensor, found by the sensor's selector whatever process serves the location."""

from __future__ import annotations

import sys

import dagster as dg
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, SensorInstigatorData
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from dataops_assets.orchestration import landed_month_files, read_cursor
from dataops_ops.sensor_state import LOCAL_LOCATION, remember_loaded_files, sensor_cursor


def _origin(location: str, executable: str) -> RemoteInstigatorOrigin:
    code = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=executable, module_name="dataops_assets.definitions"), location
    )
    return RemoteInstigatorOrigin(RemoteRepositoryOrigin(code, "__repository__"), landed_month_files.name)


def _add_state(instance: dg.DagsterInstance, origin: RemoteInstigatorOrigin, cursor: str | None) -> InstigatorState:
    data = SensorInstigatorData(cursor=cursor, min_interval=30)
    return instance.add_instigator_state(InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING, data))


def _stored_cursor(instance: dg.DagsterInstance, state: InstigatorState) -> dict[str, str]:
    stored = instance.get_instigator_state(state.instigator_origin_id, state.selector_id)
    assert stored is not None and isinstance(stored.instigator_data, SensorInstigatorData)
    return read_cursor(stored.instigator_data.cursor)


def test_a_fresh_instance_gets_a_stopped_local_sensor_with_the_loaded_files() -> None:
    with dg.instance_for_test() as instance:
        assert sensor_cursor(instance) is None
        remember_loaded_files(instance, {"reference": "1:2:3", "2013-01": "4:5"})
        assert read_cursor(sensor_cursor(instance)) == {"reference": "1:2:3", "2013-01": "4:5"}
        [state] = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        assert state.status == InstigatorStatus.STOPPED  # recording files never turns the sensor on


def test_loaded_files_merge_into_existing_states_of_every_location() -> None:
    with dg.instance_for_test() as instance:
        # the UI's process (dg dev) serves the same location from another origin: found by the selector
        local = _add_state(instance, _origin(LOCAL_LOCATION, "/elsewhere/bin/python"), '{"2013-05": "old"}')
        deployed = _add_state(instance, _origin("dataops-stage", sys.executable), None)

        remember_loaded_files(instance, {"2013-01": "new", "2013-05": "newer"})

        assert _stored_cursor(instance, local) == {"2013-01": "new", "2013-05": "newer"}
        assert _stored_cursor(instance, deployed) == {"2013-01": "new", "2013-05": "newer"}
        assert read_cursor(sensor_cursor(instance)) == {"2013-01": "new", "2013-05": "newer"}
        assert len(instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)) == 2  # none added
        stored = instance.get_instigator_state(local.instigator_origin_id, local.selector_id)
        assert stored is not None and stored.status == InstigatorStatus.RUNNING  # its status is kept


def test_nothing_loaded_writes_nothing() -> None:
    with dg.instance_for_test() as instance:
        remember_loaded_files(instance, {})
        assert instance.all_instigator_state() == []
