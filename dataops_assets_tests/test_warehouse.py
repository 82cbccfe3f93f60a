"""The warehouse I/O manager on its own: transactional partition replacement, typed empty tables, schema rules,
and the run's hold on the file."""

import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from dataops_assets.assets.partitions import MONTHLY
from dataops_assets.warehouse import WarehouseBusyError, WarehouseIOManager
from dataops_assets_tests.fixtures.pipeline import step_failures
from dataops_assets_tests.fixtures.processes import hold_duckdb_file

Frame = Callable[[], pd.DataFrame]


def _partitioned(make: Frame) -> dg.AssetsDefinition:
    @dg.asset(key=["test", "readings"], partitions_def=MONTHLY, metadata={"partition_expr": "month"})
    def readings(context: dg.AssetExecutionContext) -> pd.DataFrame:
        frame = make()
        frame.insert(0, "month", pd.Timestamp(f"{context.partition_key}-01"))
        return frame.astype({"month": "datetime64[ns]"})

    return readings


def _unpartitioned(make: Frame) -> dg.AssetsDefinition:
    @dg.asset(key=["test", "lookup"])
    def lookup() -> pd.DataFrame:
        return make()

    return lookup


def _write(database: Path, asset: dg.AssetsDefinition, partition: str | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset],
        resources={"io_manager": WarehouseIOManager(database=str(database))},
        partition_key=partition,
        raise_on_error=False,
    )


def _query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _rows_by_month(database: Path) -> list[tuple[object, ...]]:
    return _query(database, "select strftime(month, '%Y-%m'), station, value from test.readings order by 1, 2")


def _columns(database: Path, table: str) -> list[tuple[object, ...]]:
    return _query(database, f"select column_name, column_type from (describe {table})")


def _readings(*rows: tuple[str, float]) -> Frame:
    return lambda: pd.DataFrame(rows, columns=["station", "value"])


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "warehouse.duckdb"  # the I/O manager creates the folder


def test_a_partition_is_replaced_and_the_others_are_kept(database: Path) -> None:
    assert _write(database, _partitioned(_readings(("EWR", 1.0), ("JFK", 2.0), ("LGA", 3.0))), "2013-01").success
    assert _write(database, _partitioned(_readings(("EWR", 10.0))), "2013-02").success
    result = _write(database, _partitioned(_readings(("EWR", 4.0), ("JFK", 5.0))), "2013-01")
    assert result.success
    assert _rows_by_month(database) == [
        ("2013-01", "EWR", 4.0),
        ("2013-01", "JFK", 5.0),
        ("2013-02", "EWR", 10.0),
    ]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dagster/partition_row_count"].value == 2
    assert metadata["dagster/row_count"].value == 3
    assert metadata["dagster/table_name"].value == f"{database}.test.readings"
    schema = metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema)
    columns = [(c.name, c.type) for c in schema.columns]
    assert columns == [("month", "TIMESTAMP_NS"), ("station", "VARCHAR"), ("value", "DOUBLE")]


def test_a_write_with_drifted_columns_fails_and_keeps_the_previous_partition(database: Path) -> None:
    assert _write(database, _partitioned(_readings(("EWR", 1.0), ("JFK", 2.0))), "2013-01").success

    def drifted() -> pd.DataFrame:
        return pd.DataFrame({"station": ["EWR"], "value": [9.0], "unit": ["F"]})

    result = _write(database, _partitioned(drifted), "2013-01")
    assert not result.success
    message = step_failures(result)["test__readings"]
    assert "SchemaDriftError" in message
    assert "test.readings has other columns than the data written to it (new: ['unit'], gone: none)" in message
    assert _rows_by_month(database) == [("2013-01", "EWR", 1.0), ("2013-01", "JFK", 2.0)]
    assert [name for name, _ in _columns(database, "test.readings")] == ["month", "station", "value"]


def test_an_insert_that_fails_midway_rolls_back_the_delete(database: Path) -> None:
    assert _write(database, _partitioned(_readings(("EWR", 1.0), ("JFK", 2.0))), "2013-01").success

    # Same column names, but "value" is text that DuckDB cannot cast to the table's DOUBLE: the delete of the
    # partition has already run inside the transaction when the insert fails.
    result = _write(database, _partitioned(lambda: pd.DataFrame({"station": ["EWR"], "value": ["n/a"]})), "2013-01")
    assert not result.success
    message = step_failures(result)["test__readings"]
    assert "ConversionException" in message and "n/a" in message
    assert _rows_by_month(database) == [("2013-01", "EWR", 1.0), ("2013-01", "JFK", 2.0)]


def test_a_failure_after_the_insert_rolls_back_delete_and_insert(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _write(database, _partitioned(_readings(("EWR", 1.0))), "2013-01").success
    from dataops_assets import warehouse

    # The handler builds the column schema metadata after the insert, still inside the transaction.
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(warehouse.dg, "TableColumn", fail)
    result = _write(database, _partitioned(_readings(("JFK", 2.0), ("LGA", 3.0))), "2013-01")
    monkeypatch.undo()
    assert not result.success
    assert "disk full (simulated)" in step_failures(result)["test__readings"]
    assert _rows_by_month(database) == [("2013-01", "EWR", 1.0)]


def test_a_failed_write_releases_the_database_file(database: Path) -> None:
    """Regression: the library's DuckDB client closed its connection only after a successful write, so a failed
    one kept the file open, and locked against read-only connections, until garbage collection."""
    assert _write(database, _partitioned(_readings(("EWR", 1.0))), "2013-01").success
    failed = _write(database, _partitioned(lambda: pd.DataFrame({"station": ["EWR"], "value": ["n/a"]})), "2013-01")
    assert not failed.success
    with duckdb.connect(str(database), read_only=True) as connection:  # raised ConnectionException before the fix
        assert connection.execute("select count(*) from test.readings").fetchone() == (1,)


def test_an_empty_frame_still_creates_a_typed_table(database: Path) -> None:
    def empty() -> pd.DataFrame:
        frame = pd.DataFrame({"station": pd.Series(dtype=object), "value": pd.Series(dtype="float64")})
        return frame.assign(flag=pd.Series(dtype=bool), code=pd.Series(dtype="string"))

    result = _write(database, _partitioned(empty), "2013-03")
    assert result.success
    assert _columns(database, "test.readings") == [
        ("month", "TIMESTAMP_NS"),
        ("station", "VARCHAR"),
        ("value", "DOUBLE"),
        ("flag", "BOOLEAN"),
        ("code", "VARCHAR"),
    ]
    assert _query(database, "select count(*) from test.readings") == [(0,)]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dagster/row_count"].value == 0
    assert metadata["dagster/partition_row_count"].value == 0


def test_an_unpartitioned_table_follows_a_changed_schema(database: Path) -> None:
    first = lambda: pd.DataFrame({"code": ["AA", "UA"], "name": ["American", "United"]})  # noqa: E731
    assert _write(database, _unpartitioned(first)).success
    assert _query(database, "select * from test.lookup order by code") == [("AA", "American"), ("UA", "United")]

    second = lambda: pd.DataFrame({"code": ["B6"], "seats": [200]})  # noqa: E731
    result = _write(database, _unpartitioned(second))
    assert result.success
    assert _columns(database, "test.lookup") == [("code", "VARCHAR"), ("seats", "BIGINT")]
    assert _query(database, "select * from test.lookup") == [("B6", 200)]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dagster/row_count"].value == 1
    assert "dagster/partition_row_count" not in metadata


def test_a_rewrite_of_an_unpartitioned_table_replaces_all_rows(database: Path) -> None:
    assert _write(database, _unpartitioned(lambda: pd.DataFrame({"code": ["AA", "UA"]}))).success
    assert _write(database, _unpartitioned(lambda: pd.DataFrame({"code": ["B6"]}))).success
    assert _query(database, "select code from test.lookup") == [("B6",)]


def test_a_run_waits_while_another_process_holds_the_warehouse(database: Path) -> None:
    holder = hold_duckdb_file(database, seconds=2)
    try:
        started = time.monotonic()
        result = _write(database, _unpartitioned(lambda: pd.DataFrame({"code": ["A"]})))
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert result.success and waited > 1.0  # it started only once the other process let go
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.execute("select count(*) from test.lookup").fetchone() == (1,)


def test_a_run_gives_up_on_a_warehouse_held_too_long_naming_it(database: Path) -> None:
    holder = hold_duckdb_file(database, seconds=10)
    try:
        with pytest.raises(dg.DagsterResourceFunctionError) as raised:
            dg.materialize(
                [_unpartitioned(lambda: pd.DataFrame({"code": ["A"]}))],
                resources={"io_manager": WarehouseIOManager(database=str(database), busy_timeout_s=1)},
            )
    finally:
        holder.kill()
        holder.wait(timeout=30)
    error = raised.value.user_exception
    assert isinstance(error, WarehouseBusyError)
    assert f"{database} stayed locked by another process for 1s; the run wrote nothing" in str(error)
