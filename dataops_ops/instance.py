"""The Dagster instance of an environment: its own DAGSTER_HOME, so asset keys never collide across environments;
and its daemon, which dequeues and launches the runs that ``dataops run`` submits."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from dataops_assets.environments import Settings
from dataops_ops.processes import start_detached, stop_pid_file

# Written (and rewritten) by dataops while this line heads the file; remove it to keep a hand-made dagster.yaml.
_MARKER = "# written by dataops: edit freely after removing this line"
# SQLite storage under the environment's folder, telemetry off; deploys write their own dagster.yaml. The queue
# launches up to max_concurrent_runs runs at once: months write their own partitions of the Delta tables.
_INSTANCE_YAML = """\
{marker}
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: {runs}
  dequeue_interval_seconds: 1
"""
# The code location the daemon launches runs from: this interpreter, this package.
_WORKSPACE_YAML = """\
load_from:
  - python_module:
      module_name: dataops_assets.definitions
      location_name: dataops
      executable_path: {python}
"""


def prepare_dagster_home(settings: Settings) -> str:
    """Create the environment's DAGSTER_HOME with dataops's ``dagster.yaml`` unless a hand-made one is there."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text().startswith(_MARKER):
        config.write_text(_INSTANCE_YAML.format(marker=_MARKER, runs=settings.max_concurrent_runs))
    os.environ["DAGSTER_HOME"] = str(home)
    return str(home)


def open_instance(settings: Settings) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(prepare_dagster_home(settings))


@contextmanager
def running_daemon(settings: Settings, instance: dg.DagsterInstance) -> Iterator[None]:
    """The environment's daemon for the block: ours unless one (``make ui``, a deployment) is already healthy."""
    from dagster._daemon.controller import all_daemons_healthy

    pid_file = settings.dagster_home / "daemon.pid"
    if pid_file.exists():  # ours, left behind by a killed ``dataops run``: its heartbeats would still look alive
        stop_pid_file(pid_file)
        instance.wipe_daemon_heartbeats()
    if all_daemons_healthy(instance, heartbeat_tolerance_seconds=60):
        yield
        return
    workspace = settings.dagster_home / "workspace.yaml"
    workspace.write_text(_WORKSPACE_YAML.format(python=sys.executable))
    start_detached(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace)],
        log_file=settings.dagster_home / "daemon.log",
        cwd=settings.dagster_home,
        env={**os.environ, "DAGSTER_HOME": str(settings.dagster_home)},
        pid_file=pid_file,
    )
    try:
        yield
    finally:
        stop_pid_file(pid_file)
        instance.wipe_daemon_heartbeats()  # so the next ``dataops run`` does not take it for a live daemon
