"""What the Dagster instance recorded of earlier materializations, for the checks that compare a run with the past
(the volume band, the reference tables' row count)."""

from collections.abc import Sequence

import dagster as dg


def recorded_count(materialization: dg.AssetMaterialization | None, keys: Sequence[str]) -> int | None:
    """The first of ``keys`` that the materialization recorded as a whole number; None without one."""
    if materialization is None:
        return None
    for key in keys:
        value = materialization.metadata.get(key)
        if isinstance(value, dg.IntMetadataValue) and value.value is not None:
            return value.value
    return None
