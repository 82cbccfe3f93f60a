"""The quarantine gate: a blocking check that fails when too much of a partition was set aside.

Row rules never drop data silently; they move rows to quarantine. A little quarantine is normal life, a lot means
the drop itself is broken, and then nothing of that partition may reach core.
"""

import dagster as dg
import pandas as pd

CHECK_NAME = "quarantine_share"


def quarantine_check_spec(asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CHECK_NAME,
        asset=asset_key,
        blocking=True,
        partitions_def=partitions_def,
        description="Fails (ERROR) when the quarantined share of the partition exceeds the environment's limit, "
        "or when raw rows ≠ staged rows + quarantined rows.",
    )


def quarantine_check_result(
    asset_key: dg.AssetKey, *, rows_in: int, staged: int, quarantined: pd.DataFrame, max_share: float
) -> dg.AssetCheckResult:
    share = len(quarantined) / rows_in if rows_in else 0.0
    accounted = rows_in == staged + len(quarantined)
    passed = accounted and share <= max_share
    by_rule = quarantined["rule"].value_counts()
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=CHECK_NAME,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=_describe(rows_in, staged, len(quarantined), max_share, by_rule),
        metadata={
            "rows_in": rows_in,
            "rows_staged": staged,
            "rows_quarantined": len(quarantined),
            "quarantined_share": float(share),
            "max_share": float(max_share),
            **{f"rule/{rule}": int(count) for rule, count in by_rule.items()},
        },
    )


def _describe(rows_in: int, staged: int, quarantined: int, max_share: float, by_rule: pd.Series) -> str:
    share = quarantined / rows_in if rows_in else 0.0
    if rows_in != staged + quarantined:
        return f"rows lost: {rows_in} raw rows but {staged} staged + {quarantined} quarantined"
    rules = ", ".join(f"{rule}: {count}" for rule, count in by_rule.items()) or "none"
    verdict = "within" if share <= max_share else "above"
    return f"{quarantined} of {rows_in} rows quarantined ({share:.2%}, {verdict} the {max_share:.2%} limit); {rules}"
