"""The environment's webserver on 127.0.0.1, through Dagster's GraphQL client (``dagster_graphql``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError, ReloadRepositoryLocationStatus
from gql.transport.exceptions import TransportConnectionFailed

from dataops_assets.quality.verdict import CheckVerdict
from dataops_ops.deploy.errors import GateTimeoutError, LocationLoadError, WebserverError

T = TypeVar("T")
REPOSITORY = "__repository__"
_TERMINAL = {DagsterRunStatus.SUCCESS.value, DagsterRunStatus.FAILURE.value, DagsterRunStatus.CANCELED.value}
# Written by hand because the client has no call for them: a job's assets with tags and checks, a run's events.
_JOB_ASSETS = """query($pipeline: PipelineSelector!) { assetNodes(pipeline: $pipeline) { assetKey { path }
  tags { key value } assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"""
_RUN_EVENTS = """query($id: ID!, $cursor: String) { logsForRun(runId: $id, afterCursor: $cursor, limit: 1000) {
  __typename ... on EventConnection { cursor hasMore events { __typename
  ... on AssetCheckEvaluationEvent { evaluation { assetKey { path } checkName partition success severity description } }
  ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }"""


@dataclass(frozen=True)
class JobAsset:
    key: str  # e.g. ``marts/carrier_monthly``
    published: bool  # tagged ``published: true``
    blocking_checks: tuple[str, ...]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    label: str  # what the run did: its partition, or its job
    evaluations: tuple[CheckVerdict, ...]
    step_failures: tuple[str, ...]


class Webserver:
    def __init__(self, port: int, timeout_s: int = 30) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=timeout_s)

    def ping(self) -> str:
        return str(self._query("{ version }")["version"])

    def is_up(self) -> bool:
        try:
            self.ping()
        except WebserverError:
            return False
        return True

    def reload(self, location: str) -> None:
        info = self._call(self.client.reload_repository_location, location)
        if info.status != ReloadRepositoryLocationStatus.SUCCESS:
            raise LocationLoadError(f"reloading {location} failed: {info.failure_type}: {_first_line(info.message)}")

    def launch(self, location: str, job: str, tags: dict[str, str]) -> str:
        return self._call(
            self.client.submit_job_execution,
            job,
            repository_location_name=location,
            repository_name=REPOSITORY,
            tags=tags,
        )

    def run_status(self, run_id: str) -> str:
        return str(self._call(self.client.get_run_status, run_id).value)

    def wait_run(self, run_id: str, timeout_s: float, cancel_grace_s: float = 60.0) -> str:
        """The run's terminal status; past ``timeout_s`` the run is terminated and GateTimeoutError raised."""
        deadline = time.monotonic() + timeout_s
        while (status := self.run_status(run_id)) not in _TERMINAL:
            if time.monotonic() > deadline:
                ended = self._cancel(run_id, cancel_grace_s)
                outcome = "canceled" if ended == "CANCELED" else f"termination requested, run is {ended}"
                raise GateTimeoutError(f"run {run_id} was still {status} at its deadline; {outcome}")
            time.sleep(1.0)
        return status

    def _cancel(self, run_id: str, timeout_s: float) -> str:
        """Terminate the run and wait for its terminal status, so the run has let go of its data before the
        previous release is restarted. Dagster refuses to terminate a run still STARTING: ask again until it takes."""
        deadline = time.monotonic() + timeout_s
        accepted = False
        while True:
            if not accepted:
                with contextlib.suppress(DagsterGraphQLClientError):
                    self.client.terminate_run(run_id)
                    accepted = True
            status = self.run_status(run_id)
            if status in _TERMINAL or time.monotonic() > deadline:
                return status
            time.sleep(0.5)

    def job_assets(self, location: str, job: str) -> list[JobAsset]:
        """The job's assets with their checks; none when the location has no such job."""
        selector = {"repositoryLocationName": location, "repositoryName": REPOSITORY, "pipelineName": job}
        nodes = self._query(_JOB_ASSETS, {"pipeline": selector})["assetNodes"]
        return [
            JobAsset(
                key="/".join(node["assetKey"]["path"]),
                published={"key": "published", "value": "true"} in node["tags"],
                blocking_checks=tuple(
                    c["name"] for c in (node["assetChecksOrError"] or {}).get("checks", []) if c["blocking"]
                ),
            )
            for node in nodes
        ]

    def run_outcome(self, run_id: str, status: str, label: str) -> RunOutcome:
        """The run's asset check evaluations and step failures, read from its event log."""
        evaluations: list[CheckVerdict] = []
        failures: list[str] = []
        cursor: str | None = None
        has_more = True
        while has_more:
            connection = self._query(_RUN_EVENTS, {"id": run_id, "cursor": cursor})["logsForRun"]
            if connection["__typename"] != "EventConnection":
                raise WebserverError(f"events of run {run_id}: {connection['__typename']}")
            for event in connection["events"]:
                if event["__typename"] == "AssetCheckEvaluationEvent":
                    evaluations.append(_verdict(event["evaluation"], run_id))
                elif event["__typename"] == "ExecutionStepFailureEvent":
                    failures.append(f"{event['stepKey']}: {_first_line((event.get('error') or {}).get('message'))}")
            cursor, has_more = connection["cursor"], connection["hasMore"]
        return RunOutcome(run_id, status, label, tuple(evaluations), tuple(failures))

    def _query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        # the client's own transport and error handling, for the queries it has no call for
        data: dict[str, Any] = self._call(self.client._execute, document, variables)
        return data

    def _call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return call(*args, **kwargs)
        except DagsterGraphQLClientError as error:
            cause = error.__cause__
            if isinstance(cause, TransportConnectionFailed | OSError):  # refused, or timed out
                raise WebserverError(f"webserver at {self.url} is not reachable ({cause})") from None
            detail = str(cause) if cause else ": ".join(map(str, error.args))
            raise WebserverError(f"webserver at {self.url} answered: {_first_line(detail)}") from None


def _verdict(evaluation: dict[str, Any], run_id: str) -> CheckVerdict:
    return CheckVerdict(
        asset="/".join(evaluation["assetKey"]["path"]),
        check=evaluation["checkName"],
        partition=evaluation["partition"],
        passed=bool(evaluation["success"]),
        severity=evaluation["severity"],
        description=_first_line(evaluation.get("description")),
        run_id=run_id,
    )


def _first_line(text: str | None) -> str:
    stripped = (text or "").strip()
    return stripped.splitlines()[0] if stripped else ""
