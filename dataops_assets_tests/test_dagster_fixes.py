"""The partition-paging fix ``dataops ui`` applies: the bug it works around, and what it changes."""

from __future__ import annotations

import datetime as dt

import pytest
from dagster._core.definitions.partitions.context import PartitionLoadingContext
from dagster._core.definitions.temporal_context import TemporalContext

from dataops_assets.partitions import MONTH_KEYS, MONTHLY
from dataops_ops import dagster_fixes

NOW = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)


def _context(effective: dt.datetime = NOW) -> PartitionLoadingContext:
    return PartitionLoadingContext(
        temporal_context=TemporalContext(effective_dt=effective, last_event_id=None), dynamic_partitions_store=None
    )


def test_dagster_still_pages_from_now() -> None:
    """The upstream bug: newest first, the keys start at now, past end_date. Fails once Dagster fixes it: then
    remove dagster_fixes and its line in dagster_site/sitecustomize.py."""
    page = dagster_fixes._ORIGINAL(MONTHLY, _context(), limit=24, ascending=False)
    assert page.results[0] == "2026-10"
    assert not set(page.results) & set(MONTH_KEYS)


def test_fixed_paging_starts_at_the_last_month_and_pages_on() -> None:
    fixed = dagster_fixes.newest_first_from_end(dagster_fixes._ORIGINAL)
    first = fixed(MONTHLY, _context(), limit=5, ascending=False)
    assert first.results == ["2013-12", "2013-11", "2013-10", "2013-09", "2013-08"]
    assert first.has_more
    keys = list(first.results)
    cursor = first.cursor
    while cursor is not None and len(keys) < 20:
        page = fixed(MONTHLY, _context(), limit=5, ascending=False, cursor=cursor)
        keys += page.results
        cursor = page.cursor if page.has_more else None
    assert keys == list(reversed(MONTH_KEYS))


@pytest.mark.parametrize("ascending", [True, False])
def test_the_fix_changes_nothing_else(ascending: bool) -> None:
    fixed = dagster_fixes.newest_first_from_end(dagster_fixes._ORIGINAL)
    during_2013 = dt.datetime(2013, 6, 15, tzinfo=dt.UTC)
    for context in (_context(during_2013), *([_context()] if ascending else [])):
        expected = dagster_fixes._ORIGINAL(MONTHLY, context, limit=6, ascending=ascending)
        assert fixed(MONTHLY, context, limit=6, ascending=ascending) == expected


def test_apply_installs_the_fix_on_the_proved_version_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.definitions.partitions.definition.time_window import TimeWindowPartitionsDefinition

    monkeypatch.setattr(TimeWindowPartitionsDefinition, "get_paginated_partition_keys", dagster_fixes._ORIGINAL)
    monkeypatch.setattr(dagster_fixes.dg, "__version__", "9.9.9")
    assert not dagster_fixes.apply()
    assert TimeWindowPartitionsDefinition.get_paginated_partition_keys is dagster_fixes._ORIGINAL
    monkeypatch.setattr(dagster_fixes.dg, "__version__", dagster_fixes.FIXED_VERSION)
    assert dagster_fixes.apply()
    page = MONTHLY.get_paginated_partition_keys(_context(), limit=3, ascending=False)
    assert page.results == ["2013-12", "2013-11", "2013-10"]
