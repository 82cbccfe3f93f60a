"""A fix for one Dagster bug the UI shows, applied in the processes ``dataops ui`` starts (see ``dagster_site``).

Dagster 1.13.27 pages the partition keys of a time-window partitions definition newest first from *now*, and
ignores the definition's ``end_date`` (``TimeWindowPartitionsDefinition.get_paginated_partition_keys`` with
``ascending=False`` and no cursor starts at the current time). The UI's per-partition plots on an asset page ask
for the newest keys this way, get months after 2013 that do not exist, and plot nothing. The fix starts that
paging at the definition's end instead, when the end is in the past; anything else is passed through unchanged.

Remove this module and its line in ``dagster_site/sitecustomize.py`` once
``test_dagster_fixes.test_dagster_still_pages_from_now`` fails: Dagster then pages from its end itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dagster as dg
from dagster._core.definitions.partitions.context import PartitionLoadingContext
from dagster._core.definitions.partitions.definition.time_window import TimeWindowPartitionsDefinition
from dagster._core.definitions.temporal_context import TemporalContext

# The version the bug was found in and the fix proved on; other versions are left alone.
FIXED_VERSION = "1.13.27"
_ORIGINAL = TimeWindowPartitionsDefinition.get_paginated_partition_keys


def newest_first_from_end(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def get_paginated_partition_keys(
        self: TimeWindowPartitionsDefinition,
        context: PartitionLoadingContext,
        limit: int,
        ascending: bool,
        cursor: str | None = None,
    ) -> Any:
        end = self.end
        if not ascending and cursor is None and end is not None and context.effective_dt > end:
            temporal = TemporalContext(effective_dt=end, last_event_id=context.temporal_context.last_event_id)
            context = PartitionLoadingContext(
                temporal_context=temporal, dynamic_partitions_store=context.dynamic_partitions_store
            )
        return original(self, context, limit, ascending, cursor)

    return get_paginated_partition_keys


def apply() -> bool:
    """Install the fix on Dagster's class; False (and nothing changed) on another Dagster version."""
    if dg.__version__ != FIXED_VERSION:
        return False
    TimeWindowPartitionsDefinition.get_paginated_partition_keys = newest_first_from_end(_ORIGINAL)  # type: ignore[method-assign]
    return True
