"""Publish: a month becomes visible to consumers in one step, once its core and every mart of one run have passed
their blocking checks.

Each table is written month by month as its own Delta commit, so a run stopped between core and the marts (killed,
or a blocking check failing with ERROR) leaves a month's core newer than its marts. This asset runs after those
writes and their checks in the same run, takes the Delta version of each table's commit of this run for the month
from the run's materialization (the write found its own commit by name; the commit's metadata confirm the run and
the partition) and records them, one row per table, as one commit that replaces the month in ``publish.months``.
Readers (``dataops_ops.lake``) show each month as its record names it.
"""

from datetime import UTC, datetime
from typing import cast

import dagster as dg
import pandas as pd

from dataops_assets.assets.core import core_flights
from dataops_assets.assets.marts import mart_assets
from dataops_assets.commits import read_commit
from dataops_assets.partitions import MONTHLY
from dataops_assets.resources import PinnedTables
from dataops_assets.storage import PARTITION_COLUMN

LAYER = "publish"
PUBLISHED_KEYS: tuple[dg.AssetKey, ...] = (core_flights.key, *(mart.key for mart in mart_assets))
RECORD_COLUMNS = ("table_name", "delta_version", "run_id", "published_at")


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
def publish_months(context: dg.AssetExecutionContext, pinned_tables: PinnedTables) -> dg.Output[pd.DataFrame]:
    started = datetime.now(UTC)
    run_id = context.run.run_id
    versions = {
        key.to_user_string().replace("/", "."): _version_published(context, key, pinned_tables)
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


def _version_published(context: dg.AssetExecutionContext, key: dg.AssetKey, pinned: PinnedTables) -> int:
    """This run's commit of the month; in a preview, a table it does not rebuild at the base's pinned version."""
    if key.to_user_string() in pinned.versions:
        return pinned.versions[key.to_user_string()]
    return version_written(context.instance, key, context.partition_key, context.run.run_id)


def version_written(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str, run_id: str) -> int:
    """The Delta version of this run's commit of the month, as its materialization recorded it (the write found its
    own commit by name), confirmed by that commit's own metadata; refused when another run wrote the month last."""
    records = instance.fetch_materializations(dg.AssetRecordsFilter(key, asset_partitions=[partition]), limit=1)
    latest = records.records[0] if records.records else None
    materialization = latest.asset_materialization if latest else None
    if latest is None or materialization is None or latest.run_id != run_id:
        raise UnpublishableMonthError(
            f"{key.to_user_string()} {partition} was not written by run {run_id}, so the month cannot be published "
            "whole: materialize the month's core and marts together (job flights_pipeline)"
        )
    uri = str(materialization.metadata["dagster/uri"].value)
    version = int(cast(int, materialization.metadata["delta_version"].value))
    commit = read_commit(uri, version)
    if commit is None or not commit.carries({"dagster_run_id": run_id, "partition": partition}):
        raise UnpublishableMonthError(f"{uri} version {version} is not run {run_id}'s commit of {partition}")
    return version


publish_assets = [publish_months]
