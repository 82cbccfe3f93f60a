"""What ``dataops run`` tells the landing sensor: the files it has loaded, written into the sensor's cursor in the
instance, so turning the sensor on afterwards requests only files that changed since (not the whole year again).

The cursor is stored per sensor and code location; Dagster finds it by the sensor's selector (location,
repository and sensor name), so the state written here is the one the UI's toggle and the daemon use.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import dagster as dg
from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, SensorInstigatorData
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from dataops_assets.orchestration import landed_month_files, read_cursor, write_cursor

# The code location of the environment's own workspace.yaml (instance.py) and of `dg dev` ([tool.dg.project]).
LOCAL_LOCATION = "dataops"
_DEFINITIONS_MODULE = "dataops_assets.definitions"


def remember_loaded_files(instance: dg.DagsterInstance, loaded: Mapping[str, str]) -> None:
    """Merge ``loaded`` (cursor entries, see ``landed_stamps``) into the landing sensor's cursor: of every state
    the instance keeps for it (whatever location serves it), and of the local location's, created stopped if
    missing. Entries of other files stay as they are."""
    if not loaded:
        return
    states = [
        state
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        if state.instigator_name == landed_month_files.name
    ]
    local = _local_state(_local_origin())
    if not any(state.selector_id == local.selector_id for state in states):
        states.append(instance.add_instigator_state(local))
    for state in states:
        data = state.instigator_data
        assert isinstance(data, SensorInstigatorData)
        cursor = write_cursor(read_cursor(data.cursor) | dict(loaded))
        instance.update_instigator_state(state.with_data(data._replace(cursor=cursor)))


def sensor_cursor(instance: dg.DagsterInstance, location: str = LOCAL_LOCATION) -> str | None:
    """The landing sensor's stored cursor in ``location``, None if it has none."""
    state = _local_state(_local_origin(location))
    stored = instance.get_instigator_state(state.instigator_origin_id, state.selector_id)
    data = stored.instigator_data if stored else None
    return data.cursor if isinstance(data, SensorInstigatorData) else None


def _local_origin(location: str = LOCAL_LOCATION) -> RemoteInstigatorOrigin:
    code = LoadableTargetOrigin(executable_path=sys.executable, module_name=_DEFINITIONS_MODULE)
    repository = RemoteRepositoryOrigin(
        ManagedGrpcPythonEnvCodeLocationOrigin(code, location), SINGLETON_REPOSITORY_NAME
    )
    return RemoteInstigatorOrigin(repository, landed_month_files.name)


def _local_state(origin: RemoteInstigatorOrigin) -> InstigatorState:
    """A stopped sensor with no cursor yet (the state the UI's toggle would create)."""
    data = SensorInstigatorData(
        min_interval=landed_month_files.minimum_interval_seconds, sensor_type=landed_month_files.sensor_type
    )
    return InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.STOPPED, data)
