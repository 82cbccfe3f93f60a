"""Partition isolation, seen from outside: re-running one month with changed landing data changes that month only.

Three months are published; February's landing then changes (a flight removed, another one's delay changed) and
every other month's flights and weather files are removed, so a re-run that reached for them would fail. The
re-run of February succeeds, February's published rows show the change, and every row of January and March, in
every table, is exactly what it was (run ids included: no other month was written again).

Rows are assigned to months by each asset's ``partition_expr`` column, read from the Definitions, and tables are
read through ``fixtures.pipeline.read_table``, so the test knows neither the storage nor the run path.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd
import pytest

from dataops_assets import landing
from dataops_assets.definitions import build_definitions
from dataops_assets.environments import Settings
from dataops_assets.transforms import flights
from dataops_assets_tests.fixtures.landing import FLIGHTS, MONTHS, write_landing
from dataops_assets_tests.fixtures.pipeline import (
    comparable,
    fixture_settings,
    materialize_partition,
    read_table,
    step_failures,
    table_names,
)

RERUN = "2013-02"
OTHERS = tuple(month for month in MONTHS if month != RERUN)
REMOVED = ("AA", "1141")  # carrier and flight number of the February flight the new landing drops
DELAYED = ("B6", "725", "95")  # the February flight whose departure delay changes, and its new delay


def partition_columns(settings: Settings) -> dict[str, str]:
    """``layer.table`` -> the column that holds its partition, for every monthly partitioned asset."""
    specs = build_definitions(settings).resolve_all_asset_specs()
    return {
        f"{spec.key.path[0]}.{spec.key.path[-1]}": str(spec.metadata["partition_expr"])
        for spec in specs
        if spec.partitions_def is not None
    }


def by_month(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_datetime(frame[column]).dt.strftime("%Y-%m")


def snapshot(settings: Settings) -> dict[str, pd.DataFrame]:
    """Every table's rows as published; run ids and times kept, so a rewritten row shows."""
    return {table: read_table(settings, table) for table in table_names(settings)}


def rows_of(frame: pd.DataFrame, column: str | None, months: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``months`` (all rows of an unpartitioned table), in a stable order, comparable as text."""
    selected = frame if column is None else frame[by_month(frame, column).isin(months)]
    selected = selected.astype(str)
    return selected.sort_values(list(selected.columns)).reset_index(drop=True)


def changed_february(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    carrier, number, delay = DELAYED
    changed = []
    for row in rows:
        if (row["carrier"], row["flight"]) == REMOVED:
            continue
        delayed = (row["carrier"], row["flight"]) == (carrier, number)
        changed.append({**row, "dep_delay": delay} if delayed else row)
    return changed


def land_changed_february_only(settings: Settings) -> None:
    """February's flights file replaced by the changed rows; the other months' monthly files removed."""
    path = landing.flights_file(settings.landing_dir, RERUN)
    rows = changed_february([dict(row) for row in FLIGHTS[RERUN]])
    frame = pd.DataFrame(rows, columns=flights.SOURCE_COLUMNS, dtype=str)
    landing.write_atomically(frame, path)
    for month in OTHERS:
        landing.flights_file(settings.landing_dir, month).unlink()
        landing.weather_file(settings.landing_dir, month).unlink()


@dataclass(frozen=True)
class Rerun:
    settings: Settings
    before: dict[str, pd.DataFrame]
    after: dict[str, pd.DataFrame]
    result: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def rerun(tmp_path_factory: pytest.TempPathFactory) -> Rerun:
    settings = fixture_settings(tmp_path_factory.mktemp("isolation"))
    write_landing(settings.landing_dir, MONTHS)
    for month in MONTHS:
        assert materialize_partition(settings, month).success, month
    before = snapshot(settings)
    land_changed_february_only(settings)
    result = materialize_partition(settings, RERUN)
    return Rerun(settings, before, snapshot(settings), result)


def test_the_rerun_needs_only_its_own_month(rerun: Rerun) -> None:
    assert rerun.result.success, step_failures(rerun.result)


def test_every_row_of_the_other_months_is_unchanged(rerun: Rerun) -> None:
    columns = partition_columns(rerun.settings)
    assert set(columns) <= set(rerun.before), "a partitioned table was not published"
    assert sorted(rerun.after) == sorted(rerun.before)
    for table, before in rerun.before.items():
        column = columns.get(table)
        others = rows_of(before, column, OTHERS)
        if not table.startswith("quarantine."):  # only January has a quarantined row (fixtures/landing.py)
            assert not others.empty, f"{table}: no rows of {OTHERS} to compare"
        pd.testing.assert_frame_equal(rows_of(rerun.after[table], column, OTHERS), others, obj=table)


def test_the_rerun_month_shows_the_changed_landing(rerun: Rerun) -> None:
    columns = partition_columns(rerun.settings)
    core = comparable(read_table(rerun.settings, "core.flights"), rerun.settings)
    february = core[by_month(core, columns["core.flights"]) == RERUN]
    flown = set(zip(february["carrier"], february["flight"].astype(str), strict=True))
    assert flown == {("UA", "1545"), ("B6", "725")}
    delay = february.loc[february["carrier"] == "B6", "dep_delay"]
    assert delay.astype(float).tolist() == [float(DELAYED[2])]
    carriers = read_table(rerun.settings, "marts.carrier_monthly")
    february_carriers = carriers.loc[by_month(carriers, columns["marts.carrier_monthly"]) == RERUN, "carrier"]
    assert sorted(february_carriers) == ["B6", "UA"]
