"""The preview's Dagster UI: a read-only ``dagster-webserver`` on 127.0.0.1, on the preview's instance, stopped by
``preview down`` by its pid."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from dataops_assets.environments import DATA_ROOT_VAR, ENV_VAR, Settings
from dataops_ops.instance import WORKSPACE_YAML, prepare_dagster_home
from dataops_ops.preview.environment import RUN_FOLDER, UI_PID_FILE
from dataops_ops.processes import port_open, start_detached, wait_for_port
from dataops_ops.run_processes import with_dagster_site

FIRST_PORT, LAST_PORT = 3100, 3199


def free_port() -> int:
    """The first port of the previews' range nothing listens on at 127.0.0.1."""
    for port in range(FIRST_PORT, LAST_PORT + 1):
        if not port_open(port):
            return port
    raise RuntimeError(f"every port from {FIRST_PORT} to {LAST_PORT} is taken: remove idle previews")


@dataclass(frozen=True)
class StartedUi:
    url: str
    port: int
    pid: int

    def wait(self, what: str, timeout_s: float = 90.0) -> str:
        """The address, once the webserver answers (it loads the code location meanwhile)."""
        wait_for_port(self.port, timeout_s, self.pid, what)
        return self.url


def start_ui(preview: Settings) -> StartedUi:
    """Start the UI without waiting for it: it loads while the preview runs, and shows the runs as they go."""
    run = preview.env_dir / RUN_FOLDER
    run.mkdir(parents=True, exist_ok=True)
    workspace = run / "workspace.yaml"
    workspace.write_text(WORKSPACE_YAML.format(python=sys.executable))
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
    url = f"http://127.0.0.1:{port}"
    (run / "ui.url").write_text(url + "\n")
    return StartedUi(url, port, pid)


def ui_url(preview: Settings) -> str | None:
    path: Path = preview.env_dir / RUN_FOLDER / "ui.url"
    return path.read_text().strip() if path.is_file() else None
