"""The warehouse: one DuckDB file per environment, one schema per layer, through dagster-duckdb-pandas.

Added to the library's I/O manager:
- replacing a partition (delete its rows, insert the new ones) happens in one transaction, so a failed insert
  leaves the previous version of the partition in place: a run never leaves a table half-written;
- text columns are declared VARCHAR even when a partition is empty (DuckDB would infer a NULL type), and every
  write records the table's row count and its column schema as read back from DuckDB;
- the file is held open for the run: fewer checkpoints, and one writing run at a time (``WarehouseIOManager``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

_STAGED_VIEW = "_dataops_output"


class SchemaDriftError(RuntimeError):
    """A partitioned table's columns differ from the frame written into it."""


class _TransactionalDuckDbClient(DuckDbClient):
    """DuckDB client whose delete-then-insert of a table slice commits together or not at all."""

    @staticmethod
    @contextmanager
    def connect(context: Any, table_slice: TableSlice) -> Iterator[Any]:
        with DuckDbClient.connect(context, table_slice) as connection:
            try:
                connection.begin()
                try:
                    yield connection
                except BaseException:
                    connection.rollback()
                    raise
                connection.commit()
            finally:
                # DuckDbClient.connect closes the connection only when the block succeeds; after a failed write
                # it would stay open (holding the file and its lock) until garbage collection.
                connection.close()

    @staticmethod
    def delete_table_slice(context: dg.OutputContext, table_slice: TableSlice, connection: Any) -> None:
        # A failed statement aborts the whole transaction, so test for the table instead of catching the error.
        exists = connection.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [table_slice.schema, table_slice.table],
        ).fetchone()[0]
        if exists:
            DuckDbClient.delete_table_slice(context, table_slice, connection)


class _PandasTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection: Any
    ) -> None:
        table = f"{table_slice.schema}.{table_slice.table}"
        connection.register(_STAGED_VIEW, obj)
        try:
            typed_select = _typed_select(obj)
            _create_or_check(connection, table, typed_select, obj, partitioned=bool(table_slice.partition_dimensions))
            connection.execute(f"insert into {table} by name {typed_select}")
            total = connection.execute(f"select count(*) from {table}").fetchone()[0]
            columns = connection.execute(f"select column_name, column_type from (describe {table})").fetchall()
        finally:
            connection.unregister(_STAGED_VIEW)
        metadata: dict[str, Any] = {
            "dagster/row_count": int(total),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(name=name, type=kind) for name, kind in columns]
            ),
        }
        if table_slice.partition_dimensions:
            metadata["dagster/partition_row_count"] = len(obj)
        context.add_output_metadata(metadata)


class WarehouseBusyError(RuntimeError):
    """Another process held the warehouse file for longer than the caller may wait."""


def connect_waiting(
    database: str | Path,
    delays: Iterable[float],
    *,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
    gave_up: str = "",
    on_first_wait: Callable[[], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, sleeping each of ``delays`` in turn while another process (another run, a metrics
    write) holds its lock; when they run out, WarehouseBusyError names the file (``gave_up`` adds to the message)."""
    waits = iter(delays)
    waited = False
    while True:
        try:
            return duckdb.connect(str(database), read_only=read_only, config=config or {})
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            pause = next(waits, None)
            if pause is None:
                raise WarehouseBusyError(f"{database} stayed locked by another process{gave_up}: {error}") from error
            if not waited and on_first_wait is not None:
                on_first_wait()
            waited = True
            time.sleep(pause)


def _doubling_delays(timeout_s: float) -> Iterator[float]:
    """0.1 s, doubling up to 2 s, while the next pause still ends within ``timeout_s`` from now."""
    deadline = time.monotonic() + timeout_s

    def pauses() -> Iterator[float]:
        delay = 0.1
        while time.monotonic() + delay <= deadline:
            yield delay
            delay = min(delay * 2, 2.0)

    return pauses()


def _client_config(connection_config: dict[str, Any] | None) -> dict[str, Any]:
    """The configuration DuckDbClient.connect opens the file with: one process's connections must agree on it."""
    return {"custom_user_agent": "dagster", **(connection_config or {})}


def _typed_select(obj: pd.DataFrame) -> str:
    """Select from the frame with text columns cast to VARCHAR, so an empty frame still has typed columns."""
    text_columns = [str(name) for name, dtype in obj.dtypes.items() if str(dtype) in {"object", "string"}]
    if not text_columns:
        return f"select * from {_STAGED_VIEW}"
    casts = ", ".join(f'cast("{name}" as varchar) as "{name}"' for name in text_columns)
    return f"select * replace ({casts}) from {_STAGED_VIEW}"


def _create_or_check(connection: Any, table: str, typed_select: str, obj: pd.DataFrame, partitioned: bool) -> None:
    """Create the table on first write; an unpartitioned table follows the frame, a partitioned one must match."""
    connection.execute(f"create table if not exists {table} as {typed_select} limit 0")
    existing = [row[0] for row in connection.execute(f"select column_name from (describe {table})").fetchall()]
    if sorted(existing) == sorted(map(str, obj.columns)):
        return
    if not partitioned:
        connection.execute(f"create or replace table {table} as {typed_select} limit 0")
        return
    added = sorted(set(map(str, obj.columns)) - set(existing))
    removed = sorted(set(existing) - set(map(str, obj.columns)))
    raise SchemaDriftError(
        f"{table} has other columns than the data written to it (new: {added or 'none'}, gone: {removed or 'none'}); "
        "the table keeps its current version; drop it and re-run every partition to rebuild it."
    )


class WarehouseIOManager(DuckDBPandasIOManager):
    """dagster-duckdb-pandas with transactional partition replacement and table metadata on every write.

    The database stays open for the whole run: the library connects and closes once per load and per store (about
    80 times a partition), and each last close of a DuckDB file checkpoints it. While one connection of the
    process holds the file, those connections share the open database and their closes are cheap; the held one
    is closed, checkpointing once, when the run's resources are torn down. Holding the file also makes it the
    run's write lock: a run that starts while another process holds it waits (``busy_timeout_s``), then fails
    naming the file, instead of interleaving its writes with the other run's.
    """

    busy_timeout_s: float = 1800.0

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_PandasTypeHandler()]

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[DbIOManager]:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)

        def say_waiting() -> None:
            if context.log is not None:
                context.log.info(f"waiting for {self.database}: another process holds it")

        held = connect_waiting(
            self.database,
            _doubling_delays(self.busy_timeout_s),
            config=_client_config(self.connection_config),
            gave_up=f" for {self.busy_timeout_s:g}s; the run wrote nothing",
            on_first_wait=say_waiting,
        )
        try:
            yield self.create_io_manager(context)
        finally:
            held.close()

    def create_io_manager(self, context: Any) -> DbIOManager:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        return DbIOManager(
            db_client=_TransactionalDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=pd.DataFrame,
            io_manager_name="WarehouseIOManager",
        )
