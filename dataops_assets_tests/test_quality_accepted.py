"""Accepted exceptions: a failure within the reviewed list of known gaps passes and is counted; anything new (a
value not in the list, a share above the band), or an expired entry, fails as before; a bad file stops the load."""

import datetime as dt
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml  # type: ignore[import-untyped]

from dataops_assets.environments import settings_for
from dataops_assets.quality.accepted import (
    ACCEPTED_EXCEPTIONS_FILE,
    AcceptedExceptions,
    AcceptedExceptionsError,
    ShareBand,
    judge,
    load_accepted_exceptions,
)
from dataops_assets.quality.gx_checks import CHECK_NAME, check_result, gx_asset_checks
from dataops_assets.quality.gx_suites import SUITES, load_suite, suite_parameters, without_quarantine_rules
from dataops_assets.quality.gx_validation import ExpectationOutcome, ValidationOutcome, validate_frame
from dataops_assets.resources import GreatExpectationsResource
from dataops_assets_tests.fixtures.gx_month import MONTH, SMALL_THRESHOLDS, good_frames, reference_frames

SPECS = {spec.name: spec for spec in SUITES}
FLIGHTS = "staging.flights"
# Validations only: nothing is written under this root.
GX = GreatExpectationsResource.for_settings(settings_for("dev", data_root=Path("/nonexistent-accepted-tests")))
TODAY = dt.date(2026, 1, 15)
REVIEWED = load_accepted_exceptions()


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return good_frames()[FLIGHTS]


def validate(frame: pd.DataFrame, name: str = FLIGHTS) -> ValidationOutcome:
    """The suite as the check runs it: without the rules the staging step already enforced row by row."""
    spec = SPECS[name]
    needed = {table: reference for table, reference in reference_frames().items() if table in spec.references}
    parameters = suite_parameters(SMALL_THRESHOLDS, MONTH, needed)
    suite = without_quarantine_rules(load_suite(spec.path))
    return validate_frame(GX, suite, frame, parameters, partition=MONTH, key_columns=spec.key_columns)


def with_values(frame: pd.DataFrame, column: str, values: dict[int, Any]) -> pd.DataFrame:
    out = frame.copy()
    for row, value in values.items():
        out.loc[row, column] = value
    return out


def entry(**overrides: Any) -> dict[str, Any]:
    """A valid entry accepting BQN and SJU on staging.flights' dest_in_airports."""
    return {
        "id": "island_airports",
        "suites": [FLIGHTS],
        "expectation": "dest_in_airports",
        "what": "Flights to airports missing from the reference.",
        "why": "The reference lacks them.",
        "baseline": "2 of 8 flights in the test month.",
        "owner": "data-engineering",
        "accept": {"values": ["BQN", "SJU"]},
        **overrides,
    }


def write_exceptions(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "accepted_exceptions.yaml"
    path.write_text(yaml.safe_dump({"exceptions": list(entries)}, sort_keys=False))
    return path


def result_of(outcome: ValidationOutcome, accepted: AcceptedExceptions, today: dt.date = TODAY) -> dg.AssetCheckResult:
    return check_result(outcome, GX.data_docs_index, accepted, today)


def test_the_reviewed_file_declares_the_known_gaps_of_the_data() -> None:
    staged = REVIEWED.for_suite(FLIGHTS)
    assert staged["dest_in_airports"].values == {"BQN", "PSE", "SJU", "STT"}
    assert staged["tailnum_in_planes"].share == ShareBand(12.0, 18.0)
    assert REVIEWED.for_suite("core.flights") == {}  # core does not check again what staging checked
    assert set(REVIEWED.for_suite("marts.route_monthly")) == {"dest_in_airports"}
    assert REVIEWED.for_suite("staging.weather") == {}
    for accepted in REVIEWED.entries:
        assert accepted.owner and accepted.why and accepted.baseline and accepted.expires is None
    [staging_check] = [check for check in gx_asset_checks(SUITES[:1]) if check.check_keys]
    description = next(iter(staging_check.check_specs)).description or ""
    assert "destinations_missing_from_airports" in description and "12 % to 18 %" in description


def test_only_accepted_values_pass_and_are_counted(flights: pd.DataFrame) -> None:
    outcome = validate(with_values(flights, "dest", {1: "SJU", 3: "BQN", 6: "SJU"}))
    assert outcome.status == "warning"  # GX itself still fails the expectation: the suite is unchanged
    result = result_of(outcome, REVIEWED)
    assert result.passed, result.description
    metadata = result.metadata
    assert metadata["expectations_failed"] == dg.MetadataValue.int(0)
    assert metadata["expectations_accepted"] == dg.MetadataValue.int(1)
    assert metadata["dest_in_airports.unexpected_count"] == dg.MetadataValue.int(3)
    assert metadata["dest_in_airports.accepted_count"] == dg.MetadataValue.int(3)
    assert "only accepted values SJU (2), BQN (1), per destinations_missing_from_airports" in (result.description or "")


def test_a_destination_not_in_the_list_is_a_warning_naming_it(flights: pd.DataFrame) -> None:
    result = result_of(validate(with_values(flights, "dest", {1: "SJU", 3: "HNL"})), REVIEWED)
    assert (result.passed, result.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert result.metadata["warning_failed"] == dg.MetadataValue.int(1)
    assert result.metadata["dest_in_airports.accepted_count"] == dg.MetadataValue.int(1)  # SJU still counted
    assert "NEW: HNL (1) not among the values accepted by destinations_missing_from_airports" in (
        result.description or ""
    )


@pytest.mark.parametrize(("unknown", "passed"), [({2: "N999ZZ"}, True), ({2: "N999ZZ", 5: "N998ZZ"}, False)])
def test_a_share_of_unknown_tail_numbers_above_the_band_is_a_warning(
    flights: pd.DataFrame, unknown: dict[int, str], passed: bool
) -> None:
    """One unknown tail number in eight flights is 12.5 %, inside the 12 % to 18 % band; two are 25 %."""
    outcome = validate(with_values(flights, "tailnum", unknown))
    [failure] = outcome.failures
    result = result_of(outcome, REVIEWED)
    assert result.passed is passed, result.description
    share = f"{failure.unexpected_percent:.2f} %"
    if passed:
        assert result.metadata["tailnum_in_planes.accepted_count"] == dg.MetadataValue.int(1)
        assert f"{share} unexpected, within the band 12 % to 18 %" in (result.description or "")
    else:
        assert result.severity == dg.AssetCheckSeverity.WARN
        assert result.metadata["tailnum_in_planes.accepted_count"] == dg.MetadataValue.int(0)
        assert f"NEW: {share} unexpected is above the band 12 % to 18 %" in (result.description or "")


def test_a_share_below_the_band_passes_and_says_the_baseline_may_be_outdated(
    flights: pd.DataFrame, tmp_path: Path
) -> None:
    band = entry(expectation="tailnum_in_planes", accept={"unexpected_percent": {"min": 20, "max": 30}})
    accepted = load_accepted_exceptions(write_exceptions(tmp_path, band))
    result = result_of(validate(with_values(flights, "tailnum", {2: "N999ZZ"})), accepted)
    assert result.passed
    assert "below the band 20 % to 30 % of island_airports: its baseline may be outdated" in (result.description or "")


def test_an_expired_entry_accepts_nothing_and_says_so(flights: pd.DataFrame, tmp_path: Path) -> None:
    accepted = load_accepted_exceptions(write_exceptions(tmp_path, entry(expires="2025-12-31")))
    outcome = validate(with_values(flights, "dest", {1: "BQN"}))
    assert result_of(outcome, accepted, today=dt.date(2025, 12, 31)).passed  # the last day it holds
    expired = result_of(outcome, accepted, today=dt.date(2026, 1, 1))
    assert (expired.passed, expired.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert expired.metadata["dest_in_airports.accepted_count"] == dg.MetadataValue.int(0)
    assert "accepted exception island_airports expired on 2025-12-31: it accepts nothing" in (expired.description or "")


def test_the_markdown_table_lists_each_failed_expectation(flights: pd.DataFrame) -> None:
    broken = with_values(with_values(flights, "dest", {1: "BQN"}), "carrier", {0: "WN"})
    broken = with_values(broken, "tailnum", {3: "N1|2", 4: "N998ZZ"})  # a pipe must not break the table
    outcome = validate(broken)
    result = result_of(outcome, REVIEWED)
    assert (result.passed, result.severity) == (False, dg.AssetCheckSeverity.ERROR)  # accepted hides no critical
    table = result.metadata["failed_expectations"]
    assert isinstance(table, dg.MarkdownMetadataValue)
    lines = (table.value or "").splitlines()
    assert lines[0] == "| Expectation | Severity | Column | Unexpected | Share | Sample values | Verdict |"
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in lines[2:]}
    assert set(rows) == {failure.name for failure in outcome.failures} == {
        "carrier_in_airlines", "dest_in_airports", "tailnum_in_planes",
    }  # fmt: skip
    assert rows["carrier_in_airlines"] == "| carrier_in_airlines | critical | carrier | 1 | 12.50 % | WN: 1 | ERROR |"
    assert rows["dest_in_airports"].endswith("| BQN: 1 | accepted (destinations_missing_from_airports) |")
    assert "N1\\|2: 1" in rows["tailnum_in_planes"] and "above the band" in rows["tailnum_in_planes"]
    assert lines[-1] == rows["dest_in_airports"], "accepted exceptions come last"


def test_a_clean_month_has_a_one_line_table(flights: pd.DataFrame) -> None:
    result = result_of(validate(flights), REVIEWED)
    assert result.passed
    evaluated = result.metadata["expectations_evaluated"].value
    assert result.metadata["failed_expectations"].value == f"All {evaluated} expectations passed on 8 rows."


def _sampled_failure(values: list[str], distinct: int) -> ExpectationOutcome:
    return ExpectationOutcome(
        name="dest_in_airports",
        expectation_type="expect_column_values_to_be_in_set",
        severity="warning",
        success=False,
        unexpected_count=len(values),
        offending_values=tuple((value, 1) for value in values),
        distinct_offending=distinct,
    )


def test_more_distinct_values_than_the_sample_holds_are_new() -> None:
    """The sample holds the ten most frequent values; beyond them, a value outside the list must exist."""
    accepted = REVIEWED.for_suite(FLIGHTS)["dest_in_airports"]
    covered = judge(_sampled_failure(["SJU", "BQN"], distinct=2), accepted, TODAY)
    assert (covered.covered, covered.accepted_count) == (True, 2)
    beyond = judge(_sampled_failure(["SJU", "BQN"], distinct=3), accepted, TODAY)
    assert not beyond.covered and "1 more distinct value(s)" in beyond.verdict


BAD_FILES: list[tuple[str, Any, str]] = [
    ("unknown suite", [entry(suites=["staging.airports"])], "island_airports: unknown suite 'staging.airports'"),
    ("unknown expectation", [entry(expectation="dest_known")], "suite staging.flights has no expectation named"),
    ("missing fields", [{k: v for k, v in entry().items() if k not in ("owner", "why")}], "missing why, owner"),
    ("unknown field", [entry(expiry="2026-01-01")], "unknown field(s) expiry"),
    ("two kinds", [entry(accept={"values": ["BQN"], "unexpected_percent": {"max": 5}})], "exactly one of"),
    ("band upside down", [entry(accept={"unexpected_percent": {"min": 9, "max": 5}})], "0 <= min <= max <= 100"),
    ("too many values", [entry(accept={"values": [f"A{n}" for n in range(11)]})], "a list of 1 to 10 values"),
    ("bad date", [entry(expires="next year")], "expires must be a date like 2026-12-31, got 'next year'"),
    ("twice", [entry(), entry(id="again")], "again and island_airports both cover dest_in_airports"),
    ("no list", {"exception": []}, "expected a mapping with an 'exceptions' list"),
    ("not an entry", ["BQN"], "entry 1: not a mapping"),
]


@pytest.mark.parametrize(("problem", "content", "message"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_a_bad_file_is_refused_at_load_with_a_clear_message(
    tmp_path: Path, problem: str, content: Any, message: str
) -> None:
    path = tmp_path / "accepted_exceptions.yaml"
    document = {"exceptions": content} if isinstance(content, list) else content
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(AcceptedExceptionsError) as raised:
        load_accepted_exceptions(path)
    assert str(path) in str(raised.value), problem
    assert message in str(raised.value), problem


def test_a_file_that_is_not_yaml_or_missing_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("exceptions: [unclosed\n")
    with pytest.raises(AcceptedExceptionsError, match=re.escape(f"{broken} is not valid YAML")):
        load_accepted_exceptions(broken)
    with pytest.raises(AcceptedExceptionsError, match=r"cannot read accepted exceptions .*absent\.yaml"):
        load_accepted_exceptions(tmp_path / "absent.yaml")


def test_the_checks_apply_exceptions_given_to_them(tmp_path: Path) -> None:
    """gx_asset_checks reads the reviewed file by default; an explicit set replaces it."""
    assert REVIEWED.source == ACCEPTED_EXCEPTIONS_FILE
    accepted = load_accepted_exceptions(write_exceptions(tmp_path, entry()))
    [check] = gx_asset_checks(SUITES[:1], accepted)
    [spec] = check.check_specs
    assert spec.name == CHECK_NAME
    assert "dest_in_airports: the values BQN, SJU (island_airports)" in (spec.description or "")
