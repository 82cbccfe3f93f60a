"""Every version the project records or prints names its own commit: the commit file of that number carries the
run and month that wrote it, even when another writer commits between a write and the reading of its version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable

from dataops_assets import storage
from dataops_assets.commits import commits, read_commit
from dataops_assets.environments import Settings
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets.storage import PARTITION_COLUMN
from dataops_assets_tests.fixtures.lake import lake_environment, record_month
from dataops_assets_tests.fixtures.lake_writers import seed_table
from dataops_assets_tests.fixtures.observability import TINY_MONTH, tiny_landed_settings
from dataops_assets_tests.fixtures.pipeline import materialize_partition
from dataops_assets_tests.fixtures.publishing import publish
from dataops_ops.cli import main
from dataops_ops.instance import open_instance
from dataops_ops.lake import connect_lake, publications, table_history, table_uri

INTRUDER_MONTH = "2013-07"
CORE = "core.flights"


def _an_intruder_commits_after_each_write(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Through the seam the I/O manager writes by: right after each commit of the run, another writer's commit of
    another month lands in the same table (as parallel months' runs do). Returns the tables it wrote into."""
    write: Callable[..., Any] = storage.write_deltalake
    intruded: list[str] = []

    def interleaved(uri: str, data: pa.Table, **options: Any) -> None:
        write(uri, data, **options)
        if PARTITION_COLUMN not in data.schema.names or uri in intruded:
            return
        month = pa.array([pa.scalar(f"{INTRUDER_MONTH}-01").cast(pa.date32())] * len(data), pa.date32())
        other = data.set_column(data.schema.get_field_index(PARTITION_COLUMN), PARTITION_COLUMN, month)
        metadata = {"dagster_run_id": "intruder", "partition": INTRUDER_MONTH}
        write(
            uri,
            other,
            mode="overwrite",
            partition_by=[PARTITION_COLUMN],
            predicate=f"{PARTITION_COLUMN} = '{INTRUDER_MONTH}-01'",
            commit_properties=CommitProperties(custom_metadata=metadata),
        )
        intruded.append(uri)

    monkeypatch.setattr(storage, "write_deltalake", interleaved)
    return intruded


def test_a_write_records_its_own_commit_when_another_lands_right_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tiny_landed_settings(tmp_path)
    intruded = _an_intruder_commits_after_each_write(monkeypatch)

    result = materialize_partition(settings, TINY_MONTH)

    assert result.success
    recorded = _recorded_versions(result)
    assert set(intruded) == {uri for uri, _ in recorded.values()} and len(recorded) >= 4  # core and the marts
    for key, (uri, version) in recorded.items():
        commit = read_commit(uri, version)
        assert commit is not None, key
        assert (commit.info["dagster_run_id"], commit.info["partition"]) == (result.run_id, TINY_MONTH), key
        assert DeltaTable(uri).version() == version + 1  # the intruder's commit is the newest


def test_the_month_is_published_at_its_run_s_commits_and_consumers_see_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tiny_landed_settings(tmp_path)
    _an_intruder_commits_after_each_write(monkeypatch)

    result = materialize_partition(settings, TINY_MONTH)

    record = publications(settings)
    assert record and all(TINY_MONTH in months for months in record.values())
    for table, months in record.items():
        publication = months[TINY_MONTH]
        commit = read_commit(table_uri(settings, table), publication.version)
        assert commit is not None and commit.info["dagster_run_id"] == result.run_id == publication.run_id
    with connect_lake(settings, [CORE]) as lake:
        shown = lake.sql(f"select count(*) from core.flights where {PARTITION_COLUMN} = '{TINY_MONTH}-01'")
        assert shown.fetchone() == (len(_core_rows(result)),)


def _recorded_versions(result: dg.ExecuteInProcessResult) -> dict[str, tuple[str, int]]:
    """Asset key → (table URI, delta_version) of each monthly Delta table the run materialized."""
    recorded = {}
    for materialization in result.get_asset_materialization_events():
        metadata = materialization.materialization.metadata
        if "delta_version" in metadata and "dagster/partition_row_count" in metadata:
            key, uri = str(materialization.asset_key), str(metadata["dagster/uri"].value)
            recorded[key] = (uri, int(metadata["delta_version"].value))  # type: ignore[arg-type]
    return recorded


def _core_rows(result: dg.ExecuteInProcessResult) -> list[int]:
    (rows,) = (
        event.materialization.metadata["dagster/partition_row_count"].value
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(["core", "flights"])
    )
    return list(range(int(rows)))  # type: ignore[arg-type]


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """core.flights with three months, one commit each (versions 0, 1, 2), each recorded as materialized and
    published at its own commit."""
    settings = lake_environment(monkeypatch, tmp_path)
    seed_table(table_uri(settings, CORE), MONTH_KEYS[:3], rows=5)
    with open_instance(settings) as instance:
        for version, key in enumerate(MONTH_KEYS[:3]):
            record_month(instance, CORE, key, rows=5)
            publish(settings, key, {CORE: (version, f"seed-{key}")})
    return settings


def test_verify_passes_a_publish_record_that_names_its_commits(
    seeded: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify"]) == 0, capsys.readouterr()


def test_verify_fails_a_publish_record_naming_another_commit(
    seeded: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    march = MONTH_KEYS[2]
    publish(seeded, march, {CORE: (1, f"seed-{march}")})  # version 1 is February's commit: March is not there

    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert f"{CORE} {march}: the publish record names version 1, which is not run seed-{march}'s commit" in out


def test_verify_fails_a_publish_record_naming_a_version_without_the_month(
    seeded: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    march = MONTH_KEYS[2]
    seed_table(table_uri(seeded, CORE), (march,), rows=0, writer="empty")  # version 3: March's rows removed
    publish(seeded, march, {CORE: (3, f"empty-{march}")})

    assert main(["verify"]) == 1
    assert f"{CORE} {march}: the publish record names version 3, which holds no row of the month" in (
        capsys.readouterr().out
    )


def test_history_names_each_version_by_its_commit_file(seeded: Settings) -> None:
    history = table_history(seeded, CORE)
    assert [(v.version, v.run_id) for v in history] == [(2, "seed-2013-03"), (1, "seed-2013-02"), (0, "seed-2013-01")]
    assert [c.version for c in commits(table_uri(seeded, CORE), after=0)] == [2, 1]
