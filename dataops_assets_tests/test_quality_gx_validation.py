"""Every suite passes on a clean month and fails, with the right severity, on one break per expectation family.

Families: schema, nulls and duplicates, domain, statistical (critical: ERROR, blocks) and referential integrity
(warning: WARN, never blocks). A suite that cannot run is a failed ERROR result with the reason.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from dataops_assets.environments import settings_for
from dataops_assets.quality.gx_checks import check_result, describe
from dataops_assets.quality.gx_suites import (
    SUITES,
    SuiteSpec,
    columns_read,
    is_quarantine_rule,
    load_suite,
    suite_parameters,
    without_quarantine_rules,
)
from dataops_assets.quality.gx_validation import PERSISTED_LIST_LIMIT, ValidationOutcome, run_suite, validate_frame
from dataops_assets.resources import GreatExpectationsResource
from dataops_assets_tests.fixtures.gx_month import (
    MONTH,
    SMALL_THRESHOLDS,
    good_frames,
    reference_frames,
)

SPECS = {spec.name: spec for spec in SUITES}
# Validations only: nothing is written under this root.
GX = GreatExpectationsResource.for_settings(settings_for("dev", data_root=Path("/nonexistent-gx-tests")))


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return good_frames()


@pytest.fixture(scope="module")
def references() -> dict[str, pd.DataFrame]:
    return reference_frames()


def validate(
    name: str, frame: pd.DataFrame, references: dict[str, pd.DataFrame], **overrides: Any
) -> ValidationOutcome:
    spec = SPECS[name]
    needed = {table: references[table] for table in spec.references}
    parameters = suite_parameters(SMALL_THRESHOLDS, MONTH, needed) | overrides
    return validate_frame(GX, load_suite(spec.path), frame, parameters, partition=MONTH, key_columns=spec.key_columns)


# --- frame edits: each returns a broken copy --------------------------------------------------------------------


def set_value(column: str, value: Any, row: int = 0) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out.loc[row, column] = value
        return out

    return edit


def set_all(column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: value})


def shift(column: str, by: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**{column: frame[column] + by})


def add_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(unexpected_column=1)


def cast(column: str, dtype: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.astype({column: dtype})


def repeat_first_row(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[0]]], ignore_index=True)


def unchanged(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.copy()


@dataclass(frozen=True)
class Break:
    suite: str
    family: str
    edit: Callable[[pd.DataFrame], pd.DataFrame]
    status: str  # "critical" or "warning"
    fails: frozenset[str]  # expectations that must be among the failures (all of them for warnings)
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.suite}-{self.family}-{'+'.join(sorted(self.fails))}"


def brk(suite: str, family: str, edit: Callable[[pd.DataFrame], pd.DataFrame], status: str, *fails: str,
        **parameters: Any) -> Break:  # fmt: skip
    return Break(suite, family, edit, status, frozenset(fails), parameters)


FLIGHTS, WEATHER, CORE, CARRIERS, ROUTES = SPECS
NEXT_MONTH, LAST_YEAR = pd.Timestamp("2013-02-01 05:15"), pd.Timestamp("2012-12-31 23:00")
FLOWN = 0  # row 0 of the clean January is a flown flight (UA1545); row 4 is the cancelled UA1000
BREAKS = [
    # staging.flights
    brk(FLIGHTS, "schema", add_column, "critical", "columns_match_schema"),
    brk(FLIGHTS, "schema", cast("flight", "float64"), "critical", "flight_is_int64"),
    brk(FLIGHTS, "schema", cast("sched_dep_local", "object"), "critical", "sched_dep_local_is_datetime64"),
    brk(FLIGHTS, "duplicates", repeat_first_row, "critical", "flight_id_unique"),
    brk(FLIGHTS, "nulls", set_value("flight_id", None, 2), "critical", "flight_id_not_null"),
    brk(FLIGHTS, "nulls", set_value("carrier", None, 2), "critical", "carrier_not_null"),
    brk(FLIGHTS, "nulls", set_value("dep_delay", np.nan, FLOWN), "critical", "dep_delay_not_null_unless_cancelled"),
    brk(FLIGHTS, "nulls", set_value("dep_delay", 5.0, 4), "critical", "dep_delay_null_when_cancelled"),
    brk(FLIGHTS, "nulls", set_value("tailnum", None, FLOWN), "critical", "tailnum_not_null_unless_cancelled"),
    brk(FLIGHTS, "domain", set_value("origin", "BOS"), "critical", "origin_is_nyc_airport"),
    brk(FLIGHTS, "domain", set_value("carrier", "ZZ"), "critical", "carrier_in_airlines"),
    brk(FLIGHTS, "domain", set_value("month", 13), "critical", "month_in_range"),
    brk(FLIGHTS, "domain", set_value("sched_dep_local", NEXT_MONTH), "critical", "sched_dep_in_partition_month"),
    brk(FLIGHTS, "domain", set_value("dep_delay", 5000.0), "critical", "dep_delay_plausible"),
    brk(FLIGHTS, "domain", set_value("distance", 0.0), "critical", "distance_plausible"),
    brk(FLIGHTS, "statistical", unchanged, "critical", "row_count_in_band", min_rows=20),
    brk(FLIGHTS, "statistical", shift("dep_delay", 45), "critical", "mean_dep_delay_in_band"),
    brk(FLIGHTS, "statistical", unchanged, "critical", "cancellation_rate_in_band", cancellation_rate_max=0.05),
    brk(FLIGHTS, "referential", set_value("dest", "BQN", 3), "warning", "dest_in_airports"),
    brk(FLIGHTS, "referential", set_value("tailnum", "N999ZZ"), "warning", "tailnum_in_planes"),
    # staging.weather
    brk(WEATHER, "schema", add_column, "critical", "columns_match_schema"),
    brk(WEATHER, "schema", cast("temp", "object"), "critical", "temp_is_float64"),
    brk(WEATHER, "duplicates", repeat_first_row, "critical", "observation_id_unique"),
    brk(WEATHER, "nulls", set_value("visib", np.nan), "critical", "visib_not_null"),
    brk(WEATHER, "domain", set_value("origin", "BOS"), "critical", "origin_is_nyc_airport"),
    brk(WEATHER, "domain", set_value("humid", 150.0), "critical", "humid_is_percent"),
    brk(WEATHER, "domain", set_value("observed_local", LAST_YEAR), "critical", "observed_in_partition_month"),
    brk(WEATHER, "statistical", unchanged, "critical", "row_count_in_band", weather_min_rows=20),
    brk(WEATHER, "plausibility", set_value("wind_speed", 1048.36058), "warning", "wind_speed_plausible"),
    # core.flights
    # (core checks only what core adds: its joins cannot repeat or change a staged flight)
    brk(CORE, "schema", add_column, "critical", "columns_match_schema"),
    brk(CORE, "nulls", set_value("airline_name", None), "critical", "airline_resolved"),
    brk(CORE, "statistical", set_all("on_time", False), "critical", "on_time_share_in_band"),
    brk(CORE, "enrichment", set_all("plane_known", False), "critical", "known_plane_share_in_band"),
    brk(CORE, "enrichment", set_all("weather_observation_id", None), "warning", "weather_found_for_most_flights"),
    # marts.carrier_monthly
    brk(CARRIERS, "schema", add_column, "critical", "columns_match_schema"),
    brk(CARRIERS, "duplicates", repeat_first_row, "critical", "carrier_unique"),
    brk(CARRIERS, "domain", set_value("carrier", "ZZ"), "critical", "carrier_in_airlines"),
    brk(CARRIERS, "domain", set_value("cancelled", 99), "critical", "cancelled_at_most_flights"),
    brk(CARRIERS, "domain", set_value("month", pd.Timestamp("2013-02-01")), "critical", "month_is_partition"),
    brk(CARRIERS, "statistical", unchanged, "critical", "flights_sum_in_band", min_rows=100),
    brk(CARRIERS, "statistical", set_all("on_time_share", 0.1), "critical", "mean_on_time_share_in_band"),
    # marts.route_monthly
    brk(ROUTES, "schema", add_column, "critical", "columns_match_schema"),
    brk(ROUTES, "duplicates", repeat_first_row, "critical", "route_unique"),
    brk(ROUTES, "domain", set_value("origin", "BOS"), "critical", "origin_is_nyc_airport"),
    brk(ROUTES, "statistical", unchanged, "critical", "mean_on_time_share_in_band", on_time_share_min=0.9),
    brk(ROUTES, "referential", set_value("dest", "BQN"), "warning", "dest_in_airports"),
]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_a_clean_month_passes_every_suite(
    name: str, frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    outcome = validate(name, frames[name], references)
    assert outcome.status == "passed", describe(outcome)
    assert outcome.evaluated == len(load_suite(SPECS[name].path)["expectations"])
    result = check_result(outcome, GX.data_docs_index)
    assert result.passed
    assert result.metadata["expectations_failed"] == dg.MetadataValue.int(0)
    assert result.metadata["success_percent"] == dg.MetadataValue.float(100.0)


def int_value(metadata: Any, key: str) -> int:
    value = metadata[key]
    assert isinstance(value, dg.IntMetadataValue), (key, value)
    assert value.value is not None
    return value.value


def assert_plain(metadata: Any) -> None:
    """Dagster stores only plain Python values (np.float64 is a float subclass, yet it cannot be stored)."""

    def check(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                check(item)
        elif isinstance(value, list):
            for item in value:
                check(item)
        else:
            assert type(value) in (int, float, str, bool, type(None)), (type(value), value)

    for entry in metadata.values():
        check(entry.value)


@pytest.mark.parametrize("case", BREAKS, ids=lambda case: case.id)
def test_each_break_fails_with_the_right_severity(
    case: Break, frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    outcome = validate(case.suite, case.edit(frames[case.suite]), references, **case.parameters)
    failed = {failure.name for failure in outcome.failures}
    assert outcome.status == case.status, describe(outcome)
    assert case.fails <= failed, describe(outcome)
    result = check_result(outcome, GX.data_docs_index)
    assert not result.passed
    if case.status == "warning":
        assert failed == case.fails, "a referential break must not fail anything else"
        assert result.severity == dg.AssetCheckSeverity.WARN
        assert result.metadata["critical_failed"] == dg.MetadataValue.int(0)
    else:
        assert result.severity == dg.AssetCheckSeverity.ERROR
        assert int_value(result.metadata, "critical_failed") >= 1
    assert_plain(result.metadata)
    for name in case.fails:
        assert name in (result.description or "")
        assert result.metadata[f"{name}.severity"] == dg.MetadataValue.text(case.status)


def validate_as_the_check(
    name: str, frame: pd.DataFrame, references: dict[str, pd.DataFrame], *, projected: bool, **overrides: Any
) -> ValidationOutcome:
    """The expectations the GX check evaluates (quarantine rules are the staging step's), on every column or, as
    the check loads its input, on the columns the suite reads with the stored table's columns named beside."""
    spec = SPECS[name]
    suite = without_quarantine_rules(load_suite(spec.path))
    needed = {table: references[table] for table in spec.references}
    parameters = suite_parameters(SMALL_THRESHOLDS, MONTH, needed) | overrides
    read = columns_read(suite, spec.key_columns)
    assert read is not None
    data = frame[[column for column in read if column in frame.columns]] if projected else frame
    return validate_frame(
        GX,
        suite,
        data,
        parameters,
        partition=MONTH,
        key_columns=spec.key_columns,
        stored_columns=list(frame.columns) if projected else None,
    )


def findings(outcome: ValidationOutcome) -> list[tuple[Any, ...]]:
    found = [
        (e.name, e.success, e.unexpected_count, e.offending_values, e.offending_keys, e.observed_value, e.details)
        for e in outcome.expectations
    ]
    return sorted(found, key=lambda finding: finding[0])


GX_EVALUATED_BREAKS = [
    case
    for case in BREAKS
    if not case.fails & {e["meta"]["name"] for e in load_suite(SPECS[case.suite].path)["expectations"] if
                         is_quarantine_rule(e)}
]  # fmt: skip


@pytest.mark.parametrize("case", GX_EVALUATED_BREAKS, ids=lambda case: case.id)
def test_reading_only_the_suites_columns_finds_what_reading_all_finds(
    case: Break, frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    """The check loads only the columns its suite judges; the table-shape expectations see the stored columns."""
    broken = case.edit(frames[case.suite])
    full = validate_as_the_check(case.suite, broken, references, projected=False, **case.parameters)
    projected = validate_as_the_check(case.suite, broken, references, projected=True, **case.parameters)
    assert projected.status == full.status == case.status, describe(projected)
    assert case.fails <= {failure.name for failure in projected.failures}
    assert findings(projected) == findings(full)
    assert projected.result_json is not None and full.result_json is not None
    assert projected.result_json["statistics"] == full.result_json["statistics"]


def test_a_column_missing_from_the_stored_table_is_named_when_only_some_columns_are_read(
    frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    outcome = validate_as_the_check(FLIGHTS, frames[FLIGHTS].drop(columns=["dest"]), references, projected=True)
    assert outcome.status == "error"
    failed = {f.name: f for f in outcome.failures}
    assert failed["columns_match_schema"].details == {"mismatched": {"missing": ["dest"]}}
    assert failed["dest_in_airports"].error is not None


def test_cancelled_flights_are_not_counted_as_missing_delays(
    frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    outcome = validate(FLIGHTS, frames[FLIGHTS], references)
    by_name = {e.name: e for e in outcome.expectations}
    flown = int((~frames[FLIGHTS]["cancelled"]).sum())
    assert by_name["dep_delay_not_null_unless_cancelled"].element_count == flown == 7
    assert by_name["dep_delay_null_when_cancelled"].element_count == 1


def test_referential_failure_reports_what_to_fix(
    frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    broken = frames[FLIGHTS].copy()
    broken.loc[[1, 3], "dest"] = ["SJU", "BQN"]
    broken.loc[6, "dest"] = "SJU"
    outcome = validate(FLIGHTS, broken, references)
    result = check_result(outcome, GX.data_docs_index)
    assert (result.passed, result.severity) == (False, dg.AssetCheckSeverity.WARN)
    metadata = result.metadata
    assert metadata["expectations_failed"] == dg.MetadataValue.int(1)
    assert metadata["warning_failed"] == dg.MetadataValue.int(1)
    assert metadata["dest_in_airports.unexpected_count"] == dg.MetadataValue.int(3)
    assert metadata["dest_in_airports.unexpected_percent"] == dg.MetadataValue.float(37.5)
    assert metadata["dest_in_airports.column"] == dg.MetadataValue.text("dest")
    assert metadata["dest_in_airports.offending_values"].value == [
        {"value": "SJU", "count": 2}, {"value": "BQN", "count": 1},
    ]  # fmt: skip
    assert metadata["dest_in_airports.distinct_offending_values"] == dg.MetadataValue.int(2)
    keys = metadata["dest_in_airports.offending_keys"].value
    assert keys == [broken.loc[1, "flight_id"], broken.loc[3, "flight_id"], broken.loc[6, "flight_id"]]
    assert "dest_in_airports [warning] on dest: 3 unexpected (37.50%), e.g. SJU: 2, BQN: 1" in (
        result.description or ""
    )


def test_statistical_failure_reports_the_observed_value(
    frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    outcome = validate(FLIGHTS, shift("dep_delay", 45)(frames[FLIGHTS]), references)
    metadata = check_result(outcome, GX.data_docs_index).metadata
    observed = metadata["mean_dep_delay_in_band.observed_value"]
    assert isinstance(observed, dg.FloatMetadataValue)
    assert type(observed.value) is float, "numpy floats pass for floats but Dagster cannot store them"
    assert observed.value == pytest.approx(45 + (2 + 4 + 2 - 4 + 10 + 0 + 25) / 7)


def test_schema_failure_names_the_unexpected_column(
    frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    metadata = check_result(validate(FLIGHTS, add_column(frames[FLIGHTS]), references), GX.data_docs_index).metadata
    assert metadata["columns_match_schema.details"].value == {"mismatched": {"unexpected": ["unexpected_column"]}}


# --- suites that cannot run -------------------------------------------------------------------------------------


def assert_error(outcome: ValidationOutcome, *reason_parts: str) -> dg.AssetCheckResult:
    assert outcome.status == "error"
    result = check_result(outcome, GX.data_docs_index)
    assert (result.passed, result.severity) == (False, dg.AssetCheckSeverity.ERROR)
    reason = str(result.metadata["error"].value)
    description = result.description or ""
    assert description.startswith(f"{outcome.suite} {outcome.partition}: ERROR")
    for part in reason_parts:
        assert part in reason
    assert "could not" in description
    return result


def test_a_missing_column_is_an_error_naming_it(
    frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    outcome = validate(FLIGHTS, frames[FLIGHTS].drop(columns=["dest"]), references)
    result = assert_error(outcome, "dest_in_airports could not be evaluated", "dest")
    assert int_value(result.metadata, "expectations_errored") >= 1
    assert "columns_match_schema" in {f.name for f in outcome.critical_failures}


def test_a_missing_parameter_is_an_error(frames: dict[str, pd.DataFrame]) -> None:
    spec = SPECS[FLIGHTS]
    parameters = suite_parameters(SMALL_THRESHOLDS, MONTH, {})  # no value sets
    outcome = validate_frame(
        GX, load_suite(spec.path), frames[FLIGHTS], parameters, partition=MONTH, key_columns=spec.key_columns
    )
    assert_error(outcome, "the suite could not run", "$PARAMETER")


def test_an_unknown_expectation_is_an_error(frames: dict[str, pd.DataFrame]) -> None:
    suite = {"name": "staging.flights", "expectations": [
        {"type": "expect_flights_to_be_on_time", "kwargs": {}, "meta": {"name": "x"}, "severity": "critical"},
    ]}  # fmt: skip
    outcome = validate_frame(GX, suite, frames[FLIGHTS], {}, partition=MONTH)
    assert_error(outcome, "the suite could not run", "cannot build x: expect_flights_to_be_on_time not found")


def test_an_expectation_with_bad_arguments_is_an_error_not_dropped(frames: dict[str, pd.DataFrame]) -> None:
    """GX's ExpectationSuite logs and drops expectations it cannot build; the bridge refuses the suite."""
    suite = load_suite(SPECS[WEATHER].path)
    suite["expectations"][1]["kwargs"] = {"colum": "observation_id"}  # a typo
    parameters = suite_parameters(SMALL_THRESHOLDS, MONTH)
    outcome = validate_frame(GX, suite, frames[WEATHER], parameters, partition=MONTH)
    assert_error(outcome, "cannot build observation_id_is_object")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot read suite file"), ("{broken", "is not valid JSON"), ('{"name": "x"}', "no expectations")],
)
def test_an_unreadable_suite_file_is_an_error_and_clears_the_stale_result(
    tmp_path: Path, frames: dict[str, pd.DataFrame], content: str | None, reason: str
) -> None:
    settings = settings_for("dev", data_root=tmp_path)
    gx = GreatExpectationsResource.for_settings(settings)
    spec = SuiteSpec(("staging", "weather"), ("observation_id",), directory=tmp_path / "suites")
    stale = tmp_path / "dev" / "validations" / spec.name / f"{MONTH}.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    if content is not None:
        spec.path.parent.mkdir()
        spec.path.write_text(content)
    outcome = run_suite(spec, frames[WEATHER], MONTH, great_expectations=gx, thresholds=settings.thresholds)
    result = assert_error(outcome, "the suite could not be prepared", reason)
    assert "validation_result" not in result.metadata
    assert not stale.exists(), "Data Docs must not keep showing the previous result"


def test_results_are_persisted_per_suite_and_partition(
    tmp_path: Path, frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    settings = settings_for("dev", data_root=tmp_path)
    gx = GreatExpectationsResource.for_settings(settings)
    broken = set_value("dest", "BQN", 3)(frames[FLIGHTS])
    outcome = run_suite(
        SPECS[FLIGHTS], broken, MONTH, great_expectations=gx, thresholds=SMALL_THRESHOLDS, references=references
    )
    path = tmp_path / "dev" / "validations" / "staging.flights" / "2013-01.json"
    assert outcome.result_path == path
    persisted = pd.read_json(path, typ="series")
    assert persisted["suite_name"] == "staging.flights"
    assert persisted["meta"]["dataops"]["status"] == "warning"
    assert persisted["meta"]["dataops"]["environment"] == "dev"
    assert persisted["meta"]["run_id"]["run_name"] == MONTH
    result = check_result(outcome, gx.data_docs_index)
    assert result.metadata["validation_result"] == dg.MetadataValue.path(str(path))
    assert result.metadata["data_docs"] == dg.MetadataValue.path(str(settings.data_docs_dir / "index.html"))


def test_offending_values_are_counted_over_every_offending_row(
    frames: dict[str, pd.DataFrame], references: dict[str, pd.DataFrame]
) -> None:
    """GX keeps at most 200 unexpected values even in COMPLETE format; the counts must not stop there."""
    many = pd.concat([frames[FLIGHTS]] * 40, ignore_index=True)  # 320 flights
    many["flight_id"] = [f"{flight_id}#{n}" for n, flight_id in enumerate(many["flight_id"])]
    many["dest"] = ["SJU"] * 250 + ["BQN"] * 70
    outcome = validate(FLIGHTS, many, references, max_rows=500)
    failure = {f.name: f for f in outcome.failures}["dest_in_airports"]
    assert failure.offending_values == (("SJU", 250), ("BQN", 70))
    assert failure.unexpected_count == 320
    # ...while the kept GX result holds at most PERSISTED_LIST_LIMIT rows per list, and no pandas query
    assert outcome.result_json is not None
    results = outcome.result_json["results"]
    [kept] = [r for r in results if r["expectation_config"]["meta"]["name"] == "dest_in_airports"]
    assert kept["result"]["unexpected_count"] == 320
    assert len(kept["result"]["unexpected_index_list"]) == PERSISTED_LIST_LIMIT
    assert "unexpected_index_query" not in kept["result"]
