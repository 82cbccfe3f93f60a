"""Alerting sensors evaluated directly against a Dagster instance on disk where real runs happened.

A toy partitioned asset carries a blocking ERROR check and a WARN check whose outcomes the test chooses; a second
asset can crash its run. Alerts go to a receiver on 127.0.0.1 started by the test.
"""

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from dataops_assets.environments import settings_for
from dataops_assets.observability.alerts import (
    AlertingResource,
    CheckCursor,
    alert_sensors,
    asset_check_alerts,
    build_alerting_resource,
    check_dedup_key,
    run_dedup_key,
    run_failure_alerts,
    run_recovery_alerts,
    scan_check_evaluations,
)
from dataops_assets_tests.fixtures.observability import Receiver, closed_port, receiver, temp_instance

PARTITIONS = dg.StaticPartitionsDefinition(["2013-01", "2013-02"])
PAGERDUTY = "/v2/enqueue"
SLACK = "/services/T000/B000/XXXX"
ENVIRONMENT = "stage"
WEBSERVER = "http://127.0.0.1:3999"
_ALERTS_LOGGER = "dataops_assets.observability.alerts"


class Outcome(dg.ConfigurableResource):
    rules_pass: bool = True
    advisory_passes: bool = True
    crash: bool = False


@dg.asset(
    key=["staging", "toy"],
    partitions_def=PARTITIONS,
    check_specs=[
        dg.AssetCheckSpec("row_rules", asset=["staging", "toy"], blocking=True, partitions_def=PARTITIONS),
        dg.AssetCheckSpec("advisory", asset=["staging", "toy"], partitions_def=PARTITIONS),
    ],
)
def toy(outcome: Outcome) -> Iterator[dg.Output[int] | dg.AssetCheckResult]:
    yield dg.Output(1)
    yield dg.AssetCheckResult(
        check_name="row_rules",
        passed=outcome.rules_pass,
        severity=dg.AssetCheckSeverity.ERROR,
        description="all rows pass" if outcome.rules_pass else "3 of 10 rows broke a row rule",
        metadata={"failed_expectations": [] if outcome.rules_pass else ["dep_time not null"], "rows_quarantined": 3},
    )
    yield dg.AssetCheckResult(
        check_name="advisory",
        passed=outcome.advisory_passes,
        severity=dg.AssetCheckSeverity.WARN,
        description="mean delay within band" if outcome.advisory_passes else "mean delay 41.0 > 30 & rising",
    )


@dg.asset(key=["raw", "fragile"], partitions_def=PARTITIONS)
def fragile(outcome: Outcome) -> int:
    if outcome.crash:
        raise RuntimeError("source system unreachable")
    return 1


REPOSITORY = dg.Definitions(
    assets=[toy, fragile],
    sensors=alert_sensors,
    resources={"alerting": AlertingResource(environment=ENVIRONMENT), "outcome": Outcome()},
).get_repository_def()


def _alerting(sink: Receiver | None, **overrides: object) -> AlertingResource:
    base = sink.url("") if sink else f"http://127.0.0.1:{closed_port()}"
    config: dict[str, object] = {
        "environment": ENVIRONMENT,
        "webserver_url": WEBSERVER,
        "pagerduty_routing_key": "routing-key-123",
        "pagerduty_url": base + PAGERDUTY,
        "slack_webhook_url": base + SLACK,
        "timeout_seconds": 2.0,
        "max_attempts": 3,
        "backoff_seconds": 0.01,
        "max_backoff_seconds": 0.02,
        **overrides,
    }
    return AlertingResource(**config)  # type: ignore[arg-type]


def _materialize(
    instance: dg.DagsterInstance, asset: dg.AssetsDefinition, partition: str, **outcome: bool
) -> dg.ExecuteInProcessResult:
    resources = {"outcome": Outcome(**outcome)}
    return dg.materialize(
        [asset], instance=instance, partition_key=partition, resources=resources, raise_on_error=False
    )


def _check_tick(instance: dg.DagsterInstance, alerting: AlertingResource, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=REPOSITORY, resources={"alerting": alerting}
    )
    result = asset_check_alerts(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _start(instance: dg.DagsterInstance) -> str | None:
    """The cursor of a first tick that alerts nothing already recorded (the instance is shared by the module)."""
    with receiver() as sink:
        cursor = _check_tick(instance, _alerting(sink, first_tick_lookback_seconds=0.0), None).cursor
        assert sink.requests == []
    return cursor


def _run_status_context(
    instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, alerting: AlertingResource
) -> dg.RunStatusSensorContext:
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    event = result.get_run_failure_event() if not result.success else result.get_run_success_event()
    return dg.build_run_status_sensor_context(
        sensor_name="alerts",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=event,
        resources={"alerting": alerting},
        repository_def=REPOSITORY,
    )


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """One instance on disk (run-sharded SQLite, as deployed) for the module; each test starts its own cursor."""
    with temp_instance(tmp_path_factory.mktemp("alerts") / "dagster_home") as instance:
        yield instance


def test_failing_blocking_check_pages_once_and_the_next_pass_resolves(instance: dg.DagsterInstance) -> None:
    with receiver({PAGERDUTY: 202}) as sink:
        alerting = _alerting(sink)
        start = _start(instance)
        failed = _materialize(instance, toy, "2013-01", rules_pass=False)
        assert not failed.success  # the blocking check stopped the run
        first = _check_tick(instance, alerting, start)

        key = check_dedup_key(ENVIRONMENT, "staging/toy", "row_rules", "2013-01")
        assert key == "dataops/stage/check/staging/toy/row_rules/2013-01"
        [page] = sink.at(PAGERDUTY)
        assert page["event_action"] == "trigger"
        assert page["routing_key"] == "routing-key-123"
        assert page["dedup_key"] == key
        payload = page["payload"]
        assert payload["severity"] == "error"
        assert payload["source"] == "dataops-stage"
        assert "row_rules" in payload["summary"] and "2013-01" in payload["summary"]
        assert "3 of 10 rows broke a row rule" in payload["summary"]
        details = payload["custom_details"]
        assert details["partition"] == "2013-01"
        assert details["environment"] == ENVIRONMENT
        assert details["run_url"] == f"{WEBSERVER}/runs/{failed.run_id}"
        assert details["metadata"]["failed_expectations"] == '["dep_time not null"]'
        [message] = sink.at(SLACK)
        text = message["blocks"][0]["text"]["text"]
        assert "ERROR check failed: staging/toy · row_rules" in message["text"]
        assert "*Partition:* 2013-01" in text and f"*Environment:* {ENVIRONMENT}" in text
        assert "3 of 10 rows broke a row rule" in text and "dep_time not null" in text
        assert f"<{WEBSERVER}/runs/{failed.run_id}|" in text
        assert key in CheckCursor.parse(first.cursor).open_pages

        # the run failed only on its blocking check: the run-failure sensor leaves the page to the check alert
        run_failure_alerts(_run_status_context(instance, failed, alerting).for_run_failure())
        # a second tick with the returned cursor sends nothing
        second = _check_tick(instance, alerting, first.cursor)
        assert len(sink.requests) == 2

        passed = _materialize(instance, toy, "2013-01", rules_pass=True)
        assert passed.success
        third = _check_tick(instance, alerting, second.cursor)
        pages = sink.at(PAGERDUTY)
        assert len(pages) == 2
        assert pages[1] == {"routing_key": "routing-key-123", "event_action": "resolve", "dedup_key": key}
        assert "resolved: staging/toy · row_rules" in sink.at(SLACK)[1]["text"]
        assert CheckCursor.parse(third.cursor).open_pages == set()

        # passing again, or passing in another partition, resolves nothing more
        _materialize(instance, toy, "2013-02", rules_pass=True)
        _check_tick(instance, alerting, third.cursor)
        assert len(sink.at(PAGERDUTY)) == 2


def test_failing_warn_check_posts_to_slack_only(instance: dg.DagsterInstance) -> None:
    with receiver({PAGERDUTY: 202}) as sink:
        alerting = _alerting(sink)
        start = _start(instance)
        result = _materialize(instance, toy, "2013-02", advisory_passes=False)
        assert result.success  # a WARN check never fails its run, so no run-failure sensor would fire
        tick = _check_tick(instance, alerting, start)
        assert sink.at(PAGERDUTY) == []
        [message] = sink.at(SLACK)
        assert "WARN check failed: staging/toy · advisory" in message["text"]
        assert "mean delay 41.0 &gt; 30 &amp; rising" in message["blocks"][0]["text"]["text"]  # Slack escapes
        assert CheckCursor.parse(tick.cursor).open_pages == set()
        _check_tick(instance, alerting, tick.cursor)
        assert len(sink.requests) == 1


def test_first_tick_alerts_recent_evaluations_only() -> None:
    instance = dg.DagsterInstance.ephemeral()  # in-memory storage: the same storage API as on disk
    _materialize(instance, toy, "2013-01", advisory_passes=False)
    with receiver({PAGERDUTY: 202}) as sink:
        _check_tick(instance, _alerting(sink, first_tick_lookback_seconds=0.0), None)
        assert sink.requests == []
        _check_tick(instance, _alerting(sink), None)
        assert len(sink.at(SLACK)) == 1


def test_unreachable_destination_is_retried_and_logged(
    instance: dg.DagsterInstance, caplog: pytest.LogCaptureFixture
) -> None:
    alerting = _alerting(None)
    start = _start(instance)
    _materialize(instance, toy, "2013-01", rules_pass=False)
    with caplog.at_level(logging.WARNING):
        tick = _check_tick(instance, alerting, start)
    retries = [record.getMessage() for record in caplog.records if record.name.startswith("urllib3")]
    assert sum(m.startswith("Retrying") and m.endswith(PAGERDUTY) for m in retries) == 2  # 3 attempts in all
    assert sum(m.startswith("Retrying") and m.endswith(SLACK) for m in retries) == 2
    messages = [record.getMessage() for record in caplog.records if record.name == _ALERTS_LOGGER]
    assert any(m.startswith("pagerduty alert NOT delivered (at most 3 attempts): ConnectionError") for m in messages)
    assert any(m.startswith("slack alert NOT delivered (at most 3 attempts): ConnectionError") for m in messages)
    assert "2 NOT delivered" in str(tick.skip_reason)
    # the evaluation is settled: the next tick does not try again
    caplog.clear()
    _check_tick(instance, alerting, tick.cursor)
    assert not caplog.records


def test_a_retryable_status_is_retried_and_a_client_error_is_not(instance: dg.DagsterInstance) -> None:
    start = _start(instance)
    _materialize(instance, toy, "2013-01", rules_pass=False)
    with receiver({PAGERDUTY: 503, SLACK: 400}) as sink:
        tick = _check_tick(instance, _alerting(sink), start)
        assert len(sink.at(PAGERDUTY)) == 3  # max_attempts
        assert len(sink.at(SLACK)) == 1
    assert "0 alert(s) sent, 2 NOT delivered" in str(tick.skip_reason)


def test_run_failure_pages_and_the_next_success_resolves(instance: dg.DagsterInstance) -> None:
    with receiver({PAGERDUTY: 202}) as sink:
        alerting = _alerting(sink)
        crashed = _materialize(instance, fragile, "2013-02", crash=True)
        assert not crashed.success
        run_failure_alerts(_run_status_context(instance, crashed, alerting).for_run_failure())
        key = run_dedup_key(ENVIRONMENT, crashed.dagster_run.job_name, "2013-02")
        [page] = sink.at(PAGERDUTY)
        assert page["event_action"] == "trigger" and page["dedup_key"] == key
        assert "source system unreachable" in page["payload"]["summary"]
        assert page["links"] == [{"href": f"{WEBSERVER}/runs/{crashed.run_id}", "text": "Dagster run"}]
        [message] = sink.at(SLACK)
        assert "run failed" in message["text"]
        assert "RuntimeError: source system unreachable" in message["blocks"][0]["text"]["text"]

        other_partition = _materialize(instance, fragile, "2013-01")
        run_recovery_alerts(_run_status_context(instance, other_partition, alerting))
        assert len(sink.at(PAGERDUTY)) == 1
        recovered = _materialize(instance, fragile, "2013-02")
        run_recovery_alerts(_run_status_context(instance, recovered, alerting))
        assert sink.at(PAGERDUTY)[1] == {"routing_key": "routing-key-123", "event_action": "resolve", "dedup_key": key}
        again = _materialize(instance, fragile, "2013-02")
        run_recovery_alerts(_run_status_context(instance, again, alerting))
        assert len(sink.at(PAGERDUTY)) == 2


def test_destinations_come_from_environment_variables(instance: dg.DagsterInstance) -> None:
    settings = settings_for("prod", data_root=Path("/nonexistent"))
    unset = build_alerting_resource(settings, environ={})
    assert (unset.pagerduty_routing_key, unset.slack_webhook_url) == (None, None)
    assert unset.pagerduty_url == "https://events.pagerduty.com/v2/enqueue"
    assert unset.webserver_url == "http://127.0.0.1:3000"
    assert unset.run_url("abc") == "http://127.0.0.1:3000/runs/abc"

    environ = {
        "DATAOPS_PAGERDUTY_ROUTING_KEY": "k",
        "DATAOPS_PAGERDUTY_URL": "http://127.0.0.1:1/x",
        "DATAOPS_SLACK_WEBHOOK_URL": "http://127.0.0.1:1/y",
        "DAGSTER_WEBSERVER_URL": "http://127.0.0.1:3000/",
    }
    configured = build_alerting_resource(settings, environ=environ)
    assert isinstance(configured.pagerduty_routing_key, dg.EnvVar)
    assert configured.pagerduty_routing_key.env_var_name == "DATAOPS_PAGERDUTY_ROUTING_KEY"
    assert isinstance(configured.slack_webhook_url, dg.EnvVar)

    # unset destinations: the sensors run and send nothing
    start = _start(instance)
    failed = _materialize(instance, toy, "2013-01", rules_pass=False)
    tick = _check_tick(instance, unset, start)
    assert "0 alert(s) sent" in str(tick.skip_reason)
    assert CheckCursor.parse(tick.cursor).open_pages == set()
    run_failure_alerts(_run_status_context(instance, failed, unset).for_run_failure())


class _FakeStorage:
    """The two storage calls the scan makes, over hand-made execution rows (newest first, as storage returns)."""

    def __init__(self, rows: list[SimpleNamespace]) -> None:
        self.rows = rows

    def get_asset_check_execution_history(
        self, key: dg.AssetCheckKey, limit: int, cursor: int | None = None
    ) -> list[SimpleNamespace]:
        rows = sorted((r for r in self.rows if cursor is None or r.id < cursor), key=lambda r: -r.id)
        return rows[:limit]


class _FakeInstance:
    def __init__(self, rows: list[SimpleNamespace], running: set[str]) -> None:
        self.event_log_storage = _FakeStorage(rows)
        self.running = running

    def get_run_record_by_id(self, run_id: str) -> SimpleNamespace:
        return SimpleNamespace(dagster_run=SimpleNamespace(is_finished=run_id not in self.running))


def _row(row_id: int, run_id: str, status: str, passed: bool | None = None) -> SimpleNamespace:
    event = None
    if passed is not None:
        evaluation = dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(["staging", "toy"]), check_name="row_rules", passed=passed, partition=run_id
        )
        event = SimpleNamespace(timestamp=time.time(), dagster_event=SimpleNamespace(event_specific_data=evaluation))
    return SimpleNamespace(
        id=row_id, run_id=run_id, status=SimpleNamespace(value=status), event=event, create_timestamp=time.time()
    )


def test_cursor_alerts_each_evaluation_once_when_runs_interleave() -> None:
    key = dg.AssetCheckKey(dg.AssetKey(["staging", "toy"]), "row_rules")
    rows = [_row(1, "slow", "PLANNED"), _row(2, "fast", "FAILED", passed=False)]
    instance = _FakeInstance(rows, running={"slow"})

    def scan(cursor: CheckCursor) -> tuple[list[str | None], CheckCursor]:
        found, cursor = scan_check_evaluations(instance, [key], cursor, now=time.time(), lookback_seconds=60.0)  # type: ignore[arg-type]
        return [e.run_id for e in found], CheckCursor.parse(cursor.dump())

    found, cursor = scan(CheckCursor())
    assert found == ["fast"]
    assert (cursor.after, cursor.settled) == (0, {2})  # row 1 is still in flight: the cursor waits below it

    found, cursor = scan(cursor)
    assert found == []

    rows[0] = _row(1, "slow", "FAILED", passed=False)
    instance.running.clear()
    rows.append(_row(3, "crashed", "PLANNED"))  # planned, never evaluated, its run is over: settled silently
    found, cursor = scan(cursor)
    assert found == ["slow"]
    assert (cursor.after, cursor.settled) == (3, set())
    assert scan(cursor)[0] == []
