"""``dataops verify``: every data file of core and the marts read in full, each month's rows compared with its
last materialization; a removed or damaged file, or rows the instance does not know of, fail it by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable

from dataops_assets.environments import Settings
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets_tests.fixtures.lake import lake_environment, record_month
from dataops_assets_tests.fixtures.lake_writers import month_frame, seed_table, write_month
from dataops_ops.cli import main
from dataops_ops.instance import open_instance
from dataops_ops.lake import partition_files, table_uri

MONTHS = MONTH_KEYS[:3]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """core.flights (3 months of 3,000 rows) and marts.carrier_monthly (3 of 4), recorded as materialized;
    staging.flights is not published, so verify leaves it alone."""
    settings = lake_environment(monkeypatch, tmp_path)
    with open_instance(settings) as instance:
        for table, rows in (("core.flights", 3_000), ("marts.carrier_monthly", 4)):
            seed_table(table_uri(settings, table), MONTHS, rows)
            for key in MONTHS:
                record_month(instance, table, key, rows)
    seed_table(table_uri(settings, "staging.flights"), MONTHS, rows=1)
    return settings


def _file_of(settings: Settings, table: str, key: str) -> str:
    """The one data file of month ``key``, as the table's log names it."""
    [file] = partition_files(DeltaTable(table_uri(settings, table)))[key]
    return file


def _verify(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["verify"])
    return code, capsys.readouterr().out.splitlines()


def test_a_consistent_lake_passes_with_one_line(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _verify(capsys) == (0, ["verify ok: 2 tables, 6 partitions, 6 files, 9,012 rows read, 0 problems"])


def test_a_removed_data_file_is_named(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    removed = _file_of(settings, "core.flights", "2013-02")
    (Path(table_uri(settings, "core.flights")) / removed).unlink()

    code, lines = _verify(capsys)

    assert code == 1
    assert lines[0].startswith(f"problem: core.flights 2013-02: unreadable data file {removed}: ")
    assert lines[1] == "problem: core.flights 2013-02: 0 rows in the lake, 3,000 in the last materialization (run none)"
    assert lines[2].startswith("verify FAILED: 2 tables, 6 partitions, 6 files, 6,012 rows read, 2 problems")


def test_a_damaged_data_file_is_named(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = Path(table_uri(settings, "marts.carrier_monthly")) / _file_of(
        settings, "marts.carrier_monthly", "2013-03"
    )
    content = bytearray(damaged.read_bytes())
    content[len(content) // 2 :] = b"\x00" * (len(content) - len(content) // 2)  # the footer and half the pages
    damaged.write_bytes(bytes(content))

    code, lines = _verify(capsys)

    assert code == 1
    assert lines[0].startswith(f"problem: marts.carrier_monthly 2013-03: unreadable data file {damaged.parent.name}/")
    assert lines[-1].endswith("2 problems")


def test_rows_the_instance_does_not_know_of_fail(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    # a month written behind Dagster's back, and a month replaced without its materialization being recorded
    write_month(table_uri(settings, "core.flights"), month_frame("2013-04", 7, "manual"), "2013-04", run_id="manual")
    write_month(table_uri(settings, "core.flights"), month_frame("2013-01", 9, "manual"), "2013-01", run_id="manual")

    code, lines = _verify(capsys)

    assert code == 1
    assert lines[:2] == [
        "problem: core.flights 2013-01: 9 rows in the lake, 3,000 in the last materialization (run none)",
        "problem: core.flights 2013-04: 7 rows in the lake, no materialization recorded",
    ]
