"""Lineage and run metrics for every finished run, wherever it was launched.

One function, ``observe_run``, reads a finished run back from the instance (``runlog.digest_run``), writes its
``ops`` records (``metrics.record_run``) and emits its OpenLineage events (``lineage``). Two callers:

- the ``dataops run`` runner, right after each in-process run (no daemon needed); it tags its runs with
  ``RUNNER_TAGS`` so the sensors leave them alone;
- three run-status sensors (SUCCESS, FAILURE, CANCELED) for every other run of the environment's instance: runs
  launched from the UI, by schedules, sensors and backfills (they need the daemon, as all sensors do). They watch
  all code locations because runs executed in process carry no code location, and an instance serves one
  environment. A run-status sensor starts at the runs that finish after it is first turned on.

Errors: lineage never raises (a failing transport is logged). A metrics write that cannot get the warehouse lock
fails the sensor tick, so Dagster retries the run on the next tick (the ``ops`` rows are rewritten per run id, so a
retry does not double count); the runner logs it and goes on.
"""

import logging
from dataclasses import dataclass
from typing import Any

import dagster as dg

from dataops_assets.environments import Settings
from dataops_assets.observability.config import (
    ObservabilityConfig,
    ObservabilityResource,
    build_observability_config,
    build_observability_resource,
)
from dataops_assets.observability.metrics import record_run
from dataops_assets.observability.runlog import RunDigest, digest_run

OBSERVED_BY_TAG = "dataops/observed_by"
RUNNER_TAGS = {OBSERVED_BY_TAG: "runner"}

logger = logging.getLogger(__name__)

__all__ = [
    "OBSERVED_BY_TAG",
    "RUNNER_TAGS",
    "Observation",
    "build_observability_config",
    "build_observability_resource",
    "observation_sensors",
    "observe_run",
]


@dataclass(frozen=True)
class Observation:
    digest: RunDigest
    metrics_recorded: bool
    lineage_events: int


def observe_run(
    instance: dg.DagsterInstance,
    run_id: str,
    asset_graph: Any,
    config: ObservabilityConfig,
    log: Any = None,
    *,
    raise_on_metrics_error: bool = False,
) -> Observation:
    """Record the finished run's metrics and emit its lineage; ``asset_graph`` gives the lineage its inputs."""
    # openlineage-python takes a noticeable part of a second to import: only runs that are observed pay for it
    from dataops_assets.observability import lineage  # noqa: PLC0415

    digest = digest_run(instance, run_id)
    recorded = False
    try:
        record_run(config.warehouse_path, config.environment, digest)
        recorded = True
    except Exception as error:
        message = f"run {run_id}: ops records NOT written to {config.warehouse_path}: {type(error).__name__}: {error}"
        logger.warning(message)
        if log is not None:
            log.warning(message)
        if raise_on_metrics_error:
            raise
    catalog = lineage.asset_catalog(asset_graph) if asset_graph is not None else {}
    sent = lineage.emit_run_lineage(digest, catalog, config.lineage, log)
    return Observation(digest, recorded, sent)


def observe_in_process(
    defs: dg.Definitions, settings: Settings, instance: dg.DagsterInstance, run_id: str
) -> Observation:
    """For the runner: observe a run it just executed in process (configuration from the environment)."""
    return observe_run(instance, run_id, defs.resolve_asset_graph(), build_observability_config(settings))


def _observation_sensor(status: dg.DagsterRunStatus, name: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=name,
        monitor_all_code_locations=True,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Writes the ops records (metrics) and emits the OpenLineage events of each run that ends in "
        f"{status.value}, except runs of `dataops run`, which records its own.",
    )
    def _observe(context: dg.RunStatusSensorContext, observability: ObservabilityResource) -> None:
        run = context.dagster_run
        if run.tags.get(OBSERVED_BY_TAG):
            context.log.info(f"run {run.run_id} is observed by {run.tags[OBSERVED_BY_TAG]}")
            return
        graph = context.repository_def.asset_graph if context.repository_def is not None else None
        observation = observe_run(
            context.instance, run.run_id, graph, observability.config(), context.log, raise_on_metrics_error=True
        )
        context.log.info(
            f"run {run.run_id}: ops records written, {observation.lineage_events} lineage event(s) sent to "
            f"{observability.config().lineage.destination}"
        )

    return _observe


observation_sensors: list[dg.SensorDefinition] = [
    _observation_sensor(dg.DagsterRunStatus.SUCCESS, "observe_succeeded_runs"),
    _observation_sensor(dg.DagsterRunStatus.FAILURE, "observe_failed_runs"),
    _observation_sensor(dg.DagsterRunStatus.CANCELED, "observe_canceled_runs"),
]
