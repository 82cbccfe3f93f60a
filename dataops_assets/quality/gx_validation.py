"""Running a suite on a DataFrame with Great Expectations, and keeping its result for Data Docs.

Great Expectations comes from the ``GreatExpectationsResource``, which imports it when a check first runs
(importing it takes seconds) and keeps one ephemeral context for the run. A validation never raises:
a suite that cannot run (unreadable file, missing parameter, GX error, an expectation that raised) gives an
outcome with ``status == "error"`` and the reason, which the Dagster check reports as a failed ERROR result.

GX's own ``success`` is False as soon as any expectation fails, ``warning`` ones included; severities are
mapped here instead: :attr:`ValidationOutcome.status` is ``error``, ``critical``, ``warning`` or ``passed``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from dataops_assets.environments import Thresholds
from dataops_assets.files import write_atomic
from dataops_assets.quality.gx_suites import (
    SuiteSpec,
    expectation_columns,
    is_quarantine_rule,
    is_table_shape,
    load_suite,
    strip_ids,
    suite_parameters,
    without_quarantine_rules,
)
from dataops_assets.resources import GreatExpectationsResource

Status = Literal["passed", "warning", "critical", "error"]

SAMPLE_SIZE = 10  # offending values and keys reported per failed expectation
PERSISTED_LIST_LIMIT = 200  # unexpected values and keys kept per expectation in the persisted result


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, reduced to what a person needs to act on it."""

    name: str
    expectation_type: str
    severity: str
    success: bool
    column: str | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    element_count: int | None = None
    observed_value: Any = None
    offending_values: tuple[tuple[Any, int], ...] = ()  # top distinct values with their counts, most frequent first
    distinct_offending: int | None = None  # how many distinct values offend
    offending_keys: tuple[str, ...] = ()  # keys of offending rows (e.g. flight ids), a sample
    details: Any = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return not self.success


@dataclass(frozen=True)
class ValidationOutcome:
    """A suite's validation of one partition."""

    suite: str
    partition: str
    rows: int
    expectations: tuple[ExpectationOutcome, ...] = ()
    error: str | None = None  # set when the suite could not run at all
    seconds: float = 0.0  # the validation itself
    setup_seconds: float = 0.0  # importing GX and creating the context, on the first validation of a run
    gx_already_imported: bool = False  # the run process had imported GX before (a forked run, or an earlier check)
    result_json: dict[str, Any] | None = field(default=None, repr=False)
    result_path: Path | None = None
    notes: tuple[str, ...] = ()

    @property
    def evaluated(self) -> int:
        return len(self.expectations)

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(e for e in self.expectations if e.failed)

    @property
    def errored(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(e for e in self.expectations if e.error is not None)

    @property
    def critical_failures(self) -> tuple[ExpectationOutcome, ...]:
        return critical(self.failures)

    @property
    def warning_failures(self) -> tuple[ExpectationOutcome, ...]:
        return warnings_only(self.failures)

    @property
    def passed_count(self) -> int:
        return self.evaluated - len(self.failures)

    @property
    def success_percent(self) -> float:
        return 100.0 * self.passed_count / self.evaluated if self.evaluated else 0.0

    @property
    def status(self) -> Status:
        """``error`` (could not run, or an expectation raised), ``critical``, ``warning`` or ``passed``."""
        return status_of(self.could_not_run, self.failures)

    @property
    def could_not_run(self) -> bool:
        return self.error is not None or bool(self.errored)

    @property
    def reason(self) -> str | None:
        """Why the suite could not be evaluated, if it could not."""
        if self.error is not None:
            return self.error
        if self.errored:
            return "; ".join(f"{e.name} could not be evaluated: {e.error}" for e in self.errored)
        return None


def critical(failures: Sequence[ExpectationOutcome]) -> tuple[ExpectationOutcome, ...]:
    return tuple(f for f in failures if f.severity == "critical")


def warnings_only(failures: Sequence[ExpectationOutcome]) -> tuple[ExpectationOutcome, ...]:
    return tuple(f for f in failures if f.severity != "critical")


def status_of(could_not_run: bool, failures: Sequence[ExpectationOutcome]) -> Status:
    """The severity mapping of this project: GX's own ``success`` is False for warnings too."""
    if could_not_run:
        return "error"
    if critical(failures):
        return "critical"
    if failures:
        return "warning"
    return "passed"


def validate_frame(
    great_expectations: GreatExpectationsResource,
    suite: Mapping[str, Any],
    frame: pd.DataFrame,
    parameters: Mapping[str, Any],
    *,
    partition: str,
    key_columns: Sequence[str] = (),
    extra_meta: Mapping[str, Any] | None = None,
    stored_columns: Sequence[str] | None = None,
) -> ValidationOutcome:
    """Validate ``frame`` against the suite dict; never raises (a failure to run becomes ``status == "error"``).

    ``stored_columns``: the table's columns when ``frame`` holds only some of them (see ``_batches``)."""
    name = str(suite.get("name") or "suite")
    already_imported = "great_expectations" in sys.modules
    started = time.perf_counter()
    try:
        great_expectations.context  # noqa: B018 - the first use in a run imports GX: timed apart from the validation
    except Exception as error:
        return ValidationOutcome(
            suite=name, partition=partition, rows=len(frame), error=f"Great Expectations could not start: {error}"
        )
    setup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    try:
        keys = [column for column in key_columns if column in frame.columns]
        result = _run_gx(
            great_expectations,
            name,
            suite,
            frame,
            parameters,
            partition=partition,
            stored_columns=stored_columns,
        )
        _name_offending_rows(result, frame, keys)
        expectations = tuple(_expectation_outcome(r, key_columns) for r in result.results)
        result_json = _trimmed(result).to_json_dict()
    except Exception as error:
        return ValidationOutcome(
            suite=name,
            partition=partition,
            rows=len(frame),
            error=f"the suite could not run: {type(error).__name__}: {error}",
            seconds=time.perf_counter() - started,
            setup_seconds=setup_seconds,
            gx_already_imported=already_imported,
        )
    outcome = ValidationOutcome(
        suite=name,
        partition=partition,
        rows=len(frame),
        expectations=expectations,
        seconds=time.perf_counter() - started,
        setup_seconds=setup_seconds,
        gx_already_imported=already_imported,
    )
    result_json["meta"]["dataops"] = {
        "partition": partition,
        "status": outcome.status,
        "rows": len(frame),
        "seconds": round(outcome.seconds, 3),
        **(extra_meta or {}),
    }
    return replace(outcome, result_json=result_json)


def _run_gx(
    great_expectations: GreatExpectationsResource,
    name: str,
    suite: Mapping[str, Any],
    frame: pd.DataFrame,
    parameters: Mapping[str, Any],
    *,
    partition: str,
    stored_columns: Sequence[str] | None = None,
) -> Any:
    import great_expectations as gx  # noqa: PLC0415 - the resource imported it when it created the context
    from great_expectations.core.run_identifier import RunIdentifier  # noqa: PLC0415
    from great_expectations.validator.v1_validator import Validator  # noqa: PLC0415

    # Offending rows come back as index labels: GX names them by key columns one row at a time, which costs more
    # than the validation when a known gap offends in 15 % of a large month; _name_offending_rows does it at once.
    result_format: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": 20}
    results = []
    for expectations, data in _batches(suite, frame, stored_columns):
        part = gx.ExpectationSuite(
            name=name, expectations=_gx_expectations(expectations), meta=suite.get("meta"), notes=suite.get("notes")
        )
        # What Batch.validate does, without first building a Batch of its own: GX fingerprints (hashes) the whole
        # frame for every batch it builds, and Batch.validate builds another one.
        validator = Validator(
            batch_definition=great_expectations.batch_definition(name),
            batch_parameters={"dataframe": data},
            result_format=result_format,
        )
        results.append(validator.validate_expectation_suite(part, expectation_parameters=dict(parameters)))
    result = _merged(results)
    run_time = dt.datetime.now(dt.UTC)
    result.meta["run_id"] = RunIdentifier(run_name=partition, run_time=run_time)
    result.meta["validation_time"] = run_time
    return result


def _batches(
    suite: Mapping[str, Any], frame: pd.DataFrame, stored_columns: Sequence[str] | None
) -> list[tuple[list[dict[str, Any]], pd.DataFrame]]:
    """The suite's expectations with the frame each is judged on. When ``frame`` holds only the columns the suite
    reads, the expectations on the table's column set are judged on the stored table's columns (no rows needed)."""
    expectations = list(suite.get("expectations") or [])
    if stored_columns is None or list(frame.columns) == list(stored_columns):
        return [(expectations, frame)]
    values = [e for e in expectations if not is_table_shape(e)]
    shape = [e for e in expectations if is_table_shape(e)]
    stored = pd.DataFrame(columns=list(stored_columns))
    return [(part, data) for part, data in ((values, frame), (shape, stored)) if part]


def _merged(results: list[Any]) -> Any:
    """One suite result from the results of its parts, statistics recomputed."""
    if len(results) == 1:
        return results[0]
    from great_expectations.validator.validation_statistics import calc_validation_statistics  # noqa: PLC0415

    merged = results[0]
    merged.results = [r for result in results for r in result.results]
    statistics = calc_validation_statistics(merged.results)
    merged.success = statistics.success
    merged.statistics = {
        "evaluated_expectations": statistics.evaluated_expectations,
        "successful_expectations": statistics.successful_expectations,
        "unsuccessful_expectations": statistics.unsuccessful_expectations,
        "success_percent": statistics.success_percent,
    }
    return merged


class InvalidExpectationError(ValueError):
    """GX cannot build an expectation of the suite (unknown type, bad kwargs)."""


def _gx_expectations(expectations: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Expectations of a suite as GX objects. ``gx.ExpectationSuite`` would log and silently drop the ones it
    cannot build (a typo in a type name would pass as a smaller suite): here they stop the suite, named."""
    from great_expectations.expectations.expectation_configuration import (  # noqa: PLC0415 - GX is loaded
        ExpectationConfiguration,
    )

    built, problems = [], []
    for position, raw in enumerate(strip_ids(list(expectations))):
        label = (raw.get("meta") or {}).get("name") or f"expectation {position} ({raw.get('type')})"
        try:
            built.append(ExpectationConfiguration(**raw).to_domain_obj())
        except Exception as error:
            problems.append(f"{label}: {getattr(error, 'message', None) or error}")
    if problems:
        raise InvalidExpectationError("Great Expectations cannot build " + "; ".join(problems))
    return built


def _name_offending_rows(result: Any, frame: pd.DataFrame, key_columns: Sequence[str]) -> None:
    """Each offending row's index label replaced by its key and checked columns, as GX's
    ``unexpected_index_column_names`` would give them (``{"flight_id": ..., "tailnum": ...}``)."""
    if not key_columns or not frame.index.is_unique:
        return
    for expectation in result.results:
        details = expectation.result if isinstance(expectation.result, dict) else {}
        labels = details.get("unexpected_index_list")
        if not labels or isinstance(labels[0], Mapping):
            continue
        checked = expectation_columns(expectation.expectation_config.kwargs)
        columns = list(dict.fromkeys([*key_columns, *(c for c in checked if c in frame.columns)]))
        details["unexpected_index_list"] = frame.loc[labels, columns].to_dict("records")
        details["unexpected_index_column_names"] = list(key_columns)


def _expectation_outcome(result: Any, key_columns: Sequence[str]) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = dict(config.kwargs)
    details: dict[str, Any] = dict(result.result or {})
    error = _exception_message(result.exception_info)
    counts = _value_counts(_offending_values(details, kwargs.get("column")))
    return ExpectationOutcome(
        name=str((config.meta or {}).get("name") or config.type),
        expectation_type=str(config.type),
        severity=str(getattr(config.severity, "value", config.severity) or "critical"),
        success=bool(result.success) and error is None,
        column=_column_of(kwargs),
        unexpected_count=_int_or_none(details.get("unexpected_count")),
        unexpected_percent=_float_or_none(details.get("unexpected_percent")),
        element_count=_int_or_none(details.get("element_count")),
        observed_value=_plain(details.get("observed_value")),
        offending_values=tuple(counts.most_common(SAMPLE_SIZE)),
        distinct_offending=len(counts) if counts else None,
        offending_keys=_offending_keys(details.get("unexpected_index_list") or [], key_columns),
        details=_plain(details.get("details")),
        error=error,
    )


def _column_of(kwargs: Mapping[str, Any]) -> str | None:
    return ",".join(expectation_columns(kwargs)) or None


def _exception_message(info: Any) -> str | None:
    """The message of an exception GX caught for an expectation; its layout differs by where it was raised."""
    if not isinstance(info, Mapping) or not info:
        return None
    if "raised_exception" in info:
        if not info.get("raised_exception"):
            return None
        return str(info.get("exception_message") or "raised an exception")
    messages = [
        str(entry.get("exception_message") or "raised an exception")
        for entry in info.values()
        if isinstance(entry, Mapping) and entry.get("raised_exception")
    ]
    return "; ".join(dict.fromkeys(messages)) or None


def _offending_values(details: Mapping[str, Any], column: Any) -> list[Any]:
    """Every offending value: GX caps ``unexpected_list`` at 200 even in COMPLETE format, but not the index list,
    whose entries carry the column's value beside the key columns."""
    index_list = details.get("unexpected_index_list") or []
    if column and index_list and all(isinstance(entry, Mapping) and column in entry for entry in index_list):
        return [entry[column] for entry in index_list]
    return list(details.get("unexpected_list") or [])


def _value_counts(values: Sequence[Any]) -> Counter[Any]:
    """Distinct non-null offending values with their counts."""
    counts: Counter[Any] = Counter()
    for value in values:
        plain = _plain(value)
        if plain is None:
            continue
        counts[plain if isinstance(plain, str | int | float | bool) else json.dumps(plain, default=str)] += 1
    return counts


def _offending_keys(index_list: Sequence[Any], key_columns: Sequence[str]) -> tuple[str, ...]:
    keys = []
    for entry in index_list[:SAMPLE_SIZE]:
        if isinstance(entry, Mapping) and any(column in entry for column in key_columns):
            keys.append("/".join(str(entry[column]) for column in key_columns if column in entry))
        else:
            keys.append(str(entry))
    return tuple(keys)


def _plain(value: Any) -> Any:
    """A JSON-friendly Python value (numpy scalars, timestamps and NaN made plain)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()  # numpy scalars, including np.float64, which passes for a float
    if isinstance(value, float) and math.isnan(value):
        value = None
    elif isinstance(value, dt.datetime | dt.date):
        value = value.isoformat()
    elif not isinstance(value, bool | str | int | float | None):
        value = str(value)
    return value


def _int_or_none(value: Any) -> int | None:
    plain = _plain(value)
    return int(plain) if isinstance(plain, int | float) and not isinstance(plain, bool) else None


def _float_or_none(value: Any) -> float | None:
    plain = _plain(value)
    return float(plain) if isinstance(plain, int | float) and not isinstance(plain, bool) else None


def _trimmed(result: Any) -> Any:
    """The result without the per-row lists beyond ``PERSISTED_LIST_LIMIT`` entries (and GX's pandas query), cut
    before GX serializes it: serializing every offending row of a large month costs more than validating it."""
    for expectation in result.results:
        details = expectation.result if isinstance(expectation.result, dict) else {}
        details.pop("unexpected_index_query", None)
        for key in ("unexpected_list", "unexpected_index_list"):
            if isinstance(details.get(key), list):
                details[key] = details[key][:PERSISTED_LIST_LIMIT]
    return result


def persist_result(outcome: ValidationOutcome, directory: Path) -> Path:
    """Write the GX result to ``directory/<suite>/<partition>.json`` (the latest per partition, for Data Docs).

    An outcome without a GX result (the suite could not run) removes the previous file, so Data Docs never show
    a stale success for a partition whose latest validation failed to run; the path is still returned.
    """
    path = directory / outcome.suite / f"{outcome.partition}.json"
    if outcome.result_json is None:
        path.unlink(missing_ok=True)
        return path
    write_atomic(path, json.dumps(outcome.result_json, default=str, indent=1))
    return path


def run_suite(
    spec: SuiteSpec,
    frame: pd.DataFrame,
    partition_key: str,
    *,
    great_expectations: GreatExpectationsResource,
    thresholds: Thresholds,
    references: Mapping[str, pd.DataFrame] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
    stored_columns: Sequence[str] | None = None,
) -> ValidationOutcome:
    """Load the spec's suite, fill its parameters, validate ``frame`` and persist the result; never raises.
    ``stored_columns`` as for ``validate_frame``."""
    started = time.perf_counter()
    try:
        full_suite = load_suite(spec.path)
        # Quarantine-marked expectations are enforced row by row in the staging step: not evaluated again here.
        suite = without_quarantine_rules(full_suite)
        in_step = [e["meta"]["name"] for e in full_suite["expectations"] if is_quarantine_rule(e)]
        parameters = suite_parameters(thresholds, partition_key, references)
    except Exception as error:
        outcome = ValidationOutcome(
            suite=spec.name,
            partition=partition_key,
            rows=len(frame),
            error=f"the suite could not be prepared: {error}",
            seconds=time.perf_counter() - started,
        )
    else:
        meta = {"environment": great_expectations.environment, "asset_key": list(spec.asset_key), **(extra_meta or {})}
        outcome = validate_frame(
            great_expectations,
            suite,
            frame,
            parameters,
            partition=partition_key,
            key_columns=spec.key_columns,
            extra_meta=meta,
            stored_columns=stored_columns,
        )
        if in_step:
            note = "enforced in the staging step, offending rows quarantined (quarantine_share): " + ", ".join(in_step)
            outcome = replace(outcome, notes=(*outcome.notes, note))
    outcome = replace(outcome, suite=spec.name)
    try:
        return replace(outcome, result_path=persist_result(outcome, Path(great_expectations.validations_dir)))
    except OSError as error:
        # The check result matters more than the copy kept for Data Docs: report it, do not fail on it.
        return replace(outcome, notes=(*outcome.notes, f"the validation result could not be saved: {error}"))
