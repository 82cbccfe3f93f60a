"""The lake I/O manager on its own: a month replaced in one commit, typed empty months, schema rules, commit
metadata, and a writer killed in the middle of a commit."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable

from dataops_assets.partitions import MONTHLY
from dataops_assets.storage import PARTITION_COLUMN, STORED_COLUMNS, lake_io_manager
from dataops_assets_tests.fixtures.pipeline import step_failures

Frame = Callable[[], pd.DataFrame]


def _partitioned(make: Frame) -> dg.AssetsDefinition:
    @dg.asset(key=["test", "readings"], partitions_def=MONTHLY, metadata={"partition_expr": PARTITION_COLUMN})
    def readings() -> pd.DataFrame:
        return make()

    return readings


def _unpartitioned(make: Frame) -> dg.AssetsDefinition:
    @dg.asset(key=["test", "lookup"])
    def lookup() -> pd.DataFrame:
        return make()

    return lookup


def _write(lake: Path, asset: dg.AssetsDefinition, partition: str | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset], resources={"io_manager": lake_io_manager(str(lake))}, partition_key=partition, raise_on_error=False
    )


def _table(lake: Path, name: str = "readings") -> DeltaTable:
    return DeltaTable(str(lake / "test" / name))


def _rows_by_month(lake: Path) -> list[tuple[str, str, float]]:
    frame = _table(lake).to_pandas().sort_values([PARTITION_COLUMN, "station"])
    return [(f"{m:%Y-%m}", s, v) for m, s, v in frame[[PARTITION_COLUMN, "station", "value"]].itertuples(index=False)]


def _readings(*rows: tuple[str, float]) -> Frame:
    return lambda: pd.DataFrame(rows, columns=["station", "value"])


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def test_a_month_is_replaced_in_one_commit_and_the_others_are_kept(lake: Path) -> None:
    assert _write(lake, _partitioned(_readings(("EWR", 1.0), ("JFK", 2.0), ("LGA", 3.0))), "2013-01").success
    assert _write(lake, _partitioned(_readings(("EWR", 10.0))), "2013-02").success
    result = _write(lake, _partitioned(_readings(("EWR", 4.0), ("JFK", 5.0))), "2013-01")
    assert result.success
    assert _rows_by_month(lake) == [("2013-01", "EWR", 4.0), ("2013-01", "JFK", 5.0), ("2013-02", "EWR", 10.0)]
    assert _table(lake).version() == 2  # one commit per write
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["dagster/partition_row_count"].value == 2
    assert metadata["dagster/row_count"].value == 3
    assert metadata["dagster/table_name"].value == "test.readings"
    schema = metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema)
    assert [(c.name, c.type) for c in schema.columns] == [("station", "string"), ("value", "double")]


def test_each_commit_names_its_run_and_month(lake: Path) -> None:
    result = _write(lake, _partitioned(_readings(("EWR", 1.0))), "2013-03")
    commit = _table(lake).history(1)[0]
    assert commit["dagster_run_id"] == result.run_id
    assert commit["partition"] == "2013-03"


def test_a_month_read_back_has_no_partition_column_and_only_its_rows(lake: Path) -> None:
    _write(lake, _partitioned(_readings(("EWR", 1.0))), "2013-01")
    _write(lake, _partitioned(_readings(("JFK", 2.0), ("LGA", 3.0))), "2013-02")

    @dg.asset(partitions_def=MONTHLY, ins={"readings": dg.AssetIn(key=["test", "readings"])})
    def downstream(readings: pd.DataFrame) -> dg.MaterializeResult:
        assert list(readings.columns) == ["station", "value"]
        return dg.MaterializeResult(metadata={"stations": ",".join(sorted(readings["station"]))})

    io_manager = lake_io_manager(str(lake))
    result = dg.materialize(
        [downstream, _partitioned(_readings())],
        resources={"io_manager": io_manager},
        partition_key="2013-02",
        selection=[downstream],
    )
    assert result.get_asset_materialization_events()[0].materialization.metadata["stations"].value == "JFK,LGA"


def test_a_read_of_some_columns_reads_those_the_table_has_and_names_every_stored_column(lake: Path) -> None:
    """What the checks rely on to load only the columns they judge, and still judge the table's schema."""
    write = _partitioned(lambda: pd.DataFrame({"station": ["EWR", "JFK"], "value": [1.0, 2.0], "note": ["a", "b"]}))
    _write(lake, write, "2013-01")
    seen: dict[str, object] = {}

    @dg.asset(
        partitions_def=MONTHLY,
        ins={"readings": dg.AssetIn(key=["test", "readings"], metadata={"columns": ["value", "gone", "station"]})},
    )
    def downstream(readings: pd.DataFrame) -> None:
        seen["columns"] = list(readings.columns)
        seen["stored"] = readings.attrs[STORED_COLUMNS]
        seen["values"] = readings["value"].tolist()

    result = dg.materialize(
        [downstream, write],
        resources={"io_manager": lake_io_manager(str(lake))},
        partition_key="2013-01",
        selection=[downstream],
    )
    assert result.success
    assert seen == {"columns": ["value", "station"], "stored": ["station", "value", "note"], "values": [1.0, 2.0]}


def test_drifted_columns_fail_naming_table_and_month_and_keep_the_previous_version(lake: Path) -> None:
    assert _write(lake, _partitioned(_readings(("EWR", 1.0), ("JFK", 2.0))), "2013-01").success

    def drifted() -> pd.DataFrame:
        return pd.DataFrame({"station": ["EWR"], "value": [9.0], "unit": ["F"]})

    result = _write(lake, _partitioned(drifted), "2013-01")
    assert not result.success
    message = step_failures(result)["test__readings"]
    assert "SchemaDriftError" in message
    assert "test.readings has other columns than the data written to it for 2013-01 (new: ['unit']" in message
    assert _rows_by_month(lake) == [("2013-01", "EWR", 1.0), ("2013-01", "JFK", 2.0)]
    assert _table(lake).version() == 0


def test_a_write_the_table_cannot_take_fails_and_keeps_the_previous_version(lake: Path) -> None:
    assert _write(lake, _partitioned(_readings(("EWR", 1.0), ("JFK", 2.0))), "2013-01").success
    result = _write(lake, _partitioned(lambda: pd.DataFrame({"station": ["EWR"], "value": ["n/a"]})), "2013-01")
    assert not result.success
    assert _rows_by_month(lake) == [("2013-01", "EWR", 1.0), ("2013-01", "JFK", 2.0)]
    assert _table(lake).version() == 0


def test_a_damaged_table_fails_the_write_in_one_line_naming_it_and_what_to_do(lake: Path) -> None:
    assert _write(lake, _partitioned(_readings(("EWR", 1.0))), "2013-01").success
    log = lake / "test" / "readings" / "_delta_log" / "00000000000000000000.json"
    log.write_text("garbage{")

    result = _write(lake, _partitioned(_readings(("EWR", 2.0))), "2013-02")
    assert not result.success
    message = step_failures(result)["test__readings"]
    first_line = message.strip().splitlines()[0]
    assert f"the Delta table {lake / 'test' / 'readings'} cannot be read (" in first_line
    assert "move the folder away and re-run every month" in first_line
    assert log.read_text() == "garbage{"  # nothing written over it


def test_an_empty_month_keeps_the_stored_types_and_a_new_table_types_empty_text(lake: Path) -> None:
    def no_notes() -> pd.DataFrame:
        return pd.DataFrame({"station": ["EWR"], "value": [1.0], "note": [None]})

    assert _write(lake, _partitioned(no_notes), "2013-01").success
    fields = {f.name: str(f.type) for f in _table(lake).schema().fields}
    assert fields["note"] == 'PrimitiveType("string")'

    def empty() -> pd.DataFrame:
        return pd.DataFrame({"station": pd.Series([], dtype=object), "value": [], "note": []})

    assert _write(lake, _partitioned(empty), "2013-02").success
    assert {f.name: str(f.type) for f in _table(lake).schema().fields} == fields


def test_a_reference_table_is_replaced_whole_and_follows_its_frame(lake: Path) -> None:
    assert _write(lake, _unpartitioned(lambda: pd.DataFrame({"code": ["EWR", "JFK"]}))).success
    renamed = pd.DataFrame({"faa": ["LGA"], "name": ["La Guardia"]})
    assert _write(lake, _unpartitioned(lambda: renamed)).success
    assert _table(lake, "lookup").to_pandas().to_dict("records") == [{"faa": "LGA", "name": "La Guardia"}]


_KILLED_WRITER = """
import sys, dagster as dg, numpy as np, pandas as pd
from dataops_assets.partitions import MONTHLY
from dataops_assets.storage import PARTITION_COLUMN, STORED_COLUMNS, lake_io_manager

rows = int(sys.argv[2])

@dg.asset(key=["test", "readings"], partitions_def=MONTHLY, metadata={"partition_expr": PARTITION_COLUMN})
def readings() -> pd.DataFrame:
    print("writing", flush=True)
    return pd.DataFrame({"station": np.repeat(["NEW"], rows), "value": np.arange(rows, dtype="float64")})

dg.materialize([readings], resources={"io_manager": lake_io_manager(sys.argv[1])}, partition_key="2013-01")
"""


def test_a_writer_killed_in_the_middle_of_a_write_leaves_the_previous_version(lake: Path, tmp_path: Path) -> None:
    assert _write(lake, _partitioned(_readings(("EWR", 1.0), ("JFK", 2.0))), "2013-01").success
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(_KILLED_WRITER))
    month_folder = lake / "test" / "readings" / f"{PARTITION_COLUMN}=2013-01-01"
    before = set(month_folder.iterdir())
    writer = subprocess.Popen([sys.executable, str(script), str(lake), "30000000"], stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        # kill once the new data file is being written, before its commit
        while not (set(month_folder.iterdir()) - before) and time.monotonic() < deadline:
            assert writer.poll() is None, "the writer ended before it was killed"
            time.sleep(0.01)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert set(month_folder.iterdir()) - before, "the writer never started a data file"
    assert _table(lake).version() == 0
    assert _rows_by_month(lake) == [("2013-01", "EWR", 1.0), ("2013-01", "JFK", 2.0)]
    assert _write(lake, _partitioned(_readings(("EWR", 3.0))), "2013-01").success
    assert _rows_by_month(lake) == [("2013-01", "EWR", 3.0)]
