"""Marts: monthly on-time performance by carrier and by route, built from published core flights."""

from collections.abc import Callable

import dagster as dg
import pandas as pd

from dataops_assets.assets.measure import Stopwatch
from dataops_assets.partitions import MONTHLY, month_start
from dataops_assets.storage import PARTITION_COLUMN
from dataops_assets.transforms import marts

LAYER = "marts"


def _mart(
    name: str,
    build: Callable[[pd.DataFrame, pd.Timestamp], pd.DataFrame],
    columns: tuple[str, ...],
    description: str,
) -> dg.AssetsDefinition:
    @dg.asset(
        key=[LAYER, name],
        ins={"core": dg.AssetIn(key=["core", "flights"], metadata={"columns": list(columns)})},
        group_name=LAYER,
        owners=["team:flight-analytics"],
        kinds={"pandas", "deltalake"},
        tags={"layer": LAYER, "published": "true"},
        partitions_def=MONTHLY,
        metadata={"partition_expr": PARTITION_COLUMN},
        description=description,
    )
    def _build(context: dg.AssetExecutionContext, core: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        stopwatch = Stopwatch()
        mart = build(core, month_start(context))
        return dg.Output(mart, metadata=stopwatch.metadata(len(core), len(mart)))

    return _build


carrier_monthly = _mart(
    "carrier_monthly",
    marts.carrier_monthly,
    marts.CARRIER_COLUMNS,
    "On-time performance per carrier and month: flights, cancellations and cancellation rate, on-time share "
    "(arrived less than 15 minutes late, over all scheduled flights), mean and p90 departure and arrival delays.",
)
route_monthly = _mart(
    "route_monthly",
    marts.route_monthly,
    marts.ROUTE_COLUMNS,
    "On-time performance per route (origin, destination) and month, with the destination's name where known.",
)
mart_assets = [carrier_monthly, route_monthly]
