"""The long-running services of an environment besides its code server: webserver and daemon, on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dataops_assets.deploy.environment_root import EnvironmentRoot
from dataops_assets.deploy.processes import start_detached, stop_pid_file, wait_for_port


def _environment(env: EnvironmentRoot) -> dict[str, str]:
    environment = {**os.environ, "DAGSTER_HOME": str(env.dagster_home)}
    environment.pop("PYTHONPATH", None)
    return environment


def start_webserver(env: EnvironmentRoot, timeout_s: float = 90.0) -> int:
    """``dagster-webserver`` over the environment's workspace, bound to 127.0.0.1; returns its pid."""
    config = env.config()
    command = [
        sys.executable,
        "-m",
        "dagster_webserver",
        "-h",
        "127.0.0.1",
        "-p",
        str(config.webserver_port),
        "-w",
        str(env.workspace_file),
    ]
    pid = start_detached(
        command, env.run_dir / "webserver.log", cwd=env.path, env=_environment(env), pid_file=_pid(env, "webserver")
    )
    wait_for_port("127.0.0.1", config.webserver_port, timeout_s, pid=pid, what="webserver")
    return pid


def start_daemon(env: EnvironmentRoot) -> int:
    """``dagster-daemon run`` (schedules, sensors) over the environment's workspace; returns its pid."""
    command = [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(env.workspace_file)]
    return start_detached(
        command, env.run_dir / "daemon.log", cwd=env.path, env=_environment(env), pid_file=_pid(env, "daemon")
    )


def stop_services(env: EnvironmentRoot) -> None:
    """Webserver, daemon and code server, each by the pid recorded when it was started."""
    for name in ("daemon", "webserver", "code-server"):
        stop_pid_file(_pid(env, name))


def _pid(env: EnvironmentRoot, name: str) -> Path:
    return env.run_dir / f"{name}.pid"
