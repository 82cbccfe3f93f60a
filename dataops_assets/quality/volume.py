"""Volume against history: a month's staged flights compared with the other months Dagster has recorded.

The open-source stand-in for Dagster+'s anomaly detection. The history is the latest materialization of every
other month of the same asset (never the month's own earlier runs, so reloading a month cannot teach the band its
own mistake), read from the instance's event log: the row count the I/O manager records per partition.

Months differ in length, so the band is drawn on flights per calendar day, robustly: median ± k · scaled MAD
(the median absolute deviation times 1.4826, which estimates the standard deviation of normal data and is not
pulled by a few bad months), then multiplied back by the month's days. Until ``volume_min_history`` other months
are recorded the check passes, saying there is not enough history. Outside the band it fails with the
environment's ``volume_severity`` (ERROR in stage and prod, WARN in dev); the check is blocking.

Only flights get this check: weather has a known number of hours per month, which ``every_hour_has_weather``
counts exactly, and its monthly counts barely vary (a MAD of a few rows would make any band meaningless).
"""

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from dataops_assets.environments import Thresholds
from dataops_assets.partitions import MONTH_KEYS, MONTHLY
from dataops_assets.quality.history import recorded_count
from dataops_assets.resources import ThresholdsResource

CHECK_NAME = "volume_within_history"
STAGED_FLIGHTS = dg.AssetKey(["staging", "flights"])
# Row count of one month, as recorded on each materialization: the I/O manager's, else the asset's own.
ROW_COUNT_KEYS = ("dagster/partition_row_count", "rows_out")
# Scales the MAD to a standard deviation for normally distributed data.
NORMAL_MAD_SCALE = 1.4826
# A history of identical months has a MAD of zero; the band keeps at least this share of the median either side.
MIN_SPREAD_SHARE = 0.01


def days_in(partition_key: str) -> int:
    year, month = (int(part) for part in partition_key.split("-"))
    return calendar.monthrange(year, month)[1]


@dataclass(frozen=True)
class VolumeBand:
    """The band for one month, in flights per day and in rows of that month."""

    partition: str
    median_per_day: float
    mad_per_day: float  # unscaled
    k: float

    @property
    def spread_per_day(self) -> float:
        return max(NORMAL_MAD_SCALE * self.mad_per_day, MIN_SPREAD_SHARE * self.median_per_day)

    @property
    def lower(self) -> int:
        return math.floor((self.median_per_day - self.k * self.spread_per_day) * days_in(self.partition))

    @property
    def upper(self) -> int:
        return math.ceil((self.median_per_day + self.k * self.spread_per_day) * days_in(self.partition))

    def contains(self, rows: int) -> bool:
        return self.lower <= rows <= self.upper


def band_for(partition_key: str, history: Mapping[str, int], k: float) -> VolumeBand:
    """The band from the other months' rows (``{"2013-01": 27004, ...}``), per day of each month."""
    per_day = pd.Series({month: rows / days_in(month) for month, rows in history.items()}, dtype="float64")
    median = float(per_day.median())
    return VolumeBand(partition_key, median, float((per_day - median).abs().median()), k)


def volume_result(
    partition_key: str, rows: int, history: Mapping[str, int], thresholds: Thresholds
) -> dg.AssetCheckResult:
    """Passed inside the band or with too little history; failed with the environment's severity outside it."""
    others = {month: count for month, count in history.items() if month != partition_key}
    metadata: dict[str, dg.MetadataValue] = {
        "rows": dg.MetadataValue.int(rows),
        "rows_per_day": dg.MetadataValue.float(round(rows / days_in(partition_key), 2)),
        "history_count": dg.MetadataValue.int(len(others)),
        "min_history": dg.MetadataValue.int(thresholds.volume_min_history),
        "k": dg.MetadataValue.float(thresholds.volume_mad_k),
        "history": dg.MetadataValue.json(
            [
                {"partition": month, "rows": count, "rows_per_day": round(count / days_in(month), 2)}
                for month, count in sorted(others.items())
            ]
        ),
    }
    where = f"staging.flights {partition_key}"
    if len(others) < thresholds.volume_min_history:
        return dg.AssetCheckResult(
            passed=True,
            metadata=metadata,
            description=f"{where}: {rows} rows; not enough history to judge the volume ({len(others)} other "
            f"months recorded, {thresholds.volume_min_history} needed)",
        )
    band = band_for(partition_key, others, thresholds.volume_mad_k)
    metadata |= {
        "band_lower": dg.MetadataValue.int(band.lower),
        "band_upper": dg.MetadataValue.int(band.upper),
        "median_rows_per_day": dg.MetadataValue.float(round(band.median_per_day, 2)),
        "mad_rows_per_day": dg.MetadataValue.float(round(band.mad_per_day, 2)),
        "scaled_mad_rows_per_day": dg.MetadataValue.float(round(band.spread_per_day, 2)),
        "median_rows_for_month": dg.MetadataValue.int(round(band.median_per_day * days_in(partition_key))),
    }
    summary = (
        f"{rows} rows ({rows / days_in(partition_key):.1f} per day); the other {len(others)} months give "
        f"{band.lower}..{band.upper} (median {band.median_per_day:.1f} per day ± {band.k:g} · "
        f"{band.spread_per_day:.1f})"
    )
    if band.contains(rows):
        return dg.AssetCheckResult(passed=True, metadata=metadata, description=f"{where}: {summary}")
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity(thresholds.volume_severity),
        metadata=metadata,
        description=f"{where}: volume outside the band of its history: {summary}",
    )


def recorded_rows(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str) -> int | None:
    """The row count on the latest materialization of one partition, or None if it has none."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
    ).records
    return recorded_count(records[0].asset_materialization if records else None, ROW_COUNT_KEYS)


def recorded_history(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition_key: str) -> dict[str, int]:
    """Rows of the latest materialization of every other month that has one."""
    history = {month: recorded_rows(instance, asset_key, month) for month in MONTH_KEYS if month != partition_key}
    return {month: rows for month, rows in history.items() if rows is not None}


@dg.asset_check(
    asset=STAGED_FLIGHTS,
    name=CHECK_NAME,
    blocking=True,
    partitions_def=MONTHLY,
    description="The month's staged flights per day lie within median ± k · scaled MAD of the other months' "
    "latest materializations (Thresholds.volume_mad_k, volume_min_history); outside it is an ERROR in stage and "
    "prod and a WARN in dev (Thresholds.volume_severity).",
)
def flights_volume_check(context: dg.AssetCheckExecutionContext, thresholds: ThresholdsResource) -> dg.AssetCheckResult:
    partition = context.partition_key
    rows = recorded_rows(context.instance, STAGED_FLIGHTS, partition)
    if rows is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"staging.flights {partition}: no materialization with a row count to compare",
        )
    history = recorded_history(context.instance, STAGED_FLIGHTS, partition)
    return volume_result(partition, rows, history, thresholds.thresholds)


volume_checks = [flights_volume_check]
