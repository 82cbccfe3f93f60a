"""The Great Expectations to Dagster bridge: one blocking, partitioned asset check per suite file.

``gx_asset_checks()`` gives the checks to add to the Definitions. Each check loads the checked asset's partition
(and the staged reference tables its suite needs) through the IO manager, runs the suite with the environment's
thresholds (``ThresholdsResource``) and Great Expectations (``GreatExpectationsResource``), and returns one
``AssetCheckResult`` per partition:

- passed when every expectation passed;
- failed with severity WARN when only ``warning`` expectations failed (never blocks);
- failed with severity ERROR when a ``critical`` expectation failed, or when the suite could not run at all
  (unreadable file, missing parameter, GX error): the check is blocking, so downstream assets of the same run
  are skipped.

Metadata are flat and numeric where they can be, so the Dagster UI plots them over partitions and runs.
Great Expectations itself is imported only when a check runs (see ``GreatExpectationsResource``).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from dataops_assets.partitions import MONTHLY
from dataops_assets.quality.gx_suites import SUITES, SuiteFileError, SuiteSpec, load_suite
from dataops_assets.quality.gx_validation import ExpectationOutcome, ValidationOutcome, run_suite
from dataops_assets.resources import GreatExpectationsResource, ThresholdsResource

CHECK_NAME = "gx_suite"
REFERENCE_LAYER = "staging"
_DESCRIPTION_LINES = 12


def gx_asset_checks(suites: Sequence[SuiteSpec] = SUITES) -> list[dg.AssetChecksDefinition]:
    """One blocking GX check per suite."""
    return [gx_asset_check(spec) for spec in suites]


def gx_asset_check(spec: SuiteSpec) -> dg.AssetChecksDefinition:
    """A blocking check of ``spec.asset_key`` per monthly partition, running the suite in ``spec.path``.

    A multi-asset check of one spec, because ``@asset_check`` wants a parameter per reference table while the
    tables differ per suite; ``@multi_asset_check`` passes inputs without a parameter of their own as keywords.
    """
    asset_key = dg.AssetKey(list(spec.asset_key))
    reference_keys = {table: dg.AssetKey([REFERENCE_LAYER, table]) for table in spec.references}

    @dg.multi_asset_check(
        name=f"{asset_key.to_python_identifier()}_{CHECK_NAME}",
        specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=asset_key,
                additional_deps=list(reference_keys.values()),
                blocking=True,
                partitions_def=MONTHLY,
                description=_check_description(spec),
                metadata={"suite_file": dg.MetadataValue.path(str(spec.path))},
            )
        ],
        ins={"data": asset_key, **reference_keys},
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        data: pd.DataFrame,
        thresholds: ThresholdsResource,
        great_expectations: GreatExpectationsResource,
        **references: pd.DataFrame,
    ) -> dg.AssetCheckResult:
        try:
            outcome = run_suite(
                spec,
                data,
                context.partition_key,  # one month per run: the assets allow no backfill of a range in one run
                great_expectations=great_expectations,
                thresholds=thresholds.thresholds,
                references=references,
                extra_meta={"dagster_run_id": context.run.run_id},
            )
            result = check_result(outcome, great_expectations.data_docs_index)
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
        log = context.log.info if outcome.status in ("passed", "warning") else context.log.error
        log(result.description or "")
        return result

    return _check


def _check_description(spec: SuiteSpec) -> str:
    try:
        suite = load_suite(spec.path)
    except SuiteFileError as error:
        return f"Great Expectations suite {spec.name}: {error}"
    severities = [e["severity"] for e in suite["expectations"]]
    return (
        f"Great Expectations suite {spec.name} ({len(severities)} expectations: {severities.count('critical')} "
        f"critical, {severities.count('warning')} warning). A critical failure is an ERROR and blocks downstream "
        "assets; warning-only failures are a WARN. Suite: dataops_assets/expectations/" + spec.path.name
    )


def check_result(outcome: ValidationOutcome, data_docs_index: Path) -> dg.AssetCheckResult:
    """The Dagster result of a validation: passed, WARN (warnings only) or ERROR (critical, or could not run)."""
    status = outcome.status
    return dg.AssetCheckResult(
        passed=status == "passed",
        severity=dg.AssetCheckSeverity.WARN if status == "warning" else dg.AssetCheckSeverity.ERROR,
        metadata=result_metadata(outcome, data_docs_index),
        description=describe(outcome),
    )


def result_metadata(outcome: ValidationOutcome, data_docs_index: Path) -> dict[str, Any]:
    """Flat metadata: counts as ints, shares as floats, and per failed expectation what a person can act on."""
    metadata: dict[str, Any] = {
        "suite": dg.MetadataValue.text(outcome.suite),
        "partition": dg.MetadataValue.text(outcome.partition),
        "status": dg.MetadataValue.text(outcome.status),
        "rows_validated": dg.MetadataValue.int(outcome.rows),
        "expectations_evaluated": dg.MetadataValue.int(outcome.evaluated),
        "expectations_passed": dg.MetadataValue.int(outcome.passed_count),
        "expectations_failed": dg.MetadataValue.int(len(outcome.failures)),
        "critical_failed": dg.MetadataValue.int(len(outcome.critical_failures)),
        "warning_failed": dg.MetadataValue.int(len(outcome.warning_failures)),
        "expectations_errored": dg.MetadataValue.int(len(outcome.errored)),
        "success_percent": dg.MetadataValue.float(round(outcome.success_percent, 4)),
        "validation_seconds": dg.MetadataValue.float(round(outcome.seconds, 3)),
        "gx_setup_seconds": dg.MetadataValue.float(round(outcome.setup_seconds, 3)),
        "data_docs": dg.MetadataValue.path(str(data_docs_index)),
    }
    if outcome.result_path is not None and outcome.result_json is not None:
        metadata["validation_result"] = dg.MetadataValue.path(str(outcome.result_path))
    if outcome.reason is not None:
        metadata["error"] = dg.MetadataValue.text(outcome.reason)
    if outcome.notes:
        metadata["notes"] = dg.MetadataValue.text("; ".join(outcome.notes))
    for failure in outcome.failures:
        metadata |= _failure_metadata(failure)
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


def describe(outcome: ValidationOutcome) -> str:
    """A readable summary: the verdict, then one line per failed expectation, worst first."""
    head = f"{outcome.suite} {outcome.partition}"
    if outcome.error is not None:
        return f"{head}: ERROR, {outcome.error}"
    verdict = {"passed": "passed", "warning": "WARN", "critical": "ERROR", "error": "ERROR"}[outcome.status]
    lines = [
        f"{head}: {verdict}, {len(outcome.failures)} of {outcome.evaluated} expectations failed "
        f"({len(outcome.critical_failures)} critical, {len(outcome.warning_failures)} warning) "
        f"on {outcome.rows:,} rows."
    ]
    if outcome.errored:
        lines.append(
            f"{len(outcome.errored)} expectation(s) could not be evaluated: the suite does not fit the data, "
            "which is an ERROR whatever their severity."
        )
    ordered = sorted(outcome.failures, key=lambda f: (f.error is None, f.severity != "critical"))
    lines += [f"- {_describe_failure(failure)}" for failure in ordered[:_DESCRIPTION_LINES]]
    if len(ordered) > _DESCRIPTION_LINES:
        lines.append(f"- and {len(ordered) - _DESCRIPTION_LINES} more (see the metadata)")
    return "\n".join(lines)


def _describe_failure(failure: ExpectationOutcome) -> str:
    where = f" on {failure.column}" if failure.column else ""
    text = f"{failure.name} [{failure.severity}]{where}"
    if failure.error is not None:
        return f"{text}: could not be evaluated: {failure.error}"
    if failure.unexpected_count is not None:
        text += f": {failure.unexpected_count:,} unexpected"
        if failure.unexpected_percent is not None:
            text += f" ({failure.unexpected_percent:.2f}%)"
        if failure.offending_values:
            text += ", e.g. " + ", ".join(f"{value}: {count:,}" for value, count in failure.offending_values[:6])
        elif failure.offending_keys:
            text += ", e.g. " + ", ".join(failure.offending_keys[:3])
    elif failure.details is not None:
        text += f": {failure.details}"
    elif failure.observed_value is not None:
        text += f": observed {_short(failure.observed_value)}"
    return text


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
