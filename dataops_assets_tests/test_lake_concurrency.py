"""Months written by separate processes at the same moment, as parallel monthly runs write them: each commit
replaces exactly its month, and a month written twice at once ends with one writer's rows, never a mix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
from deltalake import DeltaTable

from dataops_assets.partitions import MONTH_KEYS
from dataops_assets_tests.fixtures.lake_writers import replace_months_at_once, seed_table


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
    for key in ("2013-04", "2013-06"):
        assert set(_month(frame, key)["writer"]) == {"seed"}
        assert len(_month(frame, key)) == 3
