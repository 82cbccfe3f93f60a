"""Row-level expectations of a suite, evaluated in pandas so that their offending rows can be quarantined.

A suite expectation marked ``"meta": {"quarantine": true}`` judges single rows (a domain, a range, a format, a
required value). The staging step evaluates it here, vectorized, on the typed rows before staging is written, and
moves its offending rows to quarantine with the expectation's ``meta.name`` as the rule. The semantics are Great
Expectations' own for pandas (a test runs both on the same frame):

- nulls are ignored, except by ``not_be_null`` and ``be_null``, which judge them;
- ``between`` is inclusive unless ``strict_min`` / ``strict_max``; a string bound on a datetime column is parsed;
- ``match_regex`` is ``str(value)`` searched with ``re.search`` (anchor the pattern; ``$`` also matches before a
  trailing line break, ``\\Z`` does not);
- a structured ``row_condition`` limits the rows judged, as GX's ``DataFrame.query`` does.

Great Expectations itself is not imported: it costs seconds per step.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from dataops_assets.transforms.typing import RowRules

PREFIX = "expect_column_values_to_"
# The expectation types a suite may mark to quarantine: each judges one value of one row.
QUARANTINE_TYPES = tuple(
    PREFIX + kind
    for kind in ("be_in_set", "not_be_in_set", "be_between", "match_regex", "not_match_regex", "not_be_null", "be_null")
)
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_DETAIL_LENGTH = 60


class RowExpectationError(ValueError):
    """A quarantine-marked expectation cannot be evaluated (unknown type, missing parameter or column)."""


def parameter_names(value: Any) -> set[str]:
    """The ``$PARAMETER`` names a kwargs value refers to."""
    if isinstance(value, Mapping):
        if set(value) == {"$PARAMETER"}:
            return {str(value["$PARAMETER"])}
        return set().union(*(parameter_names(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(parameter_names(item) for item in value))
    return set()


@dataclass(frozen=True)
class RowExpectation:
    """One quarantine-marked expectation of a suite: its rule name, GX type and kwargs (``$PARAMETER`` filled)."""

    name: str
    type: str
    kwargs: Mapping[str, Any]
    # Offending values declared as known gaps (accepted exceptions): such rows stay staged and are counted.
    accepted: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, expectation: Mapping[str, Any], parameters: Mapping[str, Any]) -> RowExpectation:
        name = str((expectation.get("meta") or {}).get("name"))
        kind = str(expectation.get("type"))
        if kind not in QUARANTINE_TYPES:
            raise RowExpectationError(f"{name}: {kind} does not judge single rows and cannot quarantine them")
        return cls(name, kind, {key: _filled(name, value, parameters) for key, value in expectation["kwargs"].items()})

    @property
    def column(self) -> str:
        return str(self.kwargs["column"])

    def offending(self, frame: pd.DataFrame) -> pd.Series:
        """True for each row of ``frame`` that breaks the expectation with a value that is not accepted."""
        return self.breaking(frame) & ~self.is_accepted(frame[self.column])

    def breaking(self, frame: pd.DataFrame) -> pd.Series:
        """True for each row of ``frame`` that breaks the expectation, accepted values included."""
        if self.column not in frame.columns:
            raise RowExpectationError(f"{self.name}: the staged rows have no column {self.column!r}")
        values = frame[self.column]
        kind = self.type.removeprefix(PREFIX)
        if kind == "not_be_null":
            broken = values.isna()
        elif kind == "be_null":
            broken = values.notna()
        else:
            broken = values.notna() & ~self._expected(kind, values)
        condition = self.kwargs.get("row_condition")
        if condition:
            broken &= condition_mask(frame, condition)
        return broken.astype(bool)

    def is_accepted(self, values: pd.Series) -> pd.Series:
        """True where the value is one of the accepted offending values."""
        if not self.accepted:
            return pd.Series(False, index=values.index)
        return values.notna() & values.astype(str).isin(self.accepted)

    def _expected(self, kind: str, values: pd.Series) -> pd.Series:
        if kind in ("be_in_set", "not_be_in_set"):
            inside = values.isin(list(self.kwargs["value_set"]))
            return inside if kind == "be_in_set" else ~inside
        if kind in ("match_regex", "not_match_regex"):
            found = values.astype(str).str.contains(str(self.kwargs["regex"]), regex=True)
            return found if kind == "match_regex" else ~found
        return self._between(values)

    def _between(self, values: pd.Series) -> pd.Series:
        low, high = (_bound(self.kwargs.get(key), values) for key in ("min_value", "max_value"))
        if low is None and high is None:
            raise RowExpectationError(f"{self.name}: min_value and max_value cannot both be None")
        inside = pd.Series(True, index=values.index)
        if low is not None:
            inside &= values > low if self.kwargs.get("strict_min") else values >= low
        if high is not None:
            inside &= values < high if self.kwargs.get("strict_max") else values <= high
        return inside

    def details(self, frame: pd.DataFrame, offending: pd.Series) -> pd.Series:
        """What a person reads in quarantine: the expectation, the column and the offending value as written."""
        values = frame.loc[offending, self.column]
        shown = values.map(lambda value: repr(value)[:_DETAIL_LENGTH])
        return f"{self.name}: {self.column}=" + shown.astype(str)


def _filled(name: str, value: Any, parameters: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping) and set(value) == {"$PARAMETER"}:
        key = str(value["$PARAMETER"])
        if key not in parameters:
            raise RowExpectationError(f"{name}: the suite parameter {key!r} has no value")
        return parameters[key]
    return value


def _bound(value: Any, values: pd.Series) -> Any:
    # GX parses a string bound when the column holds timestamps.
    if isinstance(value, str) and pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pd.Timestamp(value)
    return value


def condition_mask(frame: pd.DataFrame, condition: Mapping[str, Any]) -> pd.Series:
    """Rows a GX structured ``row_condition`` keeps (comparison, nullity, and, or)."""
    kind = condition.get("type")
    if kind in ("and", "or"):
        masks = [condition_mask(frame, part) for part in condition["conditions"]]
        combine = operator.and_ if kind == "and" else operator.or_
        result = masks[0]
        for mask in masks[1:]:
            result = combine(result, mask)
        return result
    column = frame[condition["column"]["name"]]
    if kind == "nullity":
        return column.isna() if condition.get("is_null", True) else column.notna()
    if kind == "comparison":
        op, parameter = str(condition["operator"]), condition["parameter"]
        if op in ("IN", "NOT_IN"):
            inside = column.isin(list(parameter))
            return inside if op == "IN" else ~inside
        return _COMPARISONS[op](column, parameter).fillna(op == "!=").astype(bool)
    raise RowExpectationError(f"row_condition of type {kind!r} is not supported")


@dataclass(frozen=True)
class RowExpectations:
    """The quarantine-marked expectations of one suite, ready to judge one partition's typed rows."""

    expectations: tuple[RowExpectation, ...] = ()

    @classmethod
    def from_suite(cls, configs: Iterable[Mapping[str, Any]], parameters: Mapping[str, Any]) -> RowExpectations:
        return cls(tuple(RowExpectation.from_config(config, parameters) for config in configs))

    @property
    def names(self) -> Sequence[str]:
        return tuple(expectation.name for expectation in self.expectations)

    def with_accepted(self, accepted: Mapping[str, frozenset[str]]) -> RowExpectations:
        """The same expectations, each keeping rows whose value is among its accepted values (by rule name)."""
        return RowExpectations(tuple(replace(e, accepted=accepted.get(e.name, frozenset())) for e in self.expectations))

    def accepted_counts(self, frame: pd.DataFrame) -> dict[str, int]:
        """Rows of ``frame`` kept only because their value is an accepted exception, by rule name."""
        counts = {
            e.name: int((e.breaking(frame) & e.is_accepted(frame[e.column])).sum())
            for e in self.expectations
            if e.accepted
        }
        return {name: count for name, count in counts.items() if count}

    def reject_offending(self, frame: pd.DataFrame, rules: RowRules) -> None:
        """Mark each row of ``frame`` (indexed like the raw rows) that breaks an expectation, in suite order."""
        for expectation in self.expectations:
            offending = expectation.offending(frame) & rules.passed.reindex(frame.index, fill_value=False)
            if offending.any():
                rules.reject(offending, expectation.name, expectation.details(frame, offending))


NO_EXPECTATIONS = RowExpectations()
