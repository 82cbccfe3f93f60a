"""What a finished run did, read back from the instance: the one digest of a run's event log, which the runner, the
alerts, lineage, the metrics and the tests all read.

Everything comes from the run's own event log (``instance.all_logs(run_id, of_type=...)``), which every storage
serves per run, and from the run record; nothing here needs the code location, so a digest can be made by the
``dataops`` runner right after a run, by a sensor for runs launched anywhere else, and by the metrics exporter.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from dataops_assets.partitions import PARTITION_TAG
from dataops_assets.quality.verdict import CheckVerdict

_EVENT_TYPES = {
    dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
}
# metadata keys of the rows a materialization wrote, most specific first
_ROWS_KEYS = ("dagster/partition_row_count", "dagster/row_count", "rows_out")


@dataclass(frozen=True)
class StepError:
    """The error a failed step reports (the user code's, when Dagster wrapped it)."""

    cls_name: str | None
    message: str

    @property
    def text(self) -> str:
        message = self.message.strip()
        if not self.cls_name:
            return message
        # Dagster's message often starts with the qualified class name already (``package.module.Class: ...``).
        head, separator, rest = message.partition(": ")
        if separator and head.split(".")[-1] == self.cls_name:
            message = rest
        return f"{self.cls_name}: {message}"


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

    @property
    def rows_written(self) -> int | None:
        return rows_written(self.metadata)


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
    checks: list[CheckVerdict]
    step_errors: dict[str, StepError]  # by step key
    step_seconds: dict[str, float] = field(default_factory=dict)  # by step key, from its start to its end
    check_steps: frozenset[str] = frozenset()  # steps that evaluated checks and materialized nothing

    @property
    def partition(self) -> str | None:
        return self.tags.get(PARTITION_TAG)

    @property
    def duration_seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else max(0.0, self.ended - self.started)

    @property
    def failed_checks(self) -> list[CheckVerdict]:
        return [check for check in self.checks if not check.passed]

    @property
    def rows_written(self) -> int:
        return sum(asset.rows_written or 0 for asset in self.assets if asset.materialized is not None)

    def checks_of(self, asset: AssetDigest) -> list[CheckVerdict]:
        return [
            check for check in self.checks if check.asset == asset.asset and check.partition in (asset.partition, None)
        ]


def plain(value: Any) -> Any:
    """The Python value of a metadata entry (``MetadataValue.value``), or the value itself."""
    return getattr(value, "value", value)


def metadata_number(metadata: Mapping[str, Any], name: str) -> int | None:
    """An integer metadata value, or None."""
    value = plain(metadata.get(name))
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def rows_written(metadata: Mapping[str, Any]) -> int | None:
    """Rows a materialization wrote, from its metadata: the partition's rows, or the table's when unpartitioned."""
    return next((n for n in (metadata_number(metadata, key) for key in _ROWS_KEYS) if n is not None), None)


def digest_run(instance: dg.DagsterInstance, run_id: str) -> RunDigest:
    record = instance.get_run_record_by_id(run_id)
    if record is None:
        raise LookupError(f"run {run_id} is not in this instance")
    run = record.dagster_run
    entries = instance.all_logs(run_id, of_type=_EVENT_TYPES)
    steps = _StepTimes()
    assets, checks, step_errors = _read_events(run_id, entries, steps)
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
        step_errors=step_errors,
        step_seconds=steps.seconds(),
        check_steps=frozenset(steps.checking - steps.materializing),
    )


@dataclass
class _StepTimes:
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    checking: set[str] = field(default_factory=set)
    materializing: set[str] = field(default_factory=set)

    def seconds(self) -> dict[str, float]:
        return {key: max(0.0, self.ended[key] - started) for key, started in self.started.items() if key in self.ended}


def _read_events(
    run_id: str, entries: Iterable[dg.EventLogEntry], steps: _StepTimes
) -> tuple[list[AssetDigest], list[CheckVerdict], dict[str, StepError]]:
    assets: dict[tuple[dg.AssetKey, str | None], AssetDigest] = {}
    step_failed: dict[str, float] = {}
    step_errors: dict[str, StepError] = {}
    checks: list[CheckVerdict] = []
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            continue
        data = event.event_specific_data
        kind = event.event_type
        if kind == dg.DagsterEventType.STEP_START and event.step_key:
            steps.started[event.step_key] = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_SUCCESS and event.step_key:
            steps.ended[event.step_key] = entry.timestamp
        elif kind == dg.DagsterEventType.STEP_FAILURE and event.step_key:
            step_failed[event.step_key] = steps.ended[event.step_key] = entry.timestamp
            step_errors[event.step_key] = _step_error(event)
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
            steps.materializing.add(event.step_key or "")
        elif kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION and isinstance(data, dg.AssetCheckEvaluation):
            checks.append(CheckVerdict.from_dagster(data, run_id))
            steps.checking.add(event.step_key or "")
    for digest in assets.values():
        if digest.step_key:
            digest.started = steps.started.get(digest.step_key)
            if digest.materialized is None and digest.step_key in step_failed:
                digest.failed, digest.error = step_failed[digest.step_key], step_errors[digest.step_key].text
    return sorted(assets.values(), key=lambda a: (a.started or 0.0, a.asset)), checks, step_errors


def root_error(step_failure: dg.DagsterEvent) -> Any:
    """The error a failed step reports: the user code's exception (Dagster wraps it as the cause), else the error
    itself; None when the event carries none. Its ``cls_name`` and ``message`` are what the reports print."""
    error = step_failure.step_failure_data.error
    return (error.cause or error) if error is not None else None


def _step_error(event: dg.DagsterEvent) -> StepError:
    cause = root_error(event)
    return StepError(cause.cls_name, cause.message) if cause is not None else StepError(None, "unknown error")
