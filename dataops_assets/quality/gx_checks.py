"""The Great Expectations to Dagster bridge: one blocking, partitioned asset check per suite file.

``gx_asset_checks()`` gives the checks to add to the Definitions. Each check loads, through the IO manager, the
columns its suite judges of the checked asset's partition (and the key column of each staged reference table its
suite needs), runs the suite with the environment's thresholds (``ThresholdsResource``) and Great Expectations
(``GreatExpectationsResource``), and returns one ``AssetCheckResult`` per partition:

- passed when every expectation passed, or failed only within its accepted exception (``accepted.py``: the
  known gaps of the data, declared in ``expectations/accepted_exceptions.yaml``);
- failed with severity WARN when only ``warning`` expectations failed otherwise (never blocks);
- failed with severity ERROR when a ``critical`` expectation failed, or when the suite could not run at all
  (unreadable file, missing parameter, GX error): the check is blocking, so downstream assets of the same run
  are skipped.

Metadata are flat and numeric where they can be, so the Dagster UI plots them over partitions and runs; beside
them, ``failed_expectations`` is a markdown table of the failed expectations, for a person.
Great Expectations itself is imported only when a check runs (see ``GreatExpectationsResource``).
"""

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from dataops_assets.partitions import MONTHLY
from dataops_assets.quality.accepted import (
    NO_EXCEPTIONS,
    AcceptedException,
    AcceptedExceptions,
    Review,
    load_accepted_exceptions,
    review,
)
from dataops_assets.quality.gx_suites import (
    REFERENCE_VALUE_SETS,
    SUITES,
    SuiteFileError,
    SuiteSpec,
    columns_read,
    load_suite,
    without_quarantine_rules,
)
from dataops_assets.quality.gx_validation import ExpectationOutcome, ValidationOutcome, run_suite
from dataops_assets.quality.projection import Inputs, projected_check
from dataops_assets.resources import GreatExpectationsResource, ThresholdsResource
from dataops_assets.storage import STORED_COLUMNS

CHECK_NAME = "gx_suite"
REFERENCE_LAYER = "staging"
_DESCRIPTION_LINES = 12
_TABLE_SAMPLE_VALUES = 5
_TABLE_CELL_LIMIT = 120


def gx_asset_checks(
    suites: Sequence[SuiteSpec] = SUITES, accepted: AcceptedExceptions | None = None
) -> list[dg.AssetChecksDefinition]:
    """One blocking GX check per suite; ``accepted`` defaults to the reviewed file beside the suites, read (and
    validated, raising ``AcceptedExceptionsError``) here, when the definitions load."""
    exceptions = load_accepted_exceptions() if accepted is None else accepted
    return [gx_asset_check(spec, exceptions) for spec in suites]


def gx_asset_check(spec: SuiteSpec, accepted: AcceptedExceptions = NO_EXCEPTIONS) -> dg.AssetChecksDefinition:
    """A blocking check of ``spec.asset_key`` per monthly partition, running the suite in ``spec.path``.

    It reads only the columns the suite's expectations judge (``columns_read``) and the key column of each reference
    table (``REFERENCE_VALUE_SETS``); the table-shape expectations are judged on the stored table's columns.
    """
    asset_key = dg.AssetKey(list(spec.asset_key))
    references = {table: dg.AssetKey([REFERENCE_LAYER, table]) for table in spec.references}
    suite = _suite_or_error(spec)
    check_spec = dg.AssetCheckSpec(
        CHECK_NAME,
        asset=asset_key,
        additional_deps=list(references.values()),
        blocking=True,
        partitions_def=MONTHLY,
        description=_check_description(spec, suite, accepted.for_suite(spec.name)),
        metadata={"suite_file": dg.MetadataValue.path(str(spec.path))},
    )
    inputs: Inputs = {
        # every column when the suite file cannot be read: the check then reports why
        "data": (asset_key, None if isinstance(suite, SuiteFileError) else columns_read(suite, spec.key_columns)),
        **{table: (key, [REFERENCE_VALUE_SETS[table]]) for table, key in references.items()},
    }

    def _evaluate(
        context: dg.AssetCheckExecutionContext, data: pd.DataFrame, **reference_frames: pd.DataFrame
    ) -> dg.AssetCheckResult:
        great_expectations: GreatExpectationsResource = context.resources.great_expectations
        thresholds: ThresholdsResource = context.resources.thresholds
        try:
            outcome = run_suite(
                spec,
                data,
                context.partition_key,  # one month per run: the assets allow no backfill of a range in one run
                great_expectations=great_expectations,
                thresholds=thresholds.thresholds,
                references=reference_frames,
                extra_meta={"dagster_run_id": context.run.run_id},
                stored_columns=data.attrs.get(STORED_COLUMNS),
            )
            result = check_result(outcome, great_expectations.data_docs_index, accepted)
        except Exception as error:  # a bug of the bridge itself: still a failed result, never a missing one
            context.log.exception("the GX bridge failed")
            reason = f"the GX bridge failed: {type(error).__name__}: {error}"
            where = f"{spec.name} {context.partition_key}" if context.has_partition_key else spec.name
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"suite": dg.MetadataValue.text(spec.name), "error": dg.MetadataValue.text(reason)},
                description=f"{where}: ERROR, {reason}",
            )
        log = context.log.info if result.passed or result.severity == dg.AssetCheckSeverity.WARN else context.log.error
        log(result.description or "")
        return result

    return projected_check(check_spec, inputs, _evaluate, resources=["great_expectations", "thresholds"])


def _suite_or_error(spec: SuiteSpec) -> dict[str, Any] | SuiteFileError:
    """The suite, read once when the definitions load, or why it cannot be read (each run reads it again)."""
    try:
        return load_suite(spec.path)
    except SuiteFileError as error:
        return error


def _check_description(
    spec: SuiteSpec, suite: dict[str, Any] | SuiteFileError, exceptions: dict[str, AcceptedException]
) -> str:
    if isinstance(suite, SuiteFileError):
        return f"Great Expectations suite {spec.name}: {suite}"
    evaluated = without_quarantine_rules(suite)["expectations"]
    severities = [e["severity"] for e in evaluated]
    text = (
        f"Great Expectations suite {spec.name} ({len(severities)} expectations: {severities.count('critical')} "
        f"critical, {severities.count('warning')} warning). A critical failure is an ERROR and blocks downstream "
        "assets; warning-only failures are a WARN. Suite: dataops_assets/expectations/" + spec.path.name
    )
    enforced = len(suite["expectations"]) - len(evaluated)
    if enforced:
        text += (
            f". Its {enforced} row-level expectations marked quarantine are enforced in the staging step instead: "
            "offending rows go to quarantine (see quarantine_share)"
        )
    if exceptions:
        accepted = "; ".join(f"{name}: {entry.accepts} ({entry.id})" for name, entry in sorted(exceptions.items()))
        text += f". Accepted exceptions (expectations/accepted_exceptions.yaml) pass: {accepted}."
    return text


def check_result(
    outcome: ValidationOutcome,
    data_docs_index: Path,
    accepted: AcceptedExceptions = NO_EXCEPTIONS,
    today: dt.date | None = None,
) -> dg.AssetCheckResult:
    """The Dagster result of a validation: passed (nothing failed outside accepted exceptions), WARN (warnings
    only) or ERROR (critical, or could not run)."""
    reviewed = review(outcome, accepted, today)
    status = reviewed.status
    return dg.AssetCheckResult(
        passed=status == "passed",
        severity=dg.AssetCheckSeverity.WARN if status == "warning" else dg.AssetCheckSeverity.ERROR,
        metadata=result_metadata(reviewed, data_docs_index),
        description=describe_review(reviewed),
    )


def result_metadata(reviewed: Review, data_docs_index: Path) -> dict[str, Any]:
    """Flat metadata: counts as ints, shares as floats, and per failed expectation what a person can act on; the
    failed expectations once more as a markdown table. ``*_failed`` count failures outside accepted exceptions;
    ``expectations_accepted`` those within (passed + accepted + failed = evaluated)."""
    outcome = reviewed.outcome
    metadata: dict[str, Any] = {
        "suite": dg.MetadataValue.text(outcome.suite),
        "partition": dg.MetadataValue.text(outcome.partition),
        "status": dg.MetadataValue.text(reviewed.status),
        "rows_validated": dg.MetadataValue.int(outcome.rows),
        "expectations_evaluated": dg.MetadataValue.int(outcome.evaluated),
        "expectations_passed": dg.MetadataValue.int(outcome.passed_count),
        "expectations_failed": dg.MetadataValue.int(len(reviewed.failures)),
        "expectations_accepted": dg.MetadataValue.int(len(reviewed.accepted)),
        "critical_failed": dg.MetadataValue.int(len(reviewed.critical_failures)),
        "warning_failed": dg.MetadataValue.int(len(reviewed.warning_failures)),
        "expectations_errored": dg.MetadataValue.int(len(outcome.errored)),
        "success_percent": dg.MetadataValue.float(round(outcome.success_percent, 4)),
        "validation_seconds": dg.MetadataValue.float(round(outcome.seconds, 3)),
        "gx_setup_seconds": dg.MetadataValue.float(round(outcome.setup_seconds, 3)),
        "gx_already_imported": dg.MetadataValue.bool(outcome.gx_already_imported),
        "data_docs": dg.MetadataValue.path(str(data_docs_index)),
    }
    if outcome.result_path is not None and outcome.result_json is not None:
        metadata["validation_result"] = dg.MetadataValue.path(str(outcome.result_path))
    if outcome.reason is not None:
        metadata["error"] = dg.MetadataValue.text(outcome.reason)
    if outcome.notes:
        metadata["notes"] = dg.MetadataValue.text("; ".join(outcome.notes))
    metadata["failed_expectations"] = dg.MetadataValue.md(failed_expectations_table(reviewed))
    for failure in outcome.failures:
        metadata |= _failure_metadata(failure)
    for name, entry in reviewed.exceptions.items():  # every watched expectation, so the count plots as a series
        metadata[f"{name}.accepted_count"] = dg.MetadataValue.int(reviewed.accepted_count(name))
        metadata[f"{name}.accepted_exception"] = dg.MetadataValue.text(entry.id)
    return metadata


def _failure_metadata(failure: ExpectationOutcome) -> dict[str, Any]:
    prefix = failure.name
    entries: dict[str, Any] = {
        f"{prefix}.severity": dg.MetadataValue.text(failure.severity),
        f"{prefix}.expectation": dg.MetadataValue.text(failure.expectation_type),
    }
    if failure.column is not None:
        entries[f"{prefix}.column"] = dg.MetadataValue.text(failure.column)
    if failure.unexpected_count is not None:
        entries[f"{prefix}.unexpected_count"] = dg.MetadataValue.int(failure.unexpected_count)
    if failure.unexpected_percent is not None:
        entries[f"{prefix}.unexpected_percent"] = dg.MetadataValue.float(round(failure.unexpected_percent, 4))
    if failure.observed_value is not None:
        entries[f"{prefix}.observed_value"] = _observed_metadata(failure.observed_value)
    if failure.offending_values:
        entries[f"{prefix}.offending_values"] = dg.MetadataValue.json(
            [{"value": value, "count": count} for value, count in failure.offending_values]
        )
    if failure.distinct_offending is not None:
        entries[f"{prefix}.distinct_offending_values"] = dg.MetadataValue.int(failure.distinct_offending)
    if failure.offending_keys:
        entries[f"{prefix}.offending_keys"] = dg.MetadataValue.json(list(failure.offending_keys))
    if failure.details is not None:
        entries[f"{prefix}.details"] = dg.MetadataValue.json(failure.details)
    if failure.error is not None:
        entries[f"{prefix}.error"] = dg.MetadataValue.text(failure.error)
    return entries


def _observed_metadata(value: Any) -> dg.MetadataValue:
    if isinstance(value, bool):
        return dg.MetadataValue.bool(bool(value))
    if isinstance(value, int):
        return dg.MetadataValue.int(int(value))
    if isinstance(value, float):
        return dg.MetadataValue.float(float(value))
    if isinstance(value, list | dict):
        return dg.MetadataValue.json(value)
    return dg.MetadataValue.text(str(value))


def describe(
    outcome: ValidationOutcome, accepted: AcceptedExceptions = NO_EXCEPTIONS, today: dt.date | None = None
) -> str:
    """A readable summary of ``outcome`` seen through ``accepted``."""
    return describe_review(review(outcome, accepted, today))


def describe_review(reviewed: Review) -> str:
    """The verdict, one line per failed expectation (worst first), then what accepted exceptions covered."""
    outcome = reviewed.outcome
    head = f"{outcome.suite} {outcome.partition}"
    if outcome.error is not None:
        return f"{head}: ERROR, {outcome.error}"
    verdict = {"passed": "passed", "warning": "WARN", "critical": "ERROR", "error": "ERROR"}[reviewed.status]
    lines = [
        f"{head}: {verdict}, {len(reviewed.failures)} of {outcome.evaluated} expectations failed "
        f"({len(reviewed.critical_failures)} critical, {len(reviewed.warning_failures)} warning) "
        f"on {outcome.rows:,} rows"
        + (f"; {len(reviewed.accepted)} failed only within accepted exceptions." if reviewed.accepted else ".")
    ]
    if outcome.errored:
        lines.append(
            f"{len(outcome.errored)} expectation(s) could not be evaluated: the suite does not fit the data, "
            "which is an ERROR whatever their severity."
        )
    ordered = sorted(reviewed.failures, key=lambda f: (f.error is None, f.severity != "critical"))
    lines += [f"- {_describe_failure(failure, reviewed)}" for failure in ordered[:_DESCRIPTION_LINES]]
    if len(ordered) > _DESCRIPTION_LINES:
        lines.append(f"- and {len(ordered) - _DESCRIPTION_LINES} more (see the metadata)")
    if reviewed.accepted:
        lines.append("Accepted exceptions:")
        lines += [f"- {_describe_failure(failure, reviewed)}" for failure in reviewed.accepted]
    return "\n".join(lines)


def _describe_failure(failure: ExpectationOutcome, reviewed: Review) -> str:
    where = f" on {failure.column}" if failure.column else ""
    text = f"{failure.name} [{failure.severity}]{where}"
    if failure.error is not None:
        return f"{text}: could not be evaluated: {failure.error}"
    text += f": {_finding(failure, sample_values=6)}"
    acceptance = reviewed.acceptances.get(failure.name)
    return text if acceptance is None else f"{text}; {acceptance.verdict}"


def _finding(failure: ExpectationOutcome, sample_values: int) -> str:
    """What the expectation found: unexpected count, share and a sample, or the observed value."""
    if failure.unexpected_count is not None:
        text = f"{failure.unexpected_count:,} unexpected"
        if failure.unexpected_percent is not None:
            text += f" ({failure.unexpected_percent:.2f}%)"
        sample = _sample(failure, sample_values)
        return f"{text}, e.g. {sample}" if sample else text
    if failure.details is not None:
        return str(failure.details)
    if failure.observed_value is not None:
        return f"observed {_short(failure.observed_value)}"
    return "failed"


def _sample(failure: ExpectationOutcome, size: int) -> str:
    if failure.offending_values:
        return ", ".join(f"{value}: {count:,}" for value, count in failure.offending_values[:size])
    return ", ".join(failure.offending_keys[: min(size, 3)])


def failed_expectations_table(reviewed: Review) -> str:
    """The failed expectations as a markdown table (worst first, accepted exceptions last and marked)."""
    outcome = reviewed.outcome
    if outcome.error is not None:
        return f"**The suite could not run:** {_cell(outcome.error, limit=1000)}"
    if not outcome.failures:
        return f"All {outcome.evaluated} expectations passed on {outcome.rows:,} rows."
    accepted = {failure.name for failure in reviewed.accepted}
    ordered = sorted(
        outcome.failures, key=lambda f: (f.name in accepted, f.error is None, f.severity != "critical", f.name)
    )
    lines = [
        "| Expectation | Severity | Column | Unexpected | Share | Sample values | Verdict |",
        "|---|---|---|--:|--:|---|---|",
    ]
    lines += [_table_row(failure, reviewed) for failure in ordered]
    return "\n".join(lines)


def _table_row(failure: ExpectationOutcome, reviewed: Review) -> str:
    count = f"{failure.unexpected_count:,}" if failure.unexpected_count is not None else ""
    share = f"{failure.unexpected_percent:.2f} %" if failure.unexpected_percent is not None else ""
    if failure.error is not None:
        sample = f"could not be evaluated: {failure.error}"
    elif failure.unexpected_count is not None:
        sample = _sample(failure, _TABLE_SAMPLE_VALUES)
    else:
        sample = _finding(failure, _TABLE_SAMPLE_VALUES)
    acceptance = reviewed.acceptances.get(failure.name)
    if acceptance is None:
        verdict = "ERROR" if failure.severity == "critical" or failure.error is not None else "WARN"
    elif acceptance.covered:
        verdict = f"accepted ({acceptance.exception.id})"
    else:
        verdict = acceptance.verdict
    cells = [failure.name, failure.severity, failure.column or "", count, share, sample, verdict]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(text: str, limit: int = _TABLE_CELL_LIMIT) -> str:
    """Text safe inside a markdown table cell: one line, pipes escaped, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "\\|")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
