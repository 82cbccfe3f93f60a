"""Lineage for every finished run, wherever it was launched.

One function, ``observe_run``, reads a finished run back from the instance (``runlog.digest_run``) and emits its
OpenLineage events (``lineage``). Run metrics need nothing here: ``dataops metrics`` reads the instance itself.
Two callers:

- the ``dataops run`` runner, as each of its runs ends; it tags its runs with ``RUNNER_TAGS`` so the sensors
  leave them alone;
- three run-status sensors (SUCCESS, FAILURE, CANCELED) for every other run of the environment's instance: runs
  launched from the UI, by schedules, sensors and backfills (they need the daemon, as all sensors do). They watch
  all code locations because runs executed in process carry no code location, and an instance serves one
  environment. A run-status sensor starts at the runs that finish after it is first turned on.

Lineage never raises: a failing transport is logged.
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg

from dataops_assets.observability.config import ObservabilityConfig, ObservabilityResource
from dataops_assets.observability.runlog import RunDigest, digest_run

OBSERVED_BY_TAG = "dataops/observed_by"
RUNNER_TAGS = {OBSERVED_BY_TAG: "runner"}


@dataclass(frozen=True)
class Observation:
    digest: RunDigest
    lineage_events: int


def observe_run(
    instance: dg.DagsterInstance, run_id: str, asset_graph: Any, config: ObservabilityConfig, log: Any = None
) -> Observation:
    """Emit the finished run's lineage; ``asset_graph`` gives the lineage its inputs."""
    # openlineage-python takes a noticeable part of a second to import: only runs that are observed pay for it
    from dataops_assets.observability import lineage  # noqa: PLC0415

    digest = digest_run(instance, run_id)
    catalog = lineage.asset_catalog(asset_graph) if asset_graph is not None else {}
    sent = lineage.emit_run_lineage(digest, catalog, config.lineage, log)
    return Observation(digest, sent)


def _observation_sensor(status: dg.DagsterRunStatus, name: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=name,
        monitor_all_code_locations=True,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Emits the OpenLineage events of each run that ends in {status.value}, except runs of "
        "`dataops run`, which emits its own.",
    )
    def _observe(context: dg.RunStatusSensorContext, observability: ObservabilityResource) -> None:
        run = context.dagster_run
        if run.tags.get(OBSERVED_BY_TAG):
            context.log.info(f"run {run.run_id} is observed by {run.tags[OBSERVED_BY_TAG]}")
            return
        graph = context.repository_def.asset_graph if context.repository_def is not None else None
        observation = observe_run(context.instance, run.run_id, graph, observability.config(), context.log)
        context.log.info(
            f"run {run.run_id}: {observation.lineage_events} lineage event(s) sent to "
            f"{observability.config().lineage.destination}"
        )

    return _observe


observation_sensors: list[dg.SensorDefinition] = [
    _observation_sensor(dg.DagsterRunStatus.SUCCESS, "observe_succeeded_runs"),
    _observation_sensor(dg.DagsterRunStatus.FAILURE, "observe_failed_runs"),
    _observation_sensor(dg.DagsterRunStatus.CANCELED, "observe_canceled_runs"),
]
