"""Freshness as an operator needs it: the newest landed month is published within the environment's limit of hours
after its landing (``Thresholds.max_hours_landed_to_published``).

The month's landing time is the later ``landed_at`` of its flights and weather control records; its publication
time is the latest materialization of ``publish/months`` for it, the step that makes a month visible to consumers.
A publication older than the landing is an earlier landing's, so the month counts as not published.

The check judges the landing as a whole, not a month, so it is unpartitioned and never runs inside a month's run
(there it would ask about months still to come, as the year loads): ``dataops run`` evaluates it once after the
months (job ``newest_month_freshness``) and, where its sensor runs, its automation condition evaluates it every hour.
An asset check with its own automation condition is also left out of the runs of an asset backfill, which run
every other check of the assets they materialize.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from dataops_assets.landing import month_landed_at
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets.resources import LandingZone, ThresholdsResource

PUBLISH_MONTHS = dg.AssetKey(["publish", "months"])
CHECK_NAME = "newest_month_published_in_time"
EVALUATION_CRON = "0 * * * *"
# its own condition keeps the check out of the runs of an asset backfill (see above)
HOURLY: dg.AutomationCondition[dg.AssetCheckKey] = dg.AutomationCondition.cron_tick_passed(EVALUATION_CRON)


@dataclass(frozen=True)
class LandedMonth:
    month: str
    landed_at: datetime
    published_at: datetime | None  # the month's latest publication after this landing, if any


def newest_landed_month(landing_dir: Path) -> tuple[str, datetime] | None:
    """The month landed last, with its landing time (the later month on a tie); None before any month has landed."""
    landed = {key: time for key in MONTH_KEYS if (time := month_landed_at(landing_dir, key)) is not None}
    if not landed:
        return None
    month = max(landed, key=lambda key: (landed[key], key))
    return month, landed[month]


def published_at(instance: dg.DagsterInstance, month: str) -> datetime | None:
    """When ``publish/months`` last materialized the month, or None if it never did."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PUBLISH_MONTHS, asset_partitions=[month]), limit=1
    ).records
    return datetime.fromtimestamp(records[0].timestamp, UTC) if records else None


def freshness_result(landed: LandedMonth, limit_hours: float, now: datetime) -> dg.AssetCheckResult:
    """Passed when the month was published within the limit, or has not waited longer than it yet; else WARN."""
    published = landed.published_at if landed.published_at and landed.published_at >= landed.landed_at else None
    hours = ((published or now) - landed.landed_at) / timedelta(hours=1)
    passed = hours <= limit_hours
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=_describe(landed.month, landed.landed_at, published, hours, limit_hours),
        metadata={
            "month": landed.month,
            "landed_at": _clock(landed.landed_at),
            "published_at": _clock(published) if published else "not published",
            "hours_to_publish": dg.MetadataValue.float(round(hours, 3)),
            "limit_hours": dg.MetadataValue.float(float(limit_hours)),  # a JSON override may give an int
        },
    )


def _describe(month: str, landed: datetime, published: datetime | None, hours: float, limit_hours: float) -> str:
    head = f"{month} landed at {_clock(landed)}"
    limit = f"limit {limit_hours:g} h"
    in_time = hours <= limit_hours
    if published is not None:
        return f"{head} and was published {hours:.1f} h later ({limit})" + ("" if in_time else ": published late")
    if in_time:
        due = _clock(landed + timedelta(hours=limit_hours))
        return f"{head} and is not published yet, {hours:.1f} h later ({limit}: due by {due})"
    return f"{head} and is not published {hours:.1f} h later ({limit}): run it again with `dataops run {month}`"


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@dg.asset_check(
    asset=PUBLISH_MONTHS,
    name=CHECK_NAME,
    blocking=False,
    automation_condition=HOURLY,
    description="WARN when the newest landed month (by the landed_at of its control records) is not published "
    "(publish/months) within the environment's max_hours_landed_to_published of its landing: published later, or "
    "not published and the hours are over. A month landed less than that ago and not yet published passes. "
    "Evaluated after the months of `dataops run` and every hour, never inside a month's run.",
)
def newest_month_published_in_time(
    context: dg.AssetCheckExecutionContext, landing_zone: LandingZone, thresholds: ThresholdsResource
) -> dg.AssetCheckResult:
    newest = newest_landed_month(Path(landing_zone.root))
    if newest is None:
        return dg.AssetCheckResult(passed=True, description="no month has landed yet: nothing to publish")
    month, landed = newest
    limit_hours = thresholds.max_hours_landed_to_published
    landed_month = LandedMonth(month, landed, published_at(context.instance, month))
    return freshness_result(landed_month, limit_hours, datetime.now(UTC))


freshness_checks = [newest_month_published_in_time]
