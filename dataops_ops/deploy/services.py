"""An environment's services on 127.0.0.1: webserver, daemon and the release's code server; pids and logs in
``run/``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dataops_ops.deploy.environment_root import EnvironmentConfig, EnvironmentRoot, Release
from dataops_ops.deploy.errors import LocationLoadError, ServiceError
from dataops_ops.deploy.webserver import Webserver
from dataops_ops.processes import is_alive, port_open, read_pid, start_detached, stop_pid_file, wait_for_port


def start_webserver(env: EnvironmentRoot, timeout_s: float = 90.0) -> int:
    """``dagster-webserver`` over the environment's workspace; returns its pid."""
    port = env.config().webserver_port
    command = [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]
    pid = _start(env, "webserver", [*command, "-w", str(env.workspace_file)], env.path)
    wait_for_port(port, timeout_s, pid, "webserver")
    return pid


def start_daemon(env: EnvironmentRoot) -> int:
    """``dagster-daemon run`` (schedules, sensors) over the environment's workspace; returns its pid."""
    daemon = str(Path(sys.executable).with_name("dagster-daemon"))
    return _start(env, "daemon", [daemon, "run", "-w", str(env.workspace_file)], env.path)


def start_code_server(env: EnvironmentRoot, config: EnvironmentConfig, release: Release) -> int:
    """The release's code server (a proxy that loads the definitions before it listens); returns its pid."""
    stop_code_server(env)
    port, deadline = config.code_server_port, time.monotonic() + 15
    while port_open(port):
        if time.monotonic() > deadline:
            raise ServiceError(f"127.0.0.1:{port} is still taken by another process")
        time.sleep(0.1)
    command = [str(release.python), "-m", "dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(port)]
    command += ["-m", "dataops_assets.definitions", "--location-name", config.location_name]
    pid = _start(env, "code-server", command, release.path)
    wait_for_port(port, config.load_timeout_s, pid, "code server")
    return pid


def stop_code_server(env: EnvironmentRoot) -> None:
    stop_pid_file(_pid_file(env, "code-server"))


def code_server_alive(env: EnvironmentRoot) -> bool:
    pid = read_pid(_pid_file(env, "code-server"))
    return pid is not None and is_alive(pid)


def stop_services(env: EnvironmentRoot) -> None:
    """Daemon, webserver and code server, each by the pid recorded when it was started."""
    for name in ("daemon", "webserver", "code-server"):
        stop_pid_file(_pid_file(env, name))


def served_python(port: int) -> str | None:
    """The interpreter of the code server at ``port``, from its ListRepositories answer (the webserver reports no
    path for gRPC locations): how a deploy proves which release is served. A code server whose definitions failed to
    load answers with that error instead; it is raised with its root cause."""
    from dagster._grpc.client import DagsterGrpcClient

    try:
        answer = json.loads(DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories())
    except Exception as error:  # the gRPC client raises DagsterUserCodeUnreachableError and friends
        raise LocationLoadError(f"code server 127.0.0.1:{port} does not answer: {error}") from None
    if answer.get("__class__") == "SerializableErrorInfo":
        while answer.get("cause"):
            answer = answer["cause"]
        raise LocationLoadError(f"the code server failed to load the definitions: {answer['message'].strip()}")
    return str(answer["executable_path"]) if answer.get("executable_path") else None


# The runs a gate launched that have not ended (the gate tags its runs with its release's version).
_UNFINISHED_GATE_RUNS = """query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags,
  statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) { ... on Runs { results { runId } } } }"""


def terminate_gate_runs(webserver: Webserver, version: str, grace_s: float = 30.0) -> list[str]:
    """Terminate the release's unfinished gate runs through Dagster (they end CANCELED, not as dead STARTED runs)
    and wait up to ``grace_s`` for each; returns ``run_id: STATUS`` per run."""
    tags = [{"key": "dataops/version", "value": version}]
    answer = webserver._query(_UNFINISHED_GATE_RUNS, {"tags": tags})["runsOrError"]
    deadline = time.monotonic() + grace_s
    ended = []
    for run in answer.get("results", []):
        status = webserver._cancel(run["runId"], max(deadline - time.monotonic(), 1.0))
        ended.append(f"{run['runId']}: {status}")
    return ended


def _start(env: EnvironmentRoot, name: str, command: list[str], cwd: Path) -> int:
    log = env.run_dir / f"{name}.log"
    return start_detached(command, log, cwd=cwd, env=env.process_environment(), pid_file=_pid_file(env, name))


def _pid_file(env: EnvironmentRoot, name: str) -> Path:
    return env.run_dir / f"{name}.pid"
