"""The previews under a data root: how many may be open, which are idle, and what pruning removes
(``dataops_ops.preview.environment``)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataops_assets.environments import Preview, settings_for
from dataops_ops.preview.environment import (
    PreviewRefusedError,
    create,
    list_previews,
    make_room,
    preview_lock,
    prune,
)

HOUR = 3600.0


def _open(data_root: Path, pr: int, idle_hours: float) -> None:
    """Preview ``pr`` of prod, its files last touched ``idle_hours`` ago."""
    prod = settings_for("prod", data_root)
    preview = Preview(
        pr=pr,
        base="prod",
        base_lake_uri=prod.lake_uri,
        base_landing_dir=prod.landing_dir,
        thresholds=prod.thresholds,
        rebuilt=("marts/route_monthly",),
        pinned={"core/flights": 3},
        months=("2013-01",),
        created_at=f"2026-12-0{pr}T00:00:00+00:00",
    )
    folder = create(data_root, preview).env_dir
    (folder / "preview").mkdir()
    (folder / "preview" / "comment.md").write_text("<!-- dataops-preview -->\n")
    stamp = time.time() - idle_hours * HOUR
    for path in [folder / "preview.json", folder / "preview", folder / "preview" / "comment.md"]:
        os.utime(path, (stamp, stamp))


@pytest.fixture
def three_previews(tmp_path: Path) -> Iterator[Path]:
    """pr-1 idle for 30 h, pr-2 busy (its `preview up` holds the lock), pr-3 idle for 2 h."""
    for pr, hours in ((1, 30.0), (2, 50.0), (3, 2.0)):
        _open(tmp_path, pr, hours)
    busy = preview_lock(tmp_path, 2)
    busy.acquire()
    try:
        yield tmp_path
    finally:
        busy.release()


def test_list_shows_each_preview_oldest_activity_first_and_whether_it_is_busy(three_previews: Path) -> None:
    listed = [(found.name, found.idle) for found in list_previews(three_previews)]
    assert listed == [("pr-2", False), ("pr-1", True), ("pr-3", True)]


def test_a_new_preview_beyond_the_limit_removes_the_oldest_idle_ones(three_previews: Path) -> None:
    removed = make_room(three_previews, pr=4, max_previews=3)
    assert [removal.name for removal in removed] == ["pr-1"]  # pr-2 is older, but busy
    assert [found.name for found in list_previews(three_previews)] == ["pr-2", "pr-3"]
    assert not (three_previews / "pr-1").exists() and not (three_previews / ".pr-1.lock").exists()


def test_the_pull_requests_own_preview_does_not_count_and_room_to_spare_removes_nothing(three_previews: Path) -> None:
    assert make_room(three_previews, pr=3, max_previews=3) == []
    assert make_room(three_previews, pr=4, max_previews=4) == []
    assert len(list_previews(three_previews)) == 3


def test_a_new_preview_is_refused_when_too_many_are_busy(three_previews: Path) -> None:
    with pytest.raises(PreviewRefusedError, match=r"3 previews are open \(at most 1\).*busy: pr-2"):
        make_room(three_previews, pr=4, max_previews=1)
    assert len(list_previews(three_previews)) == 3  # refused: nothing removed


def test_prune_removes_idle_previews_older_than_the_duration_only(three_previews: Path) -> None:
    removed = prune(three_previews, older_than_s=24 * HOUR)
    assert [(removal.name, removal.problems) for removal in removed] == [("pr-1", [])]
    assert [found.name for found in list_previews(three_previews)] == ["pr-2", "pr-3"]  # busy, and too recent
    assert prune(three_previews, older_than_s=24 * HOUR) == []
