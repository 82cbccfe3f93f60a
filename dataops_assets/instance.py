"""The Dagster instance of an environment: its own DAGSTER_HOME, so asset keys never collide across environments."""

from __future__ import annotations

import os

import dagster as dg

from dataops_assets.environments import Settings

# SQLite storage under the environment's folder, telemetry off; deploys write their own dagster.yaml. One run at
# a time: the warehouse is one DuckDB file with one writer, so queued runs (a backfill from the UI) take turns.
_DEFAULT_INSTANCE_YAML = """\
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 1
"""


def prepare_dagster_home(settings: Settings) -> str:
    """Create the environment's DAGSTER_HOME with a default ``dagster.yaml`` if it has none; export it."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(_DEFAULT_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return str(home)


def open_instance(settings: Settings) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(prepare_dagster_home(settings))
