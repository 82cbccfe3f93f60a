"""What a finished run did, read back from the instance: one digest that lineage and metrics both describe.

Everything comes from the run's own event log (``instance.all_logs(run_id, of_type=...)``), which every storage
serves per run, and from the run record; nothing here needs the code location, so a digest can be made by the
``dataops`` runner right after an in-process run and by a run-status sensor for runs launched anywhere else.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

PARTITION_TAG = "dagster/partition"

_EVENT_TYPES = {
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
}


@dataclass(frozen=True)
class CheckDigest:
    asset_key: dg.AssetKey
    name: str
    passed: bool
    severity: str
    partition: str | None
    description: str
    timestamp: float

    @property
    def asset(self) -> str:
        return self.asset_key.to_user_string()


@dataclass
class AssetDigest:
    """One asset (and partition) planned or materialized in the run."""

    key: dg.AssetKey
    partition: str | None
    step_key: str | None = None
    started: float | None = None
    materialized: float | None = None
    failed: float | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def asset(self) -> str:
        return self.key.to_user_string()

    @property
    def duration_seconds(self) -> float | None:
        end = self.materialized or self.failed
        return None if self.started is None or end is None else max(0.0, end - self.started)

    def number(self, name: str) -> int | None:
        """An integer metadata value of the materialization, or None."""
        value = plain(self.metadata.get(name))
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def rows_written(self) -> int | None:
        """Rows this materialization wrote: the partition's rows, or the whole table when unpartitioned."""
        for name in ("dagster/partition_row_count", "dagster/row_count", "rows_out"):
            value = self.number(name)
            if value is not None:
                return value
        return None


@dataclass
class RunDigest:
    run_id: str
    job_name: str
    status: str
    tags: Mapping[str, str]
    started: float | None
    ended: float | None
    failure_message: str | None
    assets: list[AssetDigest]
    checks: list[CheckDigest]

    @property
    def partition(self) -> str | None:
        return self.tags.get(PARTITION_TAG)

    @property
    def duration_seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else max(0.0, self.ended - self.started)

    @property
    def failed_checks(self) -> list[CheckDigest]:
        return [check for check in self.checks if not check.passed]

    @property
    def rows_written(self) -> int:
        return sum(asset.rows_written or 0 for asset in self.assets if asset.materialized is not None)

    def checks_of(self, asset: AssetDigest) -> list[CheckDigest]:
        return [
            check
            for check in self.checks
            if check.asset_key == asset.key and check.partition in (asset.partition, None)
        ]


def plain(value: Any) -> Any:
    """The Python value of a metadata entry (``MetadataValue.value``), or the value itself."""
    return getattr(value, "value", value)


def digest_run(instance: dg.DagsterInstance, run_id: str) -> RunDigest:
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        raise LookupError(f"run {run_id} is not in this instance")
    run = record.dagster_run
    entries = instance.all_logs(run_id, of_type=_EVENT_TYPES)
    assets, checks = _assets_and_checks(entries)
    failure = None
    if run.status == dg.DagsterRunStatus.FAILURE:
        failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        failure = failures[-1].message if failures else None
    return RunDigest(
        run_id=run.run_id,
        job_name=run.job_name,
        status=run.status.value,
        tags=dict(run.tags),
        started=record.start_time,
        ended=record.end_time,
        failure_message=failure,
        assets=assets,
        checks=checks,
    )


def _assets_and_checks(entries: Iterable[dg.EventLogEntry]) -> tuple[list[AssetDigest], list[CheckDigest]]:
    assets: dict[tuple[dg.AssetKey, str | None], AssetDigest] = {}
    step_started: dict[str, float] = {}
    step_failed: dict[str, tuple[float, str]] = {}
    checks: list[CheckDigest] = []
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            continue
        data = event.event_specific_data
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START and event.step_key:
            step_started[event.step_key] = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_FAILURE and event.step_key:
            step_failed[event.step_key] = (entry.timestamp, _error_text(event))
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED and event.asset_key is not None:
            partition = getattr(data, "partition", None)
            assets.setdefault((event.asset_key, partition), AssetDigest(event.asset_key, partition, event.step_key))
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION and event.asset_key is not None:
            materialization = event.step_materialization_data.materialization
            digest = assets.setdefault(
                (event.asset_key, materialization.partition),
                AssetDigest(event.asset_key, materialization.partition, event.step_key),
            )
            digest.step_key = digest.step_key or event.step_key
            digest.materialized = entry.timestamp
            digest.metadata = dict(materialization.metadata)
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION and isinstance(data, dg.AssetCheckEvaluation):
            checks.append(
                CheckDigest(
                    asset_key=data.asset_key,
                    name=data.check_name,
                    passed=data.passed,
                    severity=data.severity.value,
                    partition=data.partition,
                    description=(data.description or "").strip(),
                    timestamp=entry.timestamp,
                )
            )
    for digest in assets.values():
        if digest.step_key:
            digest.started = step_started.get(digest.step_key)
            if digest.materialized is None and digest.step_key in step_failed:
                digest.failed, digest.error = step_failed[digest.step_key]
    return sorted(assets.values(), key=lambda a: (a.started or 0.0, a.asset)), checks


def root_error(step_failure: dg.DagsterEvent) -> Any:
    """The error a failed step reports: the user code's exception (Dagster wraps it as the cause), else the error
    itself; None when the event carries none. Its ``cls_name`` and ``message`` are what the reports print."""
    error = step_failure.step_failure_data.error
    return (error.cause or error) if error is not None else None


def _error_text(event: dg.DagsterEvent) -> str:
    cause = root_error(event)
    if cause is None:
        return "unknown error"
    message = cause.message.strip()
    return f"{cause.cls_name}: {message}" if cause.cls_name else message
