"""The flights flow as plain DuckDB SQL over the landing files: the second baseline of ``make bench``.

What a user could write instead of a pipeline (e.g. as dbt-duckdb models): one set-based statement per table over
every month at once, no orchestrator, no checks, tables in one DuckDB file.

raw         the landed CSVs as text (``read_csv(all_varchar)``), with the file, the line and the partition month
staging     typed columns, natural keys, local and UTC departure; each row breaking a rule goes to quarantine
            with the first rule it broke: ``untypable``, ``null_key``, ``invalid_timestamp``,
            ``year_month_vs_partition``, ``duplicate_row``, ``duplicate_key`` (the pipeline's rules, in its order)
core        flights with the weather at the origin in the scheduled hour, the plane, the airline, the destination
marts       carrier_monthly and route_monthly: flights, cancellations, on-time share, mean and p90 delays

Differences from the pandas transforms that do not change row counts: DuckDB resolves the local times of the two
daylight-saving changes its own way (the weather hour of a handful of flights), and line numbers follow DuckDB's
scan order of each file.

    .venv/bin/python benchmarks/plain_sql.py --landing-dir DIR --database FILE [--months 2013-01 ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from dataops_assets.landing import flights_file, reference_file, weather_file
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets.transforms import flights, weather
from dataops_assets.transforms.reference import REFERENCE_SPECS

FLIGHT_INTEGERS = ("year", "month", "day", "sched_dep_time", "sched_arr_time", "flight")
FLIGHT_NUMBERS = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "distance")
FLIGHT_TEXTS = ("carrier", "tailnum", "origin", "dest")
FLIGHT_KEY = ("year", "month", "day", "sched_dep_time", "carrier", "flight", "origin")
WEATHER_INTEGERS = ("year", "month", "day", "hour")
WEATHER_MEASURES = ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib")
ON_TIME_MINUTES = 15

MACROS = """
create or replace macro txt(v) as nullif(nullif(trim(v), 'NA'), '');
create or replace macro num(v) as try_cast(txt(v) as double);
create or replace macro bad_number(v) as txt(v) is not null and num(v) is null;
create or replace macro bad_integer(v) as bad_number(v) or num(v) <> floor(num(v));
"""


@dataclass
class LayerStats:
    seconds: float = 0.0
    statements: int = 0


@dataclass
class SqlResult:
    landing_dir: str
    database: str
    months: list[str]
    wall_seconds: float
    layers: dict[str, LayerStats]
    tables: dict[str, int]
    ru_maxrss_mib: float
    cpu_seconds: float
    notes: list[str] = field(default_factory=list)


def _list(paths: list[Path]) -> str:
    return "[" + ", ".join(f"'{path}'" for path in paths) + "]"


def _varchar_columns(columns: list[str] | tuple[str, ...]) -> str:
    return "{" + ", ".join(f"'{column}': 'VARCHAR'" for column in columns) + "}"


def raw_monthly(table: str, files: list[Path], columns: list[str]) -> str:
    """The landed files as text, one row per line, with the month taken from the file name."""
    return f"""
create or replace table raw.{table} as
select
    strptime(regexp_extract(filename, '(\\d{{4}}-\\d{{2}})\\.csv$', 1), '%Y-%m') as _partition_month,
    {", ".join(columns)},
    filename as _source_file,
    row_number() over (partition by filename) + 1 as _source_line
from read_csv({_list(files)}, header = true, columns = {_varchar_columns(columns)}, filename = true)
"""


def raw_reference(table: str, path: Path) -> str:
    columns = REFERENCE_SPECS[table].source_columns
    return f"""
create or replace table raw.{table} as
select * from read_csv('{path}', header = true, columns = {_varchar_columns(columns)})
"""


def staging_reference(table: str) -> str:
    spec = REFERENCE_SPECS[table]
    renames = dict(spec.renames)
    texts = [f"txt({column}) as {column}" for column in (spec.key, *spec.texts)]
    numbers = [f"num({column}) as {renames.get(column, column)}" for column in spec.numbers]
    return f"create or replace table staging.{table} as select {', '.join(texts + numbers)} from raw.{table}"


def _first_bad(checks: list[tuple[str, str]]) -> str:
    """A CASE naming the first column whose text is not a valid value, as ``column=text``."""
    whens = " ".join(f"when {condition} then '{column}=' || left(txt({column}), 40)" for column, condition in checks)
    return f"case {whens} end"


def _rules(rules: list[tuple[str, str, str]]) -> tuple[str, str]:
    """CASE expressions for the first rule a row breaks and its detail: (rule, condition, detail)."""
    rule = " ".join(f"when {condition} then '{name}'" for name, condition, _ in rules)
    detail = " ".join(f"when {condition} then {text}" for _, condition, text in rules)
    return f"case {rule} end", f"case {detail} end"


def _split(table: str, checked: str, source_columns: list[str], staged_columns: str) -> list[str]:
    """Staged rows (no rule broken) and quarantined rows (rule, detail, original values) from one checked view."""
    originals = "{" + ", ".join(f"'{c}': {c}" for c in source_columns) + "}"
    return [
        f"create or replace table staging.{table} as select {staged_columns} from {checked} where rule is null",
        f"""
create or replace table quarantine.quarantined_{table} as
select rule, detail, to_json({originals}) as raw_values, _partition_month, _source_file, _source_line
from {checked} where rule is not null
""",
    ]


def staging_flights() -> list[str]:
    untypable = _first_bad(
        [(c, f"bad_integer({c})") for c in FLIGHT_INTEGERS] + [(c, f"bad_number({c})") for c in FLIGHT_NUMBERS]
    )
    typed = ", ".join(
        [f"try_cast(num({c}) as bigint) as t_{c}" for c in FLIGHT_INTEGERS]
        + [f"num({c}) as t_{c}" for c in FLIGHT_NUMBERS]
        + [f"txt({c}) as t_{c}" for c in FLIGHT_TEXTS]
    )
    null_key = " or ".join(f"t_{c} is null" for c in FLIGHT_KEY)
    null_key_detail = "case " + " ".join(f"when t_{c} is null then '{c} is empty'" for c in FLIGHT_KEY) + " end"
    source = ", ".join(flights.SOURCE_COLUMNS)
    rule, detail = _rules(
        [
            ("untypable", "untypable is not null", "untypable"),
            ("null_key", null_key, null_key_detail),
            ("untypable", "t_sched_arr_time is null", "'sched_arr_time is empty'"),
            ("invalid_timestamp", "sched_dep_local is null", "'scheduled departure is not a valid date and time'"),
            (
                "year_month_vs_partition",
                "sched_dep_local < _partition_month or sched_dep_local >= _partition_month + interval 1 month",
                "'scheduled departure ' || sched_dep_local || ' is not in ' || strftime(_partition_month, '%Y-%m')",
            ),
            ("duplicate_row", "row_copy > 1", "'exact repeat of an earlier row'"),
        ]
    )
    staged = f"""
flight_id, t_carrier as carrier, t_flight as flight, t_tailnum as tailnum, t_origin as origin, t_dest as dest,
t_year as year, t_month as month, t_day as day, t_sched_dep_time as sched_dep_time,
t_sched_arr_time as sched_arr_time, t_dep_time as dep_time, t_arr_time as arr_time, sched_dep_local,
sched_dep_utc, sched_dep_local + to_minutes(cast(t_dep_delay as bigint)) as dep_local,
sched_dep_utc + to_minutes(cast(t_dep_delay as bigint)) as dep_utc, date_trunc('hour', sched_dep_utc) as time_hour_utc,
t_dep_delay as dep_delay, t_arr_delay as arr_delay, t_air_time as air_time, t_distance as distance,
t_dep_time is null as cancelled, t_dep_time is not null and t_arr_delay is null as diverted,
coalesce(t_dep_delay >= {ON_TIME_MINUTES}, false) as dep_delayed_15,
coalesce(t_arr_delay < {ON_TIME_MINUTES}, false) as on_time, t_dep_delay - t_arr_delay as delay_gain
"""
    return [
        f"""
create or replace temp table flights_typed as
with typed as (
    select *, {untypable} as untypable, {typed},
        row_number() over (partition by _partition_month, {source} order by _source_file, _source_line) as row_copy
    from raw.flights
), timed as (
    select *,
        case when t_sched_dep_time // 100 between 0 and 23 and t_sched_dep_time % 100 between 0 and 59
            then try(make_timestamp(t_year, t_month, t_day, t_sched_dep_time // 100, t_sched_dep_time % 100, 0))
        end as sched_dep_local
    from typed
), ruled as (
    select *, {rule} as rule, {detail} as detail from timed
)
select *,
    strftime(sched_dep_local, '%Y-%m-%dT%H%M') || '/' || t_carrier || t_flight || '/' || t_origin as flight_id,
    timezone('UTC', timezone('America/New_York', sched_dep_local)) as sched_dep_utc
from ruled
""",
        # A key reused by a later row that broke no other rule: the first occurrence stays.
        """
create or replace temp table flights_checked as
select * replace (
    case when rule is null and key_copy > 1 then 'duplicate_key' else rule end as rule,
    case when rule is null and key_copy > 1 then 'key ' || flight_id || ' already used by an earlier row'
        else detail end as detail
)
from (
    select *,
        row_number() over (partition by _partition_month, rule is null, flight_id order by _source_file, _source_line)
        as key_copy
    from flights_typed
)
""",
        *_split("flights", "flights_checked", flights.SOURCE_COLUMNS, staged),
    ]


def staging_weather() -> list[str]:
    untypable = _first_bad(
        [(c, f"bad_integer({c})") for c in WEATHER_INTEGERS] + [(c, f"bad_number({c})") for c in WEATHER_MEASURES]
    )
    typed = ", ".join(
        [f"try_cast(num({c}) as bigint) as t_{c}" for c in WEATHER_INTEGERS]
        + [f"num({c}) as t_{c}" for c in WEATHER_MEASURES]
    )
    source = ", ".join(weather.SOURCE_COLUMNS)
    rule, detail = _rules(
        [
            ("untypable", "untypable is not null", "untypable"),
            ("untypable", "time_hour_utc is null and txt(time_hour) is not null", "'time_hour is not a UTC time'"),
            ("null_key", "txt(origin) is null", "'origin is empty'"),
            ("null_key", "time_hour_utc is null", "'time_hour_utc is empty'"),
            ("invalid_timestamp", "observed_local is null", "'observation time is not a valid date and time'"),
            (
                "year_month_vs_partition",
                "observed_local < _partition_month or observed_local >= _partition_month + interval 1 month",
                "'observation time ' || observed_local || ' is not in ' || strftime(_partition_month, '%Y-%m')",
            ),
            ("duplicate_row", "row_copy > 1", "'exact repeat of an earlier row'"),
        ]
    )
    measures = ", ".join(f"t_{c} as {c}" for c in WEATHER_MEASURES)
    staged = f"observation_id, txt(origin) as origin, time_hour_utc, observed_local, {measures}"
    return [
        f"""
create or replace temp table weather_typed as
with typed as (
    select *, {untypable} as untypable, {typed},
        try_strptime(txt(time_hour), '%Y-%m-%dT%H:%M:%SZ') as time_hour_utc,
        row_number() over (partition by _partition_month, {source} order by _source_file, _source_line) as row_copy
    from raw.weather
), timed as (
    select *, try(make_timestamp(t_year, t_month, t_day, 0, 0, 0)) + to_hours(t_hour) as observed_local from typed
)
select *, {rule} as rule, {detail} as detail,
    txt(origin) || '/' || strftime(time_hour_utc, '%Y-%m-%dT%HZ') as observation_id
from timed
""",
        """
create or replace temp table weather_checked as
select * replace (
    case when rule is null and key_copy > 1 then 'duplicate_key' else rule end as rule,
    case when rule is null and key_copy > 1 then 'key ' || observation_id || ' already used by an earlier row'
        else detail end as detail
)
from (
    select *, row_number() over (
        partition by _partition_month, rule is null, observation_id order by _source_file, _source_line
    ) as key_copy
    from weather_typed
)
""",
        *_split("weather", "weather_checked", weather.SOURCE_COLUMNS, staged),
    ]


def core_flights() -> str:
    measures = ", ".join(f"w.{c}" for c in WEATHER_MEASURES)
    return f"""
create or replace table core.flights as
select f.*, w.observation_id as weather_observation_id, {measures},
    p.year_built, p.manufacturer, p.model, p.engines, p.seats,
    a.name as airline_name, d.name as dest_name, d.tzone as dest_tzone,
    w.observation_id is not null as has_weather,
    p.manufacturer is not null or p.year_built is not null as plane_known,
    d.name is not null as dest_known
from staging.flights f
left join staging.weather w on w.origin = f.origin and w.time_hour_utc = f.time_hour_utc
left join staging.planes p on p.tailnum = f.tailnum
left join staging.airlines a on a.carrier = f.carrier
left join staging.airports d on d.faa = f.dest
"""


_PERFORMANCE = """
    count(*) as flights, sum(cancelled::int) as cancelled, sum(on_time::int) as on_time,
    avg(dep_delay) as mean_dep_delay, quantile_cont(dep_delay, 0.9) as p90_dep_delay,
    avg(arr_delay) as mean_arr_delay, quantile_cont(arr_delay, 0.9) as p90_arr_delay,
    sum(cancelled::int) / count(*) as cancellation_rate, sum(on_time::int) / count(*) as on_time_share
"""


def marts() -> list[str]:
    month = "date_trunc('month', sched_dep_local) as month"
    return [
        f"""
create or replace table marts.carrier_monthly as
select {month}, carrier, airline_name, {_PERFORMANCE}
from core.flights group by all order by all
""",
        f"""
create or replace table marts.route_monthly as
select {month}, origin, dest, dest_name, {_PERFORMANCE}, median(distance) as distance
from core.flights group by all order by all
""",
    ]


def layers(landing_dir: Path, months: list[str]) -> dict[str, list[str]]:
    """The statements of each layer, in order."""
    raw = [
        raw_monthly("flights", [flights_file(landing_dir, m) for m in months], flights.SOURCE_COLUMNS),
        raw_monthly("weather", [weather_file(landing_dir, m) for m in months], weather.SOURCE_COLUMNS),
        *(raw_reference(table, reference_file(landing_dir, table)) for table in REFERENCE_SPECS),
    ]
    staging = [*(staging_reference(table) for table in REFERENCE_SPECS), *staging_flights(), *staging_weather()]
    return {"raw": raw, "staging": staging, "core": [core_flights()], "marts": marts()}


def table_counts(connection: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = connection.execute(
        "select table_schema, table_name from information_schema.tables where table_catalog = current_database()"
        " and table_type = 'BASE TABLE' order by 1, 2"
    ).fetchall()
    counts = {}
    for schema, table in tables:
        row = connection.execute(f"select count(*) from {schema}.{table}").fetchone()
        counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


def run_sql(landing_dir: Path, database: Path, months: list[str]) -> SqlResult:
    """Build every table of ``months`` from ``landing_dir`` into a fresh DuckDB file at ``database``."""
    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    database.parent.mkdir(parents=True, exist_ok=True)
    stats: dict[str, LayerStats] = {}
    start = time.perf_counter()
    with duckdb.connect(str(database)) as connection:
        connection.execute("set enable_progress_bar = false")
        connection.execute(MACROS)
        for schema in ("raw", "staging", "quarantine", "core", "marts"):
            connection.execute(f"create schema if not exists {schema}")
        for layer, statements in layers(landing_dir, months).items():
            layer_stats = stats.setdefault(layer, LayerStats())
            layer_start = time.perf_counter()
            for statement in statements:
                connection.execute(statement)
                layer_stats.statements += 1
            layer_stats.seconds += time.perf_counter() - layer_start
        counts = table_counts(connection)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return SqlResult(
        landing_dir=str(landing_dir),
        database=str(database),
        months=months,
        wall_seconds=time.perf_counter() - start,
        layers=stats,
        tables=counts,
        ru_maxrss_mib=usage.ru_maxrss / 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def format_result(result: SqlResult) -> str:
    lines = [
        f"plain SQL: {len(result.months)} months from {result.landing_dir} in {result.wall_seconds:.1f} s "
        f"(cpu {result.cpu_seconds:.1f} s, ru_maxrss {result.ru_maxrss_mib:,.0f} MiB)"
    ]
    lines += [f"  {layer:<9}{stats.seconds:>8.2f} s" for layer, stats in result.layers.items()]
    lines += [f"  {table:<24}{rows:>12,}" for table, rows in result.tables.items()]
    return "\n".join(lines)


def to_json(result: SqlResult) -> dict[str, Any]:
    return asdict(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--landing-dir", type=Path, required=True)
    parser.add_argument("--database", type=Path, required=True, help="the DuckDB file to (re)create")
    parser.add_argument("--months", nargs="+", default=list(MONTH_KEYS), metavar="YYYY-MM")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = run_sql(args.landing_dir, args.database, args.months)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(result), indent=2))
    print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
