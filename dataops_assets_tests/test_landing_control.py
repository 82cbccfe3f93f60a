"""Control records beside the landed files, the check of a file against its record, and the stale temporary files
of an interrupted landing; on the real January dev landing."""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from dataops_assets import landing
from dataops_assets.environments import Settings, settings_for
from dataops_assets.files import exclusive_folder_lock, remove_stale_temp_files
from dataops_assets.landing import LandingFileError
from dataops_assets.transforms import flights
from dataops_assets.transforms.reference import REFERENCE_SPECS
from dataops_assets_tests.fixtures.landing import ship_as_is

MONTH = "2013-01"
DEV_JANUARY_FLIGHTS = 2_700


@pytest.fixture(scope="module")
def landed_once(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = settings_for("dev", data_root=tmp_path_factory.mktemp("landed"))
    landing.land(settings, months=(MONTH,))
    return settings


@pytest.fixture
def january(landed_once: Settings, tmp_path: Path) -> Path:
    """A private copy of the landed January flights file, with its control record."""
    shutil.copytree(landed_once.landing_dir, tmp_path / "landing")
    return landing.flights_file(tmp_path / "landing", MONTH)


def _read(path: Path) -> landing.LandedRead:
    return landing.read_landed_file(path, flights.SOURCE_COLUMNS, partition=MONTH)


def _refusal(path: Path) -> str:
    with pytest.raises(LandingFileError) as error:
        _read(path)
    return str(error.value)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_landed_file_matches_its_control_record(january: Path) -> None:
    read = _read(january)
    data = january.read_bytes()
    assert read.control == landing.ControlRecord("2013-01.csv", DEV_JANUARY_FLIGHTS, len(data), _sha(data))
    assert len(read.frame) == DEV_JANUARY_FLIGHTS


def test_a_file_cut_off_mid_line_is_refused_with_expected_and_found(january: Path) -> None:
    data = january.read_bytes()
    cut = data[: int(len(data) * 0.88)]
    assert not cut.endswith(b"\n")  # the last line is cut in the middle
    january.write_bytes(cut)
    found_rows = cut.count(b"\n")  # the header's newline is not counted, the cut line is a row
    assert _refusal(january) == (
        f"{january} (partition 2013-01): does not match its control record 2013-01.csv.control.json: the file is "
        f"cut off (88% of its bytes arrived); rows: expected 2,700, found {found_rows:,}; bytes: expected "
        f"{len(data):,}, found {len(cut):,}; sha256: expected {_sha(data)}, found {_sha(cut)}"
    )


def test_an_appended_file_is_refused(january: Path) -> None:
    data = january.read_bytes()
    last_line = data.rstrip(b"\n").rsplit(b"\n", 1)[1] + b"\n"
    january.write_bytes(data + last_line)
    message = _refusal(january)
    assert "the file has more than was shipped (appended to); rows: expected 2,700, found 2,701; " in message
    assert f"bytes: expected {len(data):,}, found {len(data) + len(last_line):,}" in message


def test_an_altered_file_of_the_same_size_is_refused_naming_only_the_sha256(january: Path) -> None:
    data = january.read_bytes()
    altered = data.replace(b",EWR,", b",JFK,", 1)
    january.write_bytes(altered)
    assert _refusal(january) == (
        f"{january} (partition 2013-01): does not match its control record 2013-01.csv.control.json: the file's "
        f"content was altered; sha256: expected {_sha(data)}, found {_sha(altered)}"
    )


def test_a_file_without_control_record_is_read_unverified(january: Path) -> None:
    landing.control_file(january).unlink()
    read = _read(january)
    assert read.control is None
    assert len(read.frame) == DEV_JANUARY_FLIGHTS


def test_a_file_shipped_as_is_with_a_fresh_record_passes(january: Path) -> None:
    data = january.read_bytes()
    january.write_bytes(data + data.rstrip(b"\n").rsplit(b"\n", 1)[1] + b"\n")
    with pytest.raises(LandingFileError):
        _read(january)
    ship_as_is(january)
    assert len(_read(january).frame) == DEV_JANUARY_FLIGHTS + 1


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ("{not json", "is unreadable (JSONDecodeError: "),
        ('{"file": "2013-01.csv", "rows": 1}', "is unreadable (KeyError: 'bytes'); expected JSON with"),
        ('{"file": "2013-02.csv", "rows": 1, "bytes": 1, "sha256": "0"}', "is for '2013-02.csv', not '2013-01.csv'"),
    ],
    ids=["not-json", "field-missing", "other-file"],
)
def test_an_unusable_control_record_is_refused_naming_it(january: Path, record: str, problem: str) -> None:
    control = landing.control_file(january)
    control.write_text(record)
    assert _refusal(january).startswith(f"{january} (partition 2013-01): its control record {control} {problem}")


def test_a_file_that_cannot_be_read_also_says_it_differs_from_its_record(january: Path) -> None:
    data = january.read_bytes()
    compressed = gzip.compress(data)
    january.write_bytes(compressed)
    assert _refusal(january).endswith(
        "it must be an uncompressed CSV: extract it and land the CSV (and it does not match its control record: "
        f"expected {len(data):,} bytes, found {len(compressed):,})"
    )


def test_a_truncated_reference_file_is_refused_naming_it(landed_once: Settings, tmp_path: Path) -> None:
    shutil.copytree(landed_once.landing_dir, tmp_path / "landing")
    planes = landing.reference_file(tmp_path / "landing", "planes")
    data = planes.read_bytes()
    planes.write_bytes(data[: len(data) // 2])
    with pytest.raises(LandingFileError) as error:
        landing.read_landed(planes, list(REFERENCE_SPECS["planes"].source_columns))
    assert str(error.value).startswith(
        f"{planes}: does not match its control record planes.csv.control.json: the file is cut off (50% of its "
        "bytes arrived); rows: expected 3,322, found 1,"
    )


# --- when a file landed ------------------------------------------------------------------------------------------


def _land_tiny(path: Path) -> None:
    landing.write_atomically(pd.DataFrame({"year": ["2013"], "month": ["1"]}), path)


def test_a_control_record_says_when_its_file_landed(tmp_path: Path) -> None:
    path = tmp_path / "flights" / "2013-01.csv"
    before = datetime.now(UTC)
    _land_tiny(path)
    after = datetime.now(UTC)
    written = json.loads(landing.control_file(path).read_text())
    assert before <= datetime.fromisoformat(written["landed_at"]) <= after
    assert landing.landed_at(path) == datetime.fromisoformat(written["landed_at"])


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("2026-12-07T06:00:00+01:00", datetime(2026, 12, 7, 5, 0, tzinfo=UTC)),
        ("2026-12-07T06:00:00", datetime(2026, 12, 7, 6, 0, tzinfo=UTC)),  # no offset: UTC
    ],
)
def test_the_landing_time_of_a_record_keeps_its_offset(tmp_path: Path, written: str, read: datetime) -> None:
    path = tmp_path / "2013-01.csv"
    _land_tiny(path)
    record = landing.control_file(path)
    record.write_text(json.dumps(json.loads(record.read_text()) | {"landed_at": written}))
    assert landing.landed_at(path) == read


def test_a_file_whose_record_has_no_landing_time_landed_when_it_was_written(tmp_path: Path) -> None:
    path = tmp_path / "2013-01.csv"
    _land_tiny(path)
    record = landing.control_file(path)
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items() if k != "landed_at"}))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert landing.landed_at(path) == datetime.fromtimestamp(1_700_000_000, UTC)
    assert landing.read_landed_file(path, ["year", "month"]).control is not None  # the record still verifies it


def test_a_month_has_landed_once_both_its_files_have(tmp_path: Path) -> None:
    flights_path, weather_path = landing.flights_file(tmp_path, MONTH), landing.weather_file(tmp_path, MONTH)
    _land_tiny(flights_path)
    assert landing.month_landed_at(tmp_path, MONTH) is None
    _land_tiny(weather_path)
    month_landed = landing.month_landed_at(tmp_path, MONTH)
    assert month_landed == landing.landed_at(weather_path) and month_landed is not None
    assert month_landed > (landing.landed_at(flights_path) or month_landed)


# --- stale temporary files ---------------------------------------------------------------------------------------


def _leftover(folder: Path, name: str) -> Path:
    """A temporary file exactly as write_atomic names it, as a landing killed before its rename leaves it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.write(fd, b"year,month\n2013,")
    os.close(fd)
    return Path(tmp)


def test_land_removes_the_stale_temporary_files_of_its_folders_only(tmp_path: Path) -> None:
    settings = settings_for("dev", data_root=tmp_path)
    root = settings.landing_dir
    stale = [
        _leftover(root / "flights", "2013-01.csv"),
        _leftover(root / "flights", "2013-01.csv.control.json"),
        _leftover(root / "weather", "2013-07.csv"),
        _leftover(root / "reference", "planes.csv"),
    ]
    bystanders = [
        _leftover(root, "notes.csv"),  # the landing root is not a folder land writes
        _leftover(root / "flights" / "archive", "2013-01.csv"),  # nor is a folder below one
        root / "flights" / "export.tmp",  # not write_atomic's pattern
        root / "flights" / ".keep",
        root / "weather" / "2013-07.csv.tmp",
    ]
    for path in bystanders[2:]:
        path.write_text("kept")

    result = landing.land(settings, months=(MONTH,))

    assert sorted(result.stale_temp_files_removed) == sorted(stale)
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in bystanders)
    assert len(result.files) == 5
    assert _read(landing.flights_file(root, MONTH)).control is not None


def test_nothing_to_remove_in_a_clean_or_absent_folder(tmp_path: Path) -> None:
    assert remove_stale_temp_files(tmp_path / "absent") == []
    (tmp_path / "2013-01.csv").write_text("x\n1\n")
    assert remove_stale_temp_files(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["2013-01.csv"]


def test_the_landing_lock_excludes_a_second_holder_and_leaves_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "landing"

    def can_lock() -> bool:
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    with exclusive_folder_lock(folder):
        assert not can_lock()
    assert can_lock()
    assert list(folder.iterdir()) == []
