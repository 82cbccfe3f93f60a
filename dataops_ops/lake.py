"""The lake from the tooling's side: SQL over what is published, each table's versions, and integrity.

Every table is read through deltalake's Arrow datasets (the DuckDB ``delta`` extension would need a download). Raw,
staging and quarantine show their last committed version. Core and the marts show, month by month, the version
their publish record (``publish.months``) names, so a month's core and marts always come from one run: that is the
last version's data of the month unless a later, unpublished write replaced it (a run stopped between core and the
marts, or failing a blocking check), in which case the month is read at the published version (time travel).
Months without a publish record are not shown there. A Delta reader takes no lock, so readers never block writers
or each other.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from dataops_assets.commits import Commit, commits, find_commit_after, read_commit
from dataops_assets.environments import Settings
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets.storage import PARTITION_COLUMN, WRITE_ID, damaged_table_message

LAYERS = ("raw", "staging", "quarantine", "core", "marts", "publish")
PUBLISHED_LAYERS = ("core", "marts")
PUBLISH_RECORD = "publish.months"
_READ_ONLY = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_NAME = re.compile(rf"^({'|'.join(LAYERS)})\.([a-z_][a-z0-9_]*)$")


class LakeError(Exception):
    """A table, statement or version the lake cannot serve; the message says why."""


def table_uri(settings: Settings, name: str) -> str:
    """``core.flights`` → ``<lake_uri>/core/flights`` (a preview's pinned table: in its base's lake)."""
    match = _NAME.match(name)
    if match is None:
        raise LakeError(
            f"{name!r} is not a lake table name: expected LAYER.TABLE with LAYER one of {', '.join(LAYERS)}"
        )
    pinned = pinned_version(settings, name) is not None
    root = settings.preview.base_lake_uri if settings.preview and pinned else settings.lake_uri
    return f"{root.rstrip('/')}/{match[1]}/{match[2]}"


def pinned_version(settings: Settings, name: str) -> int | None:
    """The version of its base a preview reads ``layer.table`` at; None for a table of the environment's own lake."""
    return settings.preview.pinned.get(name.replace(".", "/")) if settings.preview else None


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
    names += [name.replace("/", ".") for name in settings.preview.pinned] if settings.preview else []
    return sorted(
        {name for name in names if DeltaTable.is_deltatable(table_uri(settings, name))},
        key=lambda name: (LAYERS.index(name.split(".")[0]), name),
    )


def open_table(settings: Settings, name: str) -> DeltaTable:
    try:
        return DeltaTable(table_uri(settings, name), version=pinned_version(settings, name))
    except TableNotFoundError as error:
        raise LakeError(f"no table {name} in the lake {settings.lake_uri}") from error
    except DeltaError as error:
        raise LakeError(f"{name}: {damaged_table_message(table_uri(settings, name), error)}") from None


def connect_lake(settings: Settings, tables: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB in memory with a view ``layer.table`` over every table (or ``tables``): the published months of core
    and the marts, the last committed version of the others."""
    return _connect(settings, lake_tables(settings) if tables is None else tables)[0]


def _connect(
    settings: Settings, names: list[str], unreadable: dict[str, str] | None = None
) -> tuple[duckdb.DuckDBPyConnection, dict[str, PublishedState]]:
    """The connection, and the published state of each core and mart table it shows. With ``unreadable``, a table
    that cannot be shown gets no view and its reason there, instead of failing the whole connection."""
    record = publications(settings) if any(_is_published(name) for name in names) else {}
    states: dict[str, PublishedState] = {}
    connection = duckdb.connect()
    for name in names:
        layer, table = name.split(".")
        try:
            if _is_published(name):
                states[name] = published_state(settings, name, record.get(name, {}))
            dataset = states[name].dataset() if name in states else open_table(settings, name).to_pyarrow_dataset()
        except LakeError as error:
            if unreadable is None:
                connection.close()
                raise
            unreadable[name] = str(error)
            continue
        connection.register(f"_{layer}__{table}", dataset)
        connection.execute(
            f"create schema if not exists {layer}; create view {name} as select * from _{layer}__{table}"
        )
    # The views are all a caller may read: no files, no extensions, and nobody can switch that back on.
    connection.execute(
        "set enable_progress_bar = false; set enable_external_access = false; set lock_configuration = true"
    )
    return connection, states


def _is_published(name: str) -> bool:
    return name.split(".", maxsplit=1)[0] in PUBLISHED_LAYERS


@dataclass(frozen=True)
class Publication:
    """One month of one table as its publish record names it."""

    table: str
    month: str
    version: int
    run_id: str


def publications(settings: Settings, version: int | None = None) -> dict[str, dict[str, Publication]]:
    """``layer.table`` → month → its publication, from the last version of the publish record (or ``version``;
    a preview's pinned one); empty before the first month is published."""
    uri = table_uri(settings, PUBLISH_RECORD)
    if not DeltaTable.is_deltatable(uri):
        return {}
    columns = [PARTITION_COLUMN, "table_name", "delta_version", "run_id"]
    record: dict[str, dict[str, Publication]] = defaultdict(dict)
    record_table = DeltaTable(uri, version=version if version is not None else pinned_version(settings, PUBLISH_RECORD))
    for row in record_table.to_pyarrow_table(columns=columns).to_pylist():
        month = f"{row[PARTITION_COLUMN]:%Y-%m}"
        record[row["table_name"]][month] = Publication(row["table_name"], month, row["delta_version"], row["run_id"])
    return dict(record)


@dataclass(frozen=True)
class PublishedState:
    """Which version of each month of a published table consumers see, and what the last version holds besides."""

    table: DeltaTable
    name: str
    current: list[str]  # published months whose last write is the published one: read from the last version
    replaced: list[Publication]  # published months an unpublished write replaced since: read at their version
    unpublished: list[str]  # months with data in the last version and no publication

    def dataset(self) -> pads.Dataset:
        """One Arrow dataset over the published months, each at the version its record names."""
        schema = pa.schema(self.table.schema().to_arrow())
        parts = [self.table.to_pyarrow_dataset(file_pruning_predicate=[_in_months(self.current)])]
        parts += [_month_at_version(self.table, self.name, publication, schema) for publication in self.replaced]
        return parts[0] if len(parts) == 1 else pads.dataset(parts)


def published_state(settings: Settings, name: str, published: dict[str, Publication]) -> PublishedState:
    """The state of ``name`` against its publications (month → publication)."""
    table = open_table(settings, name)
    last_writes = _last_writes_since(table, min((p.version for p in published.values()), default=table.version()))
    current = sorted(month for month, p in published.items() if last_writes.get(month, p.version) <= p.version)
    replaced = [p for month, p in sorted(published.items()) if last_writes.get(month, p.version) > p.version]
    in_lake = {key for key in partition_files(table) if key is not None}
    return PublishedState(table, name, current, replaced, sorted(in_lake - set(published)))


def _last_writes_since(table: DeltaTable, since: int) -> dict[str, int]:
    """Month → the newest version after ``since`` whose commit wrote that month (its commit metadata say so)."""
    last: dict[str, int] = {}
    for commit in commits(table.table_uri, after=since):
        month = commit.info.get("partition")
        if month:
            last[month] = max(commit.version, last.get(month, commit.version))
    return last


def _in_months(months: list[str]) -> tuple[str, str, list[str]]:
    return (PARTITION_COLUMN, "in", [f"{month}-01" for month in months])


def _month_at_version(table: DeltaTable, name: str, publication: Publication, schema: pa.Schema) -> pads.Dataset:
    """The month as the published version holds it; one clear error when maintenance has vacuumed that version."""
    month, version = publication.month, publication.version
    gone = LakeError(
        f"{name} {month}: the published version {version} is no longer readable (lake maintenance vacuumed it) and "
        f"a later unpublished write replaced the month; re-run the month to publish it again: dataops run {month}"
    )
    try:
        old = DeltaTable(table.table_uri, version=version)
        dataset = old.to_pyarrow_dataset(file_pruning_predicate=[_in_months([month])], schema=schema)
    except (DeltaError, OSError) as error:
        raise gone from error
    paths = [fragment.path for fragment in dataset.get_fragments()]
    if any(info.type == pafs.FileType.NotFound for info in dataset.filesystem.get_file_info(paths)):
        raise gone
    return dataset


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
    """A line per table: its rows, and the months with rows when it is partitioned, as the views show them (core
    and the marts: the published months); under a core or mart table, what its last version holds besides."""
    tables = lake_tables(settings)
    lines = [f"{'table':<34}{'rows':>12}  partitions"]
    unreadable: dict[str, str] = {}
    connection, states = _connect(settings, tables, unreadable)
    with connection:
        for name in tables:
            if name in unreadable:
                lines.append(f"{name.replace('.', '/'):<34}{'?':>12}  ?\n    not readable: {unreadable[name]}")
                continue
            partitioned = PARTITION_COLUMN in connection.sql(f"from {name}").columns
            months = f"count(distinct {PARTITION_COLUMN})" if partitioned else "'-'"
            rows, partitions = connection.execute(f"select count(*), {months} from {name}").fetchone()  # type: ignore[misc]
            lines.append(f"{name.replace('.', '/'):<34}{rows:>12,}  {partitions}")
            lines += _unpublished_lines(states[name]) if name in states else []
    return "\n".join(lines)


def _unpublished_lines(state: PublishedState) -> list[str]:
    """The months of the last version that consumers do not see as they are there."""
    lines = []
    if state.unpublished:
        lines.append(f"    not shown, never published: {', '.join(state.unpublished)}")
    for publication in state.replaced:
        lines.append(
            f"    {publication.month} shown as published (version {publication.version}, run {publication.run_id}); "
            "a later write of the month is not published"
        )
    return lines


@dataclass(frozen=True)
class Version:
    version: int
    time: datetime
    operation: str
    run_id: str | None
    partition: str | None
    rows: int | None


def table_history(settings: Settings, name: str, limit: int | None = None) -> list[Version]:
    """Newest first: each commit, named by its log file, with the run and month the pipeline's writes record in
    their commit metadata."""
    return [_version(commit) for commit in commits(open_table(settings, name).table_uri, limit=limit)]


def _version(commit: Commit) -> Version:
    info = commit.info
    operation = info.get("operation", "?")
    if operation == "RESTORE":
        operation = f"RESTORE to {info.get('operationParameters', {}).get('version', '?')}"
    rows = (info.get("operationMetrics") or {}).get("num_added_rows")
    time = datetime.fromtimestamp(info["timestamp"] / 1000, UTC)
    return Version(commit.version, time, operation, info.get("dagster_run_id"), info.get("partition"), rows)


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
    if pinned_version(settings, name) is not None:
        raise LakeError(f"{name} is {settings.name}'s base table, read at a pinned version: a preview never writes it")
    table = open_table(settings, name)
    history = [_version(commit) for commit in commits(table.table_uri)]
    target = _last_before(history, to) if isinstance(to, datetime) else to
    if not 0 <= target < table.version():
        raise LakeError(f"{name} is at version {table.version()}: nothing to restore to version {target}")
    files_before, before = partition_files(table), table.version()
    own = {"restored_version": str(target), WRITE_ID: uuid.uuid4().hex}
    try:
        table.restore(target, commit_properties=CommitProperties(custom_metadata=own))
    except DeltaError as error:
        raise LakeError(f"{name} cannot be restored to version {target}: {error}") from error
    restored = DeltaTable(table.table_uri, version=find_commit_after(table.table_uri, before, own))
    files_after = partition_files(restored)
    changed = [key for key in files_before.keys() | files_after.keys() if files_before.get(key) != files_after.get(key)]
    rows = {key: _partition_rows(restored, key) for key in sorted(changed, key=str)}
    return Restored(name, target, restored.version(), [v for v in history if v.version > target], rows)


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
    """Read every data file of core and the marts; compare each month's rows with its last materialization; check
    that every published month's version is its run's commit of the month, and can be read there."""
    result = Verification()
    record = publications(settings)
    for name in (name for name in lake_tables(settings) if name.split(".")[0] in PUBLISHED_LAYERS):
        table = open_table(settings, name)
        checked = (_publication_problem(table, publication) for publication in record.get(name, {}).values())
        result.problems += [problem for problem in checked if problem]
        try:
            published_state(settings, name, record.get(name, {})).dataset()
        except LakeError as error:
            result.problems.append(str(error))
        lake_rows = _read_all_files(name, table, result)
        partitioned = bool(table.metadata().partition_columns)
        keys = set(lake_rows) | (set(MONTH_KEYS) if partitioned else {None})
        problems = (_row_count_problem(instance, name, key, lake_rows.get(key)) for key in sorted(keys, key=str))
        result.problems += [problem for problem in problems if problem]
        result.tables += 1
    return result


def _publication_problem(table: DeltaTable, publication: Publication) -> str | None:
    """What is wrong with a publication: its version is not the named run's commit of the month, or holds no row
    of the month (consumers would not see the month)."""
    where = f"{publication.table} {publication.month}: the publish record names version {publication.version}"
    commit = read_commit(table.table_uri, publication.version)
    if commit is None:
        return f"{where}, which the table's log does not hold"
    wrote = {"dagster_run_id": publication.run_id, "partition": publication.month}
    if not commit.carries(wrote):
        found = f"run {commit.info.get('dagster_run_id')}, month {commit.info.get('partition')}"
        return f"{where}, which is not run {publication.run_id}'s commit of the month ({found})"
    at_version = DeltaTable(table.table_uri, version=publication.version)
    if not any(partition_files(at_version).get(publication.month, {}).values()):
        return f"{where}, which holds no row of the month"
    return None


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
