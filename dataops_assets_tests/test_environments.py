"""Environment settings: the names, what differs between them, and the two environment variables."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from dagster import QueuedRunCoordinator

from dataops_assets import environments
from dataops_assets.environments import (
    DATA_ROOT_VAR,
    ENV_VAR,
    ENVIRONMENT_NAMES,
    JSON_LOGS_VAR,
    UnknownEnvironmentError,
    current_settings,
    default_data_root,
    settings_for,
)
from dataops_ops.instance import open_instance


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No DATAOPS_ENV, DATAOPS_DATA_ROOT nor DATAOPS_JSON_LOGS, whatever the shell running the tests has set."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(DATA_ROOT_VAR, raising=False)
    monkeypatch.delenv(JSON_LOGS_VAR, raising=False)
    return monkeypatch


def test_the_documented_variables_select_the_environment_and_its_root(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The names the README, the Makefile and the deploy jobs set, spelled out: renaming one breaks them all."""
    clean_env.setenv("DATAOPS_ENV", "stage")
    clean_env.setenv("DATAOPS_DATA_ROOT", str(tmp_path))
    settings = current_settings()
    assert settings.name == "stage"
    assert settings.sample_fraction == 1.0  # stage's whole months, not dev's tenth
    assert settings.warehouse_path == tmp_path / "stage" / "warehouse.duckdb"


@pytest.mark.parametrize(
    ("name", "fraction", "json_logs"), [("dev", 0.1, False), ("stage", 1.0, True), ("prod", 1.0, True)]
)
def test_sample_fraction_and_logs_per_environment(name: str, fraction: float, json_logs: bool) -> None:
    settings = settings_for(name)
    assert settings.name == name
    assert settings.sample_fraction == fraction
    assert settings.json_logs is json_logs


def test_thresholds_fit_the_amount_of_data_landed() -> None:
    dev, stage, prod = (settings_for(name).thresholds for name in ENVIRONMENT_NAMES)
    assert (dev.min_flights_per_month, dev.max_flights_per_month) == (2_300, 3_100)
    assert (stage.min_flights_per_month, stage.max_flights_per_month) == (24_000, 30_000)
    assert prod == stage
    # The real months have 24,951 (February) to 29,425 (July) flights; dev lands a tenth of each.
    for flights in (24_951, 29_425):
        assert stage.min_flights_per_month <= flights <= stage.max_flights_per_month
        assert dev.min_flights_per_month <= round(flights * 0.1) <= dev.max_flights_per_month


def test_paths_are_derived_from_the_data_root(tmp_path: Path) -> None:
    settings = settings_for("stage", data_root=tmp_path)
    assert settings.data_root == tmp_path
    assert settings.env_dir == tmp_path / "stage"
    assert settings.landing_dir == tmp_path / "stage" / "landing"
    assert settings.warehouse_path == tmp_path / "stage" / "warehouse.duckdb"
    assert settings.dagster_home == tmp_path / "stage" / "dagster_home"
    assert settings.data_docs_dir == tmp_path / "stage" / "data_docs"


def test_environments_do_not_share_files(tmp_path: Path) -> None:
    paths = [settings_for(name, data_root=tmp_path).warehouse_path for name in ENVIRONMENT_NAMES]
    assert len(set(paths)) == 3


def test_default_data_root_is_var_of_the_checkout() -> None:
    checkout = Path(__file__).resolve().parents[1]
    assert default_data_root() == checkout / "var"
    assert settings_for("dev").data_root == checkout / "var"


def test_with_root_moves_every_path_and_keeps_the_rest(tmp_path: Path) -> None:
    settings = settings_for("dev", data_root=tmp_path / "a")
    moved = settings.with_root(tmp_path / "b")
    assert moved.landing_dir == tmp_path / "b" / "dev" / "landing"
    assert moved.warehouse_path == tmp_path / "b" / "dev" / "warehouse.duckdb"
    assert dataclasses.replace(moved, data_root=settings.data_root) == settings
    assert settings.data_root == tmp_path / "a"  # the original is unchanged


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = settings_for("dev", data_root=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.sample_fraction = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("name", ["qa", "Dev", "production", ""])
def test_unknown_environment_lists_the_valid_ones(name: str) -> None:
    with pytest.raises(UnknownEnvironmentError) as error:
        settings_for(name)
    message = str(error.value)
    assert f"DATAOPS_ENV={name!r}" in message
    assert "expected one of: dev, stage, prod" in message
    assert isinstance(error.value, ValueError)


def test_current_settings_default_to_dev(clean_env: pytest.MonkeyPatch) -> None:
    settings = current_settings()
    assert settings.name == "dev"
    assert settings.data_root == default_data_root()


@pytest.mark.parametrize(("value", "name"), [("stage", "stage"), ("prod", "prod"), (" prod ", "prod"), ("", "dev")])
def test_current_settings_read_dataops_env(clean_env: pytest.MonkeyPatch, value: str, name: str) -> None:
    clean_env.setenv(ENV_VAR, value)
    assert current_settings().name == name


def test_current_settings_reject_an_unknown_dataops_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(ENV_VAR, "qa")
    with pytest.raises(
        UnknownEnvironmentError, match="'qa' is not a known environment; expected one of: dev, stage, prod"
    ):
        current_settings()


def test_dataops_data_root_moves_every_path(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv(ENV_VAR, "prod")
    clean_env.setenv(DATA_ROOT_VAR, str(tmp_path))
    settings = current_settings()
    assert settings.data_root == tmp_path
    for path in (settings.landing_dir, settings.warehouse_path, settings.dagster_home, settings.data_docs_dir):
        assert path.is_relative_to(tmp_path / "prod")
    assert not settings.warehouse_path.is_relative_to(default_data_root())


def test_json_logs_go_to_the_environments_log_file_or_where_dataops_json_logs_points(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv(ENV_VAR, "stage")
    clean_env.setenv(DATA_ROOT_VAR, str(tmp_path))
    assert current_settings().json_log_file == tmp_path / "stage" / "logs" / "dataops.jsonl"
    clean_env.setenv(JSON_LOGS_VAR, str(tmp_path / "shipped" / "all.jsonl"))
    assert current_settings().json_log_file == tmp_path / "shipped" / "all.jsonl"
    clean_env.setenv(JSON_LOGS_VAR, " ")
    assert current_settings().json_log_file == tmp_path / "stage" / "logs" / "dataops.jsonl"


def test_empty_dataops_data_root_means_the_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(DATA_ROOT_VAR, "")
    assert current_settings().data_root == default_data_root()


def test_each_environment_gets_its_own_instance_running_months_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # open_instance exports it; monkeypatch restores it
    settings = settings_for("dev", data_root=tmp_path, max_concurrent_runs=3)
    with open_instance(settings) as instance:
        assert instance.root_directory == str(settings.dagster_home)
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        assert coordinator.get_run_queue_config().max_concurrent_runs == 3
    assert settings_for("dev", data_root=tmp_path).max_concurrent_runs == (os.cpu_count() or 1)
    # dataops rewrites the file it wrote; a hand-made dagster.yaml (without the first line) is kept
    config = settings.dagster_home / "dagster.yaml"
    config.write_text(config.read_text().split("\n", 1)[1])
    with open_instance(settings_for("dev", data_root=tmp_path, max_concurrent_runs=5)) as instance:
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 3  # type: ignore[attr-defined]


def test_variables_tune_lake_runs_and_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(environments.LAKE_URI_VAR, "s3://bucket/lake")
    monkeypatch.setenv(environments.MAX_RUNS_VAR, "4")
    monkeypatch.setenv(environments.THRESHOLDS_VAR, '{"min_flights_per_month": 7, "on_time_share_band": [0.1, 0.9]}')
    settings = current_settings()
    assert (settings.lake_uri, settings.max_concurrent_runs) == ("s3://bucket/lake", 4)
    assert settings.thresholds.min_flights_per_month == 7
    assert settings.thresholds.on_time_share_band == (0.1, 0.9)
    for variable, value, named in (
        (environments.MAX_RUNS_VAR, "0", "DATAOPS_MAX_CONCURRENT_RUNS='0'"),
        (environments.THRESHOLDS_VAR, '{"min_rows": 1}', "DATAOPS_THRESHOLDS"),
    ):
        monkeypatch.setenv(variable, value)
        with pytest.raises(environments.UnknownEnvironmentError, match=named):
            current_settings()
        monkeypatch.delenv(variable)


def test_a_preview_takes_its_base_thresholds_and_landing_from_its_manifest(tmp_path: Path) -> None:
    stage = settings_for("stage", tmp_path)
    own = dataclasses.replace(stage.thresholds, min_flights_per_month=1)
    manifest = environments.Preview(
        pr=12,
        base="stage",
        base_lake_uri=stage.lake_uri,
        base_landing_dir=stage.landing_dir,
        thresholds=own,
        rebuilt=("marts/route_monthly",),
        pinned={"core/flights": 4},
        months=("2013-01",),
        created_at="2026-12-08T00:00:00+00:00",
    )
    (tmp_path / "pr-12").mkdir()
    (tmp_path / "pr-12" / environments.PREVIEW_MANIFEST).write_text(json.dumps(manifest.to_json()))

    preview = settings_for("pr-12", tmp_path)
    assert preview.preview == manifest
    assert (preview.thresholds, preview.landing_dir) == (own, stage.landing_dir)
    assert preview.lake_uri == str(tmp_path / "pr-12" / "lake") != stage.lake_uri
    assert not preview.runs_automations and stage.runs_automations


def test_a_preview_that_does_not_exist_is_named_with_the_command_that_creates_it(tmp_path: Path) -> None:
    with pytest.raises(UnknownEnvironmentError, match=r"no preview pr-5 .* `dataops preview up --pr 5`"):
        settings_for("pr-5", tmp_path)
    with pytest.raises(UnknownEnvironmentError, match="'pr-05' is not a known environment"):
        settings_for("pr-05", tmp_path)
