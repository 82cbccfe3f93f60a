"""The gate a reference table (airports, airlines, planes) passes before it replaces the published one.

Three blocking checks, evaluated inside the staging step before anything is written (a blocking check that runs
after the write would leave the bad table published, and every month reads it):

- ``reference_schema``: the landed file has the table's columns and its number columns hold numbers, so the
  staged table has the expected columns and types;
- ``reference_keys``: the key is never empty and never repeats;
- ``reference_row_count``: the table does not shrink by more than ``Thresholds.max_reference_shrink`` of the rows
  published now (half a ``planes.csv`` would turn half the tail numbers into misses).

``evaluate_gate`` gives the three results, and the staged table only when all three pass.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from dataops_assets.quality.history import recorded_count
from dataops_assets.transforms.reference import REFERENCE_SPECS, ReferenceSpec, stage_reference
from dataops_assets.transforms.typing import NULL_TOKENS

SCHEMA_CHECK = "reference_schema"
KEYS_CHECK = "reference_keys"
ROW_COUNT_CHECK = "reference_row_count"
# The row count readers see now: the I/O manager's count of the stored table, else the asset's own.
ROW_COUNT_KEYS = ("dagster/row_count", "rows_out")
_SHOWN = 5


def gate_check_specs(table: str, asset_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The three blocking checks of one staged reference table."""
    key = REFERENCE_SPECS[table].key
    descriptions = {
        SCHEMA_CHECK: f"The landed {table} file has the table's columns and numbers where numbers belong.",
        KEYS_CHECK: f"Every {table} row has a {key}, and no {key} repeats.",
        ROW_COUNT_CHECK: f"{table} keeps at least 1 - Thresholds.max_reference_shrink of its published rows.",
    }
    after = " Checked before the table is written: on failure the published table stays as it was."
    return [
        dg.AssetCheckSpec(name, asset=asset_key, blocking=True, description=text + after)
        for name, text in descriptions.items()
    ]


def expected_schema(spec: ReferenceSpec) -> dict[str, str]:
    """Column → dtype of the staged table, in its order."""
    renames = dict(spec.renames)
    texts = dict.fromkeys([spec.key, *spec.texts], "object")
    return {**texts, **{renames.get(column, column): "float64" for column in spec.numbers}}


def schema_problems(table: str, raw: pd.DataFrame) -> list[str]:
    """Missing source columns, and number columns holding other text (with their lines)."""
    spec = REFERENCE_SPECS[table]
    missing = [column for column in spec.source_columns if column not in raw.columns]
    problems = [f"missing column(s) {', '.join(missing)}"] if missing else []
    for column in (c for c in spec.numbers if c in raw.columns):
        text = raw[column].astype("string").str.strip()
        filled = text.notna() & ~text.isin(NULL_TOKENS)
        bad = filled & pd.to_numeric(text.where(filled), errors="coerce").isna()
        if bad.any():
            shown = ", ".join(f"line {_line(raw, i)}: {text[i]!r}" for i in bad[bad].index[:_SHOWN])
            problems.append(f"{int(bad.sum())} non-numeric value(s) in {column} ({shown})")
    return problems


def staged_schema_problems(table: str, staged: pd.DataFrame) -> list[str]:
    """The staged frame's columns and types against the table's."""
    expected = expected_schema(REFERENCE_SPECS[table])
    actual = {str(column): str(dtype) for column, dtype in staged.dtypes.items()}
    return [] if actual == expected else [f"staged columns and types {actual} differ from {expected}"]


def key_problems(table: str, raw: pd.DataFrame) -> tuple[list[str], dict[str, int]]:
    """Empty and repeated keys, read as staging reads them (trimmed, NA tokens empty), and their counts."""
    key = REFERENCE_SPECS[table].key
    if key not in raw.columns:
        return [f"no {key} column"], {"null_keys": 0, "duplicate_keys": 0}
    values = raw[key].astype("string").str.strip()
    empty = values.isna() | values.isin(NULL_TOKENS)
    repeats = values[~empty & values.duplicated(keep=False)].value_counts()
    problems = []
    if empty.any():
        lines = ", ".join(str(_line(raw, i)) for i in empty[empty].index[:_SHOWN])
        problems.append(f"{int(empty.sum())} row(s) without a {key} (line(s) {lines})")
    if not repeats.empty:
        shown = ", ".join(f"{value} ({count} rows)" for value, count in repeats.head(_SHOWN).items())
        problems.append(f"{len(repeats)} {key} value(s) repeat: {shown}")
    return problems, {"null_keys": int(empty.sum()), "duplicate_keys": int((repeats - 1).sum())}


def _line(raw: pd.DataFrame, index: Any) -> Any:
    """The landed file's line of a row (the raw layer records it), else the row's label."""
    return raw.at[index, "_source_line"] if "_source_line" in raw.columns else index


def shrink_problem(rows: int, published: int | None, max_shrink: float) -> str | None:
    """Why ``rows`` are too few against the published count, or None (also before the first publication)."""
    if not published:
        return None
    least = math.ceil(published * (1 - max_shrink))
    if rows >= least:
        return None
    return (
        f"{rows} rows, {1 - rows / published:.1%} fewer than the {published} published; at most "
        f"{max_shrink:.0%} fewer are allowed (at least {least} rows)"
    )


@dataclass(frozen=True)
class GateOutcome:
    """The three check results of one landed reference file, and the staged table when they all passed."""

    results: list[dg.AssetCheckResult]
    staged: pd.DataFrame | None
    message: str


def evaluate_gate(
    table: str, raw: pd.DataFrame, source: Path, published_rows: int | None, max_shrink: float
) -> GateOutcome:
    """The checks on the landed rows; they are staged only when keys and schema pass (staging would raise)."""
    keys, key_counts = key_problems(table, raw)
    schema = schema_problems(table, raw)
    staged = stage_reference(table, raw) if not keys and not schema else None
    if staged is not None:
        schema = staged_schema_problems(table, staged)
    shrink = [problem] if (problem := shrink_problem(len(raw), published_rows, max_shrink)) else []
    source_file = dg.MetadataValue.path(str(source))
    key = REFERENCE_SPECS[table].key
    before = "nothing published yet" if published_rows is None else f"{published_rows} published"
    results = [
        _result(SCHEMA_CHECK, schema, "columns and types as expected", {"source_file": source_file}),
        _result(
            KEYS_CHECK,
            keys,
            f"{len(raw)} {key} values, none empty, none repeated",
            {"source_file": source_file, "rows": len(raw), **key_counts},
        ),
        _result(
            ROW_COUNT_CHECK,
            shrink,
            f"{len(raw)} rows, {before}",
            {
                "source_file": source_file,
                "rows": len(raw),
                "published_rows": published_rows if published_rows is not None else -1,  # -1: none yet
                "max_shrink": max_shrink,
            },
        ),
    ]
    problems = [*schema, *keys, *shrink]
    if problems or staged is None:
        reasons = "; ".join(problems)
        message = f"reference file {source}: staging.{table} is not replaced and stays as published: {reasons}"
        return GateOutcome(results, None, message)
    return GateOutcome(results, staged, f"reference file {source}: {len(raw)} rows passed the gate")


def _result(name: str, problems: list[str], passed: str, metadata: dict[str, Any]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description="; ".join(problems) if problems else passed,
    )


def published_rows(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> int | None:
    """Rows of the table as last materialized (what readers see now), or None before the first."""
    event = instance.get_latest_materialization_event(asset_key)
    return recorded_count(event.asset_materialization if event else None, ROW_COUNT_KEYS)
