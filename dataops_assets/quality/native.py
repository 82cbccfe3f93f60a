"""Dagster-native checks, where they fit better than a GX suite: they read materialization history, not data."""

import warnings
from collections.abc import Sequence

import dagster as dg

from dataops_assets.environments import Thresholds

PUBLISHED = dg.AssetSelection.tag("published", "true")


def native_checks(assets: Sequence[dg.AssetsDefinition], thresholds: Thresholds) -> Sequence[dg.AssetChecksDefinition]:
    """Schema change on published tables, row-count bounds from metadata, freshness of the newest partition."""
    return [
        *dg.build_column_schema_change_checks(
            assets=sorted(PUBLISHED.resolve(assets)), severity=dg.AssetCheckSeverity.WARN
        ),
        # Dagster's builder takes its bounds when the definitions load, not from a resource at run time; the
        # definitions are built per environment, so these are its thresholds, and the maintained check stays.
        *dg.build_metadata_bounds_checks(
            assets=[dg.AssetKey(["core", "flights"])],
            metadata_key="dagster/partition_row_count",
            min_value=thresholds.min_flights_per_month * (1 - thresholds.max_quarantine_share),
            max_value=thresholds.max_flights_per_month,
            severity=dg.AssetCheckSeverity.WARN,
        ),
        *_newest_partition_freshness(),
    ]


def _newest_partition_freshness() -> Sequence[dg.AssetChecksDefinition]:
    """WARN when the newest month is missing from core by the 3rd of the month after it ends.

    Dagster marks this builder superseded by FreshnessPolicy, which only looks at the latest materialization of
    any partition; the per-partition question ("has the newest month arrived?") is the one that matters here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_time_partition_freshness_checks(
            assets=[dg.AssetKey(["core", "flights"])], deadline_cron="0 9 3 * *", timezone="America/New_York"
        )
