"""Alerting on failed runs and failed asset checks: PagerDuty Events API v2 and Slack incoming webhooks.

Three sensors, all driven by what the instance recorded, so they cover runs launched from the UI, by schedules
and sensors, and in-process runs of ``dataops run`` (all runs of the environment's instance are watched):

- ``asset_check_alerts`` reads asset check evaluations from the instance. A failed non-blocking check does not fail
  its run, so a run-failure sensor never sees it (dagster-io/dagster#22964, #29896). ERROR failures page
  (PagerDuty ``trigger``) and post to Slack; WARN failures post to Slack only; the next passing evaluation of a check
  (asset, check, partition) that paged sends the PagerDuty ``resolve`` with the same dedup key.
- ``run_failure_alerts`` pages and posts for a failed run, unless every failed step failed only because of blocking
  ERROR checks: ``asset_check_alerts`` pages for those with a dedup key it can resolve, so one incident, not two.
- ``run_recovery_alerts`` resolves a run-failure page when the next run of the same job and partition succeeds.

Why the check sensor does not read ``instance.get_event_records(EventRecordsFilter(ASSET_CHECK_EVALUATION, ...))``:
on the default run-sharded SQLite storage that call refuses an integer cursor and returns run-local storage ids
(verified on dagster 1.13.27). The asset check execution table lives in the cross-run index on every storage
(SQLite, Postgres), so the sensor pages through ``event_log_storage.get_asset_check_execution_history`` for each
check of the code location. Its row ids are assigned when a check is *planned*, so the cursor keeps the oldest row
whose run is still in flight (``after``) plus the rows above it already handled (``settled``): each evaluation is
alerted exactly once however runs interleave. The cursor also keeps the dedup keys of open pages, so a resolve
goes out only for a check that paged.

Destinations come from environment variables, read through ``dg.EnvVar`` when the Definitions load
(``DATAOPS_PAGERDUTY_ROUTING_KEY``, ``DATAOPS_PAGERDUTY_URL``, ``DATAOPS_SLACK_WEBHOOK_URL``,
``DAGSTER_WEBSERVER_URL``); an unset destination sends nothing. Delivery is ``requests`` with urllib3's ``Retry``:
a destination that does not answer, or answers 408/425/429/5xx, is retried with bounded exponential backoff, then
the failure is logged and the sensor goes on: an alert that could not be delivered is not retried on a later tick
(the cursor has moved), it is in the sensor's tick log.
"""

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from dataops_assets.environments import Settings
from dataops_assets.observability.runlog import RunDigest, StepError, digest_run
from dataops_assets.partitions import PARTITION_TAG
from dataops_assets.quality.verdict import CheckVerdict

ROUTING_KEY_VAR = "DATAOPS_PAGERDUTY_ROUTING_KEY"
PAGERDUTY_URL_VAR = "DATAOPS_PAGERDUTY_URL"
SLACK_WEBHOOK_VAR = "DATAOPS_SLACK_WEBHOOK_URL"
WEBSERVER_URL_VAR = "DAGSTER_WEBSERVER_URL"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_WEBSERVER_URL = "http://127.0.0.1:3000"

CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"
_NO_PARTITION = "-"
_SUMMARY_LIMIT = 1024  # PagerDuty's limit for payload.summary
_SLACK_SECTION_LIMIT = 2900  # Slack allows 3,000 characters in a section
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}

logger = logging.getLogger(__name__)


class AlertingResource(dg.ConfigurableResource):
    """Where alerts go and how hard to try; empty destinations are switched off."""

    environment: str
    webserver_url: str = DEFAULT_WEBSERVER_URL
    pagerduty_routing_key: str | None = None
    pagerduty_url: str = PAGERDUTY_EVENTS_URL
    slack_webhook_url: str | None = None
    timeout_seconds: float = 5.0
    max_attempts: int = 4
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 8.0
    first_tick_lookback_seconds: float = 24 * 3600.0

    def run_url(self, run_id: str) -> str:
        return f"{self.webserver_url.rstrip('/')}/runs/{run_id}"

    def sender(self, log: Any = None) -> "AlertSender":
        return AlertSender(self, log=log)


def build_alerting_resource(settings: Settings, environ: Mapping[str, str] | None = None) -> AlertingResource:
    """The alerting resource of an environment; a destination is configured only when its variable is set.

    ``dg.EnvVar`` keeps the secret out of the Definitions (the UI shows the variable's name) and resolves it when
    the sensor runs; a variable that is unset when the Definitions load leaves its destination off.
    """
    env = os.environ if environ is None else environ

    def var(name: str) -> str | None:
        return dg.EnvVar(name) if env.get(name) else None

    return AlertingResource(
        environment=settings.name,
        webserver_url=var(WEBSERVER_URL_VAR) or DEFAULT_WEBSERVER_URL,
        pagerduty_routing_key=var(ROUTING_KEY_VAR),
        pagerduty_url=var(PAGERDUTY_URL_VAR) or PAGERDUTY_EVENTS_URL,
        slack_webhook_url=var(SLACK_WEBHOOK_VAR),
    )


# ---------------------------------------------------------------------------------------------------------------
# Delivery


@dataclass(frozen=True)
class Delivery:
    destination: str
    delivered: bool
    error: str | None = None


def _session(config: AlertingResource) -> requests.Session:
    """A session whose every request is retried (connection errors and retryable statuses) with backoff."""
    retry = Retry(
        total=max(1, config.max_attempts) - 1,
        backoff_factor=config.backoff_seconds,
        backoff_max=config.max_backoff_seconds,
        status_forcelist=_RETRYABLE_STATUS,
        allowed_methods=None,  # POST too: PagerDuty deduplicates on the dedup key
        respect_retry_after_header=False,  # keep the wait bounded: a sensor tick has a time limit
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class AlertSender:
    """Posts JSON to the destinations of one sensor tick, with retries; never raises.

    A destination that is still down after its retries is skipped for the rest of the tick, so a tick with many
    alerts and a dead destination stays within the sensor's time limit.
    """

    def __init__(self, config: AlertingResource, log: Any = None):
        self.config = config
        self.log = log
        self.deliveries: list[Delivery] = []
        self._down: set[str] = set()

    @property
    def pages(self) -> bool:
        return bool(self.config.pagerduty_routing_key)

    @property
    def posts(self) -> bool:
        return bool(self.config.slack_webhook_url)

    def trigger(
        self, dedup_key: str, summary: str, *, severity: str, component: str, kind: str, details: dict[str, Any]
    ) -> bool:
        """PagerDuty ``trigger``; nothing is sent (and False returned) when no routing key is configured."""
        if not self.pages:
            return False
        run_url = details.get("run_url")
        body: dict[str, Any] = {
            "routing_key": self.config.pagerduty_routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "payload": {
                "summary": summary[:_SUMMARY_LIMIT],
                "severity": severity,
                "source": f"dataops-{self.config.environment}",
                "component": component,
                "group": self.config.environment,
                "class": kind,
                "custom_details": details,
            },
            "client": "dataops (Dagster)",
        }
        if run_url:
            body["client_url"] = run_url
            body["links"] = [{"href": run_url, "text": "Dagster run"}]
        return self._post("pagerduty", self.config.pagerduty_url, body)

    def resolve(self, dedup_key: str) -> bool:
        if not self.pages:
            return False
        body = {"routing_key": self.config.pagerduty_routing_key, "event_action": "resolve", "dedup_key": dedup_key}
        return self._post("pagerduty", self.config.pagerduty_url, body)

    def slack(self, title: str, lines: Sequence[str]) -> bool:
        if not self.config.slack_webhook_url:
            return False
        text = "\n".join([f"*{title}*", *lines])
        if len(text) > _SLACK_SECTION_LIMIT:
            text = text[: _SLACK_SECTION_LIMIT - 1] + "…"
        body = {"text": title, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
        return self._post("slack", self.config.slack_webhook_url, body)

    def _post(self, destination: str, url: str, body: Mapping[str, Any]) -> bool:
        if destination in self._down:
            self._warn(f"{destination} alert not sent: the destination was unreachable earlier in this tick")
            self.deliveries.append(Delivery(destination, False, "skipped: destination down"))
            return False
        error = _post_with_retries(self.config, url, body)
        if error is None:
            self.deliveries.append(Delivery(destination, True))
            return True
        self._down.add(destination)
        self.deliveries.append(Delivery(destination, False, error))
        self._warn(f"{destination} alert NOT delivered (at most {self.config.max_attempts} attempts): {error}")
        return False

    def _warn(self, message: str) -> None:
        logger.warning(message)
        if self.log is not None:
            self.log.warning(message)


def _post_with_retries(config: AlertingResource, url: str, body: Mapping[str, Any]) -> str | None:
    """POST the JSON body, retried as the session says; None on a 2xx answer, else what went wrong."""
    try:
        with _session(config) as session:
            response = session.post(url, json=body, timeout=config.timeout_seconds)
    except requests.RequestException as error:  # refused, reset, timeout, DNS, retries exhausted
        return f"{type(error).__name__}: {error}"
    if response.ok:
        return None
    return f"HTTP {response.status_code} {response.text[:200]}".strip()


# ---------------------------------------------------------------------------------------------------------------
# Asset check evaluations


def check_dedup_key(environment: str, asset: str, check: str, partition: str | None) -> str:
    """Stable over (asset, check, partition) within an environment: a re-failure updates the same incident."""
    return f"dataops/{environment}/check/{asset}/{check}/{partition or _NO_PARTITION}"


def run_dedup_key(environment: str, job: str, partition: str | None) -> str:
    return f"dataops/{environment}/run/{job}/{partition or _NO_PARTITION}"


def _first_line(text: str | None, default: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else default


def _mrkdwn(text: str) -> str:
    """Text for a Slack message: ``&``, ``<`` and ``>`` are control characters there (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _failed_first(metadata: Mapping[str, str]) -> list[tuple[str, str]]:
    """Metadata with the failed expectations (keys naming failures or unexpected values) first."""
    return sorted(metadata.items(), key=lambda item: not any(w in item[0] for w in ("fail", "unexpected")))


def notify_check(sender: AlertSender, evaluation: CheckVerdict, open_pages: set[str]) -> None:
    """Alert for one evaluation (of run ``evaluation.run_id``): ERROR failure pages and posts, WARN posts, a pass
    resolves an open page."""
    config = sender.config
    key = check_dedup_key(config.environment, evaluation.asset, evaluation.check, evaluation.partition)
    run_id = evaluation.run_id or ""
    run_url = config.run_url(run_id)
    where = f"{evaluation.asset} · {evaluation.check}"
    partition = evaluation.partition or "(none)"
    if evaluation.passed:
        if key in open_pages:
            sender.resolve(key)
            open_pages.discard(key)
            sender.slack(
                f":white_check_mark: [{config.environment}] resolved: {where}",
                [f"*Partition:* {partition}", f"Passed again in <{run_url}|run {run_id[:8]}>"],
            )
        return
    error = evaluation.severity == dg.AssetCheckSeverity.ERROR.value
    details = {
        "environment": config.environment,
        "asset": evaluation.asset,
        "check": evaluation.check,
        "partition": evaluation.partition,
        "severity": evaluation.severity,
        "description": evaluation.description,
        "run_id": run_id,
        "run_url": run_url,
        "metadata": dict(evaluation.metadata),
    }
    if error:
        summary = f"[{config.environment}] check {evaluation.check} failed on {evaluation.asset}"
        if evaluation.partition:
            summary += f" partition {evaluation.partition}"
        if evaluation.description:
            summary += f": {_first_line(evaluation.description, '')}"
        sender.trigger(key, summary, severity="error", component=evaluation.asset, kind="asset_check", details=details)
        if sender.pages:
            open_pages.add(key)
    icon = ":rotating_light:" if error else ":warning:"
    lines = [
        f"*Environment:* {config.environment}   *Partition:* {partition}   *Severity:* {evaluation.severity}",
        f"*What failed:* {_mrkdwn(evaluation.description) or '(no description)'}",
        *(f"• `{_mrkdwn(name)}`: {_mrkdwn(text)}" for name, text in _failed_first(evaluation.metadata)[:12]),
        f"<{run_url}|Open run {run_id[:8]} in Dagster>",
    ]
    sender.slack(f"{icon} [{config.environment}] {evaluation.severity} check failed: {where}", lines)


@dataclass
class CheckCursor:
    """Rows of the check execution table up to ``after`` are settled; ``settled`` lists those above it."""

    after: int = -1
    settled: set[int] = field(default_factory=set)
    open_pages: set[str] = field(default_factory=set)
    fresh: bool = True

    @classmethod
    def parse(cls, text: str | None) -> "CheckCursor":
        if not text:
            return cls()
        data = json.loads(text)
        return cls(int(data["after"]), set(data.get("settled", [])), set(data.get("open", [])), fresh=False)

    def dump(self) -> str:
        return json.dumps(
            {"after": self.after, "settled": sorted(self.settled), "open": sorted(self.open_pages)}, sort_keys=True
        )


@dataclass(frozen=True)
class _Row:
    id: int
    run_id: str
    completed: bool
    timestamp: float
    evaluation: dg.AssetCheckEvaluation | None


def scan_check_evaluations(
    instance: dg.DagsterInstance,
    check_keys: Iterable[dg.AssetCheckKey],
    cursor: CheckCursor,
    *,
    now: float,
    lookback_seconds: float,
    page_size: int = 25,
) -> tuple[list[CheckVerdict], CheckCursor]:
    """The evaluations recorded since ``cursor``, oldest first, and the cursor past them.

    On the first tick (no cursor) only evaluations newer than ``lookback_seconds`` are returned, so turning the
    sensor on over a long history does not page for old failures.
    """
    oldest = now - lookback_seconds if cursor.fresh else None
    rows = [row for key in check_keys for row in _rows_after(instance, key, cursor.after, oldest, page_size)]
    finished: dict[str, bool] = {}
    pending: list[int] = []
    evaluations: list[CheckVerdict] = []
    settled = set(cursor.settled)
    for row in sorted(rows, key=lambda r: r.id):
        if row.id in settled:
            continue
        if not row.completed:
            if row.run_id not in finished:
                record = instance.get_run_record_by_id(row.run_id)
                finished[row.run_id] = record is None or record.dagster_run.is_finished
            if not finished[row.run_id]:
                pending.append(row.id)
                continue
            # planned but never evaluated (the step errored or was skipped): the run-failure alert covers it
        elif row.evaluation is not None and (oldest is None or row.timestamp >= oldest):
            evaluations.append(CheckVerdict.from_dagster(row.evaluation, row.run_id))
        settled.add(row.id)
    after = min(pending) - 1 if pending else max([cursor.after, *(row.id for row in rows)])
    new_cursor = CheckCursor(after, {i for i in settled if i > after}, set(cursor.open_pages), fresh=False)
    return evaluations, new_cursor


def _rows_after(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey, after: int, oldest: float | None, page_size: int
) -> list[_Row]:
    rows: list[_Row] = []
    before: int | None = None
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(key, limit=page_size, cursor=before)
        for record in page:
            if record.id <= after:
                return rows
            if oldest is not None and record.create_timestamp < oldest:
                # first tick: older rows are history; this one marks how far the cursor may move
                rows.append(_Row(record.id, record.run_id, True, record.create_timestamp, None))
                return rows
            event = record.event
            data = event.dagster_event.event_specific_data if event and event.dagster_event else None
            evaluation = data if isinstance(data, dg.AssetCheckEvaluation) else None
            completed = record.status.value in {"SUCCEEDED", "FAILED"}
            rows.append(_Row(record.id, record.run_id, completed, event.timestamp if event else 0.0, evaluation))
        if len(page) < page_size:
            return rows
        before = page[-1].id


def _check_keys(context: dg.SensorEvaluationContext) -> list[dg.AssetCheckKey]:
    repository = context.repository_def
    if repository is None:
        return []
    return sorted(repository.asset_graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name))


@dg.sensor(
    name="asset_check_alerts",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Pages (PagerDuty) and posts (Slack) for failed ERROR checks, posts for failed WARN checks, and "
    "resolves the page when the check passes again; each evaluation is alerted once (cursor).",
)
def asset_check_alerts(context: dg.SensorEvaluationContext, alerting: AlertingResource) -> dg.SensorResult:
    cursor = CheckCursor.parse(context.cursor)
    evaluations, cursor = scan_check_evaluations(
        context.instance,
        _check_keys(context),
        cursor,
        now=time.time(),
        lookback_seconds=alerting.first_tick_lookback_seconds,
    )
    sender = alerting.sender(context.log)
    for evaluation in evaluations:
        notify_check(sender, evaluation, cursor.open_pages)
    failed = sum(not e.passed for e in evaluations)
    sent = sum(d.delivered for d in sender.deliveries)
    lost = len(sender.deliveries) - sent
    return dg.SensorResult(
        cursor=cursor.dump(),
        skip_reason=f"{len(evaluations)} new check evaluation(s), {failed} failed; {sent} alert(s) sent"
        + (f", {lost} NOT delivered (see the tick log)" if lost else ""),
    )


# ---------------------------------------------------------------------------------------------------------------
# Runs


def failed_only_on_checks(step_errors: Iterable[StepError]) -> bool:
    """True when every failed step failed because of blocking ERROR checks (their alerts come from the checks)."""
    errors = list(step_errors)
    return bool(errors) and all(error.cls_name == CHECK_FAILED_ERROR for error in errors)


def _step_error_lines(digest: RunDigest) -> list[str]:
    return [
        f"{step}: {error.cls_name or 'Error'}: {_first_line(error.message, 'unknown error')}"
        for step, error in digest.step_errors.items()
    ]


def notify_run_failure(sender: AlertSender, digest: RunDigest) -> bool:
    """Page and post for a failed run; returns False when the failure is left to the check alerts."""
    config = sender.config
    if failed_only_on_checks(digest.step_errors.values()):
        return False
    job, partition, message = digest.job_name, digest.partition, digest.failure_message or ""
    run_url = config.run_url(digest.run_id)
    errors = _step_error_lines(digest)
    summary = f"[{config.environment}] run of {job}" + (f" partition {partition}" if partition else "")
    summary += f" failed: {errors[0] if errors else _first_line(message, 'run failure')}"
    details = {
        "environment": config.environment,
        "job": job,
        "partition": partition,
        "run_id": digest.run_id,
        "run_url": run_url,
        "message": message,
        "failed_steps": errors,
    }
    key = run_dedup_key(config.environment, job, partition)
    sender.trigger(key, summary, severity="error", component=job, kind="run_failure", details=details)
    lines = [
        f"*Environment:* {config.environment}   *Partition:* {partition or '(none)'}",
        f"*Message:* {_mrkdwn(_first_line(message, '(none)'))}",
        *(f"• {_mrkdwn(line)}" for line in errors[:10]),
        f"<{run_url}|Open run {digest.run_id[:8]} in Dagster>",
    ]
    sender.slack(f":rotating_light: [{config.environment}] run failed: {job}", lines)
    return True


@dg.run_failure_sensor(
    name="run_failure_alerts",
    monitor_all_code_locations=True,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Pages (PagerDuty) and posts (Slack) when a run of this environment fails, unless it failed only on "
    "blocking checks, which asset_check_alerts pages for.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, alerting: AlertingResource) -> None:
    run_id = context.dagster_run.run_id
    if not notify_run_failure(alerting.sender(context.log), digest_run(context.instance, run_id)):
        context.log.info(f"run {run_id} failed only on blocking checks; asset_check_alerts alerts for them")


def previous_finished_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun | None:
    """The latest finished run of the same job and partition created before ``run``."""
    partition = run.tags.get(PARTITION_TAG)
    filters = dg.RunsFilter(job_name=run.job_name, tags={PARTITION_TAG: partition} if partition else None)
    records = instance.get_run_records(filters=filters, limit=20)  # newest first
    mine = next((r for r in records if r.dagster_run.run_id == run.run_id), None)
    mine = mine or instance.get_run_record_by_id(run.run_id)
    for record in records:
        candidate = record.dagster_run
        if candidate.run_id == run.run_id or not candidate.is_finished:
            continue
        if partition is None and PARTITION_TAG in candidate.tags:
            continue
        if mine is None or record.create_timestamp < mine.create_timestamp:
            return candidate
    return None


def notify_run_recovery(sender: AlertSender, instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Resolve the run-failure page of the job and partition when the run before this success had paged."""
    previous = previous_finished_run(instance, run)
    if previous is None or previous.status != dg.DagsterRunStatus.FAILURE:
        return False
    if failed_only_on_checks(digest_run(instance, previous.run_id).step_errors.values()):
        return False
    partition = run.tags.get(PARTITION_TAG)
    sender.resolve(run_dedup_key(sender.config.environment, run.job_name, partition))
    return True


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="run_recovery_alerts",
    monitor_all_code_locations=True,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Resolves the PagerDuty incident of a failed run when the next run of its job and partition succeeds.",
)
def run_recovery_alerts(context: dg.RunStatusSensorContext, alerting: AlertingResource) -> None:
    notify_run_recovery(alerting.sender(context.log), context.instance, context.dagster_run)


alert_sensors: list[dg.SensorDefinition] = [asset_check_alerts, run_failure_alerts, run_recovery_alerts]
