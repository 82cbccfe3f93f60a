"""``dataops run`` and ``dataops summary`` end to end, in process, on a hand-made landing under ``tmp_path``; and
``dataops --help`` without Dagster.

The CLI reads ``DATAOPS_ENV`` and ``DATAOPS_DATA_ROOT`` itself; the tests set them, and point ``DAGSTER_HOME``
somewhere restorable because the CLI exports the environment's own Dagster home (under the data root).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pty
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dataops_assets import environments
from dataops_assets.environments import settings_for
from dataops_assets.landing import weather_file
from dataops_assets_tests.fixtures.landing import expected_counts, write_landing
from dataops_assets_tests.fixtures.pipeline import FIXTURE_BOUNDS
from dataops_ops.cli import _parser, main

_SUMMARY_LINE = re.compile(r"^(?P<table>[a-z_]+/[a-z_]+)\s+(?P<rows>[\d,]+)\s+(?P<partitions>\d+|-)$")
_RUN_LINE = re.compile(r"^dev (?P<partition>2013-\d\d) (?P<status>ok|FAILED): (?P<passed>\d+)/(?P<total>\d+) checks")
_REFERENCE_TABLES = {"airports", "airlines", "planes"}
_WARNING_LINE = re.compile(r"\b\w*Warning\b")  # Python's own: "file.py:12: PreviewWarning: ..."


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DATAOPS_ENV=dev with its files under ``tmp_path``; thresholds fitted to the tiny landing, as variables,
    since the months run in processes of their own."""
    monkeypatch.setenv(environments.ENV_VAR, "dev")
    monkeypatch.setenv(environments.DATA_ROOT_VAR, str(tmp_path))
    monkeypatch.setenv(environments.THRESHOLDS_VAR, json.dumps(FIXTURE_BOUNDS))
    monkeypatch.delenv(environments.JSON_LOGS_VAR, raising=False)  # the environment's own log file
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused_dagster_home"))
    return tmp_path


def _summary(output: str) -> dict[str, tuple[int, str]]:
    rows = {}
    for line in output.splitlines():
        match = _SUMMARY_LINE.match(line)
        if match:
            rows[match["table"]] = (int(match["rows"].replace(",", "")), match["partitions"])
    return rows


def _expected_summary(months: list[str]) -> dict[str, tuple[int, str]]:
    """Rows per table, and for partitioned tables the number of months that have rows ("-" for references)."""
    expected = {}
    for table, rows in expected_counts(months).items():
        schema, name = table.split(".")
        months_with_rows = sum(1 for month in months if expected_counts([month])[table])
        expected[f"{schema}/{name}"] = (
            rows,
            "-" if name in _REFERENCE_TABLES and schema != "quarantine" else str(months_with_rows),
        )
    return expected


def test_run_one_partition_prints_the_summary(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for("dev", data_root)
    write_landing(settings.landing_dir, ["2013-01", "2013-02"])

    assert main(["run", "2013-01", "--log-format", "json"]) == 0
    out, err = capsys.readouterr()
    [run_line] = [m for m in map(_RUN_LINE.match, out.splitlines()) if m]
    assert (run_line["partition"], run_line["status"]) == ("2013-01", "ok")
    # not a terminal: a plain progress line per month on stdout, no escapes; asked for, the log records as JSON
    # lines on stderr, the same as in the log file
    assert re.search(r"^progress: 1/1 months done, \d+:\d\d elapsed$", out, re.MULTILINE)
    assert "\r" not in out
    logged = [json.loads(line) for line in err.splitlines()]
    assert {"time", "level", "environment", "run_id", "partition", "message"} <= set(logged[-1])
    assert [record["partition"] for record in logged if record["logger"] == "dataops_ops.run"] == [
        "reference",
        "2013-01",
        "freshness",
    ]
    assert logged == _records(settings.json_log_file)
    # core warns on the flight without weather; BQN and N999ZZ are accepted exceptions (counted, not reported
    # again); nothing else fails
    assert int(run_line["passed"]) == int(run_line["total"]) - 1
    assert "error" not in out.lower()
    warned = {" ".join(line.split()[1:3]) for line in out.splitlines() if line.startswith("    WARN ")}
    assert warned == {"core/flights gx_suite:"}
    # then the freshness check, once: February landed last and is not published, but not for long enough to warn
    assert re.search(r"^dev freshness ok: 1/1 checks passed, run [0-9a-f-]+$", out, re.MULTILINE)
    assert "weather_found_for_most_flights" in out
    assert _summary(out) == _expected_summary(["2013-01"])
    assert _summary(out)["core/flights"] == (6, "1")
    assert _summary(out)["quarantine/quarantined_flights"] == (1, "1")
    assert (settings.dagster_home / "dagster.yaml").is_file()  # the run is recorded in the environment's instance
    assert (Path(settings.lake_uri) / "core" / "flights" / "_delta_log").is_dir()

    assert main(["summary"]) == 0
    assert _summary(capsys.readouterr().out) == _expected_summary(["2013-01"])


def _records(log_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_file.read_text().splitlines()]


def _run_through_pipes(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``dataops`` with stdout and stderr on pipes, as CI, ``| tee`` or a redirect give it."""
    dataops = str(Path(sys.executable).with_name("dataops"))
    return subprocess.run([dataops, *args], capture_output=True, text=True, env=os.environ, timeout=600, check=False)


def test_outside_a_terminal_each_month_line_is_printed_once_and_logged_to_the_file(data_root: Path) -> None:
    settings = settings_for("dev", data_root)
    months = ["2013-01", "2013-02"]
    write_landing(settings.landing_dir, months)

    done = _run_through_pipes(["run", *months])

    assert done.returncode == 0, done.stdout + done.stderr
    both = done.stdout + done.stderr
    for partition in ("reference", *months, "freshness"):
        assert both.count(f"dev {partition} ok: ") == 1, both
    assert not [line for line in done.stderr.splitlines() if line.lstrip().startswith("{")], done.stderr
    assert not _WARNING_LINE.search(both), both
    printed = [line for line in done.stdout.splitlines() if line.startswith("dev ") and " ok: " in line]
    records = _records(settings.json_log_file)
    assert settings.json_log_file == data_root / "dev" / "logs" / "dataops.jsonl"
    reported = {r["partition"]: r["message"] for r in records if r["logger"] == "dataops_ops.run"}
    assert set(reported) == {"reference", *months, "freshness"}
    assert sorted(message.split("; ")[0] for message in reported.values()) == sorted(printed)


def _run_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """``dataops`` with stdout and stderr on a pseudo-terminal, as a person runs it; what the terminal received."""
    leader, follower = pty.openpty()
    dataops = str(Path(sys.executable).with_name("dataops"))
    with subprocess.Popen([dataops, *args], stdout=follower, stderr=follower, env=os.environ) as process:
        os.close(follower)
        received = b""
        while chunk := _read(leader):
            received += chunk
        code = process.wait(timeout=300)
    os.close(leader)
    return code, received.decode().replace("\r\n", "\n")  # the terminal's newline translation


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the command closed its end
        return b""


def test_on_a_terminal_run_shows_human_lines_and_a_progress_line_redrawn_in_place(data_root: Path) -> None:
    settings = settings_for("dev", data_root)
    write_landing(settings.landing_dir, ["2013-01"])

    code, shown = _run_on_a_terminal(["run", "2013-01"])

    assert code == 0, shown
    clear = "\r\x1b[K"
    assert f"{clear}0/1 months done" in shown and "loading the reference tables" in shown
    # what the screen keeps once each carriage return has done its work
    screen = [line.rsplit(clear, 1)[-1] for line in shown.split("\n")]
    assert not [line for line in screen if line.lstrip().startswith("{")], "JSON log lines on a terminal"
    [run_line] = [m for m in map(_RUN_LINE.match, screen) if m]
    assert run_line["status"] == "ok"
    [final] = [i for i, line in enumerate(screen) if re.fullmatch(r"1/1 months done, \d+:\d\d elapsed", line)]
    assert final > screen.index(run_line.string)
    assert _summary("\n".join(screen)) == _expected_summary(["2013-01"])


def test_run_with_a_missing_landing_file_returns_1_and_names_it(
    data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for("dev", data_root)
    write_landing(settings.landing_dir, ["2013-01"])
    missing = weather_file(settings.landing_dir, "2013-01")
    missing.unlink()

    assert main(["run", "2013-01"]) == 1
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines()]
    [run_line] = [m for m in map(_RUN_LINE.match, out.splitlines()) if m]
    assert run_line["status"] == "FAILED"
    assert "error raw__weather: raw/weather: landed_file_readable" in lines
    assert (
        f"ERROR raw/weather landed_file_readable: missing landing file {missing}: "
        "expected the landed file for partition 2013-01; run `dataops land` first"
    ) in lines
    summary = _summary(out)
    assert "core/flights" not in summary and "raw/weather" not in summary
    assert summary["raw/flights"] == (6 + 1, "1")


def test_run_of_an_unknown_partition_returns_2(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "2099-01"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "dataops: unknown partition(s) 2099-01; expected YYYY-MM in 2013"
    assert captured.out == ""
    assert list(data_root.iterdir()) == []  # nothing ran, nothing was created


def test_unknown_environment_returns_2_and_lists_the_valid_ones(
    data_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(environments.ENV_VAR, "qa")
    assert main(["run", "2013-01"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        "dataops: DATAOPS_ENV='qa' is not a known environment; expected one of: dev, stage, prod (or pr-N, a preview)"
    )
    assert list(data_root.iterdir()) == []


# the subcommands' handlers import their work when they run: building the parser loads none of it
_HELP_PROBE = """
import contextlib, io, json, sys
from dataops_ops.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    main(["--help"])
heavy = ("dagster", "pandas", "duckdb", "deltalake", "great_expectations", "prometheus_client", "requests")
print(json.dumps({"help": out.getvalue(), "loaded": sorted(name for name in heavy if name in sys.modules)}))
"""


def test_help_lists_the_commands_without_importing_dagster() -> None:
    done = subprocess.run([sys.executable, "-c", _HELP_PROBE], capture_output=True, text=True, timeout=60, check=True)
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["loaded"] == []
    lake = ("sql", "history", "restore", "verify")
    for command in ("land", "run", "summary", "docs", "metrics", "deploy", "promote", "status", *lake):
        assert command in probe["help"], command


# after a command, as if a Dagster module warned during it: Dagster's warning of a feature warning_filters.py names,
# and one of a feature it does not name
_WARNING_PROBE = """
import warnings
import dagster as dg
from dataops_ops.cli import main
main(["summary"])
named = "Specifying a partitions_def on an AssetCheckSpec is currently in preview, and may have breaking changes"
warnings.warn_explicit(named, dg.PreviewWarning, "dagster/_named.py", 1, module="dagster._named")
unnamed = "Function `unnamed_feature` is currently in preview"
warnings.warn_explicit(unnamed, dg.PreviewWarning, "dagster/_new.py", 1, module="dagster._new")
"""


def test_the_cli_silences_only_the_dagster_warnings_it_names(data_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WARNING_PROBE], capture_output=True, text=True, env=os.environ, timeout=120, check=True
    )
    assert _WARNING_LINE.findall(done.stderr) == ["PreviewWarning"], done.stderr
    assert "dagster/_new.py:1: PreviewWarning: Function `unnamed_feature` is currently in preview" in done.stderr


def test_every_subcommand_names_a_handler_that_exists() -> None:
    """Handlers are named as strings (so that --help imports nothing heavy): each must be a function."""
    parser = _parser()
    samples = [
        "land",
        "run",
        "summary",
        "docs",
        "ui",
        "metrics",
        "sql 'select 1'",
        "history core.flights",
        "restore core.flights --version 1",
        "verify",
        "build",
        "env init --env dev",
        "env up --env dev",
        "env down --env dev",
        "deploy --env dev --artifact x.whl",
        "promote --from dev --to stage",
        "rollback --env dev",
        "status",
        "preview up --pr 1",
        "preview diff --pr 1",
        "preview down --pr 1",
        "preview list",
        "preview prune --older-than 7d",
    ]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {sample.split()[0] for sample in samples} == set(commands)
    for sample in samples:
        module, function = parser.parse_args(shlex.split(sample)).handler
        assert callable(getattr(importlib.import_module(module), function)), sample
