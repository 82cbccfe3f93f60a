"""The handlers of ``dataops summary``, ``sql``, ``history``, ``restore`` and ``verify`` (the lake's subcommands)."""

from __future__ import annotations

import argparse
import sys

import duckdb

from dataops_assets.environments import Settings
from dataops_ops import lake
from dataops_ops.instance import open_instance


def summary(settings: Settings, args: argparse.Namespace) -> int:
    try:
        print(lake.summarize_lake(settings))
    except lake.LakeError as error:  # e.g. a published version vacuumed: the message names the month to re-run
        print(f"dataops summary: {error}", file=sys.stderr)
        return 2
    return 0


def sql(settings: Settings, args: argparse.Namespace) -> int:
    try:
        with lake.connect_lake(settings) as connection:
            lake.read_only_query(connection, args.query).show(max_rows=args.max_rows, max_width=10_000)
    except (lake.LakeError, duckdb.Error) as error:
        print(f"dataops sql: {error}", file=sys.stderr)
        return 2
    return 0


def history(settings: Settings, args: argparse.Namespace) -> int:
    try:
        versions = lake.table_history(settings, args.table, args.limit)
    except lake.LakeError as error:
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


def restore(settings: Settings, args: argparse.Namespace) -> int:
    try:
        restored = lake.restore_table(settings, args.table, args.version if args.version is not None else args.before)
    except lake.LakeError as error:
        print(f"dataops restore: {error}", file=sys.stderr)
        return 2
    with open_instance(settings) as instance:
        lake.record_restore(instance, restored)
    print(f"{restored.table}: restored version {restored.target} as version {restored.version}; undone:")
    for item in restored.undone:
        print(f"    version {item.version} {item.operation} partition {item.partition or '-'} run {item.run_id or '-'}")
    for key, rows in restored.changed.items():
        print(f"    partition {key or '(whole table)'} now {rows:,} rows (recorded as a materialization)")
    return 0


def verify(settings: Settings, args: argparse.Namespace) -> int:
    with open_instance(settings) as instance:
        result = lake.verify_lake(settings, instance)
    for problem in result.problems:
        print(f"problem: {problem}")
    counts = f"{result.tables} tables, {result.partitions} partitions, {result.files} files, {result.rows:,} rows read"
    print(f"verify {'FAILED' if result.problems else 'ok'}: {counts}, {len(result.problems)} problems")
    return 1 if result.problems else 0
