"""Great Expectations suites as data: which asset each suite checks, how its file is read, and its parameters.

A suite is ``dataops_assets/expectations/<schema>.<table>.json``, a GX 1.x suite without generated ``id``s. Every
expectation carries a ``severity`` (``critical`` blocks downstream assets, ``warning`` is reported only) and a
human name in ``meta.name``. Thresholds that differ between environments are GX suite parameters
(``{"$PARAMETER": "min_rows"}``), filled at run time by :func:`suite_parameters` from the environment's
``Thresholds``, the partition's month and the staged reference tables (value sets of carriers, airports, tail
numbers).

A row-level expectation may carry ``"quarantine": true`` in its ``meta``: the staging step then evaluates it on
every row (``transforms.row_expectations``) and quarantines the offending rows under its name, and the GX check no
longer evaluates it. Only expectations judging one value of one row may (``QUARANTINE_TYPES``), without ``mostly``
(a row breaks a rule or not) and without the reference value sets (the staging step does not load them).

Nothing here imports great_expectations or dagster: reading suites and computing parameters stays cheap.
"""

from __future__ import annotations

import calendar
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dataops_assets.environments import Thresholds
from dataops_assets.transforms.row_expectations import QUARANTINE_TYPES, RowExpectations, parameter_names

EXPECTATIONS_DIR = Path(__file__).resolve().parents[1] / "expectations"
SEVERITIES = ("critical", "warning")

# Weather has one observation per airport (EWR, JFK, LGA) and hour; a month may miss a few hours (December 2013
# lacks 88 of 2,232; the tolerated share is Thresholds.min_weather_coverage) and the repeated hour when daylight
# time ends adds one per airport.
WEATHER_AIRPORTS = 3

# Staged reference table -> the column whose values form the suite parameter of the same name.
REFERENCE_VALUE_SETS: dict[str, str] = {"airlines": "carrier", "airports": "faa", "planes": "tailnum"}


class SuiteFileError(ValueError):
    """A suite file cannot be read, or breaks the conventions of this project (severity, meta.name, no ids)."""


@dataclass(frozen=True)
class SuiteSpec:
    """One suite and the asset it checks.

    ``key_columns`` identify offending rows in results (GX ``unexpected_index_column_names``); ``references`` are
    the staged reference tables whose values the suite needs as parameters (loaded as additional check inputs).
    """

    asset_key: tuple[str, ...]
    key_columns: tuple[str, ...]
    references: tuple[str, ...] = ()
    directory: Path = EXPECTATIONS_DIR

    @property
    def name(self) -> str:
        return ".".join(self.asset_key)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.name}.json"


SUITES: tuple[SuiteSpec, ...] = (
    SuiteSpec(("staging", "flights"), ("flight_id",), ("airlines", "airports", "planes")),
    SuiteSpec(("staging", "weather"), ("observation_id",)),
    SuiteSpec(("core", "flights"), ("flight_id",), ("airports", "planes")),
    SuiteSpec(("marts", "carrier_monthly"), ("carrier",), ("airlines",)),
    SuiteSpec(("marts", "route_monthly"), ("origin", "dest"), ("airports",)),
)


def spec_for(asset_key: tuple[str, ...]) -> SuiteSpec:
    """The suite that checks ``asset_key``."""
    for spec in SUITES:
        if spec.asset_key == asset_key:
            return spec
    raise KeyError(f"no suite checks {'/'.join(asset_key)}")


def load_suite(path: Path) -> dict[str, Any]:
    """The suite in ``path`` as a dict GX accepts, with generated ``id`` fields removed; raises ``SuiteFileError``."""
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SuiteFileError(f"cannot read suite file {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SuiteFileError(f"suite file {path} is not valid JSON: {error}") from None
    problems = suite_problems(suite)
    if problems:
        raise SuiteFileError(f"suite file {path} breaks the suite conventions: " + "; ".join(problems))
    return strip_ids(suite)


def suite_problems(suite: Any) -> list[str]:
    """What is wrong with a suite dict; empty when it follows the conventions."""
    if not isinstance(suite, dict):
        return ["the file does not hold a JSON object"]
    problems = []
    if not isinstance(suite.get("name"), str) or not suite["name"]:
        problems.append("no suite name")
    expectations = suite.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        return [*problems, "no expectations"]
    seen: set[str] = set()
    for position, expectation in enumerate(expectations):
        if not isinstance(expectation, dict):
            problems.append(f"expectation {position} is not an object")
            continue
        meta = expectation.get("meta") or {}
        name = meta.get("name") if isinstance(meta, dict) else None
        label = name or f"expectation {position} ({expectation.get('type')})"
        if not isinstance(expectation.get("type"), str):
            problems.append(f"{label} has no type")
        if not isinstance(expectation.get("kwargs"), dict):
            problems.append(f"{label} has no kwargs")
        if not name:
            problems.append(f"{label} has no meta.name")
        elif name in seen:
            problems.append(f"meta.name {name!r} is used twice")
        seen.add(name or "")
        if expectation.get("severity") not in SEVERITIES:
            problems.append(f"{label} has severity {expectation.get('severity')!r}; expected one of {SEVERITIES}")
        problems += quarantine_problems(expectation, label)
    return problems


def quarantine_problems(expectation: dict[str, Any], label: str) -> list[str]:
    """Why an expectation cannot carry ``meta.quarantine``; empty when it can, or does not carry it."""
    meta = expectation.get("meta")
    flag = meta.get("quarantine", False) if isinstance(meta, dict) else False
    if not isinstance(flag, bool):
        return [f"{label} has meta.quarantine {flag!r}; expected true or false"]
    if not flag:
        return []
    kwargs = expectation.get("kwargs")
    if not isinstance(kwargs, dict):
        kwargs = {}
    problems = []
    if expectation.get("type") not in QUARANTINE_TYPES:
        problems.append(f"{label} is marked to quarantine, but {expectation.get('type')} does not judge single rows")
    if "mostly" in kwargs:
        problems.append(f"{label} is marked to quarantine and has mostly: a row breaks a rule or does not")
    condition = kwargs.get("row_condition")
    if condition is not None and not isinstance(condition, dict):
        problems.append(f"{label} is marked to quarantine: its row_condition must be structured, not a string")
    references = parameter_names(kwargs) & set(REFERENCE_VALUE_SETS)
    if references:
        problems.append(f"{label} is marked to quarantine and uses the reference value set(s) {sorted(references)}")
    return problems


def is_quarantine_rule(expectation: dict[str, Any]) -> bool:
    return bool((expectation.get("meta") or {}).get("quarantine"))


def without_quarantine_rules(suite: dict[str, Any]) -> dict[str, Any]:
    """The suite minus its quarantine-marked expectations: those the staging step enforces row by row."""
    return {**suite, "expectations": [e for e in suite["expectations"] if not is_quarantine_rule(e)]}


# Expectations on the table's column set: judged against the stored table's columns, not the columns read.
TABLE_SHAPE_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_to_exist",
    }
)


def expectation_columns(kwargs: Mapping[str, Any]) -> list[str]:
    """The columns an expectation judges: ``column``, ``column_list`` or ``column_A`` and ``column_B``."""
    named = [kwargs.get("column"), *(kwargs.get("column_list") or []), kwargs.get("column_A"), kwargs.get("column_B")]
    return [str(column) for column in named if column]


def is_table_shape(expectation: Mapping[str, Any]) -> bool:
    return expectation.get("type") in TABLE_SHAPE_TYPES


def columns_read(suite: Mapping[str, Any], key_columns: Sequence[str] = ()) -> list[str] | None:
    """The columns the suite's GX-evaluated expectations read (key columns first), so the check loads only those;
    None when an expectation's columns cannot be known (a row_condition written as a query string)."""
    columns = dict.fromkeys(key_columns)
    for expectation in without_quarantine_rules(dict(suite))["expectations"]:
        if is_table_shape(expectation):
            continue
        kwargs = expectation.get("kwargs") or {}
        if isinstance(kwargs.get("row_condition"), str):
            return None
        columns.update(dict.fromkeys([*expectation_columns(kwargs), *_condition_columns(kwargs.get("row_condition"))]))
    return list(columns)


def _condition_columns(condition: Any) -> list[str]:
    """Column names inside a structured row_condition (``{"column": {"name": ...}}``, nested conditions)."""
    if isinstance(condition, Mapping):
        column = condition.get("column")
        found = [str(column["name"])] if isinstance(column, Mapping) and "name" in column else []
        return found + [name for value in condition.values() for name in _condition_columns(value)]
    if isinstance(condition, list):
        return [name for item in condition for name in _condition_columns(item)]
    return []


def quarantine_rules(spec: SuiteSpec, thresholds: Thresholds, partition_key: str) -> RowExpectations:
    """The quarantine-marked expectations of the spec's suite, with their parameters filled for the partition."""
    suite = load_suite(spec.path)
    rules = [e for e in suite["expectations"] if is_quarantine_rule(e)]
    return RowExpectations.from_suite(rules, suite_parameters(thresholds, partition_key))


def strip_ids(value: Any) -> Any:
    """A copy of a JSON value without ``id`` keys (GX regenerates them; committed files stay diff-friendly)."""
    if isinstance(value, dict):
        return {key: strip_ids(item) for key, item in value.items() if key != "id"}
    if isinstance(value, list):
        return [strip_ids(item) for item in value]
    return value


def weather_row_band(partition_key: str, min_coverage: float) -> tuple[int, int]:
    """Rows a month of hourly weather at the three airports may have (the end of daylight time adds an hour)."""
    year, month = (int(part) for part in partition_key.split("-"))
    hours = calendar.monthrange(year, month)[1] * 24 * WEATHER_AIRPORTS
    return math.floor(hours * min_coverage), hours + WEATHER_AIRPORTS


def suite_parameters(
    thresholds: Thresholds, partition_key: str, references: Mapping[str, pd.DataFrame] | None = None
) -> dict[str, Any]:
    """Values of every ``$PARAMETER`` the suites use for one monthly partition (``2013-01``).

    Bands come from the environment's thresholds, the month's window from the key, and value sets from the staged
    reference tables passed in ``references``.
    """
    start = pd.Timestamp(f"{partition_key}-01")
    end = start + pd.offsets.MonthBegin(1) - pd.Timedelta(microseconds=1)
    weather_min_rows, weather_max_rows = weather_row_band(partition_key, thresholds.min_weather_coverage)
    parameters: dict[str, Any] = {
        "min_rows": thresholds.min_flights_per_month,
        "max_rows": thresholds.max_flights_per_month,
        "mean_dep_delay_min": float(thresholds.mean_dep_delay_band[0]),
        "mean_dep_delay_max": float(thresholds.mean_dep_delay_band[1]),
        "cancellation_rate_min": float(thresholds.cancellation_rate_band[0]),
        "cancellation_rate_max": float(thresholds.cancellation_rate_band[1]),
        "on_time_share_min": float(thresholds.on_time_share_band[0]),
        "on_time_share_max": float(thresholds.on_time_share_band[1]),
        "month_start": start.isoformat(),
        "month_end": end.isoformat(),
        "last_month_start": start.isoformat(),  # the mart suites' window is month_start..last_month_start
        "weather_min_rows": weather_min_rows,
        "weather_max_rows": weather_max_rows,
    }
    for table, frame in (references or {}).items():
        column = REFERENCE_VALUE_SETS[table]
        parameters[table] = sorted(str(value) for value in frame[column].dropna().unique())
    return parameters
