"""Lake maintenance: compact each table's small files and vacuum the files of versions older than the retention.

Every monthly write adds files and leaves the replaced ones behind for time travel (``dataops history`` and
``restore``); this job bounds both. Versions younger than the retention stay restorable; older ones do not.
"""

import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

import dagster as dg
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError

from dataops_assets.commits import last_commit_after, read_commit
from dataops_assets.environments import Settings, open_previews
from dataops_assets.storage import WRITE_ID

RETENTION_HOURS = 7 * 24


class MaintenanceConfig(dg.Config):
    retention_hours: int = RETENTION_HOURS


def maintain_table(table: DeltaTable, retention_hours: int, run_id: str) -> dict[str, Any]:
    """Compact, then vacuum one table; what was done, as metadata (its version: the last commit of this work, or
    the version it found when there was nothing to do)."""
    before, own = table.version(), {"dagster_run_id": run_id, WRITE_ID: uuid.uuid4().hex}
    commit = CommitProperties(custom_metadata=own)
    compacted = table.optimize.compact(commit_properties=commit)
    vacuumed = table.vacuum(
        retention_hours=retention_hours, enforce_retention_duration=False, dry_run=False, commit_properties=commit
    )
    return {
        "files_compacted": compacted["numFilesRemoved"],
        "files_written": compacted["numFilesAdded"],
        "partitions_compacted": compacted["partitionsOptimized"],
        "files_vacuumed": len(vacuumed),
        "retention_hours": retention_hours,
        "delta_version": last_commit_after(table.table_uri, before, own) or before,
    }


def retention_for_previews(settings: Settings, key: dg.AssetKey, uri: str, hours: int) -> int:
    """``hours``, or more while an open preview reads an older version of the table: vacuum then keeps every file
    removed after that version's commit, so the preview can still read it."""
    table = key.to_user_string()
    pins = [
        preview.pinned[table]
        for preview in open_previews(settings.data_root)
        if preview.base_lake_uri.rstrip("/") == settings.lake_uri.rstrip("/") and table in preview.pinned
    ]
    commit = read_commit(uri, min(pins)) if pins else None
    if commit is None or "timestamp" not in commit.info:
        return hours
    age_hours = (time.time() - commit.info["timestamp"] / 1000) / 3600
    return max(hours, math.ceil(age_hours) + 1)


def build_lake_maintenance(
    settings: Settings, tables: Sequence[dg.AssetKey]
) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The ``lake_maintenance`` job over ``tables`` (asset key = layer/table) and its weekly schedule, off in dev."""

    @dg.op(name="maintain_lake_tables")
    def maintain_lake_tables(context: dg.OpExecutionContext, config: MaintenanceConfig) -> None:
        conflicts = []
        for key in tables:
            uri = f"{settings.lake_uri.rstrip('/')}/{'/'.join(key.path)}"
            if not DeltaTable.is_deltatable(uri):
                continue
            retention = retention_for_previews(settings, key, uri, config.retention_hours)
            try:
                metadata = maintain_table(DeltaTable(uri), retention, context.run_id)
            except CommitFailedError as error:  # a run wrote the table meanwhile: the next tick takes it
                conflicts.append(f"{key.to_user_string()}: {error}")
                continue
            context.log_event(dg.AssetObservation(asset_key=key, metadata=metadata))
        if conflicts:
            raise dg.Failure("tables left for the next run, written while compacting", metadata={"tables": conflicts})

    @dg.job(
        name="lake_maintenance",
        description=f"Compacts small files of every lake table and vacuums files of versions older than the "
        f"retention ({RETENTION_HOURS} h unless configured); each table's counts become an observation on its asset.",
    )
    def lake_maintenance() -> None:
        maintain_lake_tables()

    schedule = dg.ScheduleDefinition(
        name="weekly_lake_maintenance",
        job=lake_maintenance,
        cron_schedule="0 3 * * 0",
        execution_timezone="America/New_York",
        default_status=dg.DefaultScheduleStatus.RUNNING
        if settings.runs_automations
        else dg.DefaultScheduleStatus.STOPPED,
        description="Sunday 03:00: lake maintenance. On by default in stage and prod, stopped in dev and previews.",
    )
    return lake_maintenance, schedule
