"""Run the flow on an environment's own instance: the reference tables once, in process; then the months through
the run queue, as one asset backfill (the path a backfill from the UI takes), so up to ``max_concurrent_runs``
months run at once in their own processes. Each month is reported as its run ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id

from dataops_assets.environments import Settings
from dataops_assets.observability.config import build_observability_config
from dataops_assets.observability.runlog import RunDigest
from dataops_assets.observability.runs import RUNNER_TAGS, observe_run
from dataops_assets.orchestration import MONTHLY_ASSETS, reference_tables
from dataops_assets.quality.verdict import CheckVerdict
from dataops_ops.instance import open_instance, running_daemon

_POLL_SECONDS = 1.0
# A backfill whose first run has not been created by then has no daemon working on it.
_STALL_SECONDS = 180.0
# The in-process run's events still go to the instance (and the UI); the terminal gets the CLI's summary, or in
# stage and prod every event as a JSON line (the ``console`` logger is the JSON one there).
_QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_JSON_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
_FINAL_BACKFILL = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


@dataclass
class PartitionOutcome:
    partition: str
    run_id: str
    success: bool
    errors: list[str] = field(default_factory=list)
    checks: list[CheckVerdict] = field(default_factory=list)

    @property
    def findings(self) -> list[CheckVerdict]:
        return [check for check in self.checks if not check.passed]


def run_partitions(
    defs: dg.Definitions,
    settings: Settings,
    partitions: Sequence[str],
    on_outcome: Callable[[PartitionOutcome], None] = lambda outcome: None,
) -> list[PartitionOutcome]:
    """The reference tables, then one run per month through the queue; ``on_outcome`` hears of each as it ends."""
    outcomes: list[PartitionOutcome] = []
    with open_instance(settings) as instance:
        reference = _run_reference_tables(defs, settings, instance)
        outcomes.append(reference)
        on_outcome(reference)
        if not reference.success:
            return outcomes
        with running_daemon(settings, instance):
            backfill_id = _submit_backfill(defs, instance, partitions)
            for outcome in _await_months(defs, settings, instance, backfill_id, partitions):
                outcomes.append(outcome)
                on_outcome(outcome)
    return outcomes


def _run_reference_tables(defs: dg.Definitions, settings: Settings, instance: dg.DagsterInstance) -> PartitionOutcome:
    job = defs.resolve_job_def(reference_tables.name)
    console = _JSON_CONSOLE if settings.json_logs else _QUIET_CONSOLE
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags=RUNNER_TAGS, run_config=console)
    return _outcome(instance, _observe(defs, settings, instance, result.run_id), partition="reference")


def _submit_backfill(defs: dg.Definitions, instance: dg.DagsterInstance, partitions: Sequence[str]) -> str:
    graph = defs.resolve_asset_graph()
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=graph,
        partition_names=list(partitions),
        asset_selection=sorted(MONTHLY_ASSETS.resolve(graph)),
        backfill_timestamp=time.time(),
        tags=RUNNER_TAGS,
        dynamic_partitions_store=instance,
        all_partitions=False,
        title="dataops run",
        description=f"{len(partitions)} month(s) submitted by dataops run",
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def _await_months(
    defs: dg.Definitions, settings: Settings, instance: dg.DagsterInstance, backfill_id: str, partitions: Sequence[str]
) -> Iterator[PartitionOutcome]:
    """Each run of the backfill as it ends, until the backfill is done and every run of it has ended."""
    reported: set[str] = set()
    submitted = time.monotonic()
    while True:
        backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        if backfill is not None and not runs and time.monotonic() - submitted > _STALL_SECONDS:
            instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))
            log = settings.dagster_home / "daemon.log"
            reason = f"no run started within {_STALL_SECONDS:g} s: is a daemon serving this instance? (see {log})"
            yield PartitionOutcome(", ".join(partitions), backfill_id, False, [f"backfill {backfill_id}: {reason}"])
            return
        for run in runs:
            if run.is_finished and run.run_id not in reported:
                reported.add(run.run_id)
                yield _outcome(instance, _observe(defs, settings, instance, run.run_id))
        if backfill is not None and backfill.status in _FINAL_BACKFILL and all(run.is_finished for run in runs):
            break
        time.sleep(_POLL_SECONDS)
    if backfill is not None and backfill.status == BulkActionStatus.FAILED:
        error = backfill.error.message if backfill.error else "unknown error"
        yield PartitionOutcome(", ".join(partitions), backfill_id, False, [f"backfill {backfill_id}: {error}"])


def _engine_error(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """Why a run failed outside its steps (its code did not load, its process died), from its engine events."""
    for entry in reversed(instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)):
        error = getattr(entry.dagster_event.event_specific_data, "error", None) if entry.dagster_event else None
        if error is not None:
            cause = error.cause or error
            return f"{entry.message}: {cause.cls_name}: {cause.message.strip().splitlines()[-1]}"
    return None


def _observe(defs: dg.Definitions, settings: Settings, instance: dg.DagsterInstance, run_id: str) -> RunDigest:
    """Lineage of the run (never raises), and its digest for the report."""
    return observe_run(instance, run_id, defs.resolve_asset_graph(), build_observability_config(settings)).digest


def _outcome(instance: dg.DagsterInstance, digest: RunDigest, partition: str | None = None) -> PartitionOutcome:
    errors = [f"{asset.step_key}: {asset.error.splitlines()[-1]}" for asset in digest.assets if asset.error]
    if digest.status != "SUCCESS" and not errors:
        errors.append(_engine_error(instance, digest.run_id) or digest.failure_message or f"run {digest.status}")
    checks = list(digest.checks)
    return PartitionOutcome(
        partition or digest.partition or "-", digest.run_id, digest.status == "SUCCESS", errors, checks
    )
