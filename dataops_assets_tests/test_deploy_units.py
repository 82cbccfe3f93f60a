"""Fast checks of the deploy building blocks, without services: layout, audit log, lock, instance config, CLI."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dataops_assets.environments import UnknownEnvironmentError
from dataops_assets.quality.verdict import CheckVerdict
from dataops_ops.cli import _parser as cli_parser
from dataops_ops.cli import main
from dataops_ops.deploy import deploy as deploy_operations
from dataops_ops.deploy.artifact import wheel_version
from dataops_ops.deploy.environment_root import EnvironmentRoot, sqlalchemy_url
from dataops_ops.deploy.errors import (
    ArtifactError,
    DeployLockedError,
    EnvironmentNotReadyError,
    GateTimeoutError,
    WebserverError,
)
from dataops_ops.deploy.gates import GateResult, _judge_run
from dataops_ops.deploy.webserver import RunOutcome, Webserver


def test_environment_root_layout_and_instance_config(tmp_path: Path) -> None:
    dev = EnvironmentRoot(tmp_path, "dev")
    config = dev.init(webserver_port=3111, code_server_port=4111)
    assert config.location_name == "dataops-dev" and config.gate_partitions == ("2013-01",)
    yaml = (dev.dagster_home / "dagster.yaml").read_text()
    assert "DefaultRunCoordinator" in yaml and "postgres" not in yaml
    workspace = dev.workspace_file.read_text()
    assert "host: 127.0.0.1" in workspace and "port: 4111" in workspace and "location_name: dataops-dev" in workspace
    assert dev.dagster_home == tmp_path / "dev" / "dagster_home"  # Settings.env_dir with data root = the root
    assert dev.config() == config

    stage = EnvironmentRoot(tmp_path, "stage")
    with pytest.raises(EnvironmentNotReadyError, match="postgres"):
        stage.init()
    stage.init(postgres_url="postgresql://dagster@127.0.0.1:5432/dataops_stage")
    assert (
        "postgresql+psycopg2://dagster@127.0.0.1:5432/dataops_stage"
        in (stage.dagster_home / "dagster.yaml").read_text()
    )
    assert len(stage.config().gate_partitions) == 12


def test_unknown_and_uninitialised_environments(tmp_path: Path) -> None:
    with pytest.raises(UnknownEnvironmentError, match="qa"):
        EnvironmentRoot(tmp_path, "qa")
    with pytest.raises(EnvironmentNotReadyError, match="dataops env init --env prod"):
        EnvironmentRoot(tmp_path, "prod").config()


def test_audit_log_is_appended_and_lock_is_exclusive(tmp_path: Path) -> None:
    env = EnvironmentRoot(tmp_path, "dev")
    env.init()
    env.append_audit("deploy", "succeeded", version="1", sha256="a")
    env.append_audit("deploy", "rolled_back", version="2", sha256="b", failures=["x"])
    assert [r["status"] for r in env.audit_records()] == ["succeeded", "rolled_back"]
    assert all(json.loads(line)["env"] == "dev" for line in env.audit_log.read_text().splitlines())
    with env.lock("first"), pytest.raises(DeployLockedError, match="in progress"), env.lock("second"):
        pass
    with env.lock("after release"):
        pass


def test_sqlalchemy_url_names_the_installed_driver() -> None:
    assert sqlalchemy_url("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert sqlalchemy_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"


def test_wheel_version_from_file_name() -> None:
    assert wheel_version(Path("dataops_assets-0.1.0+g1-py3-none-any.whl")) == "0.1.0+g1"
    with pytest.raises(ArtifactError):
        wheel_version(Path("dataops_assets.tar.gz"))


def test_cli_parses_the_deploy_subcommands() -> None:
    parser = cli_parser()
    args = parser.parse_args(["deploy", "--env", "stage", "--artifact", "dist/x.whl"])
    assert args.env == "stage" and args.artifact == Path("dist/x.whl")
    assert args.handler == ("dataops_ops.deploy.cli", "deploy")
    args = parser.parse_args(["promote", "--from", "stage", "--to", "prod"])
    assert (args.source, args.target) == ("stage", "prod")
    assert main(["status", "--root", "/nonexistent"]) == 0


def test_cli_gate_timeout_reaches_the_deploy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    received: dict[str, object] = {}

    def fake_deploy(root: Path, env: str, wheel: Path, manifest: Path | None, **options: object) -> None:
        received.update(options, env=env)

    monkeypatch.setattr(deploy_operations, "deploy", fake_deploy)
    argv = ["deploy", "--env", "dev", "--artifact", "x.whl", "--root", str(tmp_path), "--gate-timeout", "42"]
    assert main(argv) == 0
    assert received == {"env": "dev", "gate_timeout_s": 42.0}
    assert main(["deploy", "--env", "dev", "--artifact", "x.whl", "--root", str(tmp_path)]) == 0
    assert received["gate_timeout_s"] is None  # the environment's own limit


def test_cli_exit_codes_of_the_deploy_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rollback", "--env", "qa", "--root", str(tmp_path)]) == 2  # unknown environment
    assert main(["rollback", "--env", "dev", "--root", str(tmp_path)]) == 2  # not initialised
    assert "dataops: environment dev is not initialised" in capsys.readouterr().err
    EnvironmentRoot(tmp_path, "dev").init()
    assert main(["rollback", "--env", "dev", "--root", str(tmp_path)]) == 3  # nothing to roll back to
    assert capsys.readouterr().err.strip() == "dataops: dev: no earlier successful release to roll back to"
    assert main(["build", "--source", str(tmp_path), "--out", str(tmp_path / "dist")]) == 1  # not a project


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    holder_code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from dataops_ops.deploy.environment_root import EnvironmentRoot\n"
        f"with EnvironmentRoot(Path({str(tmp_path)!r}), 'dev').lock('deploy of v9'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", holder_code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = EnvironmentRoot(tmp_path, "dev")
        with pytest.raises(DeployLockedError, match=rf"pid {holder.pid} deploy of v9"), env.lock("deploy of v10"):
            pass
    finally:
        holder.terminate()
        try:
            holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(timeout=10)
    with EnvironmentRoot(tmp_path, "dev").lock("after the other process ended"):
        pass


class _GraphQLStub(BaseHTTPRequestHandler):
    """A GraphQL endpoint on 127.0.0.1 for the deploy client: subclasses answer ``do_POST`` with ``reply``."""

    def request_body(self) -> dict[str, object]:
        body: dict[str, object] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        return body

    def reply(self, data: object) -> None:
        body = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _RunNeverEnds(_GraphQLStub):
    """A GraphQL endpoint whose run stays STARTED until it is terminated; it records the documents it receives."""

    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        document = str(self.request_body()["query"])
        self.received.append(document)
        requests = sum("terminateRun" in earlier for earlier in self.received)
        if "terminateRun" in document:
            # The first request is refused, as Dagster does while the run worker is still starting.
            refused = {"__typename": "TerminateRunFailure", "message": "the run is still starting"}
            data: dict[str, object] = {
                "terminateRun": refused if requests == 1 else {"__typename": "TerminateRunSuccess"}
            }
        else:
            data = {"pipelineRunOrError": {"__typename": "Run", "status": "CANCELED" if requests >= 2 else "STARTED"}}
        self.reply(data)


def test_a_gate_run_that_does_not_finish_times_out_and_is_cancelled() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RunNeverEnds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = Webserver(port=server.server_address[1], timeout_s=5)
        with pytest.raises(GateTimeoutError, match="run r1 was still STARTED at its deadline; canceled"):
            client.wait_run("r1", timeout_s=1.0, cancel_grace_s=5.0)
    finally:
        server.shutdown()
        server.server_close()
    assert sum("terminateRun" in document for document in _RunNeverEnds.received) == 2


def _verdict(check: str, passed: bool, severity: str = "ERROR") -> CheckVerdict:
    return CheckVerdict("staging/flights", check, "2013-01", passed, severity, "" if passed else f"{check} failed")


def test_a_gate_run_fails_on_error_records_warn_and_needs_every_blocking_check() -> None:
    blocking = {("staging/flights", "gx_suite"), ("staging/flights", "quarantine_share")}
    passing = RunOutcome(
        "r1", "SUCCESS", "2013-01", (_verdict("gx_suite", True), _verdict("quarantine_share", True)), ()
    )
    result = GateResult("dev-smoke")
    _judge_run(result, passing, blocking)
    assert result.passed and not result.failures and not result.warnings

    warned = RunOutcome(
        "r2", "SUCCESS", "2013-01", (_verdict("gx_suite", False, "WARN"), _verdict("quarantine_share", True)), ()
    )
    _judge_run(result, warned, blocking)
    assert result.passed and result.warnings == ["2013-01 staging/flights gx_suite (WARN, blocking): gx_suite failed"]

    failed = RunOutcome("r3", "FAILURE", "2013-01", (_verdict("gx_suite", False),), ("staging__flights: boom",))
    _judge_run(result, failed, blocking)
    assert not result.passed
    assert result.failures == [
        "2013-01 staging/flights gx_suite (ERROR, blocking): gx_suite failed",
        "2013-01 staging/flights quarantine_share (blocking): did not run in r3",
        "2013-01 run r3 ended FAILURE",
        "2013-01 step staging__flights: boom",
    ]


class _RunEvents(_GraphQLStub):
    """A GraphQL endpoint serving a run's event log in two pages: a check evaluation, then a step failure."""

    def do_POST(self) -> None:
        variables: Any = self.request_body()["variables"]
        evaluation: dict[str, object] = {
            "assetKey": {"path": ["core", "flights"]},
            "checkName": "gx_suite",
            "partition": "2013-02",
        }
        evaluation |= {"success": False, "severity": "ERROR", "description": "3 rows failed\nmore detail"}
        first = [
            {"__typename": "AssetCheckEvaluationEvent", "evaluation": evaluation},
            {"__typename": "LogMessageEvent"},
        ]
        second = [
            {"__typename": "ExecutionStepFailureEvent", "stepKey": "core__flights", "error": {"message": "boom\n"}}
        ]
        page = {"__typename": "EventConnection", "cursor": "1", "hasMore": True, "events": first}
        if variables["cursor"] == "1":
            page = {"__typename": "EventConnection", "cursor": "2", "hasMore": False, "events": second}
        self.reply({"logsForRun": page})


def test_run_outcome_reads_every_page_of_the_event_log() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RunEvents)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        outcome = Webserver(port=server.server_address[1], timeout_s=5).run_outcome("r9", "FAILURE", "2013-02")
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.evaluations == (
        CheckVerdict("core/flights", "gx_suite", "2013-02", False, "ERROR", "3 rows failed", "r9"),
    )
    assert outcome.step_failures == ("core__flights: boom",)


def test_an_unreachable_webserver_is_reported_as_such() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the probe is closed
    webserver = Webserver(port, timeout_s=3)
    assert not webserver.is_up()
    with pytest.raises(WebserverError, match=rf"webserver at http://127.0.0.1:{port}/graphql is not reachable"):
        webserver.ping()
