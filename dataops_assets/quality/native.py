"""Dagster-native checks, where they fit better than a GX suite: they read materialization history, not data.

Dagster's check builders name their op after a hash of its keys (``asset_check_f8bb3d34``) and describe every
check in generic words ("Checks whether there are changes to column schema..."); :func:`_readable` rebuilds
each with an op name and a description that say what this project checks. The check names stay Dagster's own, so
the history of a check in an instance continues across this change.

Freshness is not Dagster's partition freshness check (is the newest month of 2013 there by a deadline on today's
calendar?), which asked a closed historical year a wall-clock question in every month's run: ``quality.freshness``
asks whether the newest landed month was published in time.
"""

from collections.abc import Callable, Sequence

import dagster as dg

from dataops_assets.environments import Thresholds

PUBLISHED = dg.AssetSelection.tag("published", "true")
CORE_FLIGHTS = dg.AssetKey(["core", "flights"])


def native_checks(assets: Sequence[dg.AssetsDefinition], thresholds: Thresholds) -> Sequence[dg.AssetChecksDefinition]:
    """Schema change on published tables, row-count bounds from metadata."""
    # Dagster's builder takes its bounds when the definitions load, not from a resource at run time; the
    # definitions are built per environment, so these are its thresholds, and the maintained check stays.
    min_rows = thresholds.min_flights_per_month * (1 - thresholds.max_quarantine_share)
    max_rows = thresholds.max_flights_per_month
    return [
        *_readable(
            dg.build_column_schema_change_checks(
                assets=sorted(PUBLISHED.resolve(assets)), severity=dg.AssetCheckSeverity.WARN
            ),
            op_name="published_tables_column_schema_change",
            describe=lambda key: (
                f"WARN when the columns or column types of {key.to_user_string()} differ between its two latest "
                "materializations (the dagster/column_schema metadata): a published table's readers would "
                "break. Dagster's build_column_schema_change_checks."
            ),
        ),
        *_readable(
            dg.build_metadata_bounds_checks(
                assets=[CORE_FLIGHTS],
                metadata_key="dagster/partition_row_count",
                min_value=min_rows,
                max_value=max_rows,
                severity=dg.AssetCheckSeverity.WARN,
            ),
            op_name="core_flights_row_count_bounds",
            describe=lambda key: (
                f"WARN when the latest materialized month of {key.to_user_string()} has fewer than {min_rows:,.0f} "
                f"or more than {max_rows:,} rows (dagster/partition_row_count): the environment's band for a "
                "month, less the share quarantine may take. Dagster's build_metadata_bounds_checks."
            ),
        ),
    ]


def _readable(
    checks: Sequence[dg.AssetChecksDefinition], op_name: str, describe: Callable[[dg.AssetKey], str]
) -> list[dg.AssetChecksDefinition]:
    """The same checks with op ``op_name`` (suffixed when a builder gives several) and ``describe(asset key)``
    as each check's description; inputs, outputs, severities and check names are unchanged."""
    return [
        dg.AssetChecksDefinition.create(
            keys_by_input_name=check.keys_by_input_name,
            node_def=check.op.with_replaced_properties(name=op_name if len(checks) == 1 else f"{op_name}_{index}"),
            check_specs_by_output_name={
                output: _described(spec, describe(spec.asset_key))
                for output, spec in check.check_specs_by_output_name.items()
            },
            can_subset=check.can_subset,
        )
        for index, check in enumerate(checks)
    ]


def _described(spec: dg.AssetCheckSpec, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        spec.name,
        asset=spec.asset_key,
        description=description,
        additional_deps=spec.additional_deps,
        blocking=spec.blocking,
        metadata=spec.metadata,
        automation_condition=spec.automation_condition,
        partitions_def=spec.partitions_def,
    )
