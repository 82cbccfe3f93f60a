"""``dataops metrics``: Prometheus metrics read from an instance where the pipeline ran a good and a bad month, then
the freshness check, which warns (the landing is dated before the limit)."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dataops_assets.definitions import build_definitions
from dataops_assets.environments import DATA_ROOT_VAR, ENV_VAR, Settings, settings_for
from dataops_assets.orchestration import newest_month_freshness
from dataops_assets_tests.fixtures.landing import backdate_landing
from dataops_assets_tests.fixtures.observability import (
    TINY_MONTH,
    TINY_QUARANTINED,
    TINY_ROWS,
    temp_instance,
    tiny_landed_settings,
)
from dataops_assets_tests.fixtures.pipeline import materialize_partition
from dataops_assets_tests.fixtures.processes import interruptible
from dataops_ops.metrics import run_metrics

EMPTY_MONTH = "2013-02"  # nothing landed: the raw steps' blocking file checks fail the run

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Ran:
    settings: Settings
    instance: dg.DagsterInstance
    good: dg.ExecuteInProcessResult
    bad: dg.ExecuteInProcessResult
    late: dg.ExecuteInProcessResult  # the freshness check: the month was published after the limit, a WARN


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    settings = tiny_landed_settings(tmp_path_factory.mktemp("metrics"))
    with temp_instance(settings.dagster_home) as instance:
        good = materialize_partition(settings, TINY_MONTH, instance)
        bad = materialize_partition(settings, EMPTY_MONTH, instance)
        assert good.success and not bad.success
        backdate_landing(settings.landing_dir, settings.thresholds.max_hours_landed_to_published + 1)
        late = (
            build_definitions(settings)
            .resolve_job_def(newest_month_freshness.name)
            .execute_in_process(instance=instance)
        )
        yield Ran(settings, instance, good, bad, late)


def parse(text: str) -> Samples:
    """Samples by (name, labels); the parser of prometheus_client rejects text that is not the exposition format."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
    return samples


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset({"environment": "dev", **values}.items())


def metrics_text(settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))  # opening the instance exports it
    assert run_metrics(settings, argparse.Namespace(serve=None, output=None)) == 0
    return capsys.readouterr().out


def test_runs_by_job_and_status_and_their_durations(
    ran: Ran, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = parse(metrics_text(ran.settings, monkeypatch, capsys))
    job = ran.good.dagster_run.job_name
    assert samples[("dataops_runs_total", labels(job=job, status="SUCCESS"))] == 1
    assert samples[("dataops_runs_total", labels(job=job, status="FAILURE"))] == 1
    records = [ran.instance.get_run_record_by_id(r.run_id) for r in (ran.good, ran.bad)]
    durations = [r.end_time - r.start_time for r in records if r and r.start_time and r.end_time]
    assert samples[("dataops_run_duration_seconds_count", labels(job=job))] == 2 == len(durations)
    assert samples[("dataops_run_duration_seconds_sum", labels(job=job))] == pytest.approx(sum(durations), abs=1e-3)
    assert samples[("dataops_last_run_success", labels(job=job, partition=TINY_MONTH))] == 1
    assert samples[("dataops_last_run_success", labels(job=job, partition=EMPTY_MONTH))] == 0
    ended = samples[("dataops_last_run_end_timestamp_seconds", labels(job=job, partition=EMPTY_MONTH))]
    assert records[1] is not None and ended == pytest.approx(records[1].end_time, abs=1e-3)
    assert not [key for key in samples if key[0] == "dataops_unfinished_runs"]


def test_rows_of_each_materialization_from_its_metadata(
    ran: Ran, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = parse(metrics_text(ran.settings, monkeypatch, capsys))
    flights = len(TINY_ROWS["flights"])
    month = {"partition": TINY_MONTH}
    assert samples[("dataops_asset_rows", labels(asset="raw/flights", **month))] == flights
    assert samples[("dataops_asset_rows", labels(asset="staging/flights", **month))] == flights - TINY_QUARANTINED
    assert samples[("dataops_asset_rows", labels(asset="quarantine/quarantined_flights", **month))] == TINY_QUARANTINED
    assert samples[("dataops_asset_rows", labels(asset="raw/airlines", partition=""))] == len(TINY_ROWS["airlines"])
    events = [*ran.good.get_asset_materialization_events(), *ran.bad.get_asset_materialization_events()]
    materialized = Counter(e.step_materialization_data.materialization.asset_key.to_user_string() for e in events)
    counts = {
        dict(key[1])["asset"]: v for key, v in samples.items() if key[0] == "dataops_asset_materializations_total"
    }
    assert counts == materialized  # the reference tables in both runs, the months' tables in the good one only
    assert samples[("dataops_rows_written_total", labels(asset="raw/flights"))] == flights


def test_check_evaluations_by_asset_check_severity_and_result(
    ran: Ran, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = parse(metrics_text(ran.settings, monkeypatch, capsys))
    checks = {k: v for k, v in samples.items() if k[0] == "dataops_check_evaluations_total"}
    evaluations = [e for result in (ran.good, ran.bad, ran.late) for e in result.get_asset_check_evaluations()]
    assert sum(checks.values()) == len(evaluations)
    for evaluation in evaluations:
        key = labels(
            asset=evaluation.asset_key.to_user_string(),
            check=evaluation.check_name,
            severity=evaluation.severity.value,
            passed=str(evaluation.passed).lower(),
        )
        assert checks[("dataops_check_evaluations_total", key)] >= 1
    unreadable = labels(asset="raw/flights", check="landed_file_readable", severity="ERROR", passed="false")
    assert checks[("dataops_check_evaluations_total", unreadable)] == 1  # the empty month's file check
    late = labels(asset="publish/months", check="newest_month_published_in_time", severity="WARN", passed="false")
    assert checks[("dataops_check_evaluations_total", late)] == 1  # a failed WARN check is counted as such


def test_output_writes_the_same_text_atomically(
    ran: Ran, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = metrics_text(ran.settings, monkeypatch, capsys)
    target = tmp_path / "textfile" / "dataops.prom"
    assert run_metrics(ran.settings, argparse.Namespace(serve=None, output=target)) == 0
    assert target.read_text() == printed and capsys.readouterr().out == ""
    assert [path.name for path in target.parent.iterdir()] == ["dataops.prom"]


def test_an_environment_without_runs_has_families_without_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = metrics_text(settings_for("dev", data_root=tmp_path), monkeypatch, capsys)
    assert parse(text).keys() == set()
    assert "# TYPE dataops_runs_total counter" in text


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(url: str, server: subprocess.Popen[str], timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            assert server.poll() is None, f"the exporter exited with {server.returncode}"
            assert time.monotonic() < deadline, f"nothing served on {url}"
            time.sleep(0.2)


def test_serve_exposes_the_metrics_on_localhost_until_interrupted(ran: Ran) -> None:
    port = _free_port()
    env = {**os.environ, ENV_VAR: "dev", DATA_ROOT_VAR: str(ran.settings.data_root)}
    command = [sys.executable, "-m", "dataops_ops.cli", "metrics", "--serve", str(port)]
    server = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=interruptible,  # noqa: PLW1509 - the child starts no thread before exec
    )
    try:
        samples = parse(_scrape(f"http://127.0.0.1:{port}/metrics", server))
        job = ran.good.dagster_run.job_name
        assert samples[("dataops_runs_total", labels(job=job, status="SUCCESS"))] == 1
        assert samples[("dataops_runs_total", labels(job=job, status="FAILURE"))] == 1
        server.send_signal(signal.SIGINT)  # Ctrl-C: the exporter shuts its server down and exits
        output, _ = server.communicate(timeout=10)
        assert server.returncode == 0, output
        assert f"serving metrics on http://127.0.0.1:{port}/metrics" in output
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
