"""Typing raw text with row-level rules: each row either types cleanly or is set aside with the rule it broke.

Raw tables keep the landed text; staging types it. A row that cannot be typed, lacks its key, lies outside its
partition, disagrees with a redundant column or repeats another row is not dropped: it goes to quarantine with the
rule, a readable detail and its original values, so raw rows = staged rows + quarantined rows for every partition.

Identifiers (carrier, flight number, tail number, airport codes) are never cleaned: their text stays as landed, so a
stray line break or an invisible character is seen by the suite's format rules and quarantined, not hidden.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

NULL_TOKENS = ("", "NA")
LINEAGE_COLUMNS = ("_partition_month", "_source_file", "_source_line")
QUARANTINE_COLUMNS = ("rule", "detail", "raw_values", *LINEAGE_COLUMNS)


class SchemaError(ValueError):
    """The input lacks columns the transform needs; no row of it can be typed."""


@dataclass(frozen=True)
class Staged:
    """The two outputs of a staging transform: typed rows and quarantined rows."""

    valid: pd.DataFrame
    quarantined: pd.DataFrame


class RowRules:
    """Collects row-level rule failures; a row keeps the first rule it broke.

    ``RULES`` are the transforms' own; ``expectation_rules`` are the names of a suite's quarantine-marked
    expectations, evaluated after them (see ``row_expectations``).
    """

    RULES: ClassVar[tuple[str, ...]] = (
        "untypable",
        "null_key",
        "invalid_timestamp",
        "year_month_vs_partition",
        "hour_vs_sched_dep_time",
        "minute_vs_sched_dep_time",
        "time_hour_vs_sched_dep",
        "duplicate_row",
        "duplicate_key",
    )

    def __init__(self, raw: pd.DataFrame, expectation_rules: Iterable[str] = ()) -> None:
        self.raw = raw
        self.rule = pd.Series(pd.NA, index=raw.index, dtype="string")
        self.detail = pd.Series(pd.NA, index=raw.index, dtype="string")
        clashes = set(expectation_rules) & set(self.RULES)
        if clashes:
            raise ValueError(f"expectation name(s) {sorted(clashes)} clash with the built-in rules {self.RULES}")
        self.known = (*self.RULES, *expectation_rules)

    def reject(self, mask: pd.Series, rule: str, detail: pd.Series | str) -> None:
        """Mark rows matching ``mask`` (and not yet marked) as broken by ``rule``.

        ``mask`` and a ``detail`` Series may cover only some rows (e.g. the offending ones): they align on the index.
        """
        if rule not in self.known:
            raise ValueError(f"unknown rule {rule!r}")
        new = mask.reindex(self.rule.index, fill_value=False).fillna(False).astype(bool) & self.rule.isna()
        if not new.any():
            return
        self.rule[new] = rule
        self.detail[new] = detail.reindex(self.rule.index)[new] if isinstance(detail, pd.Series) else detail

    @property
    def passed(self) -> pd.Series:
        return self.rule.isna()

    def quarantined(self, source_columns: list[str]) -> pd.DataFrame:
        """Rejected rows: the rule, a detail, the original values as JSON, and the lineage columns."""
        failed = ~self.passed
        rows = self.raw.loc[failed]
        originals = rows[source_columns].astype(object).replace({np.nan: None})
        frame = pd.DataFrame(
            {
                "rule": self.rule[failed].astype(str),
                "detail": self.detail[failed].astype(str),
                # dtype object even with no rows: an empty list would make it float64 (a DOUBLE column in DuckDB).
                "raw_values": pd.Series(
                    [json.dumps(record) for record in originals.to_dict(orient="records")],
                    index=rows.index,
                    dtype=object,
                ),
            },
            index=rows.index,
        )
        for column in LINEAGE_COLUMNS:
            frame[column] = rows[column]
        return frame.reset_index(drop=True)


def require_columns(raw: pd.DataFrame, required: list[str], what: str) -> None:
    missing = [column for column in required if column not in raw.columns]
    if missing:
        raise SchemaError(f"{what} lacks required column(s) {', '.join(missing)}; found {', '.join(raw.columns)}")


def null_text(values: pd.Series) -> pd.Series:
    """True where the landed text means 'no value'."""
    return values.isna() | values.astype("string").str.strip().isin(NULL_TOKENS)


def to_number(raw: pd.DataFrame, column: str, rules: RowRules, integer: bool = False) -> pd.Series:
    """Parse a text column as float64; text that is not a number (or not whole, for ``integer``) is ``untypable``.

    Final dtypes are set once on the valid rows (``with_schema``), so the staged schema never depends on the data.
    """
    text = raw[column].astype("string").str.strip()
    empty = null_text(raw[column])
    numbers = pd.to_numeric(text.where(~empty), errors="coerce")
    bad = numbers.isna() & ~empty
    if integer:
        fractional = numbers.notna() & (numbers != np.floor(numbers.fillna(0)))
        bad = bad | fractional
    rules.reject(bad, "untypable", column + "=" + text.fillna("").str.slice(0, 40))
    return numbers.where(~bad).astype("float64")


def with_schema(frame: pd.DataFrame, schema: dict[str, str], keep_index: bool = False) -> pd.DataFrame:
    """The columns of ``schema``, in its order, cast to its dtypes (indexed 0..n-1 unless ``keep_index``)."""
    typed = frame[list(schema)].astype(schema)
    return typed if keep_index else typed.reset_index(drop=True)


def to_text(raw: pd.DataFrame, column: str) -> pd.Series:
    text = raw[column].astype("string").str.strip()
    return text.where(~null_text(raw[column]))


def to_identifier(raw: pd.DataFrame, column: str) -> pd.Series:
    """An identifier exactly as landed (no whitespace stripped); only an empty cell or ``NA`` means no value."""
    text = raw[column].astype("string")
    return text.where(~(text.isna() | text.isin(NULL_TOKENS)))


def to_digits(raw: pd.DataFrame, column: str, rules: RowRules) -> pd.Series:
    """A whole number written only in ASCII digits, as float64 (for identifiers such as flight numbers).

    ``to_number`` would accept ``" 12\n"``, ``+12``, ``1e3`` or ``12.0``: an identifier is not cleaned, such text is
    ``untypable``.
    """
    text = raw[column].astype("string")
    empty = text.isna() | text.isin(NULL_TOKENS)
    digits = text.str.fullmatch(r"[0-9]+").fillna(False).astype(bool)
    bad = ~empty & ~digits
    shown = text[bad].map(lambda value: repr(value)[:40]).astype("string")
    rules.reject(bad, "untypable", column + "=" + shown + " is not written in digits only")
    return pd.to_numeric(text.where(digits), errors="coerce").astype("float64")


def parse_utc(text: pd.Series) -> pd.Series:
    """ISO-8601 UTC text (``2013-01-01T06:00:00Z``) to naive UTC timestamps; NaT where it does not parse."""
    parsed = pd.to_datetime(text, format="%Y-%m-%dT%H:%M:%SZ", utc=True, errors="coerce")
    return parsed.dt.tz_localize(None)


def reject_null_keys(frame: pd.DataFrame, key: list[str], rules: RowRules) -> None:
    for column in key:
        rules.reject(frame[column].isna(), "null_key", f"{column} is empty")


def reject_outside_month(timestamps: pd.Series, month_start: pd.Timestamp, rules: RowRules, what: str) -> None:
    """Rows whose timestamp cannot be built, or falls outside the partition's month.

    The timestamp is built from the row's ``year``, ``month`` and ``day`` (and clock): outside the month means the
    year or month columns disagree with the file's month, hence the rule's name.
    """
    rules.reject(timestamps.isna(), "invalid_timestamp", f"{what} is not a valid date and time")
    month_end = month_start + pd.offsets.MonthBegin(1)
    outside = (timestamps < month_start) | (timestamps >= month_end)
    detail = what + " " + timestamps[outside].astype(str) + f" is not in {month_start:%Y-%m}"
    rules.reject(outside, "year_month_vs_partition", detail)


def reject_duplicates(raw: pd.DataFrame, source_columns: list[str], key: pd.Series, rules: RowRules) -> None:
    """Exact repeats of a row, then other rows reusing a key; the first occurrence stays."""
    rules.reject(raw.duplicated(subset=source_columns), "duplicate_row", "exact repeat of an earlier row")
    clean_key = key.where(rules.passed)
    reused = clean_key.notna() & clean_key.duplicated()
    rules.reject(reused, "duplicate_key", "key " + key.astype(str) + " already used by an earlier row")


def local_to_utc(local: pd.Series, tz: str = "America/New_York") -> pd.Series:
    """Naive local times to naive UTC; the DST gap shifts forward, the repeated hour takes daylight time."""
    aware = local.dt.tz_localize(tz, ambiguous=np.ones(len(local), dtype=bool), nonexistent="shift_forward")
    return aware.dt.tz_convert("UTC").dt.tz_localize(None)
