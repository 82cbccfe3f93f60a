"""The suite files follow the project's conventions, and every parameter they use is filled per environment.

Nothing here runs Great Expectations: suites are data, and reading them must stay cheap.
"""

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dataops_assets.environments import ENVIRONMENT_NAMES, settings_for
from dataops_assets.quality.gx_suites import (
    EXPECTATIONS_DIR,
    SUITES,
    SuiteFileError,
    SuiteSpec,
    columns_read,
    load_suite,
    quarantine_rules,
    suite_parameters,
    suite_problems,
    weather_row_band,
    without_quarantine_rules,
)
from dataops_assets.transforms import flights, weather
from dataops_assets_tests.fixtures.gx_month import reference_frames

SPECS = {spec.name: spec for spec in SUITES}
REFERENTIAL = {"dest_in_airports", "tailnum_in_planes"}


def _suite(name: str) -> dict:
    return load_suite(SPECS[name].path)


def _by_name(name: str) -> dict[str, dict]:
    return {e["meta"]["name"]: e for e in _suite(name)["expectations"]}


def parameter_names(suite: Mapping[str, Any]) -> set[str]:
    """The ``$PARAMETER`` names a suite uses."""
    names: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("$PARAMETER"), str):
                names.add(value["$PARAMETER"])
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(dict(suite))
    return names


def test_every_checked_asset_has_a_suite_file_and_every_file_a_checked_asset() -> None:
    assert set(SPECS) == {"staging.flights", "staging.weather", "core.flights", "marts.carrier_monthly",
                          "marts.route_monthly"}  # fmt: skip
    assert {path.stem for path in EXPECTATIONS_DIR.glob("*.json")} == set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_suite_files_follow_the_conventions(name: str) -> None:
    text = SPECS[name].path.read_text(encoding="utf-8")
    raw = json.loads(text)
    assert raw["name"] == name
    assert suite_problems(raw) == []
    assert '"id"' not in text, "generated ids must be stripped from committed suites"
    for expectation in raw["expectations"]:
        assert expectation["type"].startswith("expect_")
        assert expectation["severity"] in ("critical", "warning")
    referential = {n: e for n, e in _by_name(name).items() if n in REFERENTIAL}
    assert all(e["severity"] == "warning" for e in referential.values())


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        ("staging.flights", list(flights.STAGED_SCHEMA)),
        ("staging.weather", list(weather.STAGED_SCHEMA)),
    ],
)
def test_staged_suites_hold_the_exact_staged_schema(name: str, columns: list[str]) -> None:
    schema = _by_name(name)["columns_match_schema"]
    assert schema["kwargs"] == {"column_set": columns, "exact_match": True}
    assert schema["severity"] == "critical"
    typed = [e for e in _by_name(name).values() if e["type"] == "expect_column_values_to_be_of_type"]
    staged = flights.STAGED_SCHEMA if name == "staging.flights" else weather.STAGED_SCHEMA
    assert typed and all(e["kwargs"]["type_"] == staged[e["kwargs"]["column"]] for e in typed)


def test_a_suite_reads_the_columns_its_gx_expectations_name_key_columns_first() -> None:
    suite = without_quarantine_rules(load_suite(SPECS["staging.flights"].path))
    read = columns_read(suite, ("flight_id",))
    assert read is not None and read[0] == "flight_id"
    named = {e["kwargs"]["column"] for e in suite["expectations"] if "column" in e["kwargs"]}
    assert set(read) == named | {"flight_id"}
    assert len(read) < len(flights.STAGED_SCHEMA)  # the check loads fewer columns than the table holds
    assert "dep_time" not in read  # judged only by a quarantine rule, in the staging step


def test_columns_read_follow_conditions_and_give_up_on_a_query_string() -> None:
    condition = {"type": "comparison", "column": {"name": "cancelled"}, "operator": "==", "parameter": False}
    structured = {
        "expectations": [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "dep_delay", "row_condition": condition},
            },
            {"type": "expect_column_pair_values_a_to_be_greater_than_b", "kwargs": {"column_A": "a", "column_B": "b"}},
            {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["origin", "dest"]}},
            {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["x", "y"]}},
        ]
    }
    assert columns_read(structured) == ["dep_delay", "cancelled", "a", "b", "origin", "dest"]
    query = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a", "row_condition": "b > 1"}}
    assert columns_read({"expectations": [query]}) is None


def test_core_suite_holds_its_exact_column_set() -> None:
    schema = _by_name("core.flights")["columns_match_schema"]
    assert schema["kwargs"]["exact_match"] is True
    assert set(flights.STAGED_SCHEMA) <= set(schema["kwargs"]["column_set"])


def test_cancelled_flights_are_expressed_not_hidden() -> None:
    """dep_delay must be present for flown flights and absent for cancelled ones: conditions, not ``mostly``."""
    expectations = _by_name("staging.flights")
    present = expectations["dep_delay_not_null_unless_cancelled"]
    absent = expectations["dep_delay_null_when_cancelled"]
    assert present["kwargs"]["row_condition"] == {
        "type": "comparison", "column": {"name": "cancelled"}, "operator": "==", "parameter": False,
    }  # fmt: skip
    assert absent["kwargs"]["row_condition"]["parameter"] is True
    assert "mostly" not in present["kwargs"] and "mostly" not in absent["kwargs"]


@pytest.mark.parametrize("environment", ENVIRONMENT_NAMES)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_parameter_a_suite_uses_is_filled(environment: str, name: str) -> None:
    spec = SPECS[name]
    references = {table: frame for table, frame in reference_frames().items() if table in spec.references}
    parameters = suite_parameters(settings_for(environment).thresholds, "2013-01", references)
    assert parameter_names(_suite(name)) <= set(parameters)


def test_row_count_bands_follow_the_environment() -> None:
    dev = suite_parameters(settings_for("dev").thresholds, "2013-01")
    prod = suite_parameters(settings_for("prod").thresholds, "2013-01")
    assert (dev["min_rows"], dev["max_rows"]) == (2_300, 3_100)  # the 10 % sample
    assert (prod["min_rows"], prod["max_rows"]) == (24_000, 30_000)
    assert dev["cancellation_rate_max"] == prod["cancellation_rate_max"] == 0.08


def test_partition_window() -> None:
    one = suite_parameters(settings_for("prod").thresholds, "2013-02")
    assert (one["month_start"], one["month_end"], one["last_month_start"]) == (
        "2013-02-01T00:00:00", "2013-02-28T23:59:59.999999", "2013-02-01T00:00:00",
    )  # fmt: skip
    assert (one["weather_min_rows"], one["weather_max_rows"]) == (1915, 2019)  # 28 days x 24 h x 3 airports


def test_weather_band_admits_the_real_months(tmp_path: Path) -> None:
    """Real rows per month: January 2,226, February 2,010, December 2,144 (88 hours missing), June 2,160."""
    coverage = settings_for("stage", data_root=tmp_path).thresholds.min_weather_coverage
    for key, rows in [("2013-01", 2226), ("2013-02", 2010), ("2013-12", 2144), ("2013-06", 2160)]:
        low, high = weather_row_band(key, coverage)
        assert low <= rows <= high


def test_value_sets_come_from_the_reference_tables() -> None:
    parameters = suite_parameters(settings_for("dev").thresholds, "2013-01", reference_frames())
    assert parameters["airlines"] == ["AA", "B6", "UA"]
    assert "FLL" in parameters["airports"] and "BQN" not in parameters["airports"]
    assert parameters["planes"] == sorted(parameters["planes"])


def test_load_suite_strips_generated_ids(tmp_path: Path) -> None:
    suite = _suite("staging.weather")
    with_ids = {
        **suite,
        "id": "abc",
        "expectations": [{**e, "id": str(i)} for i, e in enumerate(suite["expectations"])],
    }
    path = tmp_path / "staging.weather.json"
    path.write_text(json.dumps(with_ids))
    assert load_suite(path) == suite


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"name": "x", "expectations": []}', "no expectations"),
        (
            '{"name": "x", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "a"}, '
            '"meta": {"name": "a_exists"}}]}',
            "severity None",
        ),
        (
            '{"name": "x", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "a"}, '
            '"severity": "critical"}]}',
            "no meta.name",
        ),
    ],
)
def test_broken_suite_files_are_refused_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(SuiteFileError, match=message):
        load_suite(path)


def test_missing_suite_file_is_refused(tmp_path: Path) -> None:
    spec = SuiteSpec(("staging", "flights"), ("flight_id",), directory=tmp_path)
    with pytest.raises(SuiteFileError, match="cannot read suite file"):
        load_suite(spec.path)


def test_duplicate_names_are_refused() -> None:
    expectation = {"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "meta": {"name": "a"},
                   "severity": "warning"}  # fmt: skip
    assert suite_problems({"name": "x", "expectations": [expectation, expectation]}) == ["meta.name 'a' is used twice"]


def test_parameters_are_plain_json() -> None:
    """Parameters end up in the persisted result: they must serialize without help."""
    parameters = suite_parameters(settings_for("dev").thresholds, "2013-01", reference_frames())
    json.dumps(parameters)
    assert pd.Timestamp(parameters["month_end"]) < pd.Timestamp("2013-02-01")


def test_weather_coverage_comes_from_the_thresholds() -> None:
    """``Thresholds.min_weather_coverage`` sets the weather row band; a hand-made month of a few hours sets it to 0."""
    thresholds = settings_for("dev").thresholds
    default = suite_parameters(thresholds, "2013-01")
    assert (default["weather_min_rows"], default["weather_max_rows"]) == (2120, 2235)
    relaxed = replace(thresholds, min_weather_coverage=0.0)
    assert suite_parameters(relaxed, "2013-01")["weather_min_rows"] == 0


# --- quarantine-marked expectations ----------------------------------------------------------------------------

TABLE_LEVEL = {"row_count_in_band", "mean_dep_delay_in_band", "cancellation_rate_in_band", "columns_match_schema"}
IDENTIFIER_SHAPES = {
    "staging.flights": {"carrier_shape", "flight_number_shape", "tailnum_shape", "origin_shape", "dest_shape"},
    "staging.weather": {"origin_shape"},
}


def _quarantined_names(name: str) -> set[str]:
    return {n for n, e in _by_name(name).items() if e["meta"].get("quarantine")}


@pytest.mark.parametrize("name", sorted(IDENTIFIER_SHAPES))
def test_identifier_columns_have_a_quarantine_marked_format_rule(name: str) -> None:
    marked = _quarantined_names(name)
    assert IDENTIFIER_SHAPES[name] <= marked
    for shape in IDENTIFIER_SHAPES[name]:
        regex = _by_name(name)[shape]["kwargs"]["regex"]
        # $ would accept a trailing line break (re.search): the pattern must end at the end of the string.
        assert regex.startswith("^") and regex.endswith("\\Z"), (shape, regex)


def test_table_level_and_reference_expectations_stay_with_the_gx_check() -> None:
    flights_marked = _quarantined_names("staging.flights")
    assert not flights_marked & (TABLE_LEVEL | REFERENTIAL | {"carrier_in_airlines", "flight_id_unique"})
    assert {"distance_plausible", "origin_is_nyc_airport"} <= flights_marked
    weather_marked = _quarantined_names("staging.weather")
    assert not weather_marked & {"row_count_in_band", "observation_id_unique", "temp_mostly_reported"}
    assert {"origin_is_nyc_airport", "humid_is_percent"} <= weather_marked
    assert not any(_quarantined_names(name) for name in ("core.flights", "marts.carrier_monthly"))


def _marked_suite(**expectation: Any) -> dict[str, Any]:
    meta = {"name": "rule", "quarantine": True}
    return {"name": "s", "expectations": [{"severity": "critical", "meta": meta, **expectation}]}


BETWEEN = "expect_column_values_to_be_between"


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        (_marked_suite(type="expect_column_mean_to_be_between", kwargs={"column": "x", "min_value": 0}),
         "does not judge single rows"),
        (_marked_suite(type=BETWEEN, kwargs={"column": "x", "min_value": 0, "mostly": 0.9}), "has mostly"),
        (_marked_suite(type=BETWEEN, kwargs={"column": "x", "min_value": 0, "row_condition": "x > 1"}),
         "row_condition must be structured"),
        (_marked_suite(type="expect_column_values_to_be_in_set", kwargs={"column": "x",
                                                                          "value_set": {"$PARAMETER": "planes"}}),
         "reference value set(s) ['planes']"),
        ({"name": "s", "expectations": [{"type": BETWEEN, "kwargs": {"column": "x", "min_value": 0},
                                         "severity": "critical", "meta": {"name": "r", "quarantine": "yes"}}]},
         "meta.quarantine 'yes'"),
    ],
)  # fmt: skip
def test_only_row_level_expectations_may_quarantine(suite: dict[str, Any], message: str) -> None:
    problems = suite_problems(suite)
    assert len(problems) == 1 and message in problems[0], problems


def test_a_row_level_expectation_with_a_row_condition_may_quarantine() -> None:
    condition = {"type": "comparison", "column": {"name": "c"}, "operator": "==", "parameter": False}
    suite = _marked_suite(
        type="expect_column_values_to_not_be_null", kwargs={"column": "x", "row_condition": condition}
    )
    assert suite_problems(suite) == []


def test_quarantine_rules_fill_their_parameters_for_the_partition() -> None:
    rules = quarantine_rules(SPECS["staging.flights"], settings_for("stage").thresholds, "2013-02")
    window = {rule.name: rule.kwargs for rule in rules.expectations}["sched_dep_in_partition_month"]
    assert (window["min_value"], window["max_value"]) == ("2013-02-01T00:00:00", "2013-02-28T23:59:59.999999")
    assert rules.names == tuple(
        sorted(_quarantined_names("staging.flights"), key=list(_by_name("staging.flights")).index)
    )
