"""OpenLineage events of a real materialization of the whole pipeline (one tiny month), by file and by HTTP."""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dataops_assets.observability import lineage
from dataops_assets.observability.runlog import digest_run
from dataops_assets.storage import PARTITION_COLUMN
from dataops_assets_tests.fixtures.lineage_schema import openlineage_errors
from dataops_assets_tests.fixtures.observability import (
    TINY_MONTH,
    TINY_ROWS,
    PipelineRun,
    closed_port,
    pipeline_run,
    receiver,
)
from dataops_assets_tests.fixtures.openlineage_spec import SPEC_DIR_ENV, SpecChecker, load_spec
from dataops_assets_tests.fixtures.pipeline import warehouse

NAMESPACE = "dataops-dev"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    run = pipeline_run(tmp_path_factory)
    assert run.result.success
    return run


@pytest.fixture(scope="module")
def emitted(pipeline: PipelineRun) -> list[dict[str, Any]]:
    """The run's events written by the default (file) transport and read back."""
    digest = digest_run(pipeline.instance, pipeline.result.run_id)
    config = lineage.LineageConfig(environment="dev", file=lineage.lineage_file(pipeline.settings.env_dir))
    assert config.file == pipeline.settings.env_dir / "lineage" / "events.jsonl"
    events = lineage.run_events(digest, lineage.asset_catalog(pipeline.asset_graph), "dev")
    assert lineage.emit(events, config) == len(events)
    return [json.loads(line) for line in config.file.read_text().splitlines()]


@pytest.fixture(scope="module")
def failed_run(pipeline: PipelineRun) -> tuple[dg.ExecuteInProcessResult, list[dict[str, Any]]]:
    """A month that fails (February has no landing files), and its events as JSON."""
    result = _materialize_month(pipeline, "2013-02")
    digest = digest_run(pipeline.instance, result.run_id)
    catalog = lineage.asset_catalog(pipeline.asset_graph)
    return result, [json.loads(lineage.to_json(event)) for event in lineage.run_events(digest, catalog, "dev")]


def _graph_edges(asset_graph: Any) -> set[tuple[str, str]]:
    return {
        (lineage.dataset_name(parent), lineage.dataset_name(key))
        for key in asset_graph.get_all_asset_keys()
        for parent in asset_graph.get(key).parent_keys
    }


def _by_job(events: list[dict[str, Any]], job: str) -> list[dict[str, Any]]:
    return [event for event in events if event["job"]["name"] == job]


def test_every_event_validates_against_the_schema(emitted: list[dict[str, Any]]) -> None:
    assert emitted
    for event in emitted:
        assert openlineage_errors(event) == [], event["job"]["name"]
    # the validator does reject what the spec forbids
    broken = copy.deepcopy(emitted[1])
    broken["run"]["runId"] = "not-a-uuid"
    broken["eventTime"] = "2013-01-01"
    del broken["job"]["facets"]["jobType"]["_producer"]
    errors = openlineage_errors(broken)
    assert len(errors) == 3, errors


def _complete(events: list[dict[str, Any]], job: str) -> dict[str, Any]:
    [event] = [e for e in events if e["job"]["name"] == job and e["eventType"] == "COMPLETE"]
    return copy.deepcopy(event)


def _parent(event: dict[str, Any], path: str) -> tuple[Any, str]:
    """The object holding the last key of a ``/``-separated path, and that key."""
    *keys, leaf = path.split("/")
    holder: Any = event
    for key in keys:
        holder = holder[int(key)] if key.isdigit() else holder[key]
    return holder, leaf


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(event: dict[str, Any]) -> None:
        holder, leaf = _parent(event, path)
        del holder[leaf]

    return edit


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(event: dict[str, Any]) -> None:
        holder, leaf = _parent(event, path)
        holder[leaf] = value

    return edit


# each rule of the official spec that the derived schema enforces, broken once (the path names the offender)
SPEC_RULES = {
    "eventType outside the enum": (_set("eventType", "DONE"), "eventType"),
    "schemaURL required": (_drop("schemaURL"), "(event)"),
    "producer is a URI": (_set("producer", "not a uri"), "producer"),
    "facet _schemaURL required": (_drop("run/facets/processing_engine/_schemaURL"), "run/facets/processing_engine"),
    "facet _producer is a URI": (_set("job/facets/jobType/_producer", "x"), "job/facets/jobType/_producer"),
    "jobType needs integration": (_drop("job/facets/jobType/integration"), "job/facets/jobType"),
    "outputStatistics needs rowCount": (
        _drop("outputs/0/outputFacets/outputStatistics/rowCount"),
        "outputs/0/outputFacets/outputStatistics",
    ),
    "schema fields need a name": (_drop("outputs/0/facets/schema/fields/0/name"), "outputs/0/facets/schema/fields/0"),
    "assertions need success": (
        _drop("outputs/0/facets/dataQualityAssertions/assertions/0/success"),
        "outputs/0/facets/dataQualityAssertions/assertions/0",
    ),
    "parent run id is a UUID": (_set("run/facets/parent/run/runId", "run-1"), "run/facets/parent/run/runId"),
    "nominalStartTime is a date-time": (
        _set("run/facets/nominalTime/nominalStartTime", "2013-01"),
        "run/facets/nominalTime/nominalStartTime",
    ),
    "tags need a value": (_drop("run/facets/tags/tags/0/value"), "run/facets/tags/tags/0"),
}


@pytest.mark.parametrize("rule", list(SPEC_RULES))
def test_the_derived_schema_rejects_what_the_official_spec_forbids(emitted: list[dict[str, Any]], rule: str) -> None:
    edit, offender = SPEC_RULES[rule]
    event = _complete(emitted, "staging.flights")  # carries every facet kind but the error message
    assert openlineage_errors(event) == []
    edit(event)
    errors = openlineage_errors(event)
    assert errors and all(error.startswith(f"{offender}: ") for error in errors), errors


def test_every_event_validates_against_the_official_openlineage_spec(
    emitted: list[dict[str, Any]], failed_run: tuple[dg.ExecuteInProcessResult, list[dict[str, Any]]]
) -> None:
    folder = os.environ.get(SPEC_DIR_ENV)
    if not folder:
        pytest.skip(
            f"official OpenLineage schema not checked: set {SPEC_DIR_ENV} to a copy of the spec/ folder of the "
            "OpenLineage repository (OpenLineage.json and facets/*.json); GitHub CI sets it"
        )
    checker = SpecChecker(load_spec(Path(folder)))
    events = emitted + failed_run[1]  # a successful run, and a failed one (errorMessage facets)
    report = checker.check(events)
    print(report.summary())  # shown with -rP: the counts and the $id of every schema used
    assert report.problems == [], "\n".join(report.problems[:40])
    assert report.events == len(events) and report.facets > 0
    # the check does reject what the official spec forbids: in the core schema and in a facet's own schema
    broken = _complete(emitted, "staging.flights")
    broken["run"]["runId"] = "not-a-uuid"
    del broken["job"]["facets"]["jobType"]["integration"]
    problems = checker.check([broken]).problems
    assert len(problems) == 2, problems
    assert any("'integration' is a required property" in problem for problem in problems), problems


def test_inputs_and_outputs_reproduce_the_asset_graph(pipeline: PipelineRun, emitted: list[dict[str, Any]]) -> None:
    assets = {lineage.dataset_name(key) for key in pipeline.asset_graph.get_all_asset_keys()}
    completes = [e for e in emitted if e["eventType"] == "COMPLETE" and e["job"]["name"] in assets]
    assert {e["job"]["name"] for e in completes} == assets
    edges = set()
    for event in completes:
        [output] = event["outputs"]
        assert (output["namespace"], output["name"]) == (NAMESPACE, event["job"]["name"])
        edges |= {(i["name"], output["name"]) for i in event["inputs"] if i["namespace"] == NAMESPACE}
    assert edges == _graph_edges(pipeline.asset_graph)
    assert ("staging.flights", "core.flights") in edges and ("raw.flights", "quarantine.quarantined_flights") in edges
    # the raw layer also names the landing file it read
    [raw_flights] = [e for e in completes if e["job"]["name"] == "raw.flights"]
    [source] = [i for i in raw_flights["inputs"] if i["namespace"] == "file"]
    assert source["name"] == str((pipeline.settings.landing_dir / "flights" / f"{TINY_MONTH}.csv").resolve())


def test_each_asset_run_starts_completes_and_names_its_parent(
    pipeline: PipelineRun, emitted: list[dict[str, Any]]
) -> None:
    run_id = pipeline.result.run_id
    job_name = pipeline.result.dagster_run.job_name
    parent_events = _by_job(emitted, job_name)
    assert [e["eventType"] for e in parent_events] == ["START", "COMPLETE"]
    assert {e["run"]["runId"] for e in parent_events} == {run_id}
    assert emitted[0] == parent_events[0] and emitted[-1] == parent_events[1]
    for key in pipeline.asset_graph.get_all_asset_keys():
        events = _by_job(emitted, lineage.dataset_name(key))
        assert [e["eventType"] for e in events] == ["START", "COMPLETE"], key
        assert events[0]["run"]["runId"] == events[1]["run"]["runId"] != run_id
        assert events[0]["eventTime"] <= events[1]["eventTime"]
        parent = events[1]["run"]["facets"]["parent"]
        assert parent["run"]["runId"] == run_id
        assert parent["job"] == {"namespace": NAMESPACE, "name": job_name, "facets": {}}
        assert events[1]["job"]["facets"]["jobType"]["jobType"] == "ASSET"
    core = _by_job(emitted, "core.flights")[1]
    assert core["run"]["facets"]["nominalTime"]["nominalStartTime"] == "2013-01-01T00:00:00+00:00"
    assert {"key": "partition", "value": TINY_MONTH, "source": "DAGSTER"} in core["run"]["facets"]["tags"]["tags"]


def test_outputs_carry_schema_row_count_and_check_results(pipeline: PipelineRun, emitted: list[dict[str, Any]]) -> None:
    completes = {e["job"]["name"]: e for e in emitted if e["eventType"] == "COMPLETE"}
    with warehouse(pipeline.settings) as connection:
        for name in (
            "raw.flights",
            "staging.flights",
            "quarantine.quarantined_flights",
            "core.flights",
            "marts.route_monthly",
        ):
            [output] = completes[name]["outputs"]
            described = connection.execute(f"select column_name from (describe {name})").fetchall()
            fields = [f["name"] for f in output["facets"]["schema"]["fields"]]
            assert fields == [column for (column,) in described if column != PARTITION_COLUMN], name
            assert all(f["type"] for f in output["facets"]["schema"]["fields"]), name
            rows = connection.execute(f"select count(*) from {name}").fetchone()
            assert rows is not None
            assert output["outputFacets"]["outputStatistics"]["rowCount"] == rows[0], name
    assert completes["raw.flights"]["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == len(
        TINY_ROWS["flights"]
    )
    staged = completes["staging.flights"]["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    assert sorted((a["assertion"], a["success"], a["severity"]) for a in staged) == [
        ("every_day_has_flights", True, "error"),
        ("gx_suite", True, "error"),
        ("quarantine_share", True, "error"),
        ("volume_within_history", True, "error"),
    ]
    core = completes["core.flights"]["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    evaluations = [
        e for e in pipeline.result.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(["core", "flights"])
    ]
    assert sorted((a["assertion"], a["success"]) for a in core) == sorted((e.check_name, e.passed) for e in evaluations)


def test_a_failed_step_emits_fail_with_the_error_and_skipped_assets_emit_nothing(
    failed_run: tuple[dg.ExecuteInProcessResult, list[dict[str, Any]]],
) -> None:
    # February has no landing files: raw flights fails its blocking check, staging never runs
    result, events = failed_run
    assert not result.success
    for event in events:
        assert openlineage_errors(event) == []
    raw = _by_job(events, "raw.flights")
    assert [e["eventType"] for e in raw] == ["START", "FAIL"]
    error = raw[1]["run"]["facets"]["errorMessage"]
    assert "landed_file_readable" in error["message"] and error["programmingLanguage"] == "python"
    assert raw[1]["outputs"][0]["facets"]["dataQualityAssertions"]["assertions"][0]["success"] is False
    assert _by_job(events, "staging.flights") == [] and _by_job(events, "quarantine.quarantined_flights") == []
    assert [e["eventType"] for e in _by_job(events, result.dagster_run.job_name)] == ["START", "FAIL"]


def _materialize_month(pipeline: PipelineRun, month: str) -> dg.ExecuteInProcessResult:
    """Raw flights and its staging step only (a failing month needs no more to show FAIL and a skipped step)."""
    from dataops_assets.assets.raw import raw_flights
    from dataops_assets.assets.staging import stage_flights_asset
    from dataops_assets.resources import build_resources

    return dg.materialize(
        [raw_flights, stage_flights_asset],
        resources=build_resources(pipeline.settings),
        partition_key=month,
        instance=pipeline.instance,
        raise_on_error=False,
    )


def test_http_transport_posts_each_event_to_the_lineage_endpoint(
    pipeline: PipelineRun, emitted: list[dict[str, Any]], tmp_path: Path
) -> None:
    digest = digest_run(pipeline.instance, pipeline.result.run_id)
    events = lineage.run_events(digest, lineage.asset_catalog(pipeline.asset_graph), "dev")
    with receiver() as marquez:
        config = lineage.LineageConfig(environment="dev", file=tmp_path / "unused.jsonl", url=marquez.url(""))
        assert config.destination == marquez.url("/api/v1/lineage")
        assert lineage.emit(events, config) == len(events)
    assert {request.path for request in marquez.requests} == {"/api/v1/lineage"}
    assert [request.body for request in marquez.requests] == emitted  # the same events as the file holds
    assert not (tmp_path / "unused.jsonl").exists()


def test_an_unreachable_lineage_server_is_logged_not_raised(
    pipeline: PipelineRun, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    digest = digest_run(pipeline.instance, pipeline.result.run_id)
    events = lineage.run_events(digest, lineage.asset_catalog(pipeline.asset_graph), "dev")
    url = f"http://127.0.0.1:{closed_port()}"
    config = lineage.LineageConfig(environment="dev", file=tmp_path / "x.jsonl", url=url, retries=1, backoff_factor=0)
    with caplog.at_level(logging.WARNING, logger="dataops_assets.observability.lineage"):
        assert lineage.emit(events, config) == 0
    [message] = [r.getMessage() for r in caplog.records if r.name == "dataops_assets.observability.lineage"]
    assert f"0 of {len(events)} event(s) sent to {url}/api/v1/lineage" in message


def test_the_run_digest_times_every_step_and_tells_check_steps_apart(pipeline: PipelineRun) -> None:
    """What ``make bench`` reports as the checks' share of the step time."""
    digest = digest_run(pipeline.instance, pipeline.result.run_id)
    executed = {event.step_key for event in pipeline.result.all_events if event.is_step_success}
    assert set(digest.step_seconds) == executed
    assert all(seconds >= 0 for seconds in digest.step_seconds.values())
    assert "staging__flights_gx_suite" in digest.check_steps
    assert "core__flights_gx_suite" in digest.check_steps
    materializing = {asset.step_key for asset in digest.assets if asset.materialized is not None}
    assert materializing and not materializing & digest.check_steps
