"""The staging step's row-wise evaluation of quarantine-marked expectations agrees with Great Expectations.

Both run on the same staged frames, holding bad rows for every quarantine-marked expectation of both staging
suites; for each expectation they must name the same offending rows (by key). The GX check then leaves those
expectations to the staging step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dataops_assets.environments import settings_for
from dataops_assets.quality.gx_suites import (
    is_quarantine_rule,
    load_suite,
    quarantine_rules,
    spec_for,
    suite_parameters,
    without_quarantine_rules,
)
from dataops_assets.quality.gx_validation import run_suite, validate_frame
from dataops_assets.resources import GreatExpectationsResource
from dataops_assets_tests.fixtures.gx_month import MONTH, SMALL_THRESHOLDS, good_frames, reference_frames

GX = GreatExpectationsResource.for_settings(settings_for("dev", data_root=Path("/nonexistent-gx-tests")))
FLIGHTS, WEATHER = ("staging", "flights"), ("staging", "weather")
FLOWN, CANCELLED = 0, 4  # rows of the clean January: UA1545 flew, UA1000 was cancelled

# (row of the clean frame to copy, column, bad value): each copy becomes one more row with its own key.
FLIGHT_BREAKS: list[tuple[int, str, Any]] = [
    (FLOWN, "carrier", "UA\n"),
    (FLOWN, "carrier", "U\u200bA"),
    (FLOWN, "carrier", "ua"),
    (FLOWN, "carrier", "U"),
    (FLOWN, "carrier", None),
    (FLOWN, "flight", 0),
    (FLOWN, "flight", -12),
    (FLOWN, "flight", 12_345_678),
    (FLOWN, "tailnum", "N14228\n"),
    (FLOWN, "tailnum", "N14\x0728"),
    (FLOWN, "tailnum", "D942DN"),
    (FLOWN, "tailnum", "N"),
    (FLOWN, "tailnum", None),
    (CANCELLED, "tailnum", None),  # allowed: the flight never flew
    (FLOWN, "origin", "BOS"),
    (FLOWN, "origin", "EW"),
    (FLOWN, "origin", "EWR\r\n"),
    (FLOWN, "origin", None),
    (FLOWN, "dest", "iah"),
    (FLOWN, "dest", "I\tH"),
    (FLOWN, "dest", None),
    (FLOWN, "distance", -1400.0),
    (FLOWN, "distance", 9.99),
    (FLOWN, "distance", 10.0),  # the bound itself is inside
    (FLOWN, "distance", np.nan),
    (FLOWN, "dep_delay", np.nan),
    (FLOWN, "dep_delay", 1801.0),
    (CANCELLED, "dep_delay", 5.0),
    (FLOWN, "arr_delay", np.nan),
    (FLOWN, "arr_delay", -181.0),
    (FLOWN, "air_time", 5.0),
    (FLOWN, "month", 13),
    (FLOWN, "sched_dep_local", pd.Timestamp("2013-02-01 05:15")),
    (FLOWN, "sched_dep_local", pd.Timestamp("2013-01-31 23:59:59")),
]
WEATHER_BREAKS: list[tuple[int, str, Any]] = [
    (0, "origin", "BOS"),
    (0, "origin", "EWR\n"),
    (0, "origin", "E\u200bWR"),
    (0, "precip", np.nan),
    (0, "visib", np.nan),
    (0, "visib", 10.5),
    (0, "temp", 131.0),
    (0, "temp", np.nan),  # a missing temperature is judged by temp_mostly_reported, not by the range
    (0, "dewp", -61.0),
    (0, "humid", 100.5),
    (0, "wind_dir", 361.0),
    (0, "wind_speed", 1048.36),
    (0, "wind_gust", -1.0),
    (0, "precip", -0.01),
    (0, "pressure", 899.0),
    (0, "observed_local", pd.Timestamp("2012-12-31 23:00")),
]


def with_bad_rows(frame: pd.DataFrame, key: str, breaks: list[tuple[int, str, Any]]) -> pd.DataFrame:
    rows = []
    for number, (row, column, value) in enumerate(breaks):
        copy = frame.iloc[[row]].copy()
        copy[key] = f"bad-{number}"
        copy[column] = pd.Series([value], index=copy.index, dtype=frame[column].dtype if value is not None else None)
        rows.append(copy)
    out = pd.concat([frame, *rows], ignore_index=True)
    return out.astype({column: frame[column].dtype for column in ("flight", "month") if column in frame})


def gx_offending_keys(suite: dict[str, Any], frame: pd.DataFrame, key: str) -> dict[str, set[str]]:
    parameters = suite_parameters(SMALL_THRESHOLDS, MONTH, reference_frames())
    outcome = validate_frame(GX, suite, frame, parameters, partition=MONTH, key_columns=(key,))
    assert outcome.result_json is not None, outcome.reason
    assert not outcome.errored, outcome.reason
    found = {}
    for result in outcome.result_json["results"]:
        entries = (result.get("result") or {}).get("unexpected_index_list") or []
        found[result["expectation_config"]["meta"]["name"]] = {str(entry[key]) for entry in entries}
    return found


@pytest.mark.parametrize(
    ("asset_key", "key", "breaks"),
    [(FLIGHTS, "flight_id", FLIGHT_BREAKS), (WEATHER, "observation_id", WEATHER_BREAKS)],
    ids=["staging.flights", "staging.weather"],
)
def test_the_row_wise_evaluation_finds_the_rows_great_expectations_finds(
    asset_key: tuple[str, ...], key: str, breaks: list[tuple[int, str, Any]]
) -> None:
    spec = spec_for(asset_key)
    frame = with_bad_rows(good_frames()[spec.name], key, breaks)
    suite = load_suite(spec.path)
    marked = [e for e in suite["expectations"] if is_quarantine_rule(e)]
    by_gx = gx_offending_keys({**suite, "expectations": marked}, frame, key)
    rules = quarantine_rules(spec, SMALL_THRESHOLDS, MONTH)
    by_step = {rule.name: set(frame.loc[rule.offending(frame), key]) for rule in rules.expectations}

    assert set(by_step) == set(by_gx) == {e["meta"]["name"] for e in marked}
    for name in by_gx:
        assert by_step[name] == by_gx[name], name
        assert by_gx[name], f"{name}: no bad row breaks it, so the comparison proves nothing"


def test_the_bound_and_the_cancelled_flight_without_a_plane_are_not_offending() -> None:
    spec = spec_for(FLIGHTS)
    frame = with_bad_rows(good_frames()[spec.name], "flight_id", FLIGHT_BREAKS)
    rules = quarantine_rules(spec, SMALL_THRESHOLDS, MONTH)
    offending = pd.concat([rule.offending(frame) for rule in rules.expectations], axis=1).any(axis=1)
    allowed = [
        f"bad-{n}" for n, (row, column, _) in enumerate(FLIGHT_BREAKS) if (row, column) == (CANCELLED, "tailnum")
    ]
    allowed.append(f"bad-{FLIGHT_BREAKS.index((FLOWN, 'distance', 10.0))}")
    assert not offending[frame["flight_id"].isin(allowed)].any()


@pytest.mark.parametrize("asset_key", [FLIGHTS, WEATHER], ids=".".join)
def test_the_gx_check_leaves_quarantine_rules_to_the_staging_step(asset_key: tuple[str, ...], tmp_path: Path) -> None:
    spec = spec_for(asset_key)
    frame = good_frames()[spec.name]
    gx = GreatExpectationsResource.for_settings(settings_for("dev", data_root=tmp_path))
    references = {table: reference_frames()[table] for table in spec.references}
    outcome = run_suite(spec, frame, MONTH, great_expectations=gx, thresholds=SMALL_THRESHOLDS, references=references)
    suite = load_suite(spec.path)
    marked = {e["meta"]["name"] for e in suite["expectations"] if is_quarantine_rule(e)}
    assert marked
    assert outcome.evaluated == len(without_quarantine_rules(suite)["expectations"])
    assert not marked & {e.name for e in outcome.expectations}
    assert any("enforced in the staging step" in note and all(n in note for n in marked) for note in outcome.notes)
    assert outcome.status == "passed"
