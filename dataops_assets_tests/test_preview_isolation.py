"""A preview reads its base's tables at pinned versions and writes only its own lake (``dataops_assets.storage``),
and the base's lake maintenance keeps the versions an open preview reads (``dataops_assets.maintenance``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable

from dataops_assets.environments import PREVIEW_MANIFEST, Preview, settings_for
from dataops_assets.maintenance import build_lake_maintenance
from dataops_assets.partitions import MONTHLY
from dataops_assets.storage import PARTITION_COLUMN, ReadOnlyLakeError, lake_io_manager

MONTH = "2013-01"


def _assets(source_rows: int) -> list[dg.AssetsDefinition]:
    """``staging/t`` (``source_rows`` rows) and ``core/t``, its row count: monthly, as the pipeline's tables."""

    @dg.asset(key=["staging", "t"], partitions_def=MONTHLY, metadata={"partition_expr": PARTITION_COLUMN})
    def staging_t() -> pd.DataFrame:
        return pd.DataFrame({"n": range(source_rows)})

    @dg.asset(
        key=["core", "t"],
        ins={"staging_t": dg.AssetIn(["staging", "t"])},
        partitions_def=MONTHLY,
        metadata={"partition_expr": PARTITION_COLUMN},
    )
    def core_t(staging_t: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"rows_read": [len(staging_t)]})

    return [staging_t, core_t]


def _materialize(selection: str, source_rows: int, io_manager: dg.IOManagerDefinition | object) -> bool:
    result = dg.materialize(
        _assets(source_rows),
        selection=selection,
        partition_key=MONTH,
        resources={"io_manager": io_manager},
        raise_on_error=False,
    )
    return result.success


def _bytes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture
def base_lake(tmp_path: Path) -> Path:
    """The base: staging/t written twice (version 0: 3 rows, then 5 rows), core/t from the first."""
    lake = tmp_path / "prod" / "lake"
    assert _materialize("*", 3, lake_io_manager(str(lake)))
    assert _materialize("staging/t", 5, lake_io_manager(str(lake)))
    return lake


def test_a_preview_reads_an_unchanged_table_at_its_pinned_version_and_writes_its_own_lake(
    base_lake: Path, tmp_path: Path
) -> None:
    before = _bytes(base_lake)
    preview_lake = tmp_path / "pr-7" / "lake"
    pinned = lake_io_manager(str(preview_lake), str(base_lake), {"staging/t": 0})

    assert _materialize("core/t", 99, pinned)

    core = DeltaTable(str(preview_lake / "core" / "t")).to_pandas()
    assert core["rows_read"].tolist() == [3]  # version 0 of the base's staging/t, not its newest (5 rows)
    assert not (preview_lake / "staging").exists()  # nothing copied
    assert _bytes(base_lake) == before


def test_a_preview_cannot_write_a_table_of_its_base(base_lake: Path, tmp_path: Path) -> None:
    before = _bytes(base_lake)
    pinned = lake_io_manager(str(tmp_path / "pr-7" / "lake"), str(base_lake), {"staging/t": 0})
    with pytest.raises(ReadOnlyLakeError, match=r"staging\.t: .* the lake this environment only reads"):
        dg.materialize(_assets(11), selection="staging/t", partition_key=MONTH, resources={"io_manager": pinned})
    assert _bytes(base_lake) == before


def test_a_lake_root_inside_the_base_is_refused_too(base_lake: Path) -> None:
    """A preview misconfigured onto its base's lake writes nothing there, pinned table or not."""
    before = _bytes(base_lake)
    misplaced = lake_io_manager(str(base_lake), str(base_lake), {"staging/t": 0})
    assert not _materialize("core/t", 1, misplaced)
    assert _bytes(base_lake) == before


def _open_preview(data_root: Path, base_lake: Path, version: int) -> None:
    prod = settings_for("prod", data_root)
    manifest = Preview(
        pr=7,
        base="prod",
        base_lake_uri=str(base_lake),
        base_landing_dir=prod.landing_dir,
        thresholds=prod.thresholds,
        rebuilt=("core/t",),
        pinned={"staging/t": version},
        months=(MONTH,),
        created_at="2026-12-08T00:00:00+00:00",
    )
    (data_root / "pr-7").mkdir()
    (data_root / "pr-7" / PREVIEW_MANIFEST).write_text(json.dumps(manifest.to_json()))


@pytest.mark.parametrize("preview_open", [True, False])
def test_vacuum_keeps_the_version_an_open_preview_reads(base_lake: Path, tmp_path: Path, preview_open: bool) -> None:
    prod = replace(settings_for("prod", tmp_path), lake_uri_override=str(base_lake))
    if preview_open:
        _open_preview(tmp_path, base_lake, version=0)
    job, _ = build_lake_maintenance(prod, [dg.AssetKey(["staging", "t"])])
    config = {"ops": {"maintain_lake_tables": {"config": {"retention_hours": 0}}}}
    assert job.execute_in_process(run_config=config, instance=dg.DagsterInstance.ephemeral()).success

    pinned = DeltaTable(str(base_lake / "staging" / "t"), version=0).to_pyarrow_dataset()
    if preview_open:
        assert pinned.to_table().num_rows == 3
    else:  # the same vacuum without the preview removes version 0's files
        with pytest.raises(OSError, match=r"No such file|not found"):
            pinned.to_table()
