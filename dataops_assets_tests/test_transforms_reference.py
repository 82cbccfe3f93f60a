"""Staging of the reference tables (``stage_reference``): typed columns, a unique key, errors that stop the run."""

from __future__ import annotations

import pandas as pd
import pytest

from dataops_assets.transforms.reference import REFERENCE_SPECS, ReferenceDataError, stage_reference
from dataops_assets.transforms.typing import SchemaError

AIRPORT_COLUMNS = list(REFERENCE_SPECS["airports"].source_columns)
PLANE_COLUMNS = list(REFERENCE_SPECS["planes"].source_columns)


def _text(rows: list[list[str]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns, dtype=str)


def _airports(*rows: list[str]) -> pd.DataFrame:
    return _text(list(rows), AIRPORT_COLUMNS)


EWR = ["EWR", "Newark Liberty Intl", "40.6925", "-74.168667", "18", "-5", "A", "America/New_York"]
IAH = ["IAH", "George Bush Intercontinental", "29.984433", "-95.341442", "97", "-6", "A", "America/Chicago"]


def test_airports_are_typed() -> None:
    staged = stage_reference("airports", _airports(EWR, IAH))
    assert staged.dtypes.astype(str).to_dict() == {
        "faa": "object",
        "name": "object",
        "dst": "object",
        "tzone": "object",
        "lat": "float64",
        "lon": "float64",
        "alt": "float64",
        "tz": "float64",
    }
    assert staged["faa"].tolist() == ["EWR", "IAH"]
    assert staged["lat"].tolist() == [40.6925, 29.984433]
    assert staged["tz"].tolist() == [-5.0, -6.0]
    assert staged["tzone"].tolist() == ["America/New_York", "America/Chicago"]


def test_texts_are_stripped_and_na_becomes_null() -> None:
    row = [" LGA ", "La Guardia", " 40.777245 ", "-73.872608", "22", "-5", "", "NA"]
    staged = stage_reference("airports", _airports(row))
    assert staged.loc[0, "faa"] == "LGA"
    assert staged.loc[0, "lat"] == 40.777245
    assert pd.isna(staged.loc[0, "dst"])
    assert pd.isna(staged.loc[0, "tzone"])


def test_planes_rename_year_to_year_built_and_keep_missing_numbers_null() -> None:
    row = ["N14228", "1999", "Fixed wing multi engine", "BOEING", "737-824", "2", "149", "NA", "Turbo-fan"]
    staged = stage_reference("planes", _text([row], PLANE_COLUMNS))
    assert "year" not in staged.columns
    assert staged.loc[0, "year_built"] == 1999.0
    assert staged.loc[0, "seats"] == 149.0
    assert staged["speed"].isna().all()
    assert staged.loc[0, "manufacturer"] == "BOEING"


def test_airlines() -> None:
    staged = stage_reference("airlines", _text([["UA", "United Air Lines Inc."]], ["carrier", "name"]))
    assert staged.to_dict("records") == [{"carrier": "UA", "name": "United Air Lines Inc."}]


def test_repeated_key_raises_naming_it() -> None:
    with pytest.raises(ReferenceDataError, match="airports: key faa repeats for EWR"):
        stage_reference("airports", _airports(EWR, IAH, EWR))


@pytest.mark.parametrize("empty", ["", "NA", " "])
def test_empty_key_raises(empty: str) -> None:
    with pytest.raises(ReferenceDataError, match="airlines: 1 row\\(s\\) have an empty carrier"):
        stage_reference("airlines", _text([["UA", "United"], [empty, "Nobody"]], ["carrier", "name"]))


def test_non_numeric_value_raises_naming_column_value_and_row() -> None:
    broken = [*EWR[:2], "north", *EWR[3:]]
    with pytest.raises(ReferenceDataError, match="airports: column lat has non-numeric value 'north' at row 1"):
        stage_reference("airports", _airports(IAH, broken))


def test_missing_column_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match=r"planes file lacks required column.*seats"):
        stage_reference("planes", _text([["N1", "1999"]], ["tailnum", "year"]))


def test_reference_data_error_is_a_value_error() -> None:
    assert issubclass(ReferenceDataError, ValueError)
