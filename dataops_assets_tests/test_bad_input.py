"""Bad input ends the run with an error that names the file or value and what was expected, and leaves nothing
half-written: after fixing the input and re-running, every table equals the one a clean run produces."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dataops_assets import environments
from dataops_assets.assets.raw import FILE_CHECK
from dataops_assets.environments import Settings, UnknownEnvironmentError, current_settings
from dataops_assets.landing import control_file, flights_file, reference_file, weather_file, write_atomically
from dataops_assets.transforms import flights
from dataops_assets_tests.fixtures.landing import write_flights, write_landing, write_reference, write_weather
from dataops_assets_tests.fixtures.pipeline import (
    assert_same_tables,
    comparable_tables,
    fixture_settings,
    materialize_partition,
    read_table,
    step_failures,
    table_names,
)

JAN_FEB = ("2013-01", "2013-02")


@pytest.fixture(scope="module")
def clean_tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """Every table after clean runs of January and February."""
    settings = fixture_settings(tmp_path_factory.mktemp("clean"))
    write_landing(settings.landing_dir, JAN_FEB)
    for month in JAN_FEB:
        assert materialize_partition(settings, month).success
    return comparable_tables(settings)


def _months(settings: Settings, table: str, column: str) -> list[str]:
    frame = read_table(settings, table)
    return sorted(frame[column].dt.strftime("%Y-%m").unique())


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {"/".join(event.asset_key.path) for event in result.get_asset_materialization_events() if event.asset_key}


def test_missing_month_file_fails_naming_it_and_publishes_nothing_of_the_month(
    landed: Settings, clean_tables: dict[str, pd.DataFrame]
) -> None:
    settings = landed
    missing = weather_file(settings.landing_dir, "2013-02")
    missing.unlink()
    assert materialize_partition(settings, "2013-01").success

    result = materialize_partition(settings, "2013-02")
    assert not result.success
    failures = step_failures(result)
    assert set(failures) == {"raw__weather"}
    assert "blocking asset check failed" in failures["raw__weather"]
    assert "raw/weather: landed_file_readable" in failures["raw__weather"]
    [finding] = [e for e in result.get_asset_check_evaluations() if not e.passed and e.severity.value == "ERROR"]
    assert (finding.asset_key, finding.check_name, finding.partition) == (
        dg.AssetKey(["raw", "weather"]),
        "landed_file_readable",
        "2013-02",
    )
    assert finding.description == (
        f"missing landing file {missing}: expected the landed file for partition 2013-02; run `dataops land` first"
    )

    # Nothing downstream of the missing file ran, so nothing of February was published.
    assert "raw/weather" not in _materialized(result)
    assert _materialized(result).isdisjoint({"staging/weather", "core/flights", "marts/carrier_monthly"})
    assert _months(settings, "raw.weather", "_partition_month") == ["2013-01"]
    assert _months(settings, "core.flights", "sched_dep_local") == ["2013-01"]
    assert _months(settings, "marts.carrier_monthly", "month") == ["2013-01"]
    assert _months(settings, "marts.route_monthly", "month") == ["2013-01"]

    write_weather(settings.landing_dir, "2013-02")
    assert materialize_partition(settings, "2013-02").success
    assert_same_tables(comparable_tables(settings), clean_tables)


def test_missing_reference_file_fails_naming_it_and_publishes_nothing(
    settings: Settings, clean_tables: dict[str, pd.DataFrame]
) -> None:
    write_landing(settings.landing_dir, JAN_FEB)
    missing = reference_file(settings.landing_dir, "planes")
    missing.unlink()

    result = materialize_partition(settings, "2013-01")
    assert not result.success
    failures = step_failures(result)
    assert set(failures) == {"raw__planes"}
    assert failures["raw__planes"].strip() == (
        "dataops_assets.landing.LandingFileMissingError: "
        f"missing landing file {missing}: expected the landed file for planes; run `dataops land` first"
    )
    tables = table_names(settings)
    assert "raw.planes" not in tables and "staging.planes" not in tables
    assert not {"core.flights", "marts.carrier_monthly", "marts.route_monthly"} & set(tables)

    write_reference(settings.landing_dir, "planes")
    for month in JAN_FEB:
        assert materialize_partition(settings, month).success
    assert_same_tables(comparable_tables(settings), clean_tables)


@pytest.mark.parametrize("name", ["qa", "Prod", "development"])
def test_unknown_environment_names_the_value_and_the_valid_ones(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(environments.ENV_VAR, name)
    with pytest.raises(UnknownEnvironmentError) as error:
        current_settings()
    assert str(error.value) == (
        f"DATAOPS_ENV={name!r} is not a known environment; expected one of: dev, stage, prod (or pr-N, a preview)"
    )


def test_unknown_environment_stops_the_code_location_before_anything_is_written(tmp_path: Path) -> None:
    env = {**os.environ, "DATAOPS_ENV": "qa", "DATAOPS_DATA_ROOT": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    loaded = subprocess.run(
        [sys.executable, "-c", "import dataops_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert loaded.returncode == 1
    last_line = loaded.stderr.strip().splitlines()[-1]
    assert last_line == (
        "dataops_assets.environments.UnknownEnvironmentError: "
        "DATAOPS_ENV='qa' is not a known environment; expected one of: dev, stage, prod (or pr-N, a preview)"
    )
    assert list(tmp_path.iterdir()) == []


# --- control records and headers by name ------------------------------------------------------------------------


def _file_check(result: dg.ExecuteInProcessResult, asset: str) -> dg.AssetCheckEvaluation:
    [evaluation] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == FILE_CHECK and e.asset_key == dg.AssetKey(asset.split("/"))
    ]
    return evaluation


def test_month_file_cut_off_mid_line_fails_naming_it_and_publishes_nothing_of_the_month(
    landed: Settings, clean_tables: dict[str, pd.DataFrame]
) -> None:
    settings = landed
    assert materialize_partition(settings, "2013-01").success
    cut_off = flights_file(settings.landing_dir, "2013-02")
    data = cut_off.read_bytes()
    cut = data[: len(data) - 40]  # the last line loses its end, its control record stays
    cut_off.write_bytes(cut)

    result = materialize_partition(settings, "2013-02")

    assert not result.success
    assert set(step_failures(result)) == {"raw__flights"}
    finding = _file_check(result, "raw/flights")
    assert (finding.passed, finding.severity, finding.partition) == (False, dg.AssetCheckSeverity.ERROR, "2013-02")
    assert finding.description == (
        f"{cut_off} (partition 2013-02): does not match its control record 2013-02.csv.control.json: the file is cut "
        f"off ({len(cut) / len(data):.0%} of its bytes arrived); bytes: expected {len(data):,}, found {len(cut):,}; "
        f"sha256: expected {hashlib.sha256(data).hexdigest()}, found {hashlib.sha256(cut).hexdigest()}"
    )
    # the cut line still counts as a row, so only bytes and sha256 differ; nothing of February was published
    published = _materialized(result)
    assert published.isdisjoint({"raw/flights", "staging/flights", "core/flights", "marts/carrier_monthly"})
    assert _months(settings, "raw.flights", "_partition_month") == ["2013-01"]
    assert _months(settings, "staging.flights", "sched_dep_local") == ["2013-01"]
    assert _months(settings, "core.flights", "sched_dep_local") == ["2013-01"]

    write_flights(settings.landing_dir, "2013-02")
    assert materialize_partition(settings, "2013-02").success
    assert_same_tables(comparable_tables(settings), clean_tables)


def test_month_file_without_control_record_is_published_with_a_warning(
    landed: Settings, clean_tables: dict[str, pd.DataFrame]
) -> None:
    settings = landed
    for month in JAN_FEB:
        unverified = flights_file(settings.landing_dir, month)
        control_file(unverified).unlink()
        result = materialize_partition(settings, month)
        assert result.success
        finding = _file_check(result, "raw/flights")
        assert (finding.passed, finding.severity) == (False, dg.AssetCheckSeverity.WARN)
        assert finding.description == (
            f"{unverified} (partition {month}): no control record {month}.csv.control.json; the file was read and "
            "published without verifying it is complete"
        )
        assert finding.metadata["control_record"] == dg.MetadataValue.text("missing: not verified")
        assert _file_check(result, "raw/weather").passed  # its record is there
    assert_same_tables(comparable_tables(settings), clean_tables)


def test_month_file_with_reordered_columns_is_published_in_the_expected_order(
    landed: Settings, clean_tables: dict[str, pd.DataFrame]
) -> None:
    settings = landed
    reordered = list(reversed(flights.SOURCE_COLUMNS))
    for month in JAN_FEB:
        path = flights_file(settings.landing_dir, month)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        write_atomically(frame[reordered], path)  # with a control record of the reordered file
        result = materialize_partition(settings, month)
        assert result.success
        finding = _file_check(result, "raw/flights")
        assert finding.passed
        assert finding.metadata["columns_in_file"] == dg.MetadataValue.text(", ".join(reordered))
        assert finding.metadata["columns_reordered"] == dg.MetadataValue.bool(True)
        assert finding.metadata["control_record"] == dg.MetadataValue.text("verified")
        assert _file_check(result, "raw/weather").metadata["columns_reordered"] == dg.MetadataValue.bool(False)
    assert list(read_table(settings, "raw.flights").columns[1:20]) == flights.SOURCE_COLUMNS
    assert_same_tables(comparable_tables(settings), clean_tables)


def test_truncated_reference_file_fails_naming_it_and_keeps_the_published_table(
    landed: Settings, clean_tables: dict[str, pd.DataFrame]
) -> None:
    settings = landed
    assert materialize_partition(settings, "2013-01").success
    staged_planes = read_table(settings, "staging.planes")
    planes = reference_file(settings.landing_dir, "planes")
    data = planes.read_bytes()
    cut = data[: len(data) // 2]
    planes.write_bytes(cut)

    result = materialize_partition(settings, "2013-02")

    assert not result.success
    failures = step_failures(result)
    assert set(failures) == {"raw__planes"}
    assert failures["raw__planes"].strip() == (
        f"dataops_assets.landing.LandingFileError: {planes}: does not match its control record "
        f"planes.csv.control.json: the file is cut off (50% of its bytes arrived); rows: expected 4, found 2; "
        f"bytes: expected {len(data):,}, found {len(cut):,}; "
        f"sha256: expected {hashlib.sha256(data).hexdigest()}, found {hashlib.sha256(cut).hexdigest()}"
    )
    assert "raw/planes" not in _materialized(result)
    pd.testing.assert_frame_equal(read_table(settings, "staging.planes"), staged_planes)
    assert len(read_table(settings, "raw.planes")) == 4
    assert _months(settings, "core.flights", "sched_dep_local") == ["2013-01"]

    write_reference(settings.landing_dir, "planes")
    assert materialize_partition(settings, "2013-02").success
    assert_same_tables(comparable_tables(settings), clean_tables)
