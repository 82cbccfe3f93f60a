"""Marts reconcile with core: in each month, a mart's flights and cancellations per group equal core's.

One blocking, monthly-partitioned check per mart. It loads the month of core flights (only the columns it compares)
and the month of the mart through the I/O manager, so it reads whatever storage the environment uses. A mart that
disagrees with core fails with ERROR; the deploy gates read it like any other blocking check.
"""

from collections.abc import Sequence

import dagster as dg
import pandas as pd

from dataops_assets.partitions import MONTHLY

CHECK_NAME = "reconciles_with_core"
# Per mart: the grouping columns it shares with core, i.e. what its flights and cancellations are counted by.
MART_KEYS: dict[str, tuple[str, ...]] = {"carrier_monthly": ("carrier",), "route_monthly": ("origin", "dest")}
_SHOWN = 10


def mismatches(core: pd.DataFrame, mart: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The groups whose flights or cancellations differ between core and mart; a group missing on one side
    counts as zero flights there."""
    by = list(keys)
    expected = core.groupby(by, dropna=False).agg(flights=("cancelled", "size"), cancelled=("cancelled", "sum"))
    reported = mart.groupby(by, dropna=False)[["flights", "cancelled"]].sum()
    both = expected.join(reported, how="outer", lsuffix="_core", rsuffix="_mart").fillna(0).astype("int64")
    differs = (both["flights_core"] != both["flights_mart"]) | (both["cancelled_core"] != both["cancelled_mart"])
    return both[differs].reset_index()


def reconcile(core: pd.DataFrame, mart: pd.DataFrame, keys: Sequence[str]) -> dg.AssetCheckResult:
    """Passed when every group agrees; ERROR, naming the first groups that disagree, otherwise."""
    wrong = mismatches(core, mart, keys)
    metadata = {
        "core_flights": dg.MetadataValue.int(len(core)),
        "mart_flights": dg.MetadataValue.int(int(mart["flights"].sum())),
        "core_cancelled": dg.MetadataValue.int(int(core["cancelled"].sum())),
        "mart_cancelled": dg.MetadataValue.int(int(mart["cancelled"].sum())),
        "mismatched_groups": dg.MetadataValue.int(len(wrong)),
    }
    if wrong.empty:
        return dg.AssetCheckResult(
            passed=True, metadata=metadata, description=f"{len(mart)} groups: flights and cancellations equal core's"
        )
    shown = "; ".join(
        f"{' '.join(str(row[key]) for key in keys)}: core {row['flights_core']} flights / {row['cancelled_core']} "
        f"cancelled, mart {row['flights_mart']} / {row['cancelled_mart']}"
        for _, row in wrong.head(_SHOWN).iterrows()
    )
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=f"{len(wrong)} groups ({', '.join(keys)}) disagree with core: {shown}",
    )


def reconciliation_check(mart_name: str, keys: Sequence[str]) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["marts", mart_name]),
        name=CHECK_NAME,
        blocking=True,
        partitions_def=MONTHLY,
        additional_ins={"core": dg.AssetIn(key=["core", "flights"], metadata={"columns": [*keys, "cancelled"]})},
        description=f"Flights and cancellations per {', '.join(keys)} in marts/{mart_name} equal core/flights "
        "in the same month; a mismatch is an ERROR.",
    )
    def _check(mart: pd.DataFrame, core: pd.DataFrame) -> dg.AssetCheckResult:
        return reconcile(core, mart, keys)

    return _check


reconciliation_checks = [reconciliation_check(name, keys) for name, keys in MART_KEYS.items()]
