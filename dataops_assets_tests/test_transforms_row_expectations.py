"""The row-wise evaluator of quarantine-marked expectations, on hand-made frames (GX agreement is proven in
``test_quality_row_expectations``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from dataops_assets.transforms.row_expectations import RowExpectation, RowExpectationError, RowExpectations
from dataops_assets.transforms.typing import RowRules


def rule(kind: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": f"expect_column_values_to_{kind}", "kwargs": kwargs, "meta": {"name": f"x_{kind}"}}


def offending(config: dict[str, Any], frame: pd.DataFrame, **parameters: Any) -> list[bool]:
    return RowExpectation.from_config(config, parameters).offending(frame).tolist()


def test_a_dollar_anchor_would_accept_a_trailing_line_break_the_z_anchor_does_not() -> None:
    frame = pd.DataFrame({"x": ["N123", "N123\n", None]})
    assert offending(rule("match_regex", column="x", regex=r"^N[0-9]+$"), frame) == [False, False, False]
    assert offending(rule("match_regex", column="x", regex=r"^N[0-9]+\Z"), frame) == [False, True, False]


def test_nulls_are_ignored_except_by_the_null_rules() -> None:
    frame = pd.DataFrame({"x": [1.0, None, 7.0]})
    assert offending(rule("be_between", column="x", min_value=0, max_value=5), frame) == [False, False, True]
    assert offending(rule("be_in_set", column="x", value_set=[1.0]), frame) == [False, False, True]
    assert offending(rule("not_be_null", column="x"), frame) == [False, True, False]


def test_strict_bounds_and_parameters() -> None:
    frame = pd.DataFrame({"x": [0, 5, 10]})
    config = rule("be_between", column="x", min_value={"$PARAMETER": "low"}, max_value=10, strict_max=True)
    assert offending(config, frame, low=5) == [True, False, True]


def test_a_row_condition_limits_the_rows_judged() -> None:
    frame = pd.DataFrame({"x": [None, None, 3.0], "cancelled": [True, False, False]})
    condition = {"type": "comparison", "column": {"name": "cancelled"}, "operator": "==", "parameter": False}
    assert offending(rule("not_be_null", column="x", row_condition=condition), frame) == [False, True, False]


def test_a_missing_parameter_or_column_or_an_unknown_type_is_a_clear_error() -> None:
    with pytest.raises(RowExpectationError, match="x_be_between: the suite parameter 'low' has no value"):
        RowExpectation.from_config(rule("be_between", column="x", min_value={"$PARAMETER": "low"}), {})
    with pytest.raises(RowExpectationError, match="does not judge single rows"):
        RowExpectation.from_config({**rule("be_unique", column="x")}, {})
    with pytest.raises(RowExpectationError, match="no column 'y'"):
        RowExpectation.from_config(rule("not_be_null", column="y"), {}).offending(pd.DataFrame({"x": [1]}))


def test_offending_rows_are_rejected_under_the_expectation_name_with_column_and_value() -> None:
    raw = pd.DataFrame({"x": ["a", "b\u200b", "c"]}, index=[10, 11, 12])
    expectations = RowExpectations.from_suite([rule("match_regex", column="x", regex=r"^[a-z]\Z")], {})
    rules = RowRules(raw, expectations.names)
    rules.reject(raw["x"] == "c", "untypable", "first rule wins")
    expectations.reject_offending(raw, rules)
    assert rules.rule.fillna("passed").tolist() == ["passed", "x_match_regex", "untypable"]
    assert rules.detail[11] == "x_match_regex: x='b\\u200b'"


def test_an_expectation_may_not_take_a_built_in_rule_name() -> None:
    with pytest.raises(ValueError, match="clash with the built-in rules"):
        RowRules(pd.DataFrame({"x": [1]}), ["duplicate_key"])


def test_an_accepted_value_stays_staged_and_is_counted_while_other_offenders_are_quarantined() -> None:
    raw = pd.DataFrame({"tailnum": ["N14228", "D942DN", "N1\n", "D942DN"]})
    shape = {**rule("match_regex", column="tailnum", regex=r"^N[A-Z0-9]{1,5}\Z"), "meta": {"name": "tailnum_shape"}}
    strict = RowExpectations.from_suite([shape], {})
    accepting = strict.with_accepted({"tailnum_shape": frozenset({"D942DN"}), "not_a_rule": frozenset({"x"})})
    assert strict.expectations[0].offending(raw).tolist() == [False, True, True, True]
    assert accepting.expectations[0].offending(raw).tolist() == [False, False, True, False]
    assert accepting.accepted_counts(raw) == {"tailnum_shape": 2}
    assert strict.accepted_counts(raw) == {}
