"""Materialize the flow partition by partition on an environment's own instance, and summarize the warehouse."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg
import duckdb

from dataops_assets.environments import Settings
from dataops_assets.instance import open_instance
from dataops_assets.observability.runlog import root_error
from dataops_assets.observability.runs import RUNNER_TAGS, observe_in_process
from dataops_assets.quality.verdict import CheckVerdict

JOB_NAME = "flights_pipeline"
# The full event log still goes to the instance (and the UI); the terminal gets the summary printed by the CLI.
_QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# Stage and prod log every event as JSON lines (the ``console`` logger is the JSON one there).
_JSON_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


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


def run_partitions(defs: dg.Definitions, settings: Settings, partitions: Iterable[str]) -> list[PartitionOutcome]:
    """One run per partition, in process, recorded in the environment's instance (and so in its UI)."""
    job = defs.resolve_job_def(JOB_NAME)
    outcomes = []
    with open_instance(settings) as instance:
        for key in partitions:
            result = job.execute_in_process(
                partition_key=key,
                instance=instance,
                raise_on_error=False,
                run_config=_JSON_CONSOLE if settings.json_logs else _QUIET_CONSOLE,
                tags=RUNNER_TAGS,
            )
            observe_in_process(defs, settings, instance, result.run_id)  # ops records and lineage; never raises
            checks = [CheckVerdict.from_dagster(evaluation) for evaluation in result.get_asset_check_evaluations()]
            outcomes.append(PartitionOutcome(key, result.run_id, result.success, _step_errors(result), checks))
    return outcomes


def _step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    errors = []
    for event in result.all_events:
        if event.is_step_failure and event.step_key:
            cause = root_error(event)
            message = cause.message if cause is not None else "unknown error"
            errors.append(f"{event.step_key}: {message.strip().splitlines()[-1]}")
    return errors


@dataclass(frozen=True)
class TableSummary:
    table: str
    rows: int
    partitions: int | None


def summarize_warehouse(settings: Settings) -> list[TableSummary]:
    """Rows per table, and partitions for the partitioned ones, read back from the warehouse."""
    if not settings.warehouse_path.exists():
        return []
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as connection:
        tables = connection.execute(
            "select table_schema, table_name from information_schema.tables where table_schema <> 'ops'"
            " order by table_schema, table_name"
        ).fetchall()
        return [_summarize(connection, schema, table) for schema, table in tables]


_PARTITION_COLUMNS = ("_partition_month", "sched_dep_local", "observed_local", "month")


def _summarize(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> TableSummary:
    columns = {row[0] for row in connection.execute(f"select column_name from (describe {schema}.{table})").fetchall()}
    partition_column = next((c for c in _PARTITION_COLUMNS if c in columns), None)
    months = f"count(distinct date_trunc('month', {partition_column}))" if partition_column else "null"
    rows, partitions = connection.execute(f"select count(*), {months} from {schema}.{table}").fetchone()  # type: ignore[misc]
    return TableSummary(f"{schema}/{table}", int(rows), None if partitions is None else int(partitions))


def format_summary(summaries: list[TableSummary]) -> str:
    lines = [f"{'table':<26}{'rows':>12}  partitions"]
    for item in summaries:
        partitions = "-" if item.partitions is None else str(item.partitions)
        lines.append(f"{item.table:<26}{item.rows:>12,}  {partitions}")
    return "\n".join(lines)
