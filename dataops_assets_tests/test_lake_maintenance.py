"""The ``lake_maintenance`` job: small files compacted, files of versions past the retention vacuumed, the data
unchanged, each table's counts observed on its asset; its schedule runs in stage and prod only. A compaction and
a run's write of the same month race: a write that loses writes again, a compaction that loses is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake

from dataops_assets import maintenance
from dataops_assets.definitions import build_definitions
from dataops_assets.environments import settings_for
from dataops_assets.maintenance import RETENTION_HOURS, build_lake_maintenance, maintain_table
from dataops_assets_tests.fixtures.lake_writers import (
    act_after_reads,
    lost_commit_files,
    month_frame,
    with_month_column,
    write_month,
)
from dataops_ops.lake import partition_files

FLIGHTS = dg.AssetKey(["core", "flights"])


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["partition_month", "writer", "flight"]).reset_index(drop=True)


def _parquet_files(uri: str) -> set[str]:
    return {str(path.relative_to(uri)) for path in Path(uri).rglob("*.parquet")}


def _observed(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, dict[str, object]]:
    observations = [event.asset_observation_data.asset_observation for event in result.get_asset_observation_events()]
    names = ("files_compacted", "files_written", "files_vacuumed")
    return {item.asset_key: {name: item.metadata[name].value for name in names} for item in observations}


def _run(tables: list[dg.AssetKey], data_root: Path, retention_hours: int) -> dg.ExecuteInProcessResult:
    job, _ = build_lake_maintenance(settings_for("stage", data_root), tables)
    config = {"ops": {"maintain_lake_tables": {"config": {"retention_hours": retention_hours}}}}
    return job.execute_in_process(run_config=config, instance=dg.DagsterInstance.ephemeral())


def test_compacts_small_files_and_vacuums_replaced_ones(tmp_path: Path) -> None:
    uri = settings_for("stage", tmp_path).lake_uri + "/core/flights"
    for batch in range(4):  # four small files in January
        write_deltalake(
            uri,
            with_month_column(month_frame("2013-01", 5, f"batch-{batch}"), "2013-01"),
            mode="append",
            partition_by=["partition_month"],
        )
    write_month(uri, month_frame("2013-02", 5, "first"), "2013-02", run_id="first")
    write_month(uri, month_frame("2013-02", 6, "second"), "2013-02", run_id="second")  # leaves the first's file
    before = _sorted(DeltaTable(uri).to_pandas())
    assert len(_parquet_files(uri)) == 6

    kept = _run([FLIGHTS], tmp_path, retention_hours=24)  # every replaced file is younger: none vacuumed
    assert _observed(kept) == {FLIGHTS: {"files_compacted": 4, "files_written": 1, "files_vacuumed": 0}}
    assert len(_parquet_files(uri)) == 7
    result = _run([FLIGHTS, dg.AssetKey(["marts", "not_written_yet"])], tmp_path, retention_hours=0)

    # January's four small files and February's first are gone; what is left is exactly the last version
    assert _observed(result) == {FLIGHTS: {"files_compacted": 0, "files_written": 0, "files_vacuumed": 5}}
    table = DeltaTable(uri)
    assert _parquet_files(uri) == {path for files in partition_files(table).values() for path in files}
    pd.testing.assert_frame_equal(_sorted(table.to_pandas()), before)
    history = table.history()
    assert {commit["operation"] for commit in history} >= {"OPTIMIZE", "VACUUM START", "VACUUM END"}


def test_schedule_is_stopped_in_dev_and_running_in_stage_and_prod(tmp_path: Path) -> None:
    for name, status in (("dev", "STOPPED"), ("stage", "RUNNING"), ("prod", "RUNNING")):
        defs = build_definitions(settings_for(name, tmp_path))
        schedule = defs.resolve_schedule_def("weekly_lake_maintenance")
        assert (schedule.job_name, schedule.default_status.value) == ("lake_maintenance", status)


def _small_files(uri: str, key: str, files: int) -> None:
    """Month ``key`` in ``files`` small files, as appends leave it: something for a compaction to do."""
    for batch in range(files):
        frame = with_month_column(month_frame(key, 2, f"small-{batch}"), key)
        write_deltalake(uri, frame, mode="append", partition_by=["partition_month"])


def test_a_write_of_a_month_compacted_meanwhile_writes_again_after_the_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = settings_for("stage", tmp_path).lake_uri + "/core/flights"
    _small_files(uri, "2013-01", files=3)
    write_month(uri, month_frame("2013-02", 5, "february"), "2013-02", run_id="february")
    compactions: list[dict[str, Any]] = []

    def maintenance_commits() -> None:
        compactions.append(maintain_table(DeltaTable(uri), RETENTION_HOURS, "maintenance"))

    act_after_reads(monkeypatch, 1, maintenance_commits)

    write_month(uri, month_frame("2013-01", 6, "run"), "2013-01", run_id="run")

    # the compaction committed between the write's read and its commit: the write lost once, then committed
    assert compactions[0]["files_compacted"] == 3
    history = DeltaTable(uri).history()
    assert [c.get("dagster_run_id") for c in history if c["operation"] in ("WRITE", "OPTIMIZE")][:2] == [
        "run",
        "maintenance",
    ]
    assert len(lost_commit_files(uri, "2013-01")) == 1
    frame = DeltaTable(uri).to_pandas()
    assert sorted(frame.loc[frame["partition_month"].astype(str) == "2013-01-01", "writer"]) == ["run"] * 6
    assert sorted(frame.loc[frame["partition_month"].astype(str) == "2013-02-01", "writer"]) == ["february"] * 5


def test_a_table_written_meanwhile_is_named_and_the_others_maintained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = settings_for("stage", tmp_path).lake_uri
    marts = dg.AssetKey(["marts", "carrier_monthly"])
    for key in (FLIGHTS, marts):
        _small_files(f"{lake}/{'/'.join(key.path)}", "2013-01", files=2)
    core_uri = f"{lake}/{'/'.join(FLIGHTS.path)}"
    maintain = maintenance.maintain_table

    def a_run_commits_meanwhile(table: DeltaTable, retention_hours: int, run_id: str) -> dict[str, Any]:
        if table.table_uri.rstrip("/").endswith("core/flights"):  # after the job read the table, before it commits
            write_month(core_uri, month_frame("2013-01", 7, "run"), "2013-01", run_id="run")
        return maintain(table, retention_hours, run_id)

    monkeypatch.setattr(maintenance, "maintain_table", a_run_commits_meanwhile)
    job, _ = build_lake_maintenance(settings_for("stage", tmp_path), [FLIGHTS, marts])
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance, raise_on_error=False)

    assert not result.success
    observed = {key: len(instance.fetch_observations(key, limit=5).records) for key in (FLIGHTS, marts)}
    assert observed == {FLIGHTS: 0, marts: 1}
    [failure] = [event for event in result.all_events if event.is_step_failure]
    failure_data = failure.step_failure_data.user_failure_data
    assert failure_data is not None
    assert "core/flights: Failed to commit transaction: Commit failed: a concurrent transaction deleted data" in str(
        failure_data.metadata["tables"].value
    )
    assert sorted(DeltaTable(core_uri).to_pandas()["writer"]) == ["run"] * 7  # the run's write stands, whole
    monkeypatch.undo()  # no run writes during the next maintenance: it maintains core too
    assert job.execute_in_process(instance=instance).success
    assert len(instance.fetch_observations(FLIGHTS, limit=5).records) == 1
