"""Reading the lake: DuckDB in memory over each table (core and the marts: the months their publish record
names), ``dataops summary`` and ``dataops sql``, which refuses anything but a read, and neither waits for nor
disturbs a process writing."""

from __future__ import annotations

import re
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake

from dataops_assets.environments import Settings
from dataops_assets.maintenance import maintain_table
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets_tests.fixtures.lake import lake_environment
from dataops_assets_tests.fixtures.lake_writers import (
    month_frame,
    seed_table,
    start_rewriter,
    stop_process,
    wait_for_versions,
    write_month,
)
from dataops_assets_tests.fixtures.publishing import publish_last_writes
from dataops_ops.cli import main
from dataops_ops.lake import LakeError, connect_lake, read_only_query, restore_table, table_uri, verify_lake

_SUMMARY_LINE = re.compile(r"^(?P<table>[a-z_]+/[a-z_]+)\s+(?P<rows>[\d,]+)\s+(?P<partitions>\d+|-)$")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """core.flights (three months of 4 rows), marts.carrier_monthly (two months of 2), both published, and
    staging.airlines."""
    settings = lake_environment(monkeypatch, tmp_path)
    seed_table(table_uri(settings, "core.flights"), MONTH_KEYS[:3], rows=4)
    seed_table(table_uri(settings, "marts.carrier_monthly"), MONTH_KEYS[:2], rows=2)
    for key in MONTH_KEYS[:3]:
        publish_last_writes(
            settings, key, ["core.flights", *(["marts.carrier_monthly"] if key < MONTH_KEYS[2] else [])]
        )
    airlines = pd.DataFrame({"carrier": ["AA", "UA", "DL"], "name": ["American", "United", "Delta"]})
    write_deltalake(table_uri(settings, "staging.airlines"), airlines)
    return settings


def _summary(output: str) -> dict[str, tuple[int, str]]:
    matches = (_SUMMARY_LINE.match(line) for line in output.splitlines())
    return {m["table"]: (int(m["rows"].replace(",", "")), m["partitions"]) for m in matches if m}


def test_every_table_is_a_view_named_layer_table(settings: Settings) -> None:
    with connect_lake(settings) as connection:
        counts = connection.sql(
            "select (select count(*) from core.flights), (select count(*) from marts.carrier_monthly),"
            " (select count(*) from staging.airlines where carrier = 'UA')"
        ).fetchone()
    assert counts == (12, 4, 1)


def test_only_reads_are_accepted(settings: Settings) -> None:
    with connect_lake(settings) as connection:
        assert read_only_query(connection, "select count(*) from core.flights").fetchone() == (12,)
        assert read_only_query(connection, "explain select * from core.flights") is not None
        for statement in (
            "delete from core.flights",
            "drop view core.flights",
            "create table copied as select * from core.flights",
            "select 1; drop view core.flights",
        ):
            with pytest.raises(LakeError):
                read_only_query(connection, statement)
        assert read_only_query(connection, "select count(*) from core.flights").fetchone() == (12,)


def test_sql_prints_the_result_and_refuses_a_write(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "select writer, count(*) as flights from core.flights group by writer"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"│ seed\s+│\s+12 │", out), out

    assert main(["sql", "delete from core.flights"]) == 2
    assert "read-only here: SELECT or EXPLAIN only, not DELETE" in capsys.readouterr().err
    # the views are all it reads: neither files nor anything else on this machine
    assert main(["sql", f"copy (select 1) to '{settings.env_dir / 'out.csv'}'"]) == 2
    assert main(["sql", "select * from read_csv('/etc/hostname')"]) == 2
    assert "file system operations are disabled" in capsys.readouterr().err
    assert not (settings.env_dir / "out.csv").exists()
    assert DeltaTable(table_uri(settings, "core.flights")).to_pandas().shape[0] == 12


def test_summary_counts_rows_and_months(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary"]) == 0
    assert _summary(capsys.readouterr().out) == {
        "staging/airlines": (3, "-"),
        "core/flights": (12, "3"),
        "marts/carrier_monthly": (4, "2"),
        "publish/months": (5, "3"),
    }


def test_a_damaged_table_is_one_line_in_the_summary_and_the_others_are_still_counted(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Path(table_uri(settings, "core.flights")) / "_delta_log"
    for commit in log.glob("*.json"):
        commit.write_text("garbage{")

    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "Traceback" not in out
    [reason] = [line.strip() for line in out.splitlines() if line.strip().startswith("not readable:")]
    assert reason.startswith(f"not readable: core.flights: the Delta table {table_uri(settings, 'core.flights')}")
    assert _summary(out)["marts/carrier_monthly"] == (4, "2")
    with pytest.raises(LakeError, match=r"core\.flights: the Delta table .* cannot be read"):
        connect_lake(settings)


def test_summary_and_sql_succeed_while_another_process_writes(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = table_uri(settings, "core.flights")
    writer = start_rewriter(uri, MONTH_KEYS[:3], rows=4)
    try:
        first = wait_for_versions(uri, after=DeltaTable(uri).version())
        deadline, reads = time.monotonic() + 4, 0
        while time.monotonic() < deadline or reads < 3:
            assert main(["summary"]) == 0
            assert _summary(capsys.readouterr().out)["core/flights"] == (12, "3")
            query = "select count(*), count(distinct writer), count(distinct flight) from core.flights group by all"
            assert main(["sql", query.replace("group by all", "group by partition_month")]) == 0
            # each month: its 4 published rows, all from one writer, however many commits came since
            assert re.findall(r"│\s+(\d+) │\s+(\d+) │\s+(\d+) │", capsys.readouterr().out) == [("4", "1", "4")] * 3
            reads += 1
        last = wait_for_versions(uri, after=first)
    finally:
        stop_process(writer)
    assert last > first  # the writer kept committing while the reads ran


def _core_writers(settings: Settings) -> dict[str, set[str]]:
    with connect_lake(settings, ["core.flights"]) as connection:
        rows = connection.execute("select strftime(partition_month, '%Y-%m'), writer from core.flights").fetchall()
    writers: dict[str, set[str]] = {}
    for month, writer in rows:
        writers.setdefault(month, set()).add(writer)
    return writers


def test_a_month_rewritten_but_not_published_shows_as_published_until_it_is(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, key = table_uri(settings, "core.flights"), MONTH_KEYS[1]
    write_month(uri, month_frame(key, 7, "late"), key, run_id="late-run")  # a run stopped before publishing

    assert _core_writers(settings) == {MONTH_KEYS[0]: {"seed"}, key: {"seed"}, MONTH_KEYS[2]: {"seed"}}
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert _summary(out)["core/flights"] == (12, "3")
    assert f"    {key} shown as published (version 1, run seed-{key}); a later write of the month is not published" in (
        out.splitlines()
    )

    publish_last_writes(settings, key, ["core.flights", "marts.carrier_monthly"])
    assert _core_writers(settings)[key] == {"late"}
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert _summary(out)["core/flights"] == (4 + 7 + 4, "3") and "not published" not in out


def test_a_month_never_published_is_not_shown(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    key = MONTH_KEYS[5]
    write_month(table_uri(settings, "core.flights"), month_frame(key, 3, "unpublished"), key, run_id="run-x")

    assert key not in _core_writers(settings)
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert _summary(out)["core/flights"] == (12, "3")
    assert f"    not shown, never published: {key}" in out.splitlines()


def test_no_publish_record_shows_no_core_or_mart_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = lake_environment(monkeypatch, tmp_path)
    seed_table(table_uri(settings, "core.flights"), MONTH_KEYS[:2], rows=4)
    with connect_lake(settings) as connection:
        assert connection.sql("select count(*) from core.flights").fetchone() == (0,)
        assert "writer" in connection.sql("from core.flights").columns  # the view is there, with the table's columns


def test_a_vacuumed_published_version_fails_reads_with_one_line_naming_the_month(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, key = table_uri(settings, "core.flights"), MONTH_KEYS[1]
    write_month(uri, month_frame(key, 7, "late"), key, run_id="late-run")
    maintain_table(DeltaTable(uri), retention_hours=0, run_id="maintenance")  # compacts, then vacuums at once

    with pytest.raises(LakeError, match=rf"^core.flights {key}: the published version 1 is no longer readable"):
        connect_lake(settings)
    assert main(["sql", "select count(*) from marts.carrier_monthly"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"dataops sql: core.flights {key}:") and line.endswith(f"dataops run {key}")
    assert main(["summary"]) == 0  # the other tables are still summarized
    out = capsys.readouterr().out
    assert "    not readable: core.flights 2013-02: the published version 1" in out
    assert _summary(out)["marts/carrier_monthly"] == (4, "2")

    with dg.DagsterInstance.ephemeral() as instance:
        assert any(
            problem.startswith(f"core.flights {key}: the published")
            for problem in verify_lake(settings, instance).problems
        )

    publish_last_writes(settings, key, ["core.flights"])  # the month re-run and published
    assert _core_writers(settings)[key] == {"late"}


def test_months_published_before_maintenance_stay_readable(settings: Settings) -> None:
    uri = table_uri(settings, "core.flights")
    maintain_table(DeltaTable(uri), retention_hours=0, run_id="maintenance")
    assert _core_writers(settings) == {key: {"seed"} for key in MONTH_KEYS[:3]}


def test_a_restored_table_shows_its_restored_months(settings: Settings) -> None:
    restore_table(settings, "core.flights", 0)  # January only: the operator rolled the table back
    assert _core_writers(settings) == {MONTH_KEYS[0]: {"seed"}}
