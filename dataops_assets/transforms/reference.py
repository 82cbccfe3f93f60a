"""Staging of the reference tables: airports, airlines, planes.

They are small and change rarely; a broken reference file stops the run with the row and the reason instead of
quarantining part of a lookup table, which would silently turn lookups into misses.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dataops_assets.transforms.typing import NULL_TOKENS, require_columns


class ReferenceDataError(ValueError):
    """A reference table breaks its key or its types."""


@dataclass(frozen=True)
class ReferenceSpec:
    source_columns: tuple[str, ...]  # the landed header, in order
    key: str
    numbers: tuple[str, ...]
    renames: tuple[tuple[str, str], ...] = ()

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(c for c in self.source_columns if c != self.key and c not in self.numbers)


REFERENCE_SPECS = {
    "airports": ReferenceSpec(
        source_columns=("faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"),
        key="faa",
        numbers=("lat", "lon", "alt", "tz"),
    ),
    "airlines": ReferenceSpec(source_columns=("carrier", "name"), key="carrier", numbers=()),
    "planes": ReferenceSpec(
        source_columns=("tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "speed", "engine"),
        key="tailnum",
        numbers=("year", "engines", "seats", "speed"),
        renames=(("year", "year_built"),),
    ),
}


def stage_reference(table: str, raw: pd.DataFrame) -> pd.DataFrame:
    """Typed reference table with a unique, non-null key; raises naming the offending rows otherwise."""
    spec = REFERENCE_SPECS[table]
    require_columns(raw, list(spec.source_columns), f"{table} file")
    texts = raw[[spec.key, *spec.texts]].astype("string").apply(lambda column: column.str.strip())
    texts = texts.mask(texts.isin(NULL_TOKENS)).astype(object)
    numbers = raw[list(spec.numbers)].apply(lambda column: _to_float(table, column))
    staged = pd.concat([texts, numbers], axis=1).rename(columns=dict(spec.renames))
    _require_unique_key(table, staged, spec.key)
    return staged.reset_index(drop=True)


def _to_float(table: str, text: pd.Series) -> pd.Series:
    stripped = text.astype("string").str.strip()
    empty = stripped.isna() | stripped.isin(NULL_TOKENS)
    numbers = pd.to_numeric(stripped.where(~empty), errors="coerce")
    bad = numbers.isna() & ~empty
    if bad.any():
        first = bad.idxmax()
        raise ReferenceDataError(
            f"{table}: column {text.name} has non-numeric value {stripped[first]!r} at row {first}"
        )
    return numbers.astype("float64")


def _require_unique_key(table: str, staged: pd.DataFrame, key: str) -> None:
    if staged[key].isna().any():
        raise ReferenceDataError(f"{table}: {int(staged[key].isna().sum())} row(s) have an empty {key}")
    repeated = staged.loc[staged[key].duplicated(), key]
    if not repeated.empty:
        raise ReferenceDataError(f"{table}: key {key} repeats for {', '.join(map(str, repeated.unique()[:5]))}")
