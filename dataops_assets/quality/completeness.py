"""Complete months, judged from the staged data itself: every calendar day has flights, every hour has weather.

A landing file can be well formed and still miss its last days (an export cut at a day boundary): the file and
row checks pass it, and the row-count bands are wide. These checks count what a month must contain: the calendar
days of the month in ``staging.flights``, and the hours of the month at each airport in ``staging.weather``.
Both are blocking ERROR checks; each loads only the columns it counts through the I/O manager.
"""

import calendar
from collections.abc import Callable, Sequence

import dagster as dg
import pandas as pd

from dataops_assets.environments import Thresholds
from dataops_assets.partitions import MONTHLY
from dataops_assets.quality.projection import projected_check
from dataops_assets.resources import ThresholdsResource

FLIGHT_DAYS_CHECK = "every_day_has_flights"
WEATHER_HOURS_CHECK = "every_hour_has_weather"
STAGED_FLIGHTS = dg.AssetKey(["staging", "flights"])
STAGED_WEATHER = dg.AssetKey(["staging", "weather"])
WEATHER_AIRPORTS: tuple[str, ...] = ("EWR", "JFK", "LGA")
# The clock the months are cut by (flights and weather alike): the airports' local time.
LOCAL_TIMEZONE = "America/New_York"
_SHOWN = 5


def calendar_days(partition_key: str) -> list[int]:
    """The days of the month ``2013-02`` → 1 … 28."""
    year, month = (int(part) for part in partition_key.split("-"))
    return list(range(1, calendar.monthrange(year, month)[1] + 1))


def missing_days(days: pd.Series, partition_key: str) -> list[int]:
    """Calendar days of the month on which no flight is scheduled."""
    present = set(days.dropna().astype(int))
    return [day for day in calendar_days(partition_key) if day not in present]


def flight_days_result(days: pd.Series, partition_key: str, max_missing: int) -> dg.AssetCheckResult:
    """Passed when at most ``max_missing`` calendar days have no flight; ERROR naming the days otherwise."""
    expected = calendar_days(partition_key)
    missing = missing_days(days, partition_key)
    metadata = {
        "days_expected": dg.MetadataValue.int(len(expected)),
        "days_present": dg.MetadataValue.int(len(expected) - len(missing)),
        "days_missing": dg.MetadataValue.int(len(missing)),
        "missing_days": dg.MetadataValue.json(missing),
        "max_missing_days": dg.MetadataValue.int(max_missing),
    }
    if len(missing) <= max_missing:
        return dg.AssetCheckResult(
            passed=True,
            metadata=metadata,
            description=f"staging.flights {partition_key}: flights on {len(expected) - len(missing)} of "
            f"{len(expected)} days",
        )
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=f"staging.flights {partition_key}: no flights on {len(missing)} of {len(expected)} days "
        f"({_day_ranges(partition_key, missing)}); at most {max_missing} allowed. Is the landing file cut off?",
    )


def _day_ranges(partition_key: str, days: Sequence[int]) -> str:
    """``2013-03-05, 2013-03-28 to 2013-03-31``: consecutive days shown as one range."""
    stamps = [pd.Timestamp(f"{partition_key}-{day:02d}") for day in days]
    return _ranges(stamps, pd.Timedelta(days=1), "%Y-%m-%d")


def _ranges(stamps: Sequence[pd.Timestamp], step: pd.Timedelta, fmt: str) -> str:
    """Sorted instants as runs of consecutive ones (``a to b``), at most the first few runs, then how many more."""
    runs: list[list[pd.Timestamp]] = []
    for stamp in stamps:
        if runs and stamp - runs[-1][-1] == step:
            runs[-1].append(stamp)
        else:
            runs.append([stamp])
    shown = [f"{run[0]:{fmt}}" + (f" to {run[-1]:{fmt}}" if len(run) > 1 else "") for run in runs[:_SHOWN]]
    more = f" and {len(runs) - _SHOWN} more" if len(runs) > _SHOWN else ""
    return ", ".join(shown) + more


def expected_hours(partition_key: str) -> pd.DatetimeIndex:
    """The UTC hours of the month on the local clock, naive like ``time_hour_utc`` (743 in March, 721 in
    November, when daylight time starts and ends)."""
    start = pd.Timestamp(f"{partition_key}-01", tz=LOCAL_TIMEZONE)
    end = start + pd.offsets.MonthBegin(1)
    hours = pd.date_range(start.tz_convert("UTC"), end.tz_convert("UTC"), freq="h", inclusive="left")
    return hours.tz_localize(None)


def weather_coverage(weather: pd.DataFrame, partition_key: str) -> pd.DataFrame:
    """Per airport: the month's hours expected, those with an observation, the missing ones and the share covered."""
    hours = expected_hours(partition_key)
    rows = []
    for airport in WEATHER_AIRPORTS:
        observed = pd.DatetimeIndex(weather.loc[weather["origin"] == airport, "time_hour_utc"].dropna().unique())
        missing = hours.difference(observed)
        rows.append(
            {
                "airport": airport,
                "hours_expected": len(hours),
                "hours_present": len(hours) - len(missing),
                "coverage": (len(hours) - len(missing)) / len(hours),
                "missing": _ranges(list(missing), pd.Timedelta(hours=1), "%Y-%m-%dT%HZ"),
            }
        )
    return pd.DataFrame(rows).set_index("airport")


def weather_hours_result(weather: pd.DataFrame, partition_key: str, min_coverage: float) -> dg.AssetCheckResult:
    """Passed when every airport has at least ``min_coverage`` of the month's hours; ERROR naming them otherwise."""
    coverage = weather_coverage(weather, partition_key)
    metadata: dict[str, dg.MetadataValue] = {
        "hours_expected_per_airport": dg.MetadataValue.int(int(coverage["hours_expected"].iloc[0])),
        "min_coverage": dg.MetadataValue.float(min_coverage),
        "worst_coverage": dg.MetadataValue.float(round(float(coverage["coverage"].min()), 4)),
    }
    for airport, row in coverage.iterrows():
        metadata[f"coverage/{airport}"] = dg.MetadataValue.float(round(float(row["coverage"]), 4))
        metadata[f"hours_missing/{airport}"] = dg.MetadataValue.int(int(row["hours_expected"] - row["hours_present"]))
    short = coverage[coverage["coverage"] < min_coverage]
    summary = ", ".join(
        f"{airport} {row['hours_present']}/{row['hours_expected']} ({row['coverage']:.1%})"
        for airport, row in coverage.iterrows()
    )
    if short.empty:
        return dg.AssetCheckResult(
            passed=True, metadata=metadata, description=f"staging.weather {partition_key}: hours covered {summary}"
        )
    detail = "; ".join(
        f"{airport} has {row['hours_present']} of {row['hours_expected']} hours ({row['coverage']:.1%}), "
        f"missing (UTC) {row['missing']}"
        for airport, row in short.iterrows()
    )
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=f"staging.weather {partition_key}: below the {min_coverage:.0%} hourly coverage: {detail}",
    )


def column_check(
    spec: dg.AssetCheckSpec,
    columns: Sequence[str],
    evaluate: Callable[[pd.DataFrame, str, Thresholds], dg.AssetCheckResult],
) -> dg.AssetChecksDefinition:
    """A check of one partition of ``spec.asset`` that loads only ``columns`` of it through the I/O manager."""

    def _evaluate(context: dg.AssetCheckExecutionContext, data: pd.DataFrame) -> dg.AssetCheckResult:
        thresholds: ThresholdsResource = context.resources.thresholds
        return evaluate(data, context.partition_key, thresholds.thresholds)

    return projected_check(spec, {"data": (spec.asset_key, columns)}, _evaluate, resources=["thresholds"])


flight_days_check = column_check(
    dg.AssetCheckSpec(
        FLIGHT_DAYS_CHECK,
        asset=STAGED_FLIGHTS,
        blocking=True,
        partitions_def=MONTHLY,
        description="Every calendar day of the month has at least one staged flight (up to "
        "Thresholds.max_missing_flight_days may be missing); a month missing days is an ERROR naming them.",
    ),
    ["day"],
    lambda flights, month, thresholds: flight_days_result(flights["day"], month, thresholds.max_missing_flight_days),
)
weather_hours_check = column_check(
    dg.AssetCheckSpec(
        WEATHER_HOURS_CHECK,
        asset=STAGED_WEATHER,
        blocking=True,
        partitions_def=MONTHLY,
        description="Each airport (EWR, JFK, LGA) has an observation for at least "
        "Thresholds.min_weather_coverage of the month's local hours; below it is an ERROR.",
    ),
    ["origin", "time_hour_utc"],
    lambda weather, month, thresholds: weather_hours_result(weather, month, thresholds.min_weather_coverage),
)
completeness_checks = [flight_days_check, weather_hours_check]
