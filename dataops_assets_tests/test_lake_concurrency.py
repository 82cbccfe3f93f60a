"""Months written through the lake's I/O manager by separate processes at the same moment, as parallel monthly
runs write them: each commit replaces exactly its month, and a month written twice at once ends with one writer's
rows, never a mix. A commit that loses the race to another writer's is retried; one that loses every attempt fails
naming the table and month and leaves nothing of its write."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from dataops_assets import storage
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets_tests.fixtures.lake_writers import (
    act_after_reads,
    lost_commit_files,
    month_frame,
    replace_months_at_once,
    seed_table,
    write_month,
)


def _month(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame[frame["partition_month"] == dt.date.fromisoformat(f"{key}-01")]


def _writes_of(uri: str, key: str) -> list[str]:
    return [commit["dagster_run_id"] for commit in DeltaTable(uri).history() if commit.get("partition") == key]


def test_twelve_processes_each_replacing_their_own_month(tmp_path: Path) -> None:
    uri = str(tmp_path / "core" / "flights")
    seed_table(uri, MONTH_KEYS, rows=3)
    jobs = [(key, 10 + index, f"writer-{key}") for index, key in enumerate(MONTH_KEYS)]

    replace_months_at_once(uri, jobs)

    frame = DeltaTable(uri).to_pandas()
    assert len(frame) == sum(rows for _, rows, _ in jobs)
    for key, rows, writer in jobs:
        month = _month(frame, key)
        assert set(month["writer"]) == {writer}
        assert sorted(month["flight"]) == list(range(rows))
        assert _writes_of(uri, key) == [writer, f"seed-{key}"]  # newest first: one commit each
        assert lost_commit_files(uri, key) == set()  # other months' commits are no conflict: none retried


def test_processes_replacing_the_same_month_leave_one_writers_rows(tmp_path: Path) -> None:
    uri = str(tmp_path / "core" / "flights")
    seed_table(uri, ("2013-04", "2013-05", "2013-06"), rows=3)
    writers = {f"writer-{index}": 20 + index for index in range(6)}

    replace_months_at_once(uri, [("2013-05", rows, writer) for writer, rows in writers.items()])

    frame = DeltaTable(uri).to_pandas()
    may = _month(frame, "2013-05")
    [winner] = set(may["writer"])
    assert sorted(may["flight"]) == list(range(writers[winner]))  # all of one writer's rows, no duplicates
    assert winner == _writes_of(uri, "2013-05")[0]  # the last commit wins; every writer committed once
    assert sorted(_writes_of(uri, "2013-05")[:-1]) == sorted(writers)
    assert lost_commit_files(uri, "2013-05")  # at least one writer lost the race to another and wrote again
    for key in ("2013-04", "2013-06"):
        assert set(_month(frame, key)["writer"]) == {"seed"}
        assert len(_month(frame, key)) == 3


def _rivals_commit_after_reads(monkeypatch: pytest.MonkeyPatch, uri: str, key: str, times: int) -> list[str]:
    """Right after each of the next ``times`` reads of the table by the I/O manager, another run replaces month
    ``key``, so the write that read the table loses its commit. Returns the rivals' run ids as they commit."""
    rivals: list[str] = []

    def rival_commits() -> None:
        rivals.append(f"rival-{len(rivals) + 1}")
        write_month(uri, month_frame(key, 2, rivals[-1]), key, run_id=rivals[-1])

    act_after_reads(monkeypatch, times, rival_commits)
    return rivals


def test_a_writer_that_loses_the_commit_race_writes_again_and_commits_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "core" / "flights")
    seed_table(uri, ("2013-04", "2013-05"), rows=3)
    rivals = _rivals_commit_after_reads(monkeypatch, uri, "2013-05", times=2)

    write_month(uri, month_frame("2013-05", 9, "writer"), "2013-05", run_id="writer")

    # two rivals committed between the writer's read and its commit: it lost twice, the third attempt committed
    assert _writes_of(uri, "2013-05") == ["writer", "rival-2", "rival-1", "seed-2013-05"]
    assert len(lost_commit_files(uri, "2013-05")) == 2
    frame = DeltaTable(uri).to_pandas()
    assert set(_month(frame, "2013-05")["writer"]) == {"writer"}
    assert sorted(_month(frame, "2013-05")["flight"]) == list(range(9))
    assert set(_month(frame, "2013-04")["writer"]) == {"seed"}
    assert rivals == ["rival-1", "rival-2"]


def test_a_writer_that_loses_every_attempt_fails_naming_table_and_month_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "core" / "flights")
    seed_table(uri, ("2013-04", "2013-05"), rows=3)
    rivals = _rivals_commit_after_reads(monkeypatch, uri, "2013-05", times=storage.COMMIT_ATTEMPTS)

    with pytest.raises(storage.CommitConflictError) as failure:
        write_month(uri, month_frame("2013-05", 9, "writer"), "2013-05", run_id="writer")

    assert str(failure.value).startswith(
        f"core.flights 2013-05: each of {storage.COMMIT_ATTEMPTS} commits lost to a concurrent write of the table ("
    )
    assert len(rivals) == storage.COMMIT_ATTEMPTS
    assert _writes_of(uri, "2013-05") == [*reversed(rivals), "seed-2013-05"]  # no commit of the writer's
    assert len(lost_commit_files(uri, "2013-05")) == storage.COMMIT_ATTEMPTS  # its files, never referenced
    frame = DeltaTable(uri).to_pandas()
    assert set(_month(frame, "2013-05")["writer"]) == {rivals[-1]}
    assert len(frame) == 3 + 2
