"""The one place that silences Dagster's preview, beta and supersession warnings about features used on purpose.

Each filter names one feature by its warning text, so any other warning (a new preview feature, a deprecation)
still shows. Installed on import: by the Definitions before the asset modules that use the features are imported,
and by the ``dataops`` command before any of its handlers runs.
"""

from __future__ import annotations

import warnings

import dagster as dg

# (warning class, start of the message) of each feature the project relies on.
KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # Partitioned asset checks: one check evaluation per month (AssetCheckSpec / @asset_check partitions_def).
    (dg.PreviewWarning, "Specifying a partitions_def on an AssetCheckSpec"),
    # Native checks on the materialization metadata: column schema changes and row-count bounds.
    (dg.BetaWarning, "Function `build_column_schema_change_checks`"),
    (dg.BetaWarning, "Function `build_metadata_bounds_checks`"),
    # Links from each asset to its source file (dataops_assets.catalog).
    (dg.BetaWarning, "Function `with_source_code_references`"),
    (dg.BetaWarning, "Function `link_code_references_to_git`"),
    (dg.BetaWarning, "Class `LocalFileCodeReference`"),
    (dg.BetaWarning, "Class `UrlCodeReference`"),
    (dg.BetaWarning, "Class `CodeReferencesMetadataValue`"),
    (dg.BetaWarning, "Class `AnchorBasedFilePathMapping`"),
)


def install() -> None:
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


install()
