"""Versions of a lake table: ``dataops history`` names each commit's run, month and rows; a bad month published
to core and a mart and then restored with ``dataops restore`` gives the tables of the good version back, and the
instance's row counts follow, so ``dataops verify`` agrees."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from dataops_assets.environments import Settings
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets_tests.fixtures.lake import lake_environment, record_month
from dataops_assets_tests.fixtures.lake_writers import month_frame, write_month
from dataops_ops.cli import main
from dataops_ops.instance import open_instance
from dataops_ops.lake import table_uri

MONTHS = MONTH_KEYS[:3]
TABLES = {"core.flights": 5, "marts.carrier_monthly": 2}


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Three good months of core.flights and marts.carrier_monthly, each written and recorded by its run."""
    settings = lake_environment(monkeypatch, tmp_path)
    with open_instance(settings) as instance:
        for key in MONTHS:
            for table, rows in TABLES.items():
                write_month(table_uri(settings, table), month_frame(key, rows, "good"), key, run_id=f"good-{key}")
                record_month(instance, table, key, rows)
    return settings


def _publish_bad_february(settings: Settings) -> None:
    with open_instance(settings) as instance:
        for table in TABLES:
            write_month(table_uri(settings, table), month_frame("2013-02", 40, "bad"), "2013-02", run_id="bad-run")
            record_month(instance, table, "2013-02", 40)


def _table(settings: Settings, table: str, version: int | None = None) -> pd.DataFrame:
    frame = DeltaTable(table_uri(settings, table), version=version).to_pandas()
    return frame.sort_values(["partition_month", "flight"]).reset_index(drop=True)


def test_history_names_the_run_month_and_rows_of_each_version(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish_bad_february(settings)
    assert main(["history", "core.flights"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["version", "time", "(UTC)", "operation", "run", "partition", "rows"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[3], r[4], r[5], r[6]) for r in rows] == [
        ("3", "WRITE", "bad-run", "2013-02", "40"),
        ("2", "WRITE", "good-2013-03", "2013-03", "5"),
        ("1", "WRITE", "good-2013-02", "2013-02", "5"),
        ("0", "WRITE", "good-2013-01", "2013-01", "5"),
    ]
    assert main(["history", "core.nothing"]) == 2
    assert "no table core.nothing" in capsys.readouterr().err


def test_a_bad_month_restored_gives_the_good_tables_back(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {table: _table(settings, table) for table in TABLES}
    time.sleep(0.01)  # the bad commit's millisecond timestamp comes strictly after this moment
    between = datetime.now(UTC)
    _publish_bad_february(settings)
    assert main(["verify"]) == 0  # the instance records the bad month's rows: consistent, though bad

    assert main(["restore", "core.flights", "--version", "2"]) == 0
    out = capsys.readouterr().out
    assert "core.flights: restored version 2 as version 4; undone:" in out
    assert re.search(r"version 3 WRITE partition 2013-02 run bad-run", out)
    assert "partition 2013-02 now 5 rows" in out
    assert main(["restore", "marts.carrier_monthly", "--before", between.isoformat()]) == 0
    assert "marts.carrier_monthly: restored version 2 as version 4" in capsys.readouterr().out

    for table in TABLES:
        pd.testing.assert_frame_equal(_table(settings, table), good[table])
        assert len(DeltaTable(table_uri(settings, table)).history()) == 5  # the bad version is kept, not erased
    assert (_table(settings, "core.flights", version=3)["writer"] == "bad").sum() == 40
    # the restore recorded February's rows as a materialization: the instance describes the lake again
    assert main(["verify"]) == 0


def test_restore_refuses_a_version_it_cannot_restore(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["restore", "core.flights", "--version", "2"]) == 2  # already the latest
    assert main(["restore", "core.flights", "--version", "9"]) == 2
    assert main(["restore", "core.flights", "--before", "2000-01-01T00:00:00"]) == 2
    err = capsys.readouterr().err
    assert err.count("core.flights is at version 2: nothing to restore to version") == 2
    assert "no version was committed before 2000-01-01T00:00:00+00:00" in err
    assert len(DeltaTable(table_uri(settings, "core.flights")).history()) == 3
