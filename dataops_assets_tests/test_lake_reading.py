"""Reading the lake: DuckDB in memory over each table's last committed version, ``dataops summary`` and
``dataops sql``, which refuses anything but a read, and neither waits for nor disturbs a process writing."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake

from dataops_assets.environments import Settings
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets_tests.fixtures.lake import lake_environment
from dataops_assets_tests.fixtures.lake_writers import seed_table, start_rewriter, stop_process, wait_for_versions
from dataops_ops.cli import main
from dataops_ops.lake import LakeError, connect_lake, read_only_query, table_uri

_SUMMARY_LINE = re.compile(r"^(?P<table>[a-z_]+/[a-z_]+)\s+(?P<rows>[\d,]+)\s+(?P<partitions>\d+|-)$")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """core.flights (three months of 4 rows), marts.carrier_monthly (two months of 2) and staging.airlines."""
    settings = lake_environment(monkeypatch, tmp_path)
    seed_table(table_uri(settings, "core.flights"), MONTH_KEYS[:3], rows=4)
    seed_table(table_uri(settings, "marts.carrier_monthly"), MONTH_KEYS[:2], rows=2)
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
    }


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
            # each month: its 4 rows, all from one writer, whichever commit was the last
            assert re.findall(r"│\s+(\d+) │\s+(\d+) │\s+(\d+) │", capsys.readouterr().out) == [("4", "1", "4")] * 3
            reads += 1
        last = wait_for_versions(uri, after=first)
    finally:
        stop_process(writer)
    assert last > first  # the writer kept committing while the reads ran
