"""Run metrics: a record per run in the warehouse's ``ops`` schema, and the Prometheus text exposition of them.

Tables (timestamps are UTC, without zone), rewritten per run id so recording a run twice changes nothing:

- ``ops.runs``: run id, job, partition, environment, status, started_at, ended_at, duration_seconds, rows (rows
  written by the run's materializations), checks and failed_checks (and how many of those were ERROR);
- ``ops.asset_materializations``: per asset of the run: status, duration, rows in / out / quarantined / written
  and rows per second;
- ``ops.check_evaluations``: per check evaluation of the run: passed, severity, description.

So latency, throughput and error rate over time are plain SQL, e.g. the share of failed runs per week::

    select date_trunc('week', started_at) as week, avg((status <> 'SUCCESS')::int) from ops.runs group by 1

``exposition`` turns the tables into the Prometheus text format (version 0.0.4) for a scraper or the node_exporter
textfile collector (``dataops metrics --output``). DuckDB lets one process write a database file at a time, so a
write that meets the lock of a run in progress is retried for a while before it gives up.
"""

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from dataops_assets.observability.runlog import AssetDigest, RunDigest
from dataops_assets.warehouse import connect_waiting

SCHEMA = "ops"
_DDL = (
    f"create schema if not exists {SCHEMA}",
    f"""create table if not exists {SCHEMA}.runs (
        run_id varchar, job varchar, partition varchar, environment varchar, status varchar,
        started_at timestamp, ended_at timestamp, duration_seconds double, rows bigint,
        checks integer, failed_checks integer, failed_error_checks integer, recorded_at timestamp)""",
    f"""create table if not exists {SCHEMA}.asset_materializations (
        run_id varchar, asset varchar, partition varchar, environment varchar, status varchar,
        started_at timestamp, ended_at timestamp, duration_seconds double, rows_in bigint, rows_out bigint,
        rows_quarantined bigint, rows_written bigint, rows_per_second double)""",
    f"""create table if not exists {SCHEMA}.check_evaluations (
        run_id varchar, asset varchar, check_name varchar, partition varchar, environment varchar,
        passed boolean, severity varchar, evaluated_at timestamp, description varchar)""",
)
_TABLES = ("runs", "asset_materializations", "check_evaluations")

T = TypeVar("T")


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)


def asset_status(asset: AssetDigest) -> str:
    if asset.materialized is not None:
        return "materialized"
    if asset.failed is not None:
        return "failed"
    return "not_materialized" if asset.started is not None else "skipped"


def run_row(digest: RunDigest, environment: str, recorded_at: float) -> tuple[Any, ...]:
    failed = digest.failed_checks
    return (
        digest.run_id,
        digest.job_name,
        digest.partition,
        environment,
        digest.status,
        _utc(digest.started),
        _utc(digest.ended),
        digest.duration_seconds,
        digest.rows_written,
        len(digest.checks),
        len(failed),
        sum(check.severity == "ERROR" for check in failed),
        _utc(recorded_at),
    )


def asset_rows(digest: RunDigest, environment: str) -> list[tuple[Any, ...]]:
    rows = []
    for asset in digest.assets:
        written = asset.rows_written if asset.materialized is not None else None
        duration = asset.duration_seconds
        rate = written / duration if written is not None and duration else None
        rows.append(
            (
                digest.run_id,
                asset.asset,
                asset.partition,
                environment,
                asset_status(asset),
                _utc(asset.started),
                _utc(asset.materialized or asset.failed),
                duration,
                asset.number("rows_in"),
                asset.number("rows_out"),
                asset.number("rows_quarantined"),
                written,
                rate,
            )
        )
    return rows


def check_rows(digest: RunDigest, environment: str) -> list[tuple[Any, ...]]:
    return [
        (
            digest.run_id,
            check.asset,
            check.name,
            check.partition,
            environment,
            check.passed,
            check.severity,
            _utc(check.timestamp),
            check.description[:2000],
        )
        for check in digest.checks
    ]


def with_warehouse(
    path: Path,
    work: Callable[[duckdb.DuckDBPyConnection], T],
    *,
    read_only: bool = False,
    attempts: int = 20,
    delay: float = 0.25,
) -> T:
    """Run ``work`` on a connection to the warehouse, waiting (``attempts`` tries) while another process holds its
    lock; WarehouseBusyError when it stays locked."""
    pauses = (min(delay * attempt, 2.0) for attempt in range(1, attempts))
    connection = connect_waiting(path, pauses, read_only=read_only)
    try:
        return work(connection)
    finally:
        connection.close()


def record_run(warehouse_path: Path, environment: str, digest: RunDigest, recorded_at: float | None = None) -> None:
    """Write (or rewrite) the run's rows in the ``ops`` tables, in one transaction."""
    stamp = time.time() if recorded_at is None else recorded_at
    runs = [run_row(digest, environment, stamp)]
    assets = asset_rows(digest, environment)
    checks = check_rows(digest, environment)
    warehouse_path.parent.mkdir(parents=True, exist_ok=True)

    def write(connection: duckdb.DuckDBPyConnection) -> None:
        for statement in _DDL:
            connection.execute(statement)
        connection.begin()
        try:
            for table in _TABLES:
                connection.execute(f"delete from {SCHEMA}.{table} where run_id = ?", [digest.run_id])
            for table, rows in (("runs", runs), ("asset_materializations", assets), ("check_evaluations", checks)):
                if rows:
                    marks = ", ".join("?" * len(rows[0]))
                    connection.executemany(f"insert into {SCHEMA}.{table} values ({marks})", rows)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise

    with_warehouse(warehouse_path, write)


# ---------------------------------------------------------------------------------------------------------------
# Prometheus text exposition


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # counter, gauge, summary
    help: str
    query: str  # selects label columns, then the value column(s)
    labels: tuple[str, ...]
    suffixes: tuple[str, ...] = ("",)  # one value column per suffix (summary: _sum, _count)


_LATEST_ASSET = f"""
    select *, row_number() over (partition by asset, coalesce(partition, '') order by ended_at desc) as newest
    from {SCHEMA}.asset_materializations where status = 'materialized'"""
# the staged asset reports rows in, out and quarantined; its quarantine table repeats the count (no rows_in)
_STAGED = "rows_quarantined is not null and rows_in is not null"
_LATEST_RUN = f"""
    select *, row_number() over (partition by job, coalesce(partition, '') order by started_at desc) as newest
    from {SCHEMA}.runs"""

FAMILIES: tuple[Family, ...] = (
    Family(
        "dataops_runs_total",
        "counter",
        "Finished runs by job and status.",
        f"select environment, job, status, count(*) from {SCHEMA}.runs group by all",
        ("environment", "job", "status"),
    ),
    Family(
        "dataops_run_duration_seconds",
        "summary",
        "Wall time of finished runs, start to end.",
        f"select environment, job, sum(duration_seconds), count(duration_seconds) from {SCHEMA}.runs group by all",
        ("environment", "job"),
        ("_sum", "_count"),
    ),
    Family(
        "dataops_last_run_duration_seconds",
        "gauge",
        "Wall time of the latest run of each job and partition.",
        f"select environment, job, partition, duration_seconds from ({_LATEST_RUN}) where newest = 1",
        ("environment", "job", "partition"),
    ),
    Family(
        "dataops_last_run_success",
        "gauge",
        "1 when the latest run of the job and partition succeeded, else 0.",
        f"select environment, job, partition, (status = 'SUCCESS')::int from ({_LATEST_RUN}) where newest = 1",
        ("environment", "job", "partition"),
    ),
    Family(
        "dataops_last_run_end_timestamp_seconds",
        "gauge",
        "When the latest run of the job and partition ended (Unix time).",
        f"select environment, job, partition, epoch(ended_at) from ({_LATEST_RUN}) where newest = 1",
        ("environment", "job", "partition"),
    ),
    Family(
        "dataops_last_run_failed_checks",
        "gauge",
        "Failed asset checks in the latest run of the job and partition.",
        f"select environment, job, partition, failed_checks from ({_LATEST_RUN}) where newest = 1",
        ("environment", "job", "partition"),
    ),
    Family(
        "dataops_rows_written_total",
        "counter",
        "Rows written by all materializations of each asset.",
        f"""select environment, asset, sum(rows_written) from {SCHEMA}.asset_materializations
            where status = 'materialized' group by all""",
        ("environment", "asset"),
    ),
    Family(
        "dataops_asset_rows",
        "gauge",
        "Rows written by the latest materialization of each asset and partition.",
        f"select environment, asset, partition, rows_written from ({_LATEST_ASSET}) where newest = 1",
        ("environment", "asset", "partition"),
    ),
    Family(
        "dataops_asset_duration_seconds",
        "gauge",
        "Duration of the latest materialization of each asset and partition (step start to materialization).",
        f"select environment, asset, partition, duration_seconds from ({_LATEST_ASSET}) where newest = 1",
        ("environment", "asset", "partition"),
    ),
    Family(
        "dataops_asset_rows_per_second",
        "gauge",
        "Throughput of the latest materialization of each asset and partition.",
        f"select environment, asset, partition, rows_per_second from ({_LATEST_ASSET}) where newest = 1",
        ("environment", "asset", "partition"),
    ),
    Family(
        "dataops_quarantined_rows",
        "gauge",
        "Rows set aside to quarantine by the latest materialization of each staged asset and partition.",
        f"""select environment, asset, partition, rows_quarantined from ({_LATEST_ASSET})
            where newest = 1 and {_STAGED}""",
        ("environment", "asset", "partition"),
    ),
    Family(
        "dataops_quarantined_rows_total",
        "counter",
        "Rows set aside to quarantine by all materializations of each staged asset.",
        f"""select environment, asset, sum(rows_quarantined) from {SCHEMA}.asset_materializations
            where status = 'materialized' and {_STAGED} group by all""",
        ("environment", "asset"),
    ),
    Family(
        "dataops_check_evaluations_total",
        "counter",
        "Asset check evaluations by result.",
        f"""select environment, asset, check_name, severity, case when passed then 'passed' else 'failed' end,
            count(*) from {SCHEMA}.check_evaluations group by all""",
        ("environment", "asset", "check", "severity", "result"),
    ),
    Family(
        "dataops_failed_checks_total",
        "counter",
        "Failed asset check evaluations.",
        f"""select environment, asset, check_name, severity, count(*) from {SCHEMA}.check_evaluations
            where not passed group by all""",
        ("environment", "asset", "check", "severity"),
    ),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> str:
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return str(int(number)) if number.is_integer() and abs(number) < 2**53 else repr(number)


def _sample(name: str, labels: Sequence[str], values: Sequence[Any], value: Any) -> str:
    pairs = [f'{label}="{_escape(str(v))}"' for label, v in zip(labels, values, strict=True) if v is not None]
    return f"{name}{{{','.join(pairs)}}} {_number(value)}" if pairs else f"{name} {_number(value)}"


def render(families: Iterable[tuple[Family, Sequence[Sequence[Any]]]]) -> str:
    """Families and their rows (labels then values) as Prometheus text exposition format 0.0.4."""
    lines = []
    for family, rows in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for row in sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r)):
            label_values, values = row[: len(family.labels)], row[len(family.labels) :]
            for suffix, value in zip(family.suffixes, values, strict=True):
                if value is not None:
                    lines.append(_sample(family.name + suffix, family.labels, label_values, value))
    return "\n".join(lines) + "\n"


def exposition(warehouse_path: Path) -> str:
    """The ``ops`` tables of the warehouse as Prometheus metrics (families without samples when there are none)."""

    def read(connection: duckdb.DuckDBPyConnection) -> list[tuple[Family, Sequence[Sequence[Any]]]]:
        present = connection.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name in (?, ?, ?)",
            [SCHEMA, *_TABLES],
        ).fetchone()
        if not present or present[0] < len(_TABLES):
            return [(family, []) for family in FAMILIES]
        return [(family, connection.execute(family.query).fetchall()) for family in FAMILIES]

    if not warehouse_path.exists():
        return render((family, []) for family in FAMILIES)
    return render(with_warehouse(warehouse_path, read, read_only=True))
