"""A month is published whole: consumers never see a month's core from one run and its marts from another.

Each run of January lands a different arrival delay for its first flight, so core and the marts of every run
differ. The readers (``dataops_ops.lake.connect_lake``) must show, for the month, core and marts that
- agree: the marts recomputed from the core shown equal the marts shown;
- come from one run: every data file read was added by a commit of the same run (the Delta log says which).
That holds after a blocking core check fails with ERROR once core is written, after a run is killed right after
its core commit, and after runs killed at seeded random moments; a re-run then publishes its own data.
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from dataops_assets import landing
from dataops_assets.environments import Settings
from dataops_assets.storage import PARTITION_COLUMN
from dataops_assets.transforms import flights, marts
from dataops_assets_tests.fixtures.landing import ship_as_is
from dataops_assets_tests.fixtures.month_run import start_month_run
from dataops_assets_tests.fixtures.observability import TINY_MONTH, TINY_ROWS, tiny_landed_settings
from dataops_assets_tests.fixtures.pipeline import materialize_partition, step_failures, warehouse
from dataops_assets_tests.fixtures.publishing import runs_of_files_read
from dataops_ops.lake import PUBLISH_RECORD, summarize_lake, table_uri

MARTS = {"marts.carrier_monthly": marts.carrier_monthly, "marts.route_monthly": marts.route_monthly}
PUBLISHED = ("core.flights", *MARTS)
FIRST_FLIGHT = ",830,819,11,UA,1545,"  # arr_time, sched_arr_time, arr_delay, carrier, flight of the first row
SEED = 20130101
KILLS = 6


def land_variant(settings: Settings, variant: int) -> None:
    """January's flights with the first flight (and its exact repeat) arriving ``11 + variant`` minutes late."""
    rows = [row.replace(FIRST_FLIGHT, f",830,819,{11 + variant},UA,1545,") for row in TINY_ROWS["flights"]]
    path = landing.flights_file(settings.landing_dir, TINY_MONTH)
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join([",".join(flights.SOURCE_COLUMNS), *rows]) + "\n", encoding="utf-8")
    temporary.replace(path)
    ship_as_is(path)  # a new delivery from the source, with its own control record


def shown(settings: Settings) -> dict[str, pd.DataFrame]:
    """January of core and each mart as the readers show it."""
    where = f"{PARTITION_COLUMN} = '{TINY_MONTH}-01'"
    with warehouse(settings) as connection:
        return {
            name: connection.execute(f"select * exclude ({PARTITION_COLUMN}) from {name} where {where}").df()
            for name in PUBLISHED
        }


def first_flight_delay(core: pd.DataFrame) -> float:
    return float(core.loc[(core["carrier"] == "UA") & (core["flight"] == 1545), "arr_delay"].iloc[0])


def assert_published_whole(settings: Settings) -> str:
    """Core and marts shown agree and come from one run; returns that run."""
    tables = shown(settings)
    core = tables["core.flights"]
    assert len(core) > 0, "January is not shown at all"
    for name, build in MARTS.items():
        expected = build(core, pd.Timestamp(f"{TINY_MONTH}-01"))
        pd.testing.assert_frame_equal(_ordered(tables[name]), _ordered(expected), check_dtype=False, obj=name)
    runs = {name: runs_of_files_read(settings, name, TINY_MONTH) for name in PUBLISHED}
    assert len(set().union(*runs.values())) == 1, f"January shown from several runs: {runs}"
    return next(iter(runs["core.flights"]))


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({c: "datetime64[ns]" for c in frame.columns if str(frame[c].dtype).startswith("datetime")})
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def last_core_write(settings: Settings) -> tuple[int, str]:
    """Version and run of the newest commit of January in core.flights, whether published or not."""
    for commit in DeltaTable(table_uri(settings, "core.flights")).history():
        if commit.get("partition") == TINY_MONTH:
            return int(commit["version"]), str(commit["dagster_run_id"])
    raise AssertionError("core.flights has no commit of January")


def test_a_core_check_failing_with_error_keeps_the_published_month(tmp_path: Path) -> None:
    settings = tiny_landed_settings(tmp_path)
    # January's on-time share is one in three; the band makes an all-late January fail core's suite with ERROR
    settings = replace(settings, thresholds=replace(settings.thresholds, on_time_share_band=(0.2, 1.0)))
    assert materialize_partition(settings, TINY_MONTH).success
    published_run = assert_published_whole(settings)
    before = shown(settings)

    land_variant(settings, 30)  # the first flight 41 minutes late: no flight of January on time
    result = materialize_partition(settings, TINY_MONTH)

    assert set(step_failures(result)) == {"core__flights_gx_suite"}
    evaluations = result.get_asset_check_evaluations()
    [core_check] = [e for e in evaluations if e.asset_key.path == ["core", "flights"] and e.check_name == "gx_suite"]
    assert not core_check.passed and core_check.severity.value == "ERROR"
    assert last_core_write(settings)[1] == result.run_id  # core was written: the lake holds a torn January
    assert assert_published_whole(settings) == published_run
    for name, frame in shown(settings).items():
        pd.testing.assert_frame_equal(frame, before[name], obj=name)
    assert f"{TINY_MONTH} shown as published" in summarize_lake(settings)


def _run_and_kill(settings: Settings, log: Path, after: float | None) -> int | None:
    """January run in a child process, SIGKILLed ``after`` seconds (None: at core's next commit); its exit code,
    None when it was killed."""
    core_log = Path(table_uri(settings, "core.flights")) / "_delta_log"
    commits = len(list(core_log.glob("*.json")))
    child = start_month_run(settings.data_root, TINY_MONTH, log)
    deadline = time.monotonic() + (after if after is not None else 120.0)
    while child.poll() is None and time.monotonic() < deadline:
        if after is None and len(list(core_log.glob("*.json"))) > commits:
            break
        time.sleep(0.01)
    if child.poll() is not None:
        return child.returncode
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    return None


def _timed_run(settings: Settings, log: Path) -> float:
    started = time.monotonic()
    child = start_month_run(settings.data_root, TINY_MONTH, log)
    assert child.wait(timeout=300) == 0, log.read_text()[-3000:]
    return time.monotonic() - started


@pytest.mark.faults
def test_runs_killed_at_any_moment_never_show_a_torn_month(tmp_path: Path) -> None:
    settings = tiny_landed_settings(tmp_path)
    log = tmp_path / "runs.log"
    run_seconds = _timed_run(settings, log)
    published_run = assert_published_whole(settings)
    assert first_flight_delay(shown(settings)["core.flights"]) == 11

    # killed right after its core commit: the lake's last version of January is torn, the readers show it whole
    land_variant(settings, 20)
    assert _run_and_kill(settings, log, after=None) is None
    assert first_flight_delay(DeltaTable(table_uri(settings, "core.flights")).to_pandas()) == 31
    assert assert_published_whole(settings) == published_run
    assert first_flight_delay(shown(settings)["core.flights"]) == 11

    # killed at seeded random moments of a run, each run landing other data
    moments = random.Random(SEED)
    outcomes = []
    for kill in range(1, KILLS + 1):
        land_variant(settings, 20 + kill)
        after = moments.uniform(0.0, run_seconds)
        exit_code = _run_and_kill(settings, log, after)
        core_written = first_flight_delay(DeltaTable(table_uri(settings, "core.flights")).to_pandas()) == 31 + kill
        published = last_core_write(settings)[1] == _published_core_run(settings)
        outcomes.append(
            f"kill {kill} at {after:.2f} s of {run_seconds:.1f} s: exit {exit_code}, core written {core_written}, "
            f"published {published and core_written}"
        )
        assert exit_code in (None, 0), log.read_text()[-3000:]
        assert_published_whole(settings)
    print("\n".join(outcomes))

    land_variant(settings, 60)
    _timed_run(settings, log)
    rerun = assert_published_whole(settings)
    assert rerun == last_core_write(settings)[1] != published_run
    assert first_flight_delay(shown(settings)["core.flights"]) == 71
    assert f"{TINY_MONTH} shown as published" not in summarize_lake(settings)


def _published_core_run(settings: Settings) -> str:
    record = DeltaTable(table_uri(settings, PUBLISH_RECORD)).to_pandas()
    return str(record.loc[record["table_name"] == "core.flights", "run_id"].iloc[0])


def test_the_month_run_module_runs_and_fails_like_a_run(tmp_path: Path) -> None:
    settings = tiny_landed_settings(tmp_path)
    landing.flights_file(settings.landing_dir, TINY_MONTH).unlink()
    log = tmp_path / "run.log"
    child = start_month_run(settings.data_root, TINY_MONTH, log)
    assert child.wait(timeout=300) == 1
    assert "failed step" in log.read_text()
    assert not DeltaTable.is_deltatable(table_uri(settings, PUBLISH_RECORD))
