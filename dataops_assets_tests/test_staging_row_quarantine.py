"""Row-level quarantine on the real January (dev's 10 % sample): bad identifiers, disagreeing redundant columns and
rows breaking a quarantine-marked expectation go to quarantine under the rule's name; the rest is staged; the month
is blocked only when the quarantined share passes the environment's limit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dataops_assets import landing
from dataops_assets.assets.core import core_assets
from dataops_assets.assets.raw import raw_assets
from dataops_assets.assets.staging import ACCEPTED, staging_assets
from dataops_assets.environments import Settings, settings_for
from dataops_assets.quality.gx_checks import gx_asset_checks
from dataops_assets.quality.gx_suites import SUITES, quarantine_rules, spec_for
from dataops_assets.quality.quarantine import CHECK_NAME as QUARANTINE_CHECK
from dataops_assets.resources import build_resources
from dataops_assets.transforms import flights, weather
from dataops_assets.transforms.typing import Staged
from dataops_assets_tests.fixtures.pipeline import read_table

pytestmark = pytest.mark.real_data

MONTH = "2013-01"
JAN = pd.Timestamp("2013-01-01")
DEV = settings_for("dev")
ROWS = [100, 700, 1500]  # positions of the edited rows in the month


def real_month(table: str, columns: list[str]) -> pd.DataFrame:
    """The real January as dev lands it (a 10 % sample of the flights, every weather hour), as raw hands it on."""
    source = landing.read_source(table)
    rows = source[source["month"] == "1"]
    if table == "flights":
        rows = landing.sample_month(rows, DEV.sample_fraction, 1)
    raw = rows[columns].reset_index(drop=True)
    raw.insert(0, "_partition_month", JAN)
    raw["_source_file"] = f"{table}/{MONTH}.csv"
    raw["_source_line"] = range(2, len(raw) + 2)
    return raw


@pytest.fixture(scope="module")
def january() -> dict[str, pd.DataFrame]:
    return {
        "flights": real_month("flights", flights.SOURCE_COLUMNS),
        "weather": real_month("weather", weather.SOURCE_COLUMNS),
    }


def stage(subject: str, raw: pd.DataFrame) -> Staged:
    expectations = quarantine_rules(spec_for(("staging", subject)), DEV.thresholds, MONTH)
    stager = flights.stage_flights if subject == "flights" else weather.stage_weather
    return stager(raw, JAN, expectations)


Edit = Callable[[str], str]


def hour_later(time_hour: str) -> str:
    return (pd.Timestamp(time_hour) + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


CASES: dict[str, tuple[str, str, Edit, str]] = {
    "control character in a carrier": ("flights", "carrier", lambda v: v[0] + "\x07" + v[1], "carrier_shape"),
    "invisible character in a carrier": ("flights", "carrier", lambda v: v + "\u200b", "carrier_shape"),
    "line break in a tail number": ("flights", "tailnum", lambda v: v + "\n", "tailnum_shape"),
    "tail number of the wrong shape": ("flights", "tailnum", lambda v: "X" + v[1:], "tailnum_shape"),
    "lower-case origin": ("flights", "origin", str.lower, "origin_shape"),
    "destination of four letters": ("flights", "dest", lambda v: v + "X", "dest_shape"),
    "unknown origin": ("flights", "origin", lambda v: "BOS", "origin_is_nyc_airport"),
    "negative distance": ("flights", "distance", lambda v: "-" + v, "distance_plausible"),
    "line break in a flight number": ("flights", "flight", lambda v: v + "\n", "untypable"),
    "time_hour an hour off": ("flights", "time_hour", hour_later, "time_hour_vs_sched_dep"),
    "hour off": ("flights", "hour", lambda v: str(int(v) + 1), "hour_vs_sched_dep_time"),
    "minute off": ("flights", "minute", lambda v: str((int(v) + 1) % 60), "minute_vs_sched_dep_time"),
    "month of another file": ("flights", "month", lambda v: "2", "year_month_vs_partition"),
    "line break in a weather origin": ("weather", "origin", lambda v: v + "\r\n", "origin_shape"),
    "impossible humidity": ("weather", "humid", lambda v: "150", "humid_is_percent"),
}


def test_the_real_january_quarantines_nothing(january: dict[str, pd.DataFrame]) -> None:
    for subject, raw in january.items():
        staged = stage(subject, raw)
        assert staged.quarantined.empty, staged.quarantined[["rule", "detail"]].head().to_dict("records")
        assert len(staged.valid) == len(raw)


@pytest.mark.parametrize("case", CASES)
def test_a_broken_row_is_quarantined_under_its_rule_and_the_rest_is_staged(
    january: dict[str, pd.DataFrame], case: str
) -> None:
    subject, column, edit, rule = CASES[case]
    raw = january[subject].copy()
    raw.loc[ROWS, column] = raw.loc[ROWS, column].map(edit)
    staged = stage(subject, raw)

    assert staged.quarantined["rule"].tolist() == [rule] * len(ROWS), staged.quarantined[["rule", "detail"]]
    assert staged.quarantined["_source_line"].tolist() == [row + 2 for row in ROWS]
    said = "is not in 2013-01" if rule == "year_month_vs_partition" else column  # the detail names what is wrong
    assert staged.quarantined["detail"].str.contains(said).all(), staged.quarantined["detail"].tolist()
    assert len(staged.valid) == len(raw) - len(ROWS)
    if column in staged.valid.columns:
        assert not staged.valid[column].astype(str).isin(raw.loc[ROWS, column]).any()


# --- through Dagster: the share decides whether the month is blocked ------------------------------------------

BREAKS: list[tuple[str, Edit, str]] = [
    ("distance", lambda v: "-" + v, "distance_plausible"),
    ("origin", lambda v: "BOS", "origin_is_nyc_airport"),
    ("tailnum", lambda v: v + "\n", "tailnum_shape"),
    ("time_hour", hour_later, "time_hour_vs_sched_dep"),
]


def land_broken_january(tmp_path: Path, share: float) -> tuple[Settings, int, dict[str, int]]:
    """Dev's real January with ``share`` of its flights broken, a quarter by each of ``BREAKS``."""
    settings = settings_for("dev", data_root=tmp_path)
    landing.land(settings, months=(MONTH,))
    path = landing.flights_file(settings.landing_dir, MONTH)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    flown = frame.index[frame["tailnum"] != "NA"]
    broken = flown[:: len(flown) // round(len(frame) * share)][: round(len(frame) * share)]
    expected: dict[str, int] = {}
    for number, (column, edit, rule) in enumerate(BREAKS):
        rows = broken[number :: len(BREAKS)]
        frame.loc[rows, column] = frame.loc[rows, column].map(edit)
        expected[rule] = len(rows)
    landing.write_atomically(frame, path)
    return settings, len(frame), expected


def run_month(settings: Settings) -> dg.ExecuteInProcessResult:
    staging_suites = [spec for spec in SUITES if spec.asset_key[0] == "staging"]
    return dg.materialize(
        [*raw_assets, *staging_assets, *core_assets, *gx_asset_checks(staging_suites)],
        resources=build_resources(settings),
        partition_key=MONTH,
        raise_on_error=False,
    )


def check(result: dg.ExecuteInProcessResult, asset: str, name: str) -> dg.AssetCheckEvaluation:
    found = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == asset and e.check_name == name
    ]
    assert len(found) == 1, [(e.asset_key, e.check_name) for e in result.get_asset_check_evaluations()]
    return found[0]


def published(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}


def test_a_share_within_the_limit_is_quarantined_and_the_month_published(tmp_path: Path) -> None:
    settings, rows, expected = land_broken_january(tmp_path, share=0.008)
    result = run_month(settings)

    share = check(result, "staging/flights", QUARANTINE_CHECK)
    assert share.passed, share.description
    assert share.metadata["rows_quarantined"] == dg.MetadataValue.int(sum(expected.values()))
    for rule, count in expected.items():
        assert share.metadata[f"rule/{rule}"] == dg.MetadataValue.int(count)
    gx = check(result, "staging/flights", "gx_suite")
    assert gx.severity == dg.AssetCheckSeverity.WARN or gx.passed, gx.description
    assert "core/flights" in published(result)
    quarantined = read_table(settings, "quarantine.quarantined_flights")
    assert quarantined["rule"].value_counts().to_dict() == expected
    staged = read_table(settings, "staging.flights")
    assert len(staged) + len(quarantined) == rows
    assert not staged["tailnum"].str.contains("\n", regex=False, na=False).any()
    assert staged["distance"].min() > 0


def test_a_share_above_the_limit_blocks_the_month(tmp_path: Path) -> None:
    settings, _, expected = land_broken_january(tmp_path, share=0.02)
    result = run_month(settings)

    share = check(result, "staging/flights", QUARANTINE_CHECK)
    assert (share.passed, share.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "above the 1.00% limit" in (share.description or "")
    assert share.metadata["rows_quarantined"] == dg.MetadataValue.int(sum(expected.values()))
    assert "core/flights" not in published(result)


def test_the_real_year_quarantines_only_the_bad_wind_reading_and_keeps_the_accepted_tail_number() -> None:
    """Every month of the full data against the staging suites' row rules and the accepted exceptions: the
    D942DN flights (1 in February, 2 in March, 1 in July) stay staged as accepted, and the one impossible wind
    reading (1,048 mph at EWR, February) is the only row quarantined."""
    stage_settings = settings_for("stage")
    all_flights, all_weather = landing.read_source("flights"), landing.read_source("weather")
    accepted, quarantined = {}, {}
    for number in range(1, 13):
        month, start = f"2013-{number:02d}", pd.Timestamp(f"2013-{number:02d}-01")
        for subject, source, stager in (
            ("flights", all_flights, flights.stage_flights),
            ("weather", all_weather, weather.stage_weather),
        ):
            spec = spec_for(("staging", subject))
            rules = quarantine_rules(spec, stage_settings.thresholds, month).with_accepted(
                ACCEPTED.accepted_values(spec.name, pd.Timestamp.now().date())
            )
            columns = flights.SOURCE_COLUMNS if subject == "flights" else weather.SOURCE_COLUMNS
            raw = source[source["month"] == str(number)][columns].reset_index(drop=True)
            raw.insert(0, "_partition_month", start)
            raw["_source_file"], raw["_source_line"] = f"{subject}/{month}.csv", range(2, len(raw) + 2)
            staged = stager(raw, start, rules)
            accepted[(subject, month)] = rules.accepted_counts(staged.valid)
            quarantined[(subject, month)] = staged.quarantined["rule"].value_counts().to_dict()
    assert {key: counts for key, counts in accepted.items() if counts} == {
        ("flights", "2013-02"): {"tailnum_shape": 1},
        ("flights", "2013-03"): {"tailnum_shape": 2},
        ("flights", "2013-07"): {"tailnum_shape": 1},
    }
    assert {key: rules for key, rules in quarantined.items() if rules} == {
        ("weather", "2013-02"): {"wind_speed_plausible": 1}
    }
