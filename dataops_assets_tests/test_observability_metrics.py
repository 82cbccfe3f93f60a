"""Run metrics: the ops records and the Prometheus exposition of a real pipeline run match the warehouse."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from dataops_assets.observability.cli import register
from dataops_assets.observability.config import ObservabilityResource, build_observability_resource
from dataops_assets.observability.metrics import exposition, with_warehouse
from dataops_assets.observability.runs import RUNNER_TAGS, observation_sensors, observe_in_process
from dataops_assets.warehouse import WarehouseBusyError
from dataops_assets_tests.fixtures.processes import hold_duckdb_file
from dataops_assets_tests.test_observability_support import (
    TINY_MONTH,
    TINY_QUARANTINED,
    TINY_ROWS,
    PipelineRun,
    pipeline_run,
)

SUCCEEDED, FAILED, _CANCELED = observation_sensors


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    run = pipeline_run(tmp_path_factory)
    assert run.result.success
    return run


def _resource(pipeline: PipelineRun, lineage_file: Path) -> ObservabilityResource:
    settings = pipeline.settings
    return ObservabilityResource(
        environment=settings.name, warehouse_path=str(settings.warehouse_path), lineage_file=str(lineage_file)
    )


def _sensor_context(
    pipeline: PipelineRun, result: dg.ExecuteInProcessResult, resource: ObservabilityResource
) -> dg.RunStatusSensorContext:
    from dataops_assets.definitions import build_definitions

    run = pipeline.instance.get_run_by_id(result.run_id)
    assert run is not None
    event = result.get_run_success_event() if result.success else result.get_run_failure_event()
    return dg.build_run_status_sensor_context(
        sensor_name="observe",
        dagster_instance=pipeline.instance,
        dagster_run=run,
        dagster_event=event,
        resources={"observability": resource},
        repository_def=build_definitions(pipeline.settings).get_repository_def(),
    )


@pytest.fixture(scope="module")
def observed(pipeline: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline run observed by the success sensor, twice (a retried tick must not double count)."""
    lineage_file = tmp_path_factory.mktemp("observed") / "events.jsonl"
    resource = _resource(pipeline, lineage_file)
    SUCCEEDED(_sensor_context(pipeline, pipeline.result, resource))
    SUCCEEDED(_sensor_context(pipeline, pipeline.result, resource))
    return lineage_file


def _query(pipeline: PipelineRun, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(pipeline.settings.warehouse_path), read_only=True) as connection:
        return connection.execute(sql, list(params)).fetchall()


def _table_counts(pipeline: PipelineRun) -> dict[str, int]:
    """Rows of each asset's table (the tiny run wrote one partition, so a table holds what the run wrote)."""
    counts = {}
    for key in pipeline.asset_graph.get_all_asset_keys():
        [(rows,)] = _query(pipeline, f"select count(*) from {'.'.join(key.path)}")
        counts[key.to_user_string()] = rows
    return counts


def test_ops_run_record_matches_the_run(pipeline: PipelineRun, observed: Path) -> None:
    run_id = pipeline.result.run_id
    record = pipeline.instance.get_run_record_by_id(run_id)
    assert record is not None and record.start_time and record.end_time
    rows = _query(
        pipeline,
        "select job, partition, environment, status, epoch(started_at), epoch(ended_at), duration_seconds, rows,"
        " checks, failed_checks, failed_error_checks from ops.runs where run_id = ?",
        run_id,
    )
    [(job, partition, environment, status, started, ended, duration, total, checks, failed, failed_error)] = rows
    assert (job, partition, environment, status) == (pipeline.result.dagster_run.job_name, TINY_MONTH, "dev", "SUCCESS")
    assert started == pytest.approx(record.start_time, abs=1e-3) and ended == pytest.approx(record.end_time, abs=1e-3)
    assert duration == pytest.approx(record.end_time - record.start_time, abs=1e-3)
    assert total == sum(_table_counts(pipeline).values())
    evaluations = pipeline.result.get_asset_check_evaluations()
    assert checks == len(evaluations)
    assert failed == sum(not e.passed for e in evaluations) > 0  # dev's monthly bounds fail the tiny month (WARN)
    assert failed_error == 0
    assert _query(pipeline, "select count(*) from ops.runs") == [(1,)]
    assert observed.read_text().count("\n") > 0  # the sensor emitted the run's lineage as well


def test_ops_asset_records_match_the_warehouse(pipeline: PipelineRun, observed: Path) -> None:
    records = {
        asset: (status, rows_in, rows_out, quarantined, written, duration, rate)
        for asset, status, rows_in, rows_out, quarantined, written, duration, rate in _query(
            pipeline,
            "select asset, status, rows_in, rows_out, rows_quarantined, rows_written, duration_seconds,"
            " rows_per_second from ops.asset_materializations where run_id = ?",
            pipeline.result.run_id,
        )
    }
    counts = _table_counts(pipeline)
    assert set(records) == set(counts)
    for asset, (status, _, _, _, written, duration, rate) in records.items():
        assert status == "materialized"
        assert written == counts[asset], asset
        assert duration > 0 and rate == pytest.approx(written / duration)
    flights = len(TINY_ROWS["flights"])
    assert records["raw/flights"][1] == flights
    assert records["staging/flights"][1:4] == (flights, flights - TINY_QUARANTINED, TINY_QUARANTINED)
    assert counts["quarantine/flights"] == TINY_QUARANTINED
    failed = _query(
        pipeline, "select asset, check_name, severity from ops.check_evaluations where not passed order by 2"
    )
    expected = sorted(
        (e.asset_key.to_user_string(), e.check_name, e.severity.value)
        for e in pipeline.result.get_asset_check_evaluations()
        if not e.passed
    )
    assert sorted(failed) == expected


_HELP = re.compile(r"^# HELP (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$")
_TYPE = re.compile(r"^# TYPE (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|summary|histogram|untyped)$")
_SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*)\})? (?P<value>\S+)$'
)


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples by (name, labels), checking the text format line by line."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    family = None
    helped: set[str] = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if help_line := _HELP.match(line):
            helped.add(help_line["name"])
            continue
        if type_line := _TYPE.match(line):
            family = type_line["name"]
            assert family in helped, line
            continue
        sample = _SAMPLE.match(line)
        assert sample, f"not a sample line: {line!r}"
        assert family and sample["name"] in {family, f"{family}_sum", f"{family}_count"}, line
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', sample["labels"] or ""))
        key = (sample["name"], labels)
        assert key not in samples, f"duplicate sample {line!r}"
        samples[key] = float(sample["value"])
    return samples


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def test_exposition_reports_the_runs_figures(pipeline: PipelineRun, observed: Path) -> None:
    samples = parse_exposition(exposition(pipeline.settings.warehouse_path))
    job = pipeline.result.dagster_run.job_name
    counts = _table_counts(pipeline)
    assert samples[("dataops_runs_total", _labels(environment="dev", job=job, status="SUCCESS"))] == 1
    record = pipeline.instance.get_run_record_by_id(pipeline.result.run_id)
    assert record is not None and record.start_time and record.end_time
    duration = record.end_time - record.start_time
    assert samples[("dataops_run_duration_seconds_count", _labels(environment="dev", job=job))] == 1
    assert samples[("dataops_run_duration_seconds_sum", _labels(environment="dev", job=job))] == pytest.approx(
        duration, abs=1e-3
    )
    run_labels = _labels(environment="dev", job=job, partition=TINY_MONTH)
    assert samples[("dataops_last_run_success", run_labels)] == 1
    assert samples[("dataops_last_run_end_timestamp_seconds", run_labels)] == pytest.approx(record.end_time, abs=1e-3)
    for asset, rows in counts.items():
        partitioned = pipeline.asset_graph.get(dg.AssetKey.from_user_string(asset)).partitions_def is not None
        labels = {"environment": "dev", "asset": asset, **({"partition": TINY_MONTH} if partitioned else {})}
        assert samples[("dataops_asset_rows", _labels(**labels))] == rows, asset
        assert samples[("dataops_rows_written_total", _labels(environment="dev", asset=asset))] == rows
    staged = _labels(environment="dev", asset="staging/flights", partition=TINY_MONTH)
    assert samples[("dataops_quarantined_rows", staged)] == TINY_QUARANTINED
    assert samples[("dataops_quarantined_rows_total", _labels(environment="dev", asset="staging/flights"))] == 1
    quarantined = {dict(k[1])["asset"] for k in samples if k[0] == "dataops_quarantined_rows"}
    assert quarantined == {"staging/flights", "staging/weather"}  # counted once, where rows are staged
    failed = [e for e in pipeline.result.get_asset_check_evaluations() if not e.passed]
    failed_samples = {k: v for k, v in samples.items() if k[0] == "dataops_failed_checks_total"}
    assert sum(failed_samples.values()) == len(failed) > 0
    for evaluation in failed:
        check_labels = _labels(
            environment="dev",
            asset=evaluation.asset_key.to_user_string(),
            check=evaluation.check_name,
            severity=evaluation.severity.value,
        )
        assert samples[("dataops_failed_checks_total", check_labels)] == 1
    assert samples[("dataops_last_run_failed_checks", run_labels)] == len(failed)


def test_dataops_metrics_prints_or_writes_the_exposition(
    pipeline: PipelineRun, observed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="dataops")
    register(parser.add_subparsers(required=True))
    expected = exposition(pipeline.settings.warehouse_path)

    args = parser.parse_args(["metrics"])
    assert args.handler(pipeline.settings, args) == 0
    assert capsys.readouterr().out == expected

    target = tmp_path / "textfile" / "dataops.prom"
    args = parser.parse_args(["metrics", "--output", str(target)])
    assert args.handler(pipeline.settings, args) == 0
    assert target.read_text() == expected and capsys.readouterr().out == ""
    assert [p.name for p in target.parent.iterdir()] == ["dataops.prom"]


def test_metrics_of_an_empty_environment_are_families_without_samples(tmp_path: Path) -> None:
    text = exposition(tmp_path / "missing.duckdb")
    assert parse_exposition(text) == {}
    assert "# TYPE dataops_runs_total counter" in text


def test_failed_run_and_runner_runs(pipeline: PipelineRun, observed: Path, tmp_path: Path) -> None:
    from dataops_assets.assets.raw import raw_flights
    from dataops_assets.definitions import build_definitions
    from dataops_assets.resources import build_resources

    resource = _resource(pipeline, tmp_path / "events.jsonl")
    failed = dg.materialize(
        [raw_flights],
        resources=build_resources(pipeline.settings),
        partition_key="2013-02",  # nothing landed for February: the blocking file check fails the step
        instance=pipeline.instance,
        raise_on_error=False,
    )
    assert not failed.success
    FAILED(_sensor_context(pipeline, failed, resource))
    [(status, rows, failed_checks, failed_error)] = _query(
        pipeline,
        "select status, rows, failed_checks, failed_error_checks from ops.runs where run_id = ?",
        failed.run_id,
    )
    assert (status, rows, failed_checks, failed_error) == ("FAILURE", 0, 1, 1)
    assert _query(
        pipeline, "select asset, status, rows_written from ops.asset_materializations where run_id = ?", failed.run_id
    ) == [("raw/flights", "failed", None)]

    # a run of `dataops run` is tagged: the sensor leaves it to the runner, which observes it itself
    by_runner = dg.materialize(
        [raw_flights],
        resources=build_resources(pipeline.settings),
        partition_key=TINY_MONTH,
        instance=pipeline.instance,
        tags=RUNNER_TAGS,
    )
    SUCCEEDED(_sensor_context(pipeline, by_runner, resource))
    assert _query(pipeline, "select count(*) from ops.runs where run_id = ?", by_runner.run_id) == [(0,)]
    observation = observe_in_process(
        build_definitions(pipeline.settings), pipeline.settings, pipeline.instance, by_runner.run_id
    )
    assert observation.metrics_recorded and observation.lineage_events == 4  # run START/COMPLETE, asset START/COMPLETE
    assert _query(pipeline, "select rows from ops.runs where run_id = ?", by_runner.run_id) == [
        (len(TINY_ROWS["flights"]),)
    ]
    assert (pipeline.settings.env_dir / "lineage" / "events.jsonl").exists()


def test_a_locked_warehouse_is_waited_for_then_reported(tmp_path: Path) -> None:
    database = tmp_path / "busy.duckdb"
    holder = hold_duckdb_file(database, seconds=1.5)
    try:
        with pytest.raises(WarehouseBusyError, match="stayed locked"):
            with_warehouse(database, lambda c: c.execute("select 1").fetchone(), attempts=2, delay=0.01)
        started = time.monotonic()
        assert with_warehouse(database, lambda c: c.execute("select 42").fetchone(), attempts=60, delay=0.05) == (42,)
        assert time.monotonic() - started > 0.2
    finally:
        holder.wait(timeout=10)


def test_resource_reads_openlineage_variables(pipeline: PipelineRun) -> None:
    unset = build_observability_resource(pipeline.settings, environ={})
    assert unset.config().lineage.url is None
    assert unset.config().lineage.destination == str(pipeline.settings.env_dir / "lineage" / "events.jsonl")
    configured = build_observability_resource(
        pipeline.settings, environ={"OPENLINEAGE_URL": "http://127.0.0.1:5000", "OPENLINEAGE_API_KEY": "secret"}
    )
    assert isinstance(configured.openlineage_url, dg.EnvVar)
    assert configured.openlineage_url.env_var_name == "OPENLINEAGE_URL"
    assert isinstance(configured.openlineage_api_key, dg.EnvVar)
