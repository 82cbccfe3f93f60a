"""The environment's webserver, through its GraphQL API (POST /graphql on 127.0.0.1)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from dataops_assets.quality.verdict import CheckVerdict

REPOSITORY = "__repository__"
_TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


class WebserverError(RuntimeError):
    """The webserver is not reachable, or answered with an error."""


class LocationLoadError(RuntimeError):
    """The code location did not load (its error is in the message)."""


class GateTimeoutError(RuntimeError):
    """A gate run did not finish in time."""


@dataclass(frozen=True)
class LocationState:
    name: str
    status: str  # LOADED, LOADING
    error: str | None
    environment_path: str | None  # the interpreter of the code server: the release's venv


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    partition: str | None
    evaluations: tuple[CheckVerdict, ...]
    step_failures: tuple[str, ...]


class WebserverClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 30.0) -> None:
        self.url = f"http://{host}:{port}/graphql"
        self.timeout_s = timeout_s

    def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": document, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:500]
            raise WebserverError(f"webserver at {self.url} answered HTTP {error.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise WebserverError(f"webserver at {self.url} is not reachable ({reason})") from None
        if payload.get("errors"):
            messages = "; ".join(str(item.get("message")) for item in payload["errors"])
            raise WebserverError(f"GraphQL error from {self.url}: {messages}")
        data: dict[str, Any] = payload["data"]
        return data

    def ping(self) -> str:
        data = self.query("{ version }")
        return str(data["version"])

    # -- code locations -----------------------------------------------------------------------------------------
    def reload_location(self, name: str) -> LocationState:
        data = self.query(
            "mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {"
            " __typename ... on WorkspaceLocationEntry { name } ... on PythonError { message }"
            " ... on RepositoryLocationNotFound { message } ... on ReloadNotSupported { message } } }",
            {"name": name},
        )
        result = data["reloadRepositoryLocation"]
        if result["__typename"] != "WorkspaceLocationEntry":
            raise LocationLoadError(f"reloading {name} failed: {result['__typename']}: {result.get('message', '')}")
        return self.location(name)

    def location(self, name: str) -> LocationState:
        data = self.query(
            "query($name: String!) { workspaceLocationEntryOrError(name: $name) { __typename"
            " ... on WorkspaceLocationEntry { name loadStatus locationOrLoadError { __typename"
            " ... on RepositoryLocation { environmentPath } ... on PythonError { message"
            " causes { className message } } } }"
            " ... on PythonError { message } } }",
            {"name": name},
        )
        entry = data["workspaceLocationEntryOrError"]
        if entry is None or entry["__typename"] != "WorkspaceLocationEntry":
            message = (entry or {}).get("message", "not in the workspace")
            raise LocationLoadError(f"code location {name}: {message}")
        loaded = entry["locationOrLoadError"] or {}
        error = None
        if loaded.get("__typename") == "PythonError":
            # the root cause (e.g. the exception raised by the definitions module) says more than the wrapper
            causes = loaded.get("causes") or []
            root = causes[-1] if causes else None
            error = f"{root['className']}: {root['message']}" if root else loaded.get("message")
        return LocationState(entry["name"], entry["loadStatus"], error, loaded.get("environmentPath"))

    def wait_loaded(self, name: str, timeout_s: float) -> LocationState:
        """Reload the location and wait until it is LOADED without error."""
        deadline = time.monotonic() + timeout_s
        state = self.reload_location(name)
        while state.status != "LOADED":
            if time.monotonic() > deadline:
                raise LocationLoadError(f"code location {name} did not load within {timeout_s:.0f}s")
            time.sleep(0.5)
            state = self.location(name)
        if state.error:
            first = state.error.strip().splitlines()[0] if state.error.strip() else "unknown error"
            raise LocationLoadError(f"code location {name} failed to load: {first}")
        return state

    def job_names(self, location: str) -> list[str]:
        data = self.query(
            "query($selector: RepositorySelector!) { repositoryOrError(repositorySelector: $selector) {"
            " __typename ... on Repository { jobs { name } } ... on PythonError { message } } }",
            {"selector": {"repositoryLocationName": location, "repositoryName": REPOSITORY}},
        )
        repository = data["repositoryOrError"]
        if repository["__typename"] != "Repository":
            raise LocationLoadError(f"repository of {location}: {repository.get('message', repository['__typename'])}")
        return [job["name"] for job in repository["jobs"]]

    def asset_checks(self, location: str, job: str) -> dict[tuple[str, str], bool]:
        """Every check on the job's assets: (asset, check) → blocking."""
        data = self.query(
            "query($pipeline: PipelineSelector!) { assetNodes(pipeline: $pipeline) { assetKey { path }"
            " assetChecksOrError { __typename ... on AssetChecks { checks { name blocking } } } } }",
            {"pipeline": {"repositoryLocationName": location, "repositoryName": REPOSITORY, "pipelineName": job}},
        )
        checks: dict[tuple[str, str], bool] = {}
        for node in data["assetNodes"]:
            asset = "/".join(node["assetKey"]["path"])
            for check in (node["assetChecksOrError"] or {}).get("checks", []):
                checks[(asset, check["name"])] = bool(check["blocking"])
        return checks

    def asset_keys(self, location: str, job: str) -> list[str]:
        data = self.query(
            "query($pipeline: PipelineSelector!) { assetNodes(pipeline: $pipeline) { assetKey { path } } }",
            {"pipeline": {"repositoryLocationName": location, "repositoryName": REPOSITORY, "pipelineName": job}},
        )
        return sorted("/".join(node["assetKey"]["path"]) for node in data["assetNodes"])

    # -- runs ---------------------------------------------------------------------------------------------------
    def launch_run(
        self, location: str, job: str, tags: dict[str, str], run_config: dict[str, Any] | None = None
    ) -> str:
        data = self.query(
            "mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename"
            " ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }"
            " ... on RunConfigValidationInvalid { errors { message } } ... on PipelineNotFoundError { message }"
            " ... on InvalidSubsetError { message } } }",
            {
                "params": {
                    "selector": {"repositoryLocationName": location, "repositoryName": REPOSITORY, "jobName": job},
                    "runConfigData": run_config or {},
                    "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
                }
            },
        )
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            detail = result.get("message") or "; ".join(e["message"] for e in result.get("errors", []))
            raise WebserverError(f"launching {job} failed: {result['__typename']}: {detail}")
        return str(result["run"]["runId"])

    def run_status(self, run_id: str) -> str:
        data = self.query(
            "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }", {"id": run_id}
        )
        run = data["runOrError"]
        if run["__typename"] != "Run":
            raise WebserverError(f"run {run_id}: {run['__typename']}")
        return str(run["status"])

    def terminate_run(self, run_id: str) -> bool:
        """Ask the run to stop; False when Dagster refused (a run still STARTING has no worker to signal yet)."""
        data = self.query(
            "mutation($id: String!) { terminateRun(runId: $id) { __typename } }",
            {"id": run_id},
        )
        return bool(data["terminateRun"]["__typename"] == "TerminateRunSuccess")

    def wait_run(self, run_id: str, timeout_s: float, cancel_grace_s: float = 60.0) -> str:
        """The run's terminal status; past ``timeout_s`` the run is terminated and GateTimeoutError raised."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.run_status(run_id)
            if status in _TERMINAL:
                return status
            if time.monotonic() > deadline:
                ended = self._cancel(run_id, cancel_grace_s)
                raise GateTimeoutError(
                    f"run {run_id} was still {status} at its deadline; "
                    + ("canceled" if ended == "CANCELED" else f"termination requested, run is {ended}")
                )
            time.sleep(1.0)

    def _cancel(self, run_id: str, timeout_s: float) -> str:
        """Terminate the run and wait for its terminal status: the run must have let go of the warehouse before
        the previous release is restarted. A refused request is repeated until the run can be signalled."""
        deadline = time.monotonic() + timeout_s
        accepted = self.terminate_run(run_id)
        status = self.run_status(run_id)
        while status not in _TERMINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            accepted = accepted or self.terminate_run(run_id)
            status = self.run_status(run_id)
        return status

    def run_outcome(self, run_id: str, status: str, partition: str | None) -> RunOutcome:
        """The run's asset check evaluations and step failures, read from its event log."""
        evaluations: list[CheckVerdict] = []
        failures: list[str] = []
        cursor: str | None = None
        while True:
            data = self.query(
                "query($id: ID!, $cursor: String) { logsForRun(runId: $id, afterCursor: $cursor, limit: 1000) {"
                " __typename ... on EventConnection { cursor hasMore events { __typename"
                " ... on AssetCheckEvaluationEvent { evaluation { assetKey { path } checkName partition success"
                " severity description } }"
                " ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }",
                {"id": run_id, "cursor": cursor},
            )
            connection = data["logsForRun"]
            if connection["__typename"] != "EventConnection":
                raise WebserverError(f"events of run {run_id}: {connection['__typename']}")
            for event in connection["events"]:
                if event["__typename"] == "AssetCheckEvaluationEvent":
                    evaluation = event["evaluation"]
                    evaluations.append(
                        CheckVerdict(
                            asset="/".join(evaluation["assetKey"]["path"]),
                            check=evaluation["checkName"],
                            partition=evaluation["partition"],
                            passed=bool(evaluation["success"]),
                            severity=evaluation["severity"],
                            description=_first_line(evaluation.get("description")),
                        )
                    )
                elif event["__typename"] == "ExecutionStepFailureEvent":
                    message = _first_line((event.get("error") or {}).get("message"))
                    failures.append(f"{event['stepKey']}: {message}")
            cursor = connection["cursor"]
            if not connection["hasMore"]:
                break
        return RunOutcome(run_id, status, partition, tuple(evaluations), tuple(failures))


def code_server_executable(port: int, host: str = "127.0.0.1") -> str | None:
    """The interpreter the code server behind the workspace entry runs (its ``ListRepositories`` answer): the
    webserver's GraphQL reports no path for gRPC locations, so this is how a deploy proves which release is served."""
    from dagster._grpc.client import DagsterGrpcClient  # noqa: PLC0415 - a private module, used only here

    try:
        answer = json.loads(DagsterGrpcClient(port=port, host=host).list_repositories())
    except Exception as error:  # the gRPC client raises DagsterUserCodeUnreachableError and friends
        raise LocationLoadError(f"code server {host}:{port} does not answer: {error}") from None
    path = answer.get("executable_path")
    return str(path) if path else None


def _first_line(text: str | None) -> str:
    stripped = (text or "").strip()
    return stripped.splitlines()[0] if stripped else ""
