"""Publish: a month becomes visible to consumers in one step, once its core and every mart of one run have passed
their blocking checks.

Each table is written month by month as its own Delta commit, so a run stopped between core and the marts (killed,
or a blocking check failing with ERROR) leaves a month's core newer than its marts. This asset runs after those
writes and their checks in the same run, finds the Delta version of each table's commit of this run for the month
(its commit metadata name the run and the partition) and records them, one row per table, as one commit that
replaces the month in ``publish.months``. Readers (``dataops_ops.lake``) show each month as its record names it.
"""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from deltalake import DeltaTable

from dataops_assets.assets.core import core_flights
from dataops_assets.assets.marts import mart_assets
from dataops_assets.partitions import MONTHLY
from dataops_assets.storage import PARTITION_COLUMN

LAYER = "publish"
PUBLISHED_KEYS: tuple[dg.AssetKey, ...] = (core_flights.key, *(mart.key for mart in mart_assets))
RECORD_COLUMNS = ("table_name", "delta_version", "run_id", "published_at")
# Commits searched back from a table's newest version before reading its whole history: a run's commit is among
# the last few unless many other months were written since.
_RECENT_COMMITS = 64


class UnpublishableMonthError(Exception):
    """A table of the month has no commit of this run, so the month cannot be published whole."""


@dg.asset(
    key=[LAYER, "months"],
    deps=list(PUBLISHED_KEYS),
    group_name=LAYER,
    owners=["team:flight-analytics"],
    kinds={"pandas", "deltalake"},
    tags={"layer": LAYER},
    partitions_def=MONTHLY,
    metadata={"partition_expr": PARTITION_COLUMN},
    description="The publish record: per month, the Delta version of core.flights and of each mart that consumers "
    "read, all written by one run whose blocking checks passed. Written last in a month's run, in one commit.",
)
def publish_months(context: dg.AssetExecutionContext) -> dg.Output[pd.DataFrame]:
    started = datetime.now(UTC)
    partition, run_id = context.partition_key, context.run.run_id
    versions = {
        key.to_user_string().replace("/", "."): run_commit_version(
            table_uri_written(context.instance, key, partition, run_id), run_id, partition
        )
        for key in PUBLISHED_KEYS
    }
    record = pd.DataFrame(
        {
            "table_name": list(versions),
            "delta_version": list(versions.values()),
            "run_id": run_id,
            "published_at": pd.Timestamp(started),
        },
        columns=list(RECORD_COLUMNS),
    )
    seconds = (datetime.now(UTC) - started).total_seconds()
    return dg.Output(record, metadata={**versions, "publish_seconds": round(seconds, 3)})


def table_uri_written(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str, run_id: str) -> str:
    """The table's URI from this run's materialization of the month; refused when another run wrote it last."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(key, asset_partitions=[partition]), limit=1)
    latest = records.records[0] if records.records else None
    materialization = latest.asset_materialization if latest else None
    if latest is None or materialization is None or latest.run_id != run_id:
        raise UnpublishableMonthError(
            f"{key.to_user_string()} {partition} was not written by run {run_id}, so the month cannot be published "
            "whole: materialize the month's core and marts together (job flights_pipeline)"
        )
    return str(materialization.metadata["dagster/uri"].value)


def run_commit_version(uri: str, run_id: str, partition: str) -> int:
    """The Delta version of the newest commit of ``run_id`` for ``partition`` (its commit metadata say so)."""
    table = DeltaTable(uri)
    for limit in (_RECENT_COMMITS, None):
        for commit in table.history(limit):
            if commit.get("dagster_run_id") == run_id and commit.get("partition") == partition:
                return int(commit["version"])
    raise UnpublishableMonthError(f"{uri} has no commit of run {run_id} for {partition}: nothing to publish")


publish_assets = [publish_months]
