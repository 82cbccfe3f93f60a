"""The flights flow in one process with plain pandas and DuckDB, no Dagster: the first baseline of ``make bench``.

It does what the pipeline does for every month, with the same pure transforms from ``dataops_assets.transforms``:

raw       read each landed month (``read_landed``, all text) and the reference files; write them to ``raw.*``
staging   type flights and weather per month, stage the reference tables once; write ``staging.*`` and
          ``quarantine.quarantined_*`` (the pipeline's table names, so ``report.py`` compares rows per table)
core      enrich each month's flights with weather, plane, airline and destination; write ``core.flights``
marts     carrier and route monthly performance; write ``marts.*``

Every layer writes its tables into one DuckDB file (``insert`` per month over one connection). What it does not do
is what the pipeline adds: storing every asset and reading its inputs back, a run and an event log per month, and
the asset checks.

Time and rows are accumulated per layer over the months. Peak memory per layer is the highest resident set size
sampled in-process by a thread while that layer was running (``--no-sampler`` turns it off: ``benchmarks/bench.py``
measures the whole process from outside instead).

    .venv/bin/python benchmarks/plain_pandas.py --landing-dir DIR [--database FILE] [--months ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import psutil

from dataops_assets.landing import flights_file, read_landed, reference_file, weather_file
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets.transforms import flights as flights_transform
from dataops_assets.transforms import marts
from dataops_assets.transforms import weather as weather_transform
from dataops_assets.transforms.core import enrich_flights
from dataops_assets.transforms.reference import REFERENCE_SPECS, stage_reference
from dataops_assets.transforms.typing import Staged

LAYERS: tuple[str, ...] = ("raw", "staging", "core", "marts", "finish")  # finish: DuckDB checkpoint and close
_FRAME_VIEW = "_plain_frame"
_MIB = 1024 * 1024


@dataclass
class LayerStats:
    """One layer summed over all months: wall seconds, rows read in, rows written out, and when it ran."""

    seconds: float = 0.0
    rows_in: int = 0
    rows_out: int = 0
    intervals: list[tuple[float, float]] = field(default_factory=list)
    peak_rss_mib: float | None = None


@dataclass
class PlainResult:
    landing_dir: str
    database: str
    months: list[str]
    wall_seconds: float
    started_at: float
    finished_at: float
    layers: dict[str, LayerStats]
    quarantined_rows: int
    ru_maxrss_mib: float
    cpu_seconds: float
    memory_method: str
    tables: dict[str, int] = field(default_factory=dict)


class _RssSampler:
    """Samples this process's RSS from a thread; a stand-in when nobody samples from the outside."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._process = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self._process.memory_info().rss))
            self._stop.wait(self.interval)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _Recorder:
    def __init__(self) -> None:
        self.layers = {layer: LayerStats() for layer in LAYERS}

    @contextmanager
    def layer(self, name: str) -> Iterator[LayerStats]:
        stats = self.layers[name]
        start_wall, start = time.time(), time.perf_counter()
        try:
            yield stats
        finally:
            stats.seconds += time.perf_counter() - start
            stats.intervals.append((start_wall, time.time()))


def _typed_select(frame: pd.DataFrame) -> str:
    """Text columns as VARCHAR even when a month has no rows (as the warehouse I/O manager does)."""
    texts = [
        str(name) for name, dtype in frame.dtypes.items() if dtype.kind == "O" or isinstance(dtype, pd.StringDtype)
    ]
    if not texts:
        return f"select * from {_FRAME_VIEW}"
    casts = ", ".join(f'cast("{name}" as varchar) as "{name}"' for name in texts)
    return f"select * replace ({casts}) from {_FRAME_VIEW}"


def write_table(connection: duckdb.DuckDBPyConnection, schema: str, table: str, frame: pd.DataFrame) -> int:
    """Append a frame to ``schema.table``, creating both on first use; returns the rows written."""
    connection.register(_FRAME_VIEW, frame)
    try:
        select = _typed_select(frame)
        connection.execute(f"create schema if not exists {schema}")
        connection.execute(f"create table if not exists {schema}.{table} as {select} limit 0")
        connection.execute(f"insert into {schema}.{table} by name {select}")
    finally:
        connection.unregister(_FRAME_VIEW)
    return len(frame)


def _month_start(key: str) -> pd.Timestamp:
    return pd.Timestamp(f"{key}-01")


def _quarantine(staged: Staged, run_id: str) -> pd.DataFrame:
    quarantined = staged.quarantined.assign(_run_id=run_id, _quarantined_at=pd.Timestamp.now("UTC"))
    quarantined["_quarantined_at"] = quarantined["_quarantined_at"].dt.tz_localize(None)
    return quarantined


def run_plain(landing_dir: Path, database: Path, months: tuple[str, ...] = MONTH_KEYS) -> PlainResult:
    """Run the whole flow for ``months`` from ``landing_dir`` into a fresh DuckDB file at ``database``."""
    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    recorder = _Recorder()
    run_id = str(uuid.uuid4())
    quarantined_rows = 0
    cpu_start = sum(psutil.Process().cpu_times()[:2])
    started_at, start = time.time(), time.perf_counter()
    with duckdb.connect(str(database)) as connection:
        reference: dict[str, pd.DataFrame] = {}
        for table, spec in REFERENCE_SPECS.items():
            with recorder.layer("raw") as raw_stats:
                raw = read_landed(reference_file(landing_dir, table), list(spec.source_columns))
                raw_stats.rows_in += len(raw)
                raw_stats.rows_out += write_table(connection, "raw", table, raw)
            with recorder.layer("staging") as staging_stats:
                reference[table] = stage_reference(table, raw)
                staging_stats.rows_in += len(raw)
                staging_stats.rows_out += write_table(connection, "staging", table, reference[table])

        for key in months:
            month_start = _month_start(key)
            with recorder.layer("raw") as raw_stats:
                raw_flights = read_landed(flights_file(landing_dir, key), flights_transform.SOURCE_COLUMNS, key)
                raw_weather = read_landed(weather_file(landing_dir, key), weather_transform.SOURCE_COLUMNS, key)
                for frame in (raw_flights, raw_weather):
                    frame.insert(0, "_partition_month", month_start)
                    raw_stats.rows_in += len(frame)
                raw_stats.rows_out += write_table(connection, "raw", "flights", raw_flights)
                raw_stats.rows_out += write_table(connection, "raw", "weather", raw_weather)

            with recorder.layer("staging") as staging_stats:
                staged_flights = flights_transform.stage_flights(raw_flights, month_start)
                staged_weather = weather_transform.stage_weather(raw_weather, month_start)
                staging_stats.rows_in += len(raw_flights) + len(raw_weather)
                for subject, staged in (("flights", staged_flights), ("weather", staged_weather)):
                    staging_stats.rows_out += write_table(connection, "staging", subject, staged.valid)
                    quarantine = _quarantine(staged, run_id)
                    quarantined_rows += write_table(connection, "quarantine", f"quarantined_{subject}", quarantine)
            del raw_flights, raw_weather

            with recorder.layer("core") as core_stats:
                core = enrich_flights(
                    staged_flights.valid,
                    staged_weather.valid,
                    reference["planes"],
                    reference["airlines"],
                    reference["airports"],
                )
                core_stats.rows_in += len(staged_flights.valid)
                core_stats.rows_out += write_table(connection, "core", "flights", core)
            del staged_flights, staged_weather

            with recorder.layer("marts") as marts_stats:
                for name, build in (("carrier_monthly", marts.carrier_monthly), ("route_monthly", marts.route_monthly)):
                    marts_stats.rows_in += len(core)
                    marts_stats.rows_out += write_table(connection, "marts", name, build(core, month_start))
            del core
        with recorder.layer("finish"):
            connection.close()
    finished_at = time.time()
    wall = time.perf_counter() - start
    return PlainResult(
        landing_dir=str(landing_dir),
        database=str(database),
        months=list(months),
        wall_seconds=wall,
        started_at=started_at,
        finished_at=finished_at,
        layers=recorder.layers,
        quarantined_rows=quarantined_rows,
        ru_maxrss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        cpu_seconds=sum(psutil.Process().cpu_times()[:2]) - cpu_start,
        memory_method="none",
    )


def attribute_peaks(layers: dict[str, LayerStats], samples: list[tuple[float, int]]) -> None:
    """Set each layer's peak RSS to the highest sample taken inside one of its intervals."""
    for stats in layers.values():
        inside = [rss for at, rss in samples if any(start <= at <= end for start, end in stats.intervals)]
        stats.peak_rss_mib = max(inside) / _MIB if inside else None


def format_result(result: PlainResult) -> str:
    lines = [
        f"plain pandas: {len(result.months)} months from {result.landing_dir} in {result.wall_seconds:.1f} s "
        f"(cpu {result.cpu_seconds:.1f} s, ru_maxrss {result.ru_maxrss_mib:,.0f} MiB)",
        f"{'layer':<9}{'seconds':>9}{'rows in':>13}{'rows out':>13}{'rows in/s':>12}{'peak RSS MiB':>14}",
    ]
    for name, stats in result.layers.items():
        rate = stats.rows_in / stats.seconds if stats.seconds else 0.0
        peak = "-" if stats.peak_rss_mib is None else f"{stats.peak_rss_mib:,.0f}"
        lines.append(f"{name:<9}{stats.seconds:>9.2f}{stats.rows_in:>13,}{stats.rows_out:>13,}{rate:>12,.0f}{peak:>14}")
    lines.append(f"quarantined rows: {result.quarantined_rows:,}")
    return "\n".join(lines)


def to_json(result: PlainResult) -> dict[str, Any]:
    return asdict(result)


def table_counts(database: Path) -> dict[str, int]:
    """Rows per ``layer.table`` of the DuckDB file (after the run, outside the measured time)."""
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = connection.execute("select table_schema, table_name from information_schema.tables order by 1, 2")
        counts = {}
        for schema, table in tables.fetchall():
            row = connection.execute(f"select count(*) from {schema}.{table}").fetchone()
            counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landing-dir", type=Path, required=True)
    parser.add_argument("--database", type=Path, default=None, help="default: plain.duckdb beside the landing")
    parser.add_argument("--months", nargs="+", default=list(MONTH_KEYS), metavar="YYYY-MM")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument(
        "--no-sampler", action="store_true", help="do not sample RSS in-process (the caller measures from outside)"
    )
    args = parser.parse_args(argv)
    database = args.database or args.landing_dir.parent / "plain.duckdb"
    months = tuple(args.months)
    if args.no_sampler:
        result = run_plain(args.landing_dir, database, months)
    else:
        with _RssSampler() as sampler:
            result = run_plain(args.landing_dir, database, months)
        attribute_peaks(result.layers, sampler.samples)
        result.memory_method = "RSS sampled every 10 ms by a thread in this process, attributed to the running layer"
    result.tables = table_counts(database)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(result), indent=2))
    print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
