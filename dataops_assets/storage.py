"""The lake: one Delta table per asset at ``<lake_uri>/<layer>/<table>``, through dagster-deltalake-pandas.

What this adds to the library's I/O manager:
- every monthly table is partitioned by ``partition_month`` (a date, the month's first day), added on write from the
  run's partition and dropped on read, so the frames the assets see do not change. (Partitioning by the tables' own
  timestamp columns would make one folder per distinct timestamp, and the library cannot read those back.)
- a month is written as one commit that replaces exactly that month; a reference table as one full overwrite. A
  commit that loses a race (another month's writer, or the table's first creation) is retried, so months can be
  written by parallel runs; after ``COMMIT_ATTEMPTS`` lost races the write fails naming the table and month;
- a column that is empty in a month takes the table's type, and a monthly table refuses a frame with other columns;
- each commit records the Dagster run, the partition and a write id (``dataops history``); each materialization
  records the version of its own commit (``delta_version``, found by the write id, never by reopening the table),
  and the table's rows, the month's rows and the column schema at that version;
- in a pull request's preview, a table the preview does not rebuild is read from the base environment's lake at
  the Delta version pinned when the preview was created (``pinned_versions``), and nothing under that lake is ever
  written (``read_only_root_uri``);
- an input that asks for some columns (``dg.In(metadata={"columns": [...]})``) reads those the table has, and the
  frame's ``attrs[STORED_COLUMNS]`` names every stored column, so a check reading a few columns can still judge
  the table's schema (and name a column that is missing instead of failing to load).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from dagster._core.definitions.partitions.utils import TimeWindow
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_deltalake import LocalConfig
from dagster_deltalake.io_manager import DeltaLakeDbClient, TableConnection
from dagster_deltalake_pandas import DeltaLakePandasIOManager, DeltaLakePandasTypeHandler
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from pydantic import Field

from dataops_assets.commits import find_commit_after

PARTITION_COLUMN = "partition_month"
STORED_COLUMNS = "stored_columns"  # key in DataFrame.attrs of a projected read: the table's columns
COMMIT_ATTEMPTS = 8
WRITE_ID = "dagster_write_id"  # commit metadata key: one id per write, so the write finds its own commit


class SchemaDriftError(RuntimeError):
    """A monthly table's columns differ from the frame written into it."""


class LakeTypeHandler(DeltaLakePandasTypeHandler):
    """Writes a pandas frame as one commit per month (or table) and reads it back without the partition column."""

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection: TableConnection
    ) -> None:
        _refuse_read_only(context.resource_config or {}, table_slice, connection)
        month = _slice_month(table_slice)
        data = pa.Table.from_pandas(obj, preserve_index=False)
        if month is not None:
            data = data.append_column(PARTITION_COLUMN, pa.array([month] * len(data), pa.date32()))
        commit = _commit_metadata(context.run_id, context)
        table = _write(connection, data, month, commit, f"{table_slice.schema}.{table_slice.table}")
        context.add_output_metadata(_table_metadata(table, table_slice, connection, len(obj)))

    def load_input(
        self, context: dg.InputContext, table_slice: TableSlice, connection: TableConnection
    ) -> pd.DataFrame:
        version = pinned_version(context.resource_config or {}, table_slice)
        table = DeltaTable(connection.table_uri, version=version, storage_options=connection.storage_options)
        stored = [name for name in pa.schema(table.schema().to_arrow()).names if name != PARTITION_COLUMN]
        dataset = table.to_pyarrow_dataset()
        months = _months_filter(table_slice)
        if months is not None:
            dataset = dataset.filter(months)
        present = None if table_slice.columns is None else [c for c in table_slice.columns if c in stored]
        frame = self.from_arrow(dataset.scanner(columns=present).to_reader(), pd.DataFrame)
        if table_slice.columns is not None:
            frame.attrs[STORED_COLUMNS] = stored
        return frame

    def from_arrow(self, obj: pa.RecordBatchReader, target_type: type) -> pd.DataFrame:
        # nanosecond timestamps, as pandas makes them: frames read back merge with frames built in the run; Arrow
        # frees each column once converted, so a month is not held twice (1.45 → 1.29 GiB for a 10x month)
        frame = obj.read_pandas(coerce_temporal_nanoseconds=True, self_destruct=True)
        return frame.drop(columns=[PARTITION_COLUMN], errors="ignore")


class LakeIOManager(DeltaLakePandasIOManager):
    """dagster-deltalake-pandas with month-by-month commits; see the module docstring."""

    read_only_root_uri: str | None = Field(
        default=None, description="A lake this I/O manager reads pinned tables from and never writes (a preview's base)"
    )
    pinned_versions: dict[str, int] = Field(
        default_factory=dict, description="layer/table → the Delta version read from read_only_root_uri"
    )

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [LakeTypeHandler()]

    def create_io_manager(self, context: dg.InitResourceContext) -> DbIOManager:
        return DbIOManager(
            db_client=LakeDbClient(),
            database="deltalake",
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="LakeIOManager",
        )


class LakeDbClient(DeltaLakeDbClient):
    """A table pinned by a preview is opened in the read-only lake; every other under the I/O manager's root."""

    @staticmethod
    @contextmanager
    def connect(context: dg.InputContext | dg.OutputContext, table_slice: TableSlice) -> Iterator[TableConnection]:
        with DeltaLakeDbClient.connect(context, table_slice) as connection:
            config = context.resource_config or {}
            if pinned_version(config, table_slice) is None:
                yield connection
            else:
                root = str(config["read_only_root_uri"]).rstrip("/")
                yield dataclasses.replace(connection, table_uri=f"{root}/{table_slice.schema}/{table_slice.table}")


def lake_io_manager(lake_uri: str, read_only_root: str | None = None, pinned: Mapping[str, int] = {}) -> LakeIOManager:
    # Object-store credentials are not configuration: delta-rs reads the store's own variables (AWS_*, ...).
    return LakeIOManager(
        root_uri=lake_uri,
        storage_options=LocalConfig(),
        read_only_root_uri=read_only_root,
        pinned_versions=dict(pinned),
    )


class ReadOnlyLakeError(RuntimeError):
    """A write into a lake this I/O manager may only read (a preview's base); nothing was written."""


def pinned_version(config: Mapping[str, Any], table_slice: TableSlice) -> int | None:
    """The base's Delta version a preview reads this table at; None for a table of the I/O manager's own lake."""
    pinned: Mapping[str, int] = config.get("pinned_versions") or {}
    return pinned.get(f"{table_slice.schema}/{table_slice.table}")


def _refuse_read_only(config: Mapping[str, Any], table_slice: TableSlice, connection: TableConnection) -> None:
    read_only = str(config.get("read_only_root_uri") or "").rstrip("/")
    if read_only and (connection.table_uri + "/").startswith(read_only + "/"):
        name = f"{table_slice.schema}.{table_slice.table}"
        raise ReadOnlyLakeError(
            f"{name}: {connection.table_uri} lies in {read_only}, the lake this environment only reads (a preview "
            "reads its base's tables at pinned versions and writes only its own lake); nothing was written"
        )


def _months_filter(table_slice: TableSlice) -> pc.Expression | None:
    """The rows of the slice's months (a time window of one or more months), as a filter on the partition column."""
    if not table_slice.partition_dimensions:
        return None
    window = cast(TimeWindow, table_slice.partition_dimensions[0].partitions)
    start, end = (pa.scalar(dt.date(t.year, t.month, t.day), pa.date32()) for t in (window.start, window.end))
    return (pc.field(PARTITION_COLUMN) >= start) & (pc.field(PARTITION_COLUMN) < end)


def _slice_month(table_slice: TableSlice) -> dt.date | None:
    if not table_slice.partition_dimensions:
        return None
    window = cast(TimeWindow, table_slice.partition_dimensions[0].partitions)
    return dt.date(window.start.year, window.start.month, 1)


def _commit_metadata(run_id: str, context: dg.OutputContext) -> dict[str, str]:
    # the write id tells this write's commit from every other, the same run's retries of the step included
    metadata = {"dagster_run_id": run_id, WRITE_ID: uuid.uuid4().hex}
    if context.has_asset_partitions:
        metadata["partition"] = context.asset_partition_key
    return metadata


def _write(
    connection: TableConnection, data: pa.Table, month: dt.date | None, commit: dict[str, str], name: str
) -> DeltaTable:
    """One commit replacing the month (or the whole table); retried when a concurrent commit wins the race.

    Returns the table at the version of this very commit, found by its write id in the commit files after the
    version read before writing: reopening the table would give whatever version is newest by then.
    """
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        existing = _open(connection)
        before = existing.version() if existing is not None else -1  # read now: the write may advance the object
        try:
            conformed, schema_mode = _conform(data, existing, month, name)
            write_deltalake(
                # the version the frame was conformed to: a commit landing since then makes this one conflict
                existing if existing is not None else connection.table_uri,
                conformed,
                storage_options=connection.storage_options,
                mode="overwrite",
                partition_by=[PARTITION_COLUMN] if month is not None else None,
                predicate=f"{PARTITION_COLUMN} = '{month:%Y-%m-%d}'" if month and existing else None,
                schema_mode=schema_mode,
                commit_properties=CommitProperties(custom_metadata=commit),
            )
            own = {WRITE_ID: commit[WRITE_ID]}
            version = find_commit_after(connection.table_uri, before, own, connection.storage_options)
            return DeltaTable(connection.table_uri, version=version, storage_options=connection.storage_options)
        except CommitFailedError as error:
            if attempt == COMMIT_ATTEMPTS:
                raise CommitConflictError(_conflict_message(name, month, error)) from error
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise AssertionError("unreachable")


class CommitConflictError(RuntimeError):
    """Every attempt at a write lost its commit to a concurrent one; the table has none of the write's rows."""


def _conflict_message(name: str, month: dt.date | None, error: CommitFailedError) -> str:
    target = f"{name} {month:%Y-%m}" if month is not None else name
    found = str(error).split("\n", 1)[0].strip()
    return (
        f"{target}: each of {COMMIT_ATTEMPTS} commits lost to a concurrent write of the table ({found}); "
        "it keeps the versions that won and none of this write: re-run it"
    )


def _open(connection: TableConnection) -> DeltaTable | None:
    try:
        return DeltaTable(connection.table_uri, storage_options=connection.storage_options)
    except TableNotFoundError:
        return None
    except DeltaError as error:
        raise DamagedTableError(damaged_table_message(connection.table_uri, error)) from None


class DamagedTableError(RuntimeError):
    """A Delta table whose log or files cannot be read; nothing is written to it."""


def damaged_table_message(uri: str, error: Exception) -> str:
    """One line naming the table, what delta-rs found, and what to do (delta-rs appends a native backtrace)."""
    found = str(error).split("\n", 1)[0].strip()
    return (
        f"the Delta table {uri} cannot be read ({found}); nothing was written to it: restore a good version "
        "(dataops history / dataops restore) or move the folder away and re-run every month to rebuild it"
    )


def _conform(
    data: pa.Table, existing: DeltaTable | None, month: dt.date | None, name: str
) -> tuple[pa.Table, Literal["overwrite"] | None]:
    """Empty columns typed (as stored, else text); a reference table follows the frame, a monthly one must match."""
    stored = pa.schema(existing.schema().to_arrow()) if existing is not None else None
    for index, field in enumerate(data.schema):
        if pa.types.is_null(field.type):
            kind = stored.field(field.name).type if stored and field.name in stored.names else pa.string()
            data = data.set_column(index, field.name, data.column(index).cast(kind))
    if stored is None or sorted(stored.names) == sorted(data.schema.names):
        return data, None
    if month is None:
        return data, "overwrite"
    added = sorted(set(data.schema.names) - set(stored.names))
    removed = sorted(set(stored.names) - set(data.schema.names))
    raise SchemaDriftError(
        f"{name} has other columns than the data written to it for {month:%Y-%m} (new: {added or 'none'}, gone: "
        f"{removed or 'none'}); the table keeps its current version; drop it and re-run every month to rebuild it."
    )


def _table_metadata(table: DeltaTable, table_slice: TableSlice, connection: TableConnection, rows: int) -> dict:
    files = pa.table(table.get_add_actions(flatten=True))
    schema = pa.schema(table.schema().to_arrow())
    metadata: dict[str, Any] = {
        "dagster/row_count": int(pc.sum(files["num_records"]).as_py() or 0),
        "dagster/table_name": f"{table_slice.schema}.{table_slice.table}",
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in schema if f.name != PARTITION_COLUMN]
        ),
        "dagster/uri": connection.table_uri,
        "delta_version": table.version(),
    }
    if table_slice.partition_dimensions:
        metadata["dagster/partition_row_count"] = rows
    return metadata
