"""``dataops`` subcommands over the lake: ``sql``, ``history``, ``restore``, ``verify``.

Kept light: the lake module (deltalake, DuckDB, Dagster) is imported when a subcommand runs.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from dataops_assets.environments import Settings


def register(subparsers: Any) -> None:
    sql = subparsers.add_parser("sql", help="a read-only query over the lake's tables (layer.table)")
    sql.add_argument("query", help='e.g. "select carrier, count(*) from core.flights group by carrier"')
    sql.add_argument("--max-rows", type=int, default=100, help="rows printed (default 100)")
    sql.set_defaults(handler=run_sql)

    history = subparsers.add_parser("history", help="versions of a lake table: time, operation, run, rows")
    history.add_argument("table", help="LAYER.TABLE, e.g. core.flights")
    history.add_argument("--limit", type=int, default=None, help="newest N versions only")
    history.set_defaults(handler=run_history)

    restore = subparsers.add_parser("restore", help="restore a lake table to an earlier version, as a new commit")
    restore.add_argument("table", help="LAYER.TABLE, e.g. core.flights")
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--version", type=int, help="the version to restore (see `dataops history`)")
    target.add_argument(
        "--before", type=datetime.fromisoformat, metavar="TIMESTAMP", help="the last version before this (ISO, UTC)"
    )
    restore.set_defaults(handler=run_restore)

    verify = subparsers.add_parser("verify", help="read every file of core and marts, check rows against Dagster")
    verify.set_defaults(handler=run_verify)


def run_sql(settings: Settings, args: argparse.Namespace) -> int:
    import duckdb

    from dataops_ops.lake import LakeError, connect_lake, read_only_query

    with connect_lake(settings) as connection:
        try:
            read_only_query(connection, args.query).show(max_rows=args.max_rows, max_width=10_000)
        except (LakeError, duckdb.Error) as error:
            print(f"dataops sql: {error}", file=sys.stderr)
            return 2
    return 0


def run_history(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.lake import LakeError, table_history

    try:
        versions = table_history(settings, args.table, args.limit)
    except LakeError as error:
        print(f"dataops history: {error}", file=sys.stderr)
        return 2
    print(f"{'version':>7}  {'time (UTC)':<19}  {'operation':<14}  {'run':<36}  {'partition':<9}  {'rows':>10}")
    for item in versions:
        rows = "-" if item.rows is None else f"{item.rows:,}"
        print(
            f"{item.version:>7}  {item.time:%Y-%m-%d %H:%M:%S}  {item.operation:<14}  {item.run_id or '-':<36}"
            f"  {item.partition or '-':<9}  {rows:>10}"
        )
    return 0


def run_restore(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.instance import open_instance
    from dataops_ops.lake import LakeError, record_restore, restore_table

    try:
        restored = restore_table(settings, args.table, args.version if args.version is not None else args.before)
    except LakeError as error:
        print(f"dataops restore: {error}", file=sys.stderr)
        return 2
    with open_instance(settings) as instance:
        record_restore(instance, restored)
    print(f"{restored.table}: restored version {restored.target} as version {restored.version}; undone:")
    for item in restored.undone:
        print(f"    version {item.version} {item.operation} partition {item.partition or '-'} run {item.run_id or '-'}")
    for key, rows in restored.changed.items():
        print(f"    partition {key or '(whole table)'} now {rows:,} rows (recorded as a materialization)")
    return 0


def run_verify(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.instance import open_instance
    from dataops_ops.lake import verify_lake

    with open_instance(settings) as instance:
        result = verify_lake(settings, instance)
    for problem in result.problems:
        print(f"problem: {problem}")
    counts = f"{result.tables} tables, {result.partitions} partitions, {result.files} files, {result.rows:,} rows read"
    print(f"verify {'FAILED' if result.problems else 'ok'}: {counts}, {len(result.problems)} problems")
    return 1 if result.problems else 0
