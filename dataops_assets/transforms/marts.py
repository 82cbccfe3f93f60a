"""Marts: monthly on-time performance by carrier, and by route."""

from __future__ import annotations

import pandas as pd

_PERFORMANCE_COLUMNS = ("flight_id", "cancelled", "on_time", "dep_delay", "arr_delay")
# The core columns each mart reads: the warehouse loads only these (a fraction of core's width).
CARRIER_COLUMNS = ("carrier", "airline_name", *_PERFORMANCE_COLUMNS)
ROUTE_COLUMNS = ("origin", "dest", "dest_name", "distance", *_PERFORMANCE_COLUMNS)


def carrier_monthly(core: pd.DataFrame, month_start: pd.Timestamp) -> pd.DataFrame:
    """One row per carrier: flights, cancellations, on-time share, mean and p90 delays (minutes)."""
    grouped = core.groupby(["carrier", "airline_name"], dropna=False, sort=True)
    out = grouped.agg(**_performance_aggregates()).reset_index()
    return _finish(out, month_start)


def route_monthly(core: pd.DataFrame, month_start: pd.Timestamp) -> pd.DataFrame:
    """One row per origin and destination: flights, cancellations, on-time share, delays, distance."""
    grouped = core.groupby(["origin", "dest", "dest_name"], dropna=False, sort=True)
    out = grouped.agg(**_performance_aggregates(), distance=("distance", "median")).reset_index()
    return _finish(out, month_start)


def _performance_aggregates() -> dict[str, tuple[str, object]]:
    return {
        "flights": ("flight_id", "size"),
        "cancelled": ("cancelled", "sum"),
        "on_time": ("on_time", "sum"),
        "mean_dep_delay": ("dep_delay", "mean"),
        "p90_dep_delay": ("dep_delay", _p90),
        "mean_arr_delay": ("arr_delay", "mean"),
        "p90_arr_delay": ("arr_delay", _p90),
    }


def _p90(values: pd.Series) -> float:
    return float(values.quantile(0.9)) if values.notna().any() else float("nan")


def _finish(out: pd.DataFrame, month_start: pd.Timestamp) -> pd.DataFrame:
    """Shares over all scheduled flights: a cancelled or diverted flight counts as not on time."""
    out["cancellation_rate"] = out["cancelled"] / out["flights"]
    out["on_time_share"] = out["on_time"] / out["flights"]
    out.insert(0, "month", month_start)
    out["month"] = out["month"].astype("datetime64[ns]")
    return out.astype({"flights": "int64", "cancelled": "int64", "on_time": "int64"})
