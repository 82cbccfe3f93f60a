"""The preview's Dagster UI: a read-only ``dagster-webserver`` on 127.0.0.1, on the preview's instance, stopped by
``preview down`` by its pid."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from dataops_assets.environments import DATA_ROOT_VAR, ENV_VAR, Settings
from dataops_ops.instance import prepare_dagster_home
from dataops_ops.preview.environment import UI_PID_FILE
from dataops_ops.processes import start_detached, wait_for_port
from dataops_ops.run_processes import with_dagster_site

FIRST_PORT, LAST_PORT = 3100, 3199
_WORKSPACE = """\
load_from:
  - python_module:
      module_name: dataops_assets.definitions
      location_name: dataops
      executable_path: {python}
"""


def free_port() -> int:
    """The first port of the previews' range nothing listens on at 127.0.0.1."""
    for port in range(FIRST_PORT, LAST_PORT + 1):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"every port from {FIRST_PORT} to {LAST_PORT} is taken: remove idle previews")


def start_ui(preview: Settings, timeout_s: float = 90.0) -> str:
    """Start the UI; its address."""
    run = preview.env_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    workspace = run / "workspace.yaml"
    workspace.write_text(_WORKSPACE.format(python=sys.executable))
    port = free_port()
    env = {**os.environ, ENV_VAR: preview.name, DATA_ROOT_VAR: str(preview.data_root)}
    env["DAGSTER_HOME"] = prepare_dagster_home(preview)
    command = [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port), "--read-only"]
    pid = start_detached(
        [*command, "-w", str(workspace)],
        log_file=run / "ui.log",
        cwd=run,
        env=with_dagster_site(env),
        pid_file=run / UI_PID_FILE,
    )
    wait_for_port(port, timeout_s, pid, f"{preview.name}'s webserver")
    url = f"http://127.0.0.1:{port}"
    (run / "ui.url").write_text(url + "\n")
    return url


def ui_url(preview: Settings) -> str | None:
    path: Path = preview.env_dir / "run" / "ui.url"
    return path.read_text().strip() if path.is_file() else None
