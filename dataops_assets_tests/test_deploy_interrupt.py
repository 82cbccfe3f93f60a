"""A deploy stopped by SIGINT or SIGTERM while its gate runs: the gate's runs are terminated through Dagster's
GraphQL API (a stub on 127.0.0.1 here), the previous release is put back, the audit log says why, and ``dataops``
exits 128 + the signal's number."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from dataops_ops.cli import main
from dataops_ops.deploy import deploy as deploy_operations
from dataops_ops.deploy.environment_root import EnvironmentRoot
from dataops_ops.deploy.services import terminate_gate_runs
from dataops_ops.deploy.webserver import Webserver
from dataops_ops.processes import Interrupted, interrupt_on_signals

pytestmark = pytest.mark.faults


class _GateRunGoingOn(BaseHTTPRequestHandler):
    """A webserver with one gate run STARTED until it is terminated; it records the GraphQL documents it gets."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append(body)
        document = str(body["query"])
        terminated = any("terminateRun" in str(earlier["query"]) for earlier in self.received)
        data: dict[str, Any]
        if "runsOrError" in document:
            data = {"runsOrError": {"results": [] if terminated else [{"runId": "gate-run-1"}]}}
        elif "terminateRun" in document:
            data = {"terminateRun": {"__typename": "TerminateRunSuccess", "run": {"runId": "gate-run-1"}}}
        elif "pipelineRunOrError" in document:
            data = {"pipelineRunOrError": {"__typename": "Run", "status": "CANCELED" if terminated else "STARTED"}}
        else:
            data = {"version": "stub"}
        payload = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _webserver() -> Iterator[int]:
    _GateRunGoingOn.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GateRunGoingOn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_the_first_signal_raises_interrupted_and_later_ones_wait_for_the_cleanup() -> None:
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))  # whatever earlier code installed
    with pytest.raises(Interrupted) as raised, interrupt_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert (raised.value.name, raised.value.exit_code) == ("SIGTERM", 143)
    with interrupt_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except Interrupted as interrupt:
            os.kill(os.getpid(), signal.SIGINT)  # during the cleanup: ignored
            assert interrupt.exit_code == 130
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # the handlers are put back


def test_unfinished_gate_runs_are_terminated_and_awaited() -> None:
    with _webserver() as port:
        ended = terminate_gate_runs(Webserver(port, timeout_s=5), "1.2.3", grace_s=10)
    assert ended == ["gate-run-1: CANCELED"]
    [listing] = [body for body in _GateRunGoingOn.received if "runsOrError" in body["query"]]
    assert listing["variables"]["tags"] == [{"key": "dataops/version", "value": "1.2.3"}]


def test_a_deploy_signaled_during_its_gate_terminates_the_runs_rolls_back_and_exits_143(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = SimpleNamespace(wheel=tmp_path / "x-1.2.3.whl", version="1.2.3", sha256="ab" * 32)
    restored: list[object] = []

    def gate_interrupted(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill` or a container stop sends while the gate waits
        time.sleep(30)

    monkeypatch.setattr(deploy_operations, "verify_artifact", lambda wheel, manifest: artifact)
    monkeypatch.setattr(deploy_operations, "install_release", lambda *args: "release")
    monkeypatch.setattr(deploy_operations, "activate", lambda *args: None)
    monkeypatch.setattr(deploy_operations, "run_gate", gate_interrupted)

    def restore(*args: object) -> str:
        restored.append(args[2])
        return "nothing (first release)"

    monkeypatch.setattr(deploy_operations, "_restore", restore)
    with _webserver() as port:
        EnvironmentRoot(tmp_path, "dev").init(webserver_port=port)
        started = time.monotonic()
        code = main(["deploy", "--env", "dev", "--artifact", str(artifact.wheel), "--root", str(tmp_path)])

    assert code == 143
    assert time.monotonic() - started < 20  # the gate's wait was cut short
    assert restored == [None]  # the first release: nothing to go back to but no code server
    assert capsys.readouterr().err.strip().endswith("dataops: stopped by SIGTERM")
    record = EnvironmentRoot(tmp_path, "dev").audit_records()[-1]
    assert (record["status"], record["reason"]) == ("rolled_back", "interrupted by SIGTERM")
    assert record["runs"] == ["gate-run-1: CANCELED"]
