"""Bad input corpus and write-audit-publish, on the real January dev sample.

A good January is published once; each case then lands a corrupted version of the same month in a copy of that
environment and re-runs it. Every case ends either in quarantine with the right rule, or in a failed blocking
check whose message names the file, the partition and the problem; in no case does a bad row reach core, and
when a blocking check fails, core and marts keep the good figures.
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dataops_assets.definitions import build_definitions
from dataops_assets.environments import Settings, settings_for
from dataops_assets.landing import flights_file, land
from dataops_assets.orchestration import flights_pipeline, reference_tables
from dataops_assets_tests.fixtures.landing import ship_as_is
from dataops_assets_tests.fixtures.pipeline import read_table

pytestmark = pytest.mark.real_data

MONTH = "2013-01"


@dataclass
class Run:
    settings: Settings
    result: dg.ExecuteInProcessResult

    def failed_checks(self) -> list[dg.AssetCheckEvaluation]:
        return [e for e in self.result.get_asset_check_evaluations() if not e.passed]

    def errors(self) -> list[dg.AssetCheckEvaluation]:
        return [e for e in self.failed_checks() if e.severity == dg.AssetCheckSeverity.ERROR]

    def table(self, name: str) -> pd.DataFrame:
        return read_table(self.settings, name)


def run_month(settings: Settings) -> Run:
    """The reference tables, then the month, as ``dataops run`` does (in process here)."""
    defs = build_definitions(settings)
    with dg.DagsterInstance.ephemeral() as instance:
        assert defs.resolve_job_def(reference_tables.name).execute_in_process(instance=instance).success
        job = defs.resolve_job_def(flights_pipeline.name)
        result = job.execute_in_process(partition_key=MONTH, instance=instance, raise_on_error=False)
    return Run(settings, result)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """January of the dev sample, landed and published once."""
    settings = settings_for("dev", data_root=tmp_path_factory.mktemp("published"))
    land(settings, months=(MONTH,))
    run = run_month(settings)
    assert run.result.success, run.errors()
    assert not run.errors()
    return run


def corrupted_copy(published: Run, tmp_path: Path, corrupt: Callable[[Path], None]) -> Settings:
    """A copy of the published environment whose January flights file went through ``corrupt``."""
    shutil.copytree(published.settings.env_dir, tmp_path / "dev")
    settings = published.settings.with_root(tmp_path)
    corrupt(flights_file(settings.landing_dir, MONTH))
    ship_as_is(flights_file(settings.landing_dir, MONTH))  # a source shipping the bad rows, not a damaged transfer
    return settings


def edit_rows(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def corrupt(path: Path) -> None:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        edit(frame).to_csv(path, index=False)

    return corrupt


def set_values(column: str, value: str, rows: int) -> Callable[[Path], None]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[frame.index[:rows], column] = value
        return frame

    return edit_rows(edit)


def write_bytes(content: bytes) -> Callable[[Path], None]:
    def corrupt(path: Path) -> None:
        path.write_bytes(content)

    return corrupt


def header_line(path: Path) -> bytes:
    return path.read_bytes().split(b"\n", 1)[0] + b"\n"


# --- cases that a whole file cannot pass: a failed blocking check on raw names file, partition and problem ---

FILE_CASES = {
    "missing column": (edit_rows(lambda f: f.drop(columns=["dep_delay"])), "lacks ['dep_delay']"),
    "extra column": (edit_rows(lambda f: f.assign(gate="A1")), "unexpected ['gate']"),
    "zero-byte file": (write_bytes(b""), "empty (0 bytes)"),
    "header only": (lambda p: p.write_bytes(header_line(p)), "header but no rows"),
    "non-UTF-8 bytes": (lambda p: p.write_bytes(p.read_bytes().replace(b"EWR", b"\xe9WR", 1)), "not UTF-8"),
}


@pytest.mark.parametrize("case", FILE_CASES)
def test_unreadable_file_fails_the_raw_file_check_and_keeps_core(published: Run, tmp_path: Path, case: str) -> None:
    corrupt, problem = FILE_CASES[case]
    run = run_month(corrupted_copy(published, tmp_path, corrupt))

    assert not run.result.success
    [error] = run.errors()
    assert (error.asset_key.to_user_string(), error.check_name) == ("raw/flights", "landed_file_readable")
    assert error.partition == MONTH
    assert "flights/2013-01.csv" in (error.description or "")
    assert "partition 2013-01" in (error.description or "")
    assert problem in (error.description or "")
    assert_published_unchanged(published, run)


# --- row-level problems: the rows go to quarantine with their rule, the rest is published ---

ROW_CASES = {
    "text in a numeric column": (set_values("dep_delay", "late", 3), "untypable", 3),
    "truncated last line": (
        lambda p: p.write_bytes(p.read_bytes().rstrip(b"\n").rsplit(b",", 12)[0] + b"\n"),
        "null_key",
        1,
    ),
    "exact duplicate rows": (edit_rows(lambda f: pd.concat([f, f.head(5)], ignore_index=True)), "duplicate_row", 5),
    "rows of another month": (
        edit_rows(lambda f: f.assign(month=f["month"].mask(f.index < 10, "2"))),
        "year_month_vs_partition",
        10,
    ),
}


@pytest.mark.parametrize("case", ROW_CASES)
def test_bad_rows_are_quarantined_with_their_rule(published: Run, tmp_path: Path, case: str) -> None:
    corrupt, rule, count = ROW_CASES[case]
    settings = corrupted_copy(published, tmp_path, corrupt)
    raw_rows = len(pd.read_csv(flights_file(settings.landing_dir, MONTH), dtype=str, keep_default_na=False))
    run = run_month(settings)

    assert run.result.success, [e.description for e in run.errors()]
    quarantine = run.table("quarantine.quarantined_flights")
    assert quarantine["rule"].tolist() == [rule] * count
    assert set(quarantine["_run_id"]) == {run.result.run_id}
    staged, core = run.table("staging.flights"), run.table("core.flights")
    assert len(staged) + len(quarantine) == raw_rows  # nothing lost
    assert len(core) == len(staged)
    assert set(core["flight_id"]) == set(staged["flight_id"])  # only typed, in-month, unique rows reach core


def test_too_many_bad_rows_fail_the_quarantine_gate_and_keep_core(published: Run, tmp_path: Path) -> None:
    run = run_month(corrupted_copy(published, tmp_path, set_values("dep_delay", "late", 100)))

    assert not run.result.success
    [error] = [e for e in run.errors() if e.check_name == "quarantine_share"]
    assert error.partition == MONTH
    assert error.metadata["rows_quarantined"].value == 100
    assert "above the 1.00% limit" in (error.description or "")
    assert len(run.table("quarantine.quarantined_flights")) == 100  # staging and quarantine hold the audit evidence
    assert_published_unchanged(published, run)


def test_unknown_carrier_fails_a_blocking_suite_check_and_keeps_core(published: Run, tmp_path: Path) -> None:
    run = run_month(corrupted_copy(published, tmp_path, set_values("carrier", "ZZ", 5)))

    assert not run.result.success
    errors = [e for e in run.errors() if e.asset_key == dg.AssetKey(["staging", "flights"])]
    assert errors, [(e.check_name, e.description) for e in run.failed_checks()]
    assert any("ZZ" in str(e.description) + str(e.metadata) for e in errors)
    assert all(e.partition == MONTH for e in errors)
    assert_published_unchanged(published, run)


def assert_published_unchanged(published: Run, run: Run) -> None:
    """Write-audit-publish: a failed gate leaves core and marts exactly as the good run published them."""
    for table in ("core.flights", "marts.carrier_monthly", "marts.route_monthly"):
        pd.testing.assert_frame_equal(run.table(table), published.table(table))
    materialized = {key.to_user_string() for key in run_asset_keys(run)}
    assert not materialized & {"core/flights", "marts/carrier_monthly", "marts/route_monthly"}


def run_asset_keys(run: Run) -> list[dg.AssetKey]:
    return [event.asset_key for event in run.result.get_asset_materialization_events() if event.asset_key]
