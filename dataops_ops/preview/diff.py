"""The data diff of a pull-request preview: per published table and month, prod's rows (base) against the preview's
(head), as a reviewer reads it in the pull request.

Modelled on SQLMesh's ``table_diff``. ``diff_table_month`` compares one table's month: the schema (columns added,
removed, retyped), the row counts, and by the table's key (``TABLE_KEYS``, one full outer join in DuckDB) the rows
only in head (added), only in base (removed) and in both with a column that differs (changed); per common column the
share of matched rows that are equal (``pct_match``); a few sample rows that differ; for the marts the metric
changes per key (``MART_METRICS``, largest first) and totals. ``diff_report`` gathers the table-months,
``report_markdown`` writes the pull-request comment's section, ``report_json`` the same as JSON, ``write_diff``
both files.

How values compare:

- Null-safe: two nulls are equal, a null and a value differ (``IS NOT DISTINCT FROM``); so are the keys joined.
- Floating columns (FLOAT, DOUBLE) are equal within ``FLOAT_TOLERANCE`` (relative; absolute below 1): the rounding
  noise of another summation order is no change. Every other type compares exactly.
- Types are DuckDB's, so Arrow's encodings of one type (string, large_string, dictionary) are no change. A retyped
  column compares as DOUBLE when both types are numeric, else as text.
- ``partition_month``, the lake's partition column, is ignored.

A side passed as ``None`` is a month not published there: every row of the other side is added (or removed) and no
schema is compared. Above ``max_rows`` rows (base + head) the table-month is not joined: it gets the row counts and
per column the non-null count, min, max and mean (numbers and booleans) of both sides, and says so. A key that
repeats on a side is counted and reported: the join then pairs every copy with every copy.

Everything runs in an in-memory DuckDB connection per table-month, over the Arrow tables or datasets the caller
registers: no files, no extensions. Nothing here imports Dagster.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any, Literal, TypeAlias

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from dataops_assets.files import write_atomic

TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "core.flights": ("flight_id",),
    "marts.carrier_monthly": ("carrier",),
    "marts.route_monthly": ("origin", "dest"),
}
# The metrics a reviewer reads per mart; their changes are listed per key, largest first.
MART_METRICS: dict[str, tuple[str, ...]] = {
    "marts.carrier_monthly": ("flights", "on_time_share", "cancellation_rate", "mean_dep_delay"),
    "marts.route_monthly": ("flights", "on_time_share", "cancellation_rate"),
}
# The metrics whose sum over the keys means something (shares and means do not add up).
TOTAL_METRICS = ("flights",)
# Above this many rows (base + head) of one table-month: aggregates only, no join. The join's memory grows with the
# rows: a month of core.flights at 10x (about 560,000 rows) joins in about 0.9 s with a peak of 0.7 GiB in the process
# (benchmarks/preview_diff.py); a month at 100x (5.6 million) gets aggregates only.
DEFAULT_MAX_ROWS = 2_000_000
FLOAT_TOLERANCE = 1e-9
IGNORED_COLUMNS = frozenset({"partition_month"})  # the lake's partition column (dataops_assets.storage)

_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE"})
_MEAN_TYPES = _INTEGER_TYPES | _FLOAT_TYPES | {"BOOLEAN"}
_PRESENT = "__diff_present"  # a marker column that is never null, to tell a joined row from a missing one
_TEXT_WIDTH = 60

Data: TypeAlias = pa.Table | ds.Dataset
Value = Any  # a JSON value: None, bool, int, float, str (times as ISO 8601 text)
Status = Literal["identical", "differs", "aggregates only"]


@dataclass(frozen=True)
class Retyped:
    column: str
    base: str
    head: str


@dataclass(frozen=True)
class ColumnMatch:
    """One common non-key column over the rows in both: how many differ, and the share (%) that are equal."""

    column: str
    differ: int
    pct_match: float | None  # None: no row is in both


@dataclass(frozen=True)
class ValueChange:
    column: str
    base: Value
    head: Value


@dataclass(frozen=True)
class SampleRow:
    key: tuple[Value, ...]
    changes: tuple[ValueChange, ...]


@dataclass(frozen=True)
class MetricDelta:
    metric: str
    key: tuple[Value, ...]
    base: Value
    head: Value
    delta: Value


@dataclass(frozen=True)
class Aggregates:
    non_null: int
    min: Value
    max: Value
    mean: float | None  # numbers and booleans (the share of true) only


@dataclass(frozen=True)
class ColumnAggregates:
    column: str
    base: Aggregates | None  # None: the column is not on that side
    head: Aggregates | None
    differs: bool


@dataclass(frozen=True)
class TableMonthDiff:
    """One table, one month: base (prod) against head (the preview). Row-level fields are None when ``fallback``
    says why only aggregates were computed."""

    table: str
    month: str
    key: tuple[str, ...]
    base_published: bool
    head_published: bool
    base_rows: int
    head_rows: int
    columns_added: tuple[str, ...] = ()
    columns_removed: tuple[str, ...] = ()
    columns_retyped: tuple[Retyped, ...] = ()
    base_duplicate_keys: int = 0
    head_duplicate_keys: int = 0
    fallback: str | None = None
    added: int | None = None
    removed: int | None = None
    matched: int | None = None
    changed: int | None = None
    columns: tuple[ColumnMatch, ...] = ()
    samples: tuple[SampleRow, ...] = ()
    added_keys: tuple[tuple[Value, ...], ...] = ()
    removed_keys: tuple[tuple[Value, ...], ...] = ()
    metric_deltas: tuple[MetricDelta, ...] = ()
    totals: tuple[MetricDelta, ...] = ()  # key () : the sum over every key of each side
    aggregates: tuple[ColumnAggregates, ...] = ()
    seconds: float = 0.0

    @property
    def schema_changed(self) -> bool:
        return bool(self.columns_added or self.columns_removed or self.columns_retyped)

    @property
    def status(self) -> Status:
        if self.fallback is not None:
            return "aggregates only"
        # each row paired once: a repeated key pairs every copy with every copy
        paired = self.matched == self.base_rows == self.head_rows
        same_rows = paired and not (self.added or self.removed or self.changed)
        published = self.base_published and self.head_published
        return "identical" if same_rows and published and not self.schema_changed else "differs"


@dataclass(frozen=True)
class DiffReport:
    tables: list[TableMonthDiff]
    seconds: float  # the sum over the table-months

    @property
    def identical(self) -> bool:
        return all(diff.status == "identical" for diff in self.tables)


@dataclass(frozen=True)
class _Side:
    name: str  # the DuckDB view: base or head
    types: dict[str, str]  # column -> DuckDB type, without the ignored columns
    published: bool
    rows: int = 0


@dataclass(frozen=True)
class _Compared:
    column: str
    equal: str  # SQL: true when b.column and h.column are equal
    flag: str  # its name in the joined table


@dataclass(frozen=True)
class _Context:
    table: str
    key: tuple[str, ...]
    base: _Side
    head: _Side
    samples: int
    compared: tuple[_Compared, ...]  # the common non-key columns


def diff_table_month(
    table: str,
    month: str,
    base: Data | None,
    head: Data | None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    samples: int = 5,
) -> TableMonthDiff:
    """Compare one month of a published table: ``base`` prod's rows, ``head`` the preview's, each restricted to the
    month by the caller (``None``: the month is not published on that side)."""
    key = table_key(table)
    if base is None and head is None:
        raise ValueError(f"{table} {month}: neither side has data; pass None for one side at most")
    started = time.perf_counter()
    with duckdb.connect() as con:
        con.execute("set enable_progress_bar = false")
        sides = _register(con, "base", base, head), _register(con, "head", head, base)
        _require_key(table, key, sides)
        ctx = _Context(table, key, *sides, max(samples, 0), _compared_columns(key, *sides))
        found = _compare(con, ctx, month, max_rows)
    return replace(found, seconds=round(time.perf_counter() - started, 3))


def table_key(table: str) -> tuple[str, ...]:
    try:
        return TABLE_KEYS[table]
    except KeyError:
        known = ", ".join(sorted(TABLE_KEYS))
        raise ValueError(f"no key known for table {table!r}: the data diff compares {known}") from None


def _register(con: duckdb.DuckDBPyConnection, name: str, data: Data | None, other: Data | None) -> _Side:
    """The side as a view of its compared columns; a month not published there reads as the other's schema, empty."""
    published = data is not None
    source = data if data is not None else _empty_like(other)
    con.register(f"{name}_arrow", source)
    described = con.execute(f"describe select * from {name}_arrow").fetchall()
    types = {str(row[0]): str(row[1]) for row in described if row[0] not in IGNORED_COLUMNS}
    columns = ", ".join(_quote(column) for column in types)
    con.execute(f"create view {name} as select {columns} from {name}_arrow")
    rows = _scalar(con, f"select count(*) from {name}")
    return _Side(name, types, published, int(rows))


def _empty_like(data: Data | None) -> pa.Table:
    assert data is not None  # diff_table_month refuses two missing sides
    return data.schema.empty_table()


def _require_key(table: str, key: Sequence[str], sides: Sequence[_Side]) -> None:
    for side in sides:
        missing = [column for column in key if column not in side.types]
        if missing:
            raise ValueError(f"{table}: the {side.name} side has no key column {', '.join(missing)}")


def _compared_columns(key: Sequence[str], base: _Side, head: _Side) -> tuple[_Compared, ...]:
    common = [column for column in base.types if column in head.types and column not in key]
    return tuple(
        _Compared(column, _equal(column, base.types[column], head.types[column]), f"eq_{number}")
        for number, column in enumerate(common)
    )


def _compare(con: duckdb.DuckDBPyConnection, ctx: _Context, month: str, max_rows: int) -> TableMonthDiff:
    base, head = ctx.base, ctx.head
    schema = _schema_changes(base, head) if base.published and head.published else {}
    found = TableMonthDiff(
        table=ctx.table,
        month=month,
        key=ctx.key,
        base_published=base.published,
        head_published=head.published,
        base_rows=base.rows,
        head_rows=head.rows,
        **schema,
        base_duplicate_keys=_duplicate_keys(con, ctx.key, base),
        head_duplicate_keys=_duplicate_keys(con, ctx.key, head),
        totals=_totals(con, ctx),
    )
    if base.rows + head.rows > max_rows:
        why = f"{base.rows + head.rows:,} rows (base + head) are more than max_rows ({max_rows:,}): no row-by-row join"
        return replace(found, fallback=why, aggregates=_all_aggregates(con, ctx))
    return replace(found, **_joined(con, ctx))


def _schema_changes(base: _Side, head: _Side) -> dict[str, Any]:
    return {
        "columns_added": tuple(column for column in head.types if column not in base.types),
        "columns_removed": tuple(column for column in base.types if column not in head.types),
        "columns_retyped": tuple(
            Retyped(column, kind, head.types[column])
            for column, kind in base.types.items()
            if column in head.types and head.types[column] != kind
        ),
    }


def _duplicate_keys(con: duckdb.DuckDBPyConnection, key: Sequence[str], side: _Side) -> int:
    columns = ", ".join(_quote(column) for column in key)
    query = f"select count(*) from (select 1 from {side.name} group by {columns} having count(*) > 1)"
    return int(_scalar(con, query))


def _joined(con: duckdb.DuckDBPyConnection, ctx: _Context) -> dict[str, Any]:
    """Full outer join by the key into a narrow table: the key, where the row is, and per column whether equal."""
    keys = ", ".join(f"coalesce(b.{_quote(k)}, h.{_quote(k)}) as {_quote(k)}" for k in ctx.key)
    flags = "".join(f", {compared.equal} as {compared.flag}" for compared in ctx.compared)
    con.execute(
        f"create temp table joined as select {keys}, b.{_PRESENT} is not null as in_base, "
        f"h.{_PRESENT} is not null as in_head{flags} "
        f"from (select *, true as {_PRESENT} from base) b full outer join (select *, true as {_PRESENT} from head) h "
        f"on {_key_match(ctx.key)}"
    )
    counts = _joined_counts(con, ctx)
    return {
        **counts,
        "samples": _samples(con, ctx),
        "added_keys": _only_keys(con, ctx, "in_head and not in_base"),
        "removed_keys": _only_keys(con, ctx, "in_base and not in_head"),
        "metric_deltas": _metric_deltas(con, ctx),
    }


def _equal(column: str, base_type: str, head_type: str) -> str:
    """SQL that is true when the column's base and head values are equal (null-safe; floats within the tolerance)."""
    b, h = f"b.{_quote(column)}", f"h.{_quote(column)}"
    floating = base_type in _FLOAT_TYPES or head_type in _FLOAT_TYPES
    if base_type != head_type:
        numeric = _is_numeric(base_type) and _is_numeric(head_type)
        cast = "double" if numeric else "varchar"
        b, h = f"cast({b} as {cast})", f"cast({h} as {cast})"
        floating = numeric
    if floating:
        near = f"abs({b} - {h}) <= {FLOAT_TOLERANCE!r} * greatest(1.0, abs({b}), abs({h}))"
        return f"({b} is not distinct from {h} or coalesce({near}, false))"
    return f"({b} is not distinct from {h})"


def _joined_counts(con: duckdb.DuckDBPyConnection, ctx: _Context) -> dict[str, Any]:
    both = "in_base and in_head"
    per_column = "".join(f", count(*) filter (where {both} and not {c.flag})" for c in ctx.compared)
    row = _one(
        con,
        f"select count(*) filter (where in_head and not in_base), count(*) filter (where in_base and not in_head), "
        f"count(*) filter (where {both}), count(*) filter (where {both} and not ({_all_equal(ctx)})){per_column} "
        "from joined",
    )
    added, removed, matched, changed, *differ = (int(value) for value in row)
    columns = tuple(
        ColumnMatch(compared.column, count, _pct(matched - count, matched))
        for compared, count in zip(ctx.compared, differ, strict=True)
    )
    return {"added": added, "removed": removed, "matched": matched, "changed": changed, "columns": columns}


def _all_equal(ctx: _Context) -> str:
    return " and ".join(compared.flag for compared in ctx.compared) or "true"


def _pct(equal: int, matched: int) -> float | None:
    return None if matched == 0 else round(100.0 * equal / matched, 4)


def _samples(con: duckdb.DuckDBPyConnection, ctx: _Context) -> tuple[SampleRow, ...]:
    """The first rows by key that are in both sides and differ, each with its differing columns' two values."""
    if ctx.samples == 0 or not ctx.compared:
        return ()
    keys = ", ".join(_quote(k) for k in ctx.key)
    flags = ", ".join(compared.flag for compared in ctx.compared)
    con.execute(
        f"create temp table sample_keys as select {keys}, {flags} from joined "
        f"where in_base and in_head and not ({_all_equal(ctx)}) order by {keys} limit {ctx.samples}"
    )
    width = len(ctx.key)
    picked = [
        (tuple(row[:width]), row[width:])
        for row in con.execute(f"select * from sample_keys order by {keys}").fetchall()
    ]
    differing = [c for n, c in enumerate(ctx.compared) if any(not flags_of[n] for _, flags_of in picked)]
    values = {side: _values_by_key(con, ctx, side, [c.column for c in differing]) for side in ("base", "head")}
    rows = []
    for key, equal_flags in picked:
        changes = tuple(
            ValueChange(compared.column, values["base"][key][compared.column], values["head"][key][compared.column])
            for n, compared in enumerate(ctx.compared)
            if not equal_flags[n]
        )
        rows.append(SampleRow(tuple(_plain(value) for value in key), changes))
    return tuple(rows)


def _values_by_key(
    con: duckdb.DuckDBPyConnection, ctx: _Context, side: str, columns: Sequence[str]
) -> dict[tuple[Any, ...], dict[str, Value]]:
    keys = ", ".join(f"s.{_quote(k)}" for k in ctx.key)
    values = "".join(f", b.{_quote(column)}" for column in columns)
    match = _key_match(ctx.key, left="s", right="b")
    found = con.execute(f"select {keys}{values} from sample_keys s join {side} b on {match}").fetchall()
    width = len(ctx.key)
    return {tuple(row[:width]): dict(zip(columns, map(_plain, row[width:]), strict=True)) for row in found}


def _only_keys(con: duckdb.DuckDBPyConnection, ctx: _Context, where: str) -> tuple[tuple[Value, ...], ...]:
    if ctx.samples == 0:
        return ()
    keys = ", ".join(_quote(k) for k in ctx.key)
    found = con.execute(f"select {keys} from joined where {where} order by {keys} limit {ctx.samples}").fetchall()
    return tuple(tuple(_plain(value) for value in row) for row in found)


def _metric_deltas(con: duckdb.DuckDBPyConnection, ctx: _Context) -> tuple[MetricDelta, ...]:
    """Per mart metric, the keys in both sides whose value changed, the largest absolute change first."""
    deltas: list[MetricDelta] = []
    for compared in ctx.compared:
        if compared.column not in _numeric_metrics(ctx):
            continue
        metric, keys = _quote(compared.column), ", ".join(f"b.{_quote(k)}" for k in ctx.key)
        found = con.execute(
            f"select {keys}, b.{metric}, h.{metric}, h.{metric} - b.{metric} as delta "
            f"from base b join head h on {_key_match(ctx.key)} where not {compared.equal} "
            f"order by abs(delta) desc nulls last, {keys} limit {max(ctx.samples, 1)}"
        ).fetchall()
        width = len(ctx.key)
        deltas += [
            MetricDelta(compared.column, tuple(map(_plain, row[:width])), *map(_plain, row[width:])) for row in found
        ]
    return tuple(deltas)


def _numeric_metrics(ctx: _Context) -> list[str]:
    return [
        metric
        for metric in MART_METRICS.get(ctx.table, ())
        if _is_numeric(ctx.base.types.get(metric, "")) and _is_numeric(ctx.head.types.get(metric, ""))
    ]


def _totals(con: duckdb.DuckDBPyConnection, ctx: _Context) -> tuple[MetricDelta, ...]:
    totals = []
    for metric in (m for m in MART_METRICS.get(ctx.table, ()) if m in TOTAL_METRICS):
        base, head = (_side_total(con, side, metric) for side in (ctx.base, ctx.head))
        delta = None if base is None or head is None else head - base
        totals.append(MetricDelta(metric, (), base, head, delta))
    return tuple(totals)


def _side_total(con: duckdb.DuckDBPyConnection, side: _Side, metric: str) -> Any:
    if not _is_numeric(side.types.get(metric, "")):
        return None
    return _plain(_scalar(con, f"select coalesce(sum({_quote(metric)}), 0) from {side.name}"))


def _all_aggregates(con: duckdb.DuckDBPyConnection, ctx: _Context) -> tuple[ColumnAggregates, ...]:
    base, head = _side_aggregates(con, ctx.base), _side_aggregates(con, ctx.head)
    columns = [*ctx.base.types, *(column for column in ctx.head.types if column not in ctx.base.types)]
    return tuple(
        ColumnAggregates(
            column, base.get(column), head.get(column), _aggregates_differ(base.get(column), head.get(column))
        )
        for column in columns
    )


def _side_aggregates(con: duckdb.DuckDBPyConnection, side: _Side) -> dict[str, Aggregates]:
    """Per column of one side: non-null count, min, max, and the mean of numbers (of booleans: the share true)."""
    parts = []
    for column, kind in side.types.items():
        name = _quote(column)
        mean = f"avg(cast({name} as double))" if kind in _MEAN_TYPES or kind.startswith("DECIMAL") else "null"
        parts += [f"count({name})", f"min({name})", f"max({name})", mean]
    row = _one(con, f"select {', '.join(parts)} from {side.name}")
    return {
        column: Aggregates(int(row[4 * n]), _plain(row[4 * n + 1]), _plain(row[4 * n + 2]), _plain(row[4 * n + 3]))
        for n, column in enumerate(side.types)
    }


def _aggregates_differ(base: Aggregates | None, head: Aggregates | None) -> bool:
    if base is None or head is None:
        return True
    pairs = ((base.non_null, head.non_null), (base.min, head.min), (base.max, head.max), (base.mean, head.mean))
    return not all(_same(old, new) for old, new in pairs)


def _same(old: Value, new: Value) -> bool:
    """Equal, numbers within the tolerance: DuckDB's parallel sums may add in another order from run to run."""
    if isinstance(old, float) and isinstance(new, float):
        return math.isclose(old, new, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    return bool(old == new)


def _key_match(key: Sequence[str], left: str = "b", right: str = "h") -> str:
    return " and ".join(f"{left}.{_quote(k)} is not distinct from {right}.{_quote(k)}" for k in key)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _is_numeric(kind: str) -> bool:
    return kind in _INTEGER_TYPES or kind in _FLOAT_TYPES or kind.startswith("DECIMAL")


def _scalar(con: duckdb.DuckDBPyConnection, query: str) -> Any:
    return _one(con, query)[0]


def _one(con: duckdb.DuckDBPyConnection, query: str) -> tuple[Any, ...]:
    row = con.execute(query).fetchone()
    assert row is not None  # an aggregate query always returns one row
    return tuple(row)


def _plain(value: Any) -> Value:
    """A value as JSON holds it: times as ISO 8601 text, NaN and infinities as text, decimals and the rest as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def diff_report(diffs: Iterable[TableMonthDiff]) -> DiffReport:
    """The table-months in table order (as TABLE_KEYS lists them), then month."""
    order = {table: number for number, table in enumerate(TABLE_KEYS)}
    tables = sorted(diffs, key=lambda diff: (order.get(diff.table, len(order)), diff.table, diff.month))
    return DiffReport(tables=tables, seconds=round(sum(diff.seconds for diff in tables), 3))


def report_json(report: DiffReport) -> dict[str, Any]:
    return {
        "identical": report.identical,
        "seconds": report.seconds,
        "tables": [{**_lists(asdict(diff)), "status": diff.status} for diff in report.tables],
    }


def _lists(value: Any) -> Any:
    """Tuples as lists, so that the dict equals its JSON read back."""
    if isinstance(value, dict):
        return {name: _lists(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(item) for item in value]
    return value


def write_diff(report: DiffReport, out_dir: Path) -> tuple[Path, Path]:
    """``out_dir/diff.md`` and ``out_dir/diff.json``, each written atomically."""
    markdown, data = out_dir / "diff.md", out_dir / "diff.json"
    write_atomic(markdown, report_markdown(report) + "\n")
    write_atomic(data, json.dumps(report_json(report), indent=2, sort_keys=True) + "\n")
    return markdown, data


def report_markdown(report: DiffReport) -> str:
    """The pull-request comment's section: per table a row per month that differs, then what differs."""
    lines = ["### Data diff against prod", ""]
    if not report.tables:
        return "\n".join([*lines, "No published table-month was compared."])
    lines += [_summary(report), ""]
    tables: dict[str, list[TableMonthDiff]] = {}
    for diff in report.tables:
        tables.setdefault(diff.table, []).append(diff)
    for table, diffs in tables.items():
        lines += _table_section(table, diffs)
    return "\n".join(lines).rstrip()


def _summary(report: DiffReport) -> str:
    count, tables = len(report.tables), len({diff.table for diff in report.tables})
    compared = f"{_plural(count, 'table-month')} of {_plural(tables, 'table')} compared in {report.seconds:.1f} s"
    if report.identical:
        return f"**No differences**: {compared}, every one identical."
    differing = sum(diff.status == "differs" for diff in report.tables)
    partial = sum(diff.status == "aggregates only" for diff in report.tables)
    text = f"**{differing} differ**, {count - differing - partial} identical"
    return text + (f", {partial} aggregates only" if partial else "") + f" ({compared})."


def _table_section(table: str, diffs: Sequence[TableMonthDiff]) -> list[str]:
    lines = [f"#### `{table}`", ""]
    identical = [diff.month for diff in diffs if diff.status == "identical"]
    shown = [diff for diff in diffs if diff.status != "identical"]
    if shown:
        lines += ["| Month | Prod rows | Preview rows | Added | Removed | Changed |", "|---|--:|--:|--:|--:|--:|"]
        lines += [_month_row(diff) for diff in shown]
        lines.append("")
    if identical:
        everything = "All " if not shown and len(identical) > 1 else ""
        lines += [f"{everything}{_plural(len(identical), 'month')} identical: {', '.join(identical)}.", ""]
    for diff in shown:
        lines += _month_details(diff)
    return lines


def _month_row(diff: TableMonthDiff) -> str:
    base = _count(diff.base_rows) if diff.base_published else "not published"
    head = _count(diff.head_rows) if diff.head_published else "not published"
    counts = [diff.added, diff.removed, diff.changed]
    cells = [diff.month, base, head, *("—" if value is None else _count(value) for value in counts)]
    return "| " + " | ".join(cells) + " |"


def _month_details(diff: TableMonthDiff) -> list[str]:
    lines = [f"<details><summary><code>{diff.table}</code> {diff.month}: {_headline(diff)}</summary>", ""]
    lines += _notes(diff)
    lines += _schema_lines(diff)
    if diff.fallback is not None:
        lines += _aggregate_lines(diff)
    else:
        lines += _column_lines(diff) + _sample_lines(diff) + _key_lines(diff) + _metric_lines(diff)
    lines += _total_lines(diff)
    return [*lines, "</details>", ""]


def _headline(diff: TableMonthDiff) -> str:
    if diff.fallback is not None:
        return "aggregates only"
    parts = [f"{_count(n)} {what}" for n, what in ((diff.added, "added"), (diff.removed, "removed")) if n]
    parts += [f"{_count(diff.changed)} changed"] if diff.changed else []
    parts += ["schema changed"] if diff.schema_changed else []
    return ", ".join(parts) or "same rows"


def _notes(diff: TableMonthDiff) -> list[str]:
    notes = []
    if not diff.base_published:
        notes.append("Not published in prod: every row of the preview is added.")
    if not diff.head_published:
        notes.append("Not published in the preview: every row of prod is removed.")
    if diff.fallback is not None:
        notes.append(f"**Aggregates only**: {diff.fallback}.")
    if diff.base_duplicate_keys or diff.head_duplicate_keys:
        notes.append(
            f"Keys that repeat ({', '.join(diff.key)}): {diff.base_duplicate_keys:,} in prod, "
            f"{diff.head_duplicate_keys:,} in the preview; rows in both count each pair the join makes."
        )
    return [line for note in notes for line in (note, "")]


def _schema_lines(diff: TableMonthDiff) -> list[str]:
    parts = [f"added {_names(diff.columns_added)}"] if diff.columns_added else []
    parts += [f"removed {_names(diff.columns_removed)}"] if diff.columns_removed else []
    if diff.columns_retyped:
        parts.append("retyped " + ", ".join(f"`{r.column}` {r.base} → {r.head}" for r in diff.columns_retyped))
    return [f"Schema: {'; '.join(parts)}.", ""] if parts else []


def _column_lines(diff: TableMonthDiff) -> list[str]:
    differing = [column for column in diff.columns if column.differ]
    if not differing:
        return []
    lines = [f"Columns that differ, over {_count(diff.matched or 0)} rows in both:", ""]
    lines += ["| Column | Rows differing | Match |", "|---|--:|--:|"]
    lines += [f"| `{c.column}` | {_count(c.differ)} | {_percent(c.pct_match)} |" for c in differing]
    return [*lines, ""]


def _sample_lines(diff: TableMonthDiff) -> list[str]:
    if not diff.samples:
        return []
    columns = list(dict.fromkeys(change.column for row in diff.samples for change in row.changes))
    lines = [f"Rows that differ (the first {len(diff.samples)} by key), prod → preview:", ""]
    lines += [_cells([*diff.key, *columns]), _cells(["---"] * (len(diff.key) + len(columns)))]
    for row in diff.samples:
        changes = {change.column: f"{_value(change.base)} → {_value(change.head)}" for change in row.changes}
        lines.append(_cells([*(_value(value) for value in row.key), *(changes.get(c, "") for c in columns)]))
    return [*lines, ""]


def _key_lines(diff: TableMonthDiff) -> list[str]:
    lines = []
    for keys, what, total in ((diff.added_keys, "Added", diff.added), (diff.removed_keys, "Removed", diff.removed)):
        if keys:
            listed = ", ".join(f"`{'/'.join(_value(value) for value in key)}`" for key in keys)
            more = f" (and {_count((total or 0) - len(keys))} more)" if (total or 0) > len(keys) else ""
            lines += [f"{what} keys: {listed}{more}.", ""]
    return lines


def _metric_lines(diff: TableMonthDiff) -> list[str]:
    if not diff.metric_deltas:
        return []
    lines = ["Metric changes, the largest first:", ""]
    lines += [_cells([*diff.key, "Metric", "Prod", "Preview", "Delta"]), _cells(["---"] * (len(diff.key) + 4))]
    for delta in diff.metric_deltas:
        values = [_number(delta.base), _number(delta.head), _delta(delta.delta)]
        lines.append(_cells([*(_value(value) for value in delta.key), f"`{delta.metric}`", *values]))
    return [*lines, ""]


def _total_lines(diff: TableMonthDiff) -> list[str]:
    changed = [total for total in diff.totals if total.delta != 0]
    parts = [f"`{t.metric}` {_number(t.base)} → {_number(t.head)} ({_delta(t.delta)})" for t in changed]
    return [f"Totals: {'; '.join(parts)}.", ""] if parts else []


def _aggregate_lines(diff: TableMonthDiff) -> list[str]:
    differing = [column for column in diff.aggregates if column.differs]
    if not differing:
        return ["No column's non-null count, min, max or mean differs (changes that keep them are not seen).", ""]
    lines = ["Columns whose aggregates differ, prod → preview:", ""]
    lines += ["| Column | Non-null | Min | Max | Mean |", "|---|---|---|---|---|"]
    for column in differing:
        cells = [_pair(column, part) for part in ("non_null", "min", "max", "mean")]
        lines.append(_cells([f"`{column.column}`", *cells]))
    return [*lines, ""]


def _pair(column: ColumnAggregates, part: str) -> str:
    base, head = (None if side is None else getattr(side, part) for side in (column.base, column.head))
    if column.base is not None and column.head is not None and _same(base, head):
        return "—" if base is None else _value(base)  # None on both: no mean of text, or no value at all
    missing = "(no column)"
    return f"{missing if column.base is None else _value(base)} → {missing if column.head is None else _value(head)}"


def _cells(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _names(columns: Sequence[str]) -> str:
    return ", ".join(f"`{column}`" for column in columns)


def _value(value: Value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= _TEXT_WIDTH else text[: _TEXT_WIDTH - 1] + "…"


def _number(value: Value) -> str:
    """A metric: counts with thousands separators."""
    return _count(value) if isinstance(value, int) and not isinstance(value, bool) else _value(value)


def _delta(value: Value) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _value(value)
    return f"{value:+,}" if isinstance(value, int) else f"{value:+.4g}"


def _count(value: int) -> str:
    return f"{value:,}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} %"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
