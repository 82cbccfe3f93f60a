"""The lake from the tooling's side: SQL over its last committed versions, each table's versions, and integrity.

Every table is read through deltalake's Arrow dataset of its last committed version (the DuckDB ``delta``
extension would need a download). A Delta reader takes no lock, so readers never block writers or each other.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from dataops_assets.environments import Settings
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets.storage import PARTITION_COLUMN

LAYERS = ("raw", "staging", "quarantine", "core", "marts")
PUBLISHED_LAYERS = ("core", "marts")
_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_NAME = re.compile(rf"^({'|'.join(LAYERS)})\.([a-z_][a-z0-9_]*)$")


class LakeError(Exception):
    """A table, statement or version the lake cannot serve; the message says why."""


def table_uri(settings: Settings, name: str) -> str:
    """``core.flights`` → ``<lake_uri>/core/flights``."""
    match = _NAME.match(name)
    if match is None:
        raise LakeError(
            f"{name!r} is not a lake table name: expected LAYER.TABLE with LAYER one of {', '.join(LAYERS)}"
        )
    return f"{settings.lake_uri.rstrip('/')}/{match[1]}/{match[2]}"


def lake_tables(settings: Settings) -> list[str]:
    """``layer.table`` of every Delta table under the lake root, layer by layer."""
    uri = settings.lake_uri
    filesystem, root = (
        (pafs.LocalFileSystem(), str(Path(uri).resolve())) if "://" not in uri else pafs.FileSystem.from_uri(uri)
    )
    names = []
    for layer in LAYERS:
        entries = filesystem.get_file_info(pafs.FileSelector(f"{root}/{layer}", allow_not_found=True))
        folders = sorted(entry.base_name for entry in entries if entry.type == pafs.FileType.Directory)
        names += [f"{layer}.{table}" for table in folders if _NAME.match(f"{layer}.{table}")]
    return [name for name in names if DeltaTable.is_deltatable(table_uri(settings, name))]


def open_table(settings: Settings, name: str) -> DeltaTable:
    try:
        return DeltaTable(table_uri(settings, name))
    except TableNotFoundError as error:
        raise LakeError(f"no table {name} in the lake {settings.lake_uri}") from error


def connect_lake(settings: Settings, tables: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB in memory with a view ``layer.table`` over the last committed version of every table (or of
    ``tables``)."""
    connection = duckdb.connect()
    for name in lake_tables(settings) if tables is None else tables:
        layer, table = name.split(".")
        connection.register(f"_{layer}__{table}", open_table(settings, name).to_pyarrow_dataset())
        connection.execute(
            f"create schema if not exists {layer}; create view {name} as select * from _{layer}__{table}"
        )
    # The views are all a caller may read: no files, no extensions, and nobody can switch that back on.
    connection.execute(
        "set enable_progress_bar = false; set enable_external_access = false; set lock_configuration = true"
    )
    return connection


def read_only_query(connection: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyRelation:
    """The result of one SELECT (or EXPLAIN); any other statement is refused before it runs."""
    statements = connection.extract_statements(sql)
    if len(statements) != 1:
        raise LakeError(f"expected one statement, got {len(statements)}")
    if statements[0].type not in _READ_ONLY:
        raise LakeError(f"the lake is read-only here: SELECT or EXPLAIN only, not {statements[0].type.name}")
    relation = connection.sql(sql)
    assert relation is not None  # a SELECT or EXPLAIN always has a result
    return relation


def summarize_lake(settings: Settings) -> str:
    """A line per table: its rows, and the months with rows when it is partitioned, in its last committed version."""
    tables = lake_tables(settings)
    lines = [f"{'table':<26}{'rows':>12}  partitions"]
    with connect_lake(settings, tables) as connection:
        for name in tables:
            partitioned = PARTITION_COLUMN in connection.sql(f"from {name}").columns
            months = f"count(distinct {PARTITION_COLUMN})" if partitioned else "'-'"
            rows, partitions = connection.execute(f"select count(*), {months} from {name}").fetchone()  # type: ignore[misc]
            lines.append(f"{name.replace('.', '/'):<26}{rows:>12,}  {partitions}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Version:
    version: int
    time: datetime
    operation: str
    run_id: str | None
    partition: str | None
    rows: int | None


def table_history(settings: Settings, name: str, limit: int | None = None) -> list[Version]:
    """Newest first: each commit with the run and month the pipeline's writes record in their commit metadata."""
    return [_version(commit) for commit in open_table(settings, name).history(limit)]


def _version(commit: dict[str, Any]) -> Version:
    operation = commit.get("operation", "?")
    if operation == "RESTORE":
        operation = f"RESTORE to {commit.get('operationParameters', {}).get('version', '?')}"
    rows = (commit.get("operationMetrics") or {}).get("num_added_rows")
    time = datetime.fromtimestamp(commit["timestamp"] / 1000, UTC)
    return Version(int(commit["version"]), time, operation, commit.get("dagster_run_id"), commit.get("partition"), rows)


@dataclass(frozen=True)
class Restored:
    table: str
    target: int
    version: int
    undone: list[Version]
    # rows per partition key (None: unpartitioned) whose data files differ from before the restore
    changed: dict[str | None, int] = field(default_factory=dict)


def restore_table(settings: Settings, name: str, to: int | datetime) -> Restored:
    """Restore a whole table to version ``to``, or to the last version committed before the time ``to``, as a new
    commit (older versions stay readable)."""
    table = open_table(settings, name)
    history = [_version(commit) for commit in table.history()]
    target = _last_before(history, to) if isinstance(to, datetime) else to
    if not 0 <= target < table.version():
        raise LakeError(f"{name} is at version {table.version()}: nothing to restore to version {target}")
    files_before = partition_files(table)
    try:
        table.restore(target, commit_properties=CommitProperties(custom_metadata={"restored_version": str(target)}))
    except DeltaError as error:
        raise LakeError(f"{name} cannot be restored to version {target}: {error}") from error
    files_after = partition_files(table)
    changed = [key for key in files_before.keys() | files_after.keys() if files_before.get(key) != files_after.get(key)]
    rows = {key: _partition_rows(table, key) for key in sorted(changed, key=str)}
    return Restored(name, target, table.version(), [v for v in history if v.version > target], rows)


def _last_before(history: list[Version], before: datetime) -> int:
    moment = before if before.tzinfo else before.replace(tzinfo=UTC)
    earlier = [item.version for item in history if item.time < moment]
    if not earlier:
        raise LakeError(f"no version was committed before {moment.isoformat()}")
    return max(earlier)


def record_restore(instance: dg.DagsterInstance, restored: Restored) -> None:
    """A materialization per changed partition, so Dagster's last row counts describe the restored data."""
    for key, rows in restored.changed.items():
        count_key = "dagster/partition_row_count" if key else "dagster/row_count"
        metadata = {count_key: rows, "restored_version": restored.target, "delta_version": restored.version}
        asset_key = dg.AssetKey(restored.table.split("."))
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key, partition=key, metadata=metadata))


def partition_files(table: DeltaTable) -> dict[str | None, dict[str, int | None]]:
    """Data files of the version (path → rows the log records) per month key; key None when unpartitioned."""
    files: dict[str | None, dict[str, int | None]] = defaultdict(dict)
    for action in pa.table(table.get_add_actions(flatten=True)).to_pylist():
        month = action.get(f"partition.{PARTITION_COLUMN}")
        files[None if month is None else f"{month:%Y-%m}"][action["path"]] = action["num_records"]
    return dict(files)


def _partition_rows(table: DeltaTable, key: str | None) -> int:
    month = None if key is None else pc.field(PARTITION_COLUMN) == date.fromisoformat(f"{key}-01")
    return int(table.to_pyarrow_dataset().count_rows(filter=month))


@dataclass
class Verification:
    tables: int = 0
    partitions: int = 0
    files: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)


def verify_lake(settings: Settings, instance: dg.DagsterInstance) -> Verification:
    """Read every data file of core and the marts; compare each month's rows with its last materialization."""
    result = Verification()
    for name in (name for name in lake_tables(settings) if name.split(".")[0] in PUBLISHED_LAYERS):
        table = open_table(settings, name)
        lake_rows = _read_all_files(name, table, result)
        partitioned = bool(table.metadata().partition_columns)
        keys = set(lake_rows) | (set(MONTH_KEYS) if partitioned else {None})
        problems = (_row_count_problem(instance, name, key, lake_rows.get(key)) for key in sorted(keys, key=str))
        result.problems += [problem for problem in problems if problem]
        result.tables += 1
    return result


def _read_all_files(name: str, table: DeltaTable, result: Verification) -> dict[str | None, int]:
    """Rows read per partition; a file that cannot be read in full becomes a problem naming it."""
    partition_of = {path: key for key, files in partition_files(table).items() for path in files}
    rows: dict[str | None, int] = defaultdict(int)
    for fragment in table.to_pyarrow_dataset().get_fragments():
        key = partition_of.get(fragment.path)
        try:
            rows[key] += fragment.to_table().num_rows
        except (OSError, pa.ArrowException) as error:
            rows[key] += 0  # the partition is there, its rows unknown
            message = str(error).strip().splitlines()[0]
            result.problems.append(f"{name} {key or '-'}: unreadable data file {fragment.path}: {message}")
        result.files += 1
    result.partitions += len(rows)
    result.rows += sum(rows.values())
    return rows


def _row_count_problem(instance: dg.DagsterInstance, name: str, key: str | None, rows: int | None) -> str | None:
    where, count_key = f"{name} {key or '-'}", "dagster/partition_row_count" if key else "dagster/row_count"
    records_filter = dg.AssetRecordsFilter(dg.AssetKey(name.split(".")), asset_partitions=[key] if key else None)
    records = instance.fetch_materializations(records_filter, limit=1).records
    if not records:
        return None if rows is None else f"{where}: {rows:,} rows in the lake, no materialization recorded"
    run, materialization = records[0].run_id or "none", records[0].asset_materialization
    recorded = materialization.metadata.get(count_key) if materialization else None
    if recorded is None:
        return f"{where}: the last materialization (run {run}) records no {count_key}"
    if recorded.value != (rows or 0):
        return f"{where}: {rows or 0:,} rows in the lake, {recorded.value:,} in the last materialization (run {run})"
    return None
