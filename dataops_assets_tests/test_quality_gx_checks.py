"""The GX checks in Dagster: one result per partition, ERROR blocks downstream, WARN does not; accepted exceptions
pass with their counts; lazy GX import."""

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dataops_assets.assets.core import core_assets
from dataops_assets.assets.marts import mart_assets
from dataops_assets.assets.raw import raw_assets
from dataops_assets.assets.staging import staging_assets
from dataops_assets.definitions import build_definitions
from dataops_assets.environments import Settings, settings_for
from dataops_assets.partitions import MONTHLY
from dataops_assets.quality.gx_checks import CHECK_NAME, gx_asset_checks
from dataops_assets.quality.gx_suites import (
    REFERENCE_VALUE_SETS,
    SUITES,
    SuiteSpec,
    columns_read,
    load_suite,
    without_quarantine_rules,
)
from dataops_assets.resources import build_resources
from dataops_assets_tests.fixtures.gx_month import (
    FLIGHT_ROWS,
    MONTH,
    small_settings,
    write_small_landing,
)
from dataops_ops.docs import build_data_docs_report

ASSETS = [*raw_assets, *staging_assets, *core_assets, *mart_assets]
PUBLISHED = ("core/flights", "marts/carrier_monthly", "marts/route_monthly")


def run_month(
    settings: Settings, checks: Sequence[dg.AssetChecksDefinition] | None = None
) -> dg.ExecuteInProcessResult:
    """Materialize the month with the GX checks (or ``checks``), bound to the environment's resources."""
    return dg.materialize(
        [*ASSETS, *(gx_asset_checks() if checks is None else checks)],
        resources=build_resources(settings),
        partition_key=MONTH,
        raise_on_error=False,
    )


def gx_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events() if event.asset_key}


def with_dest(row: dict[str, str], dest: str) -> dict[str, str]:
    return {**row, "dest": dest}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """dev under ``tmp_path``, with row-count bands the eight-flight month meets."""
    return small_settings(tmp_path)


def test_warnings_are_reported_per_partition_and_do_not_block(settings: Settings) -> None:
    """HNL is missing from the fixture's airports and is no accepted exception: a new finding, a WARN."""
    rows = [*FLIGHT_ROWS[:3], with_dest(FLIGHT_ROWS[3], "HNL"), *FLIGHT_ROWS[4:]]
    write_small_landing(settings.landing_dir, rows)
    result = run_month(settings)

    assert result.success
    evaluations = gx_evaluations(result)
    assert set(evaluations) == {"/".join(spec.asset_key) for spec in SUITES}
    assert {e.partition for e in evaluations.values()} == {MONTH}
    for key in ("staging/flights", "marts/route_monthly"):  # core does not judge again what staging judged
        warned = evaluations[key]
        assert (warned.passed, warned.severity) == (False, dg.AssetCheckSeverity.WARN), warned.description
        assert warned.metadata["critical_failed"] == dg.MetadataValue.int(0)
        assert warned.metadata["warning_failed"] == dg.MetadataValue.int(1)
        assert warned.metadata["expectations_accepted"] == dg.MetadataValue.int(0)
        assert warned.metadata["dest_in_airports.unexpected_count"] == dg.MetadataValue.int(1)
        assert warned.metadata["dest_in_airports.accepted_count"] == dg.MetadataValue.int(0)
        assert warned.metadata["dest_in_airports.offending_values"].value == [{"value": "HNL", "count": 1}]
        assert "NEW: HNL (1) not among the values accepted by destinations_missing_from_airports" in (
            warned.description or ""
        )
        table = warned.metadata["failed_expectations"]
        assert isinstance(table, dg.MarkdownMetadataValue)
        assert "| dest_in_airports | warning | dest | 1 | " in table.value
    for key in ("staging/weather", "core/flights", "marts/carrier_monthly"):
        assert evaluations[key].passed, evaluations[key].description
    staged = evaluations["staging/flights"].metadata
    assert staged["rows_validated"] == dg.MetadataValue.int(8)
    evaluated_by_gx = without_quarantine_rules(load_suite(SUITES[0].path))["expectations"]  # the rest: in staging
    assert staged["expectations_evaluated"] == dg.MetadataValue.int(len(evaluated_by_gx))
    assert staged["expectations_failed"] == dg.MetadataValue.int(1)
    assert isinstance(staged["success_percent"], dg.FloatMetadataValue)
    assert set(PUBLISHED) <= materialized(result)


def test_known_gaps_pass_as_accepted_exceptions_and_are_counted(settings: Settings) -> None:
    """Flights to BQN and SJU (missing from airports, accepted in expectations/accepted_exceptions.yaml) pass."""
    rows = [*FLIGHT_ROWS[:3], with_dest(FLIGHT_ROWS[3], "BQN"), with_dest(FLIGHT_ROWS[4], "SJU"), *FLIGHT_ROWS[5:]]
    write_small_landing(settings.landing_dir, rows)
    result = run_month(settings)

    assert result.success
    evaluations = gx_evaluations(result)
    for key, unexpected in (("staging/flights", 2), ("marts/route_monthly", 2)):
        accepted = evaluations[key]
        assert accepted.passed, accepted.description
        metadata = accepted.metadata
        assert metadata["status"] == dg.MetadataValue.text("passed")
        assert metadata["expectations_failed"] == dg.MetadataValue.int(0)
        assert metadata["warning_failed"] == dg.MetadataValue.int(0)
        assert metadata["expectations_accepted"] == dg.MetadataValue.int(1)
        assert metadata["dest_in_airports.unexpected_count"] == dg.MetadataValue.int(unexpected)
        assert metadata["dest_in_airports.accepted_count"] == dg.MetadataValue.int(unexpected)
        assert metadata["dest_in_airports.accepted_exception"] == dg.MetadataValue.text(
            "destinations_missing_from_airports"
        )
        assert "1 failed only within accepted exceptions" in (accepted.description or "")
        assert "accepted (destinations_missing_from_airports)" in metadata["failed_expectations"].value
    # the planes exception is watched on staging and core: its count is a series even when nothing is unknown
    assert evaluations["staging/flights"].metadata["tailnum_in_planes.accepted_count"] == dg.MetadataValue.int(0)
    assert set(PUBLISHED) <= materialized(result)


def test_a_critical_failure_is_an_error_that_skips_downstream(settings: Settings) -> None:
    rows = [{**FLIGHT_ROWS[0], "carrier": "WN"}, *FLIGHT_ROWS[1:]]  # staging keeps it: not in airlines is no row rule
    write_small_landing(settings.landing_dir, rows)
    result = run_month(settings)

    assert not result.success
    evaluations = gx_evaluations(result)
    failed = evaluations["staging/flights"]
    assert (failed.passed, failed.severity, failed.partition) == (False, dg.AssetCheckSeverity.ERROR, MONTH)
    assert failed.metadata["critical_failed"] == dg.MetadataValue.int(1)
    assert failed.metadata["carrier_in_airlines.unexpected_count"] == dg.MetadataValue.int(1)
    assert failed.metadata["carrier_in_airlines.offending_values"].value == [{"value": "WN", "count": 1}]
    assert "carrier_in_airlines [critical] on carrier" in (failed.description or "")
    table = failed.metadata["failed_expectations"].value
    assert "| carrier_in_airlines | critical | carrier | 1 | 12.50 % | WN: 1 | ERROR |" in table
    assert evaluations["staging/weather"].passed
    assert not set(PUBLISHED) & materialized(result), "nothing may be published after a blocking failure"
    assert set(evaluations) == {"staging/flights", "staging/weather"}


def test_statistical_bands_come_from_the_thresholds_resource(tmp_path: Path) -> None:
    """The same checks and month under dev's own thresholds (2,300 to 3,100 flights) stop eight flights."""
    settings = settings_for("dev", data_root=tmp_path)
    write_small_landing(settings.landing_dir)
    result = run_month(settings)
    failed = gx_evaluations(result)["staging/flights"]
    assert (failed.passed, failed.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert failed.metadata["row_count_in_band.observed_value"] == dg.MetadataValue.int(8)
    assert not set(PUBLISHED) & materialized(result)


def test_a_suite_that_cannot_run_is_a_failed_error_result(settings: Settings, tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "staging.weather.json").write_text('{"name": "staging.weather", "expectations": [')
    broken = [SuiteSpec(("staging", "weather"), ("observation_id",), directory=suites)]
    write_small_landing(settings.landing_dir)
    result = run_month(settings, gx_asset_checks(broken))

    evaluation = gx_evaluations(result)["staging/weather"]
    assert (evaluation.passed, evaluation.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "is not valid JSON" in evaluation.metadata["error"].value
    assert evaluation.metadata["failed_expectations"].value.startswith("**The suite could not run:**")
    assert "core/flights" not in materialized(result)


def test_data_docs_render_the_latest_validations(settings: Settings) -> None:
    write_small_landing(settings.landing_dir, [*FLIGHT_ROWS[:3], with_dest(FLIGHT_ROWS[3], "HNL"), *FLIGHT_ROWS[4:]])
    result = run_month(settings)
    evaluation = gx_evaluations(result)["staging/flights"]
    persisted = Path(evaluation.metadata["validation_result"].value)
    assert persisted == settings.env_dir / "validations" / "staging.flights" / f"{MONTH}.json"
    assert json.loads(persisted.read_text())["meta"]["dataops"]["partition"] == MONTH

    report = build_data_docs_report(settings)
    index = build_data_docs_report(settings).index  # twice: a rebuild starts afresh
    assert index == report.index == settings.data_docs_dir / "index.html"
    assert Path(evaluation.metadata["data_docs"].value) == index
    assert (report.validations, report.skipped) == (len(SUITES), ())
    pages = sorted(p.relative_to(settings.data_docs_dir).as_posix() for p in settings.data_docs_dir.rglob("*.html"))
    assert [p for p in pages if p.startswith("validations/staging/flights/2013-01/")]
    assert "expectations/staging/flights.html" in pages
    assert "staging.flights" in index.read_text()


def test_data_docs_skip_unreadable_results(settings: Settings) -> None:
    broken = settings.env_dir / "validations" / "staging.flights" / f"{MONTH}.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{")
    report = build_data_docs_report(settings)
    assert report.validations == 0
    assert len(report.skipped) == 1 and str(broken) in report.skipped[0]
    assert report.index.is_file()


def test_the_environment_definitions_hold_one_check_per_suite(settings: Settings) -> None:
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    checks = [check for check in defs.asset_checks or [] if any(k.name == CHECK_NAME for k in check.check_keys)]
    specs = {key.asset_key.to_user_string(): key.name for check in checks for key in check.check_keys}
    assert specs == {"/".join(spec.asset_key): CHECK_NAME for spec in SUITES}
    staging_check = checks[[spec.name for spec in SUITES].index("staging.flights")]
    spec = next(iter(staging_check.check_specs))
    assert spec.blocking
    assert spec.partitions_def == MONTHLY
    assert {key.to_user_string() for key in staging_check.keys_by_input_name.values()} == {
        "staging/flights", "staging/airlines", "staging/airports", "staging/planes",
    }  # fmt: skip
    assert {"thresholds", "great_expectations"} <= staging_check.required_resource_keys


def test_each_check_loads_only_the_columns_its_suite_reads() -> None:
    for spec, check in zip(SUITES, gx_asset_checks(), strict=True):
        inputs = {definition.name: definition.metadata for definition in check.node_def.input_defs}
        suite = without_quarantine_rules(load_suite(spec.path))
        assert inputs.pop("data") == {"columns": columns_read(suite, spec.key_columns)}
        assert inputs == {table: {"columns": [REFERENCE_VALUE_SETS[table]]} for table in spec.references}


def test_importing_the_definitions_does_not_import_great_expectations(tmp_path: Path) -> None:
    code = """
import sys, time
started = time.perf_counter()
import dataops_assets.definitions as definitions
import dagster as dg
import dataops_ops.docs
from dataops_assets.quality import gx_checks, gx_suites, gx_validation
defs = definitions.defs
dg.Definitions.validate_loadable(defs)
assert gx_checks.CHECK_NAME in {key.name for check in defs.asset_checks or [] for key in check.check_keys}
print(round(time.perf_counter() - started, 2))
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "great_expectations")
assert not loaded, loaded
"""
    env = {**os.environ, "DATAOPS_ENV": "dev", "DATAOPS_DATA_ROOT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_failure_of_the_bridge_itself_is_still_a_failed_error_result(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("dataops_assets.quality.gx_checks.run_suite", broken)
    write_small_landing(settings.landing_dir)
    result = run_month(settings, gx_asset_checks(SUITES[:1]))
    evaluation = gx_evaluations(result)["staging/flights"]
    assert (evaluation.passed, evaluation.severity, evaluation.partition) == (False, dg.AssetCheckSeverity.ERROR, MONTH)
    assert evaluation.metadata["error"].value == "the GX bridge failed: RuntimeError: disk on fire"
    assert "core/flights" not in materialized(result)
