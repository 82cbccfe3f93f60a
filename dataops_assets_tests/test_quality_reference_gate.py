"""Reference tables gated like months: schema, keys and row count checked before the staged table is replaced.

On the real reference files (airports 1,458 rows, airlines 16, planes 3,322) every check passes. Half of
``planes.csv``, repeated tail numbers and a text in a number column each fail the ``reference_tables`` run with a
message naming the landing file; the published table (the Delta table's rows and version) stays as it was, and a
month run stops before core.
"""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from deltalake import DeltaTable

from dataops_assets import landing
from dataops_assets.definitions import build_definitions
from dataops_assets.environments import Settings, settings_for
from dataops_assets.orchestration import reference_tables
from dataops_assets.quality.reference_gate import (
    KEYS_CHECK,
    ROW_COUNT_CHECK,
    SCHEMA_CHECK,
    expected_schema,
    shrink_problem,
)
from dataops_assets.transforms.reference import REFERENCE_SPECS
from dataops_assets_tests.fixtures.pipeline import materialize_partition, read_table, step_failures

REAL_ROWS = {"airports": 1458, "airlines": 16, "planes": 3322}


def _run_references(settings: Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def(reference_tables.name)
    return job.execute_in_process(instance=instance, raise_on_error=False)


def _evaluations(result: dg.ExecuteInProcessResult, table: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(["staging", table])
    }


def _published(settings: Settings, table: str) -> tuple[pd.DataFrame, int]:
    """The staged table's rows and its Delta version."""
    rows = read_table(settings, f"staging.{table}").sort_values(REFERENCE_SPECS[table].key, ignore_index=True)
    return rows, DeltaTable(f"{settings.lake_uri}/staging/{table}").version()


@pytest.fixture
def published(tmp_path: Path) -> tuple[Settings, dg.DagsterInstance]:
    """dev with the real reference files landed and published once."""
    settings = settings_for("dev", data_root=tmp_path)
    landing.land(settings, months=())
    instance = dg.DagsterInstance.ephemeral()
    result = _run_references(settings, instance)
    assert result.success
    return settings, instance


@pytest.mark.real_data
def test_the_real_reference_files_pass_every_check(published: tuple[Settings, dg.DagsterInstance]) -> None:
    settings, instance = published
    result = _run_references(settings, instance)  # the second load: counted against the first
    assert result.success
    for table, rows in REAL_ROWS.items():
        key = REFERENCE_SPECS[table].key
        checks = _evaluations(result, table)
        assert {name: e.passed for name, e in checks.items()} == dict.fromkeys(
            (SCHEMA_CHECK, KEYS_CHECK, ROW_COUNT_CHECK), True
        )
        assert checks[ROW_COUNT_CHECK].description == f"{rows} rows, {rows} published"
        assert checks[KEYS_CHECK].description == f"{rows} {key} values, none empty, none repeated"
        staged, _ = _published(settings, table)
        assert len(staged) == rows
        assert {c: str(t) for c, t in staged.drop(columns=["partition_month"], errors="ignore").dtypes.items()} == (
            expected_schema(REFERENCE_SPECS[table])
        )


def _rewrite_planes(settings: Settings, change: "pd.DataFrame | None" = None, *, half: bool = False) -> Path:
    path = landing.reference_file(settings.landing_dir, "planes")
    planes = pd.read_csv(path, dtype=str, keep_default_na=False)
    if half:
        planes = planes.head(len(planes) // 2)
    if change is not None:
        planes = pd.concat([planes, change], ignore_index=True)
    landing.write_atomically(planes, path)
    return path


def _assert_failed_naming(result: dg.ExecuteInProcessResult, path: Path, reason: str) -> None:
    assert not result.success
    message = step_failures(result)["staging__planes"]  # the Failure raised by the step, as the run records it
    assert f"Failure: reference file {path}: staging.planes is not replaced and stays as published: " in message
    assert reason in message


@pytest.mark.real_data
def test_half_the_planes_file_fails_the_run_and_the_published_planes_stay(
    published: tuple[Settings, dg.DagsterInstance],
) -> None:
    settings, instance = published
    before = _published(settings, "planes")
    path = _rewrite_planes(settings, half=True)

    result = _run_references(settings, instance)

    reason = "1661 rows, 50.0% fewer than the 3322 published; at most 10% fewer are allowed (at least 2990 rows)"
    _assert_failed_naming(result, path, reason)
    checks = _evaluations(result, "planes")
    assert (checks[ROW_COUNT_CHECK].passed, checks[ROW_COUNT_CHECK].severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert checks[ROW_COUNT_CHECK].description == reason
    assert checks[ROW_COUNT_CHECK].metadata["published_rows"] == dg.MetadataValue.int(3322)
    assert checks[KEYS_CHECK].passed and checks[SCHEMA_CHECK].passed
    after = _published(settings, "planes")
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1] == before[1]
    assert _evaluations(result, "airports")[ROW_COUNT_CHECK].passed  # the other tables load as usual


@pytest.mark.real_data
def test_repeated_tail_numbers_fail_the_run_and_the_published_planes_stay(
    published: tuple[Settings, dg.DagsterInstance],
) -> None:
    settings, instance = published
    before = _published(settings, "planes")
    landed = pd.read_csv(landing.reference_file(settings.landing_dir, "planes"), dtype=str, keep_default_na=False)
    path = _rewrite_planes(settings, landed.head(3))

    result = _run_references(settings, instance)

    reason = "3 tailnum value(s) repeat: N10156 (2 rows), N102UW (2 rows), N103US (2 rows)"
    _assert_failed_naming(result, path, reason)
    keys = _evaluations(result, "planes")[KEYS_CHECK]
    assert (keys.passed, keys.description) == (False, reason)
    assert keys.metadata["duplicate_keys"] == dg.MetadataValue.int(3)
    assert _evaluations(result, "planes")[ROW_COUNT_CHECK].passed  # more rows, not fewer
    after = _published(settings, "planes")
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1] == before[1]


@pytest.mark.real_data
def test_text_in_a_number_column_fails_the_schema_naming_the_line(
    published: tuple[Settings, dg.DagsterInstance],
) -> None:
    settings, instance = published
    before = _published(settings, "planes")
    path = landing.reference_file(settings.landing_dir, "planes")
    planes = pd.read_csv(path, dtype=str, keep_default_na=False)
    planes.loc[9, "seats"] = "many"
    landing.write_atomically(planes, path)

    result = _run_references(settings, instance)

    reason = "1 non-numeric value(s) in seats (line 11: 'many')"
    _assert_failed_naming(result, path, reason)
    assert _evaluations(result, "planes")[SCHEMA_CHECK].description == reason
    assert _published(settings, "planes")[1] == before[1]


def test_a_bad_planes_file_stops_a_month_before_core(landed: Settings) -> None:
    """On the hand-made landing: the month run fails at staging.planes, and core keeps the previous run's rows."""
    instance = dg.DagsterInstance.ephemeral()
    assert materialize_partition(landed, "2013-01", instance).success
    core_before = read_table(landed, "core.flights")
    planes_before = _published(landed, "planes")
    path = _rewrite_planes(landed, half=True)  # 4 planes → 2

    result = materialize_partition(landed, "2013-01", instance)

    _assert_failed_naming(result, path, "2 rows, 50.0% fewer than the 4 published")
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
    assert "core/flights" not in materialized
    assert "staging/planes" not in materialized
    pd.testing.assert_frame_equal(read_table(landed, "core.flights"), core_before)
    assert _published(landed, "planes")[1] == planes_before[1]


def test_the_shrink_allowed_comes_from_the_thresholds() -> None:
    assert shrink_problem(2990, 3322, 0.1) is None
    assert shrink_problem(2989, 3322, 0.1) is not None
    assert shrink_problem(1661, 3322, 0.5) is None
    assert shrink_problem(1, None, 0.1) is None  # nothing published yet: the first load sets the baseline
