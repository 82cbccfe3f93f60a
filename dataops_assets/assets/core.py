"""Core layer (published): what consumers read. A partition is written here only after staging's checks pass."""

import dagster as dg
import pandas as pd

from dataops_assets.assets.measure import Stopwatch
from dataops_assets.partitions import MONTHLY
from dataops_assets.storage import PARTITION_COLUMN
from dataops_assets.transforms.core import enrich_flights

LAYER = "core"


@dg.asset(
    key=[LAYER, "flights"],
    ins={
        "flights": dg.AssetIn(key=["staging", "flights"]),
        "weather": dg.AssetIn(key=["staging", "weather"]),
        "planes": dg.AssetIn(key=["staging", "planes"]),
        "airlines": dg.AssetIn(key=["staging", "airlines"]),
        "airports": dg.AssetIn(key=["staging", "airports"]),
    },
    group_name=LAYER,
    owners=["team:flight-analytics"],
    kinds={"pandas", "deltalake"},
    tags={"layer": LAYER, "published": "true"},
    partitions_def=MONTHLY,
    metadata={"partition_expr": PARTITION_COLUMN},
    description="Published flights: each staged flight with the weather at its origin in the scheduled hour, "
    "its plane, its airline and its destination airport; has_weather, plane_known and dest_known flag misses.",
)
def core_flights(
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    planes: pd.DataFrame,
    airlines: pd.DataFrame,
    airports: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    stopwatch = Stopwatch()
    enriched = enrich_flights(flights, weather, planes, airlines, airports)
    return dg.Output(
        enriched,
        metadata=stopwatch.metadata(
            len(flights),
            len(enriched),
            flights_without_weather=int((~enriched["has_weather"]).sum()),
            flights_with_unknown_plane=int((~enriched["plane_known"]).sum()),
            flights_to_unknown_airport=int((~enriched["dest_known"]).sum()),
        ),
    )


core_assets = [core_flights]
