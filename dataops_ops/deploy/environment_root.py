"""One environment on disk: ``<root>/<env>/`` holds its configuration, releases, instance, audit log, lock and
services' pid files (the layout is in ``deploy/README.md``). ``<root>`` doubles as the code server's
``DATAOPS_DATA_ROOT``, so ``Settings.env_dir`` of the environment is this folder and its data lives beside its releases.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataops_assets.environments import DATA_ROOT_VAR, ENV_VAR, ENVIRONMENT_NAMES, UnknownEnvironmentError, settings_for
from dataops_assets.files import write_atomic
from dataops_assets.partitions import MONTH_KEYS
from dataops_ops.deploy.errors import DeployLockedError, EnvironmentNotReadyError

ROOT_VAR = "DATAOPS_DEPLOY_ROOT"
# Ports; and the gate: dev smokes the first month, stage validates the year, prod launches nothing.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "dev": {"webserver_port": 3010, "code_server_port": 4010, "gate_partitions": MONTH_KEYS[:1]},
    "stage": {"webserver_port": 3020, "code_server_port": 4020, "gate_partitions": MONTH_KEYS},
    "prod": {"webserver_port": 3030, "code_server_port": 4030, "gate_partitions": ()},
}


def default_root() -> Path:
    """``$DATAOPS_DEPLOY_ROOT``, else ``var/environments`` under the data root of this checkout."""
    configured = os.environ.get(ROOT_VAR)
    return Path(configured) if configured else settings_for("dev").data_root / "environments"


@dataclass(frozen=True)
class EnvironmentConfig:
    """What ``dataops env init`` records for one environment."""

    name: str
    webserver_port: int
    code_server_port: int
    postgres_url: str | None = None
    gate_partitions: tuple[str, ...] = ()
    gate_timeout_s: float = 900.0
    load_timeout_s: float = 120.0
    dependency_base: str | None = None  # a Python whose site-packages provide the locked dependencies

    @property
    def location_name(self) -> str:
        return f"dataops-{self.name}"


@dataclass(frozen=True)
class Release:
    version: str
    sha256: str
    wheel: str
    installed_at: str
    path: Path = field(compare=False)

    @property
    def python(self) -> Path:
        return self.path / "venv" / "bin" / "python"


class EnvironmentRoot:
    """Paths and records of one environment under ``root``."""

    def __init__(self, root: Path, name: str) -> None:
        if name not in ENVIRONMENT_NAMES:
            raise UnknownEnvironmentError(
                f"unknown environment {name!r}; expected one of: {', '.join(ENVIRONMENT_NAMES)}"
            )
        self.root = root.resolve()
        self.name = name
        self.path = self.root / name
        settings = settings_for(name, self.root)
        self.dagster_home = settings.dagster_home
        self.landing_dir = settings.landing_dir
        self.config_file = self.path / "environment.json"
        self.releases_dir = self.path / "releases"
        self.current_link = self.path / "current"
        self.workspace_file = self.path / "workspace.yaml"
        self.audit_log = self.path / "audit.jsonl"
        self.run_dir = self.path / "run"

    def process_environment(self) -> dict[str, str]:
        """Variables for the environment's processes: its instance and data root, not this checkout's code."""
        environment = {**os.environ, ENV_VAR: self.name, DATA_ROOT_VAR: str(self.root)}
        environment["DAGSTER_HOME"] = str(self.dagster_home)
        environment.pop("PYTHONPATH", None)
        return environment

    # -- configuration ------------------------------------------------------------------------------------------
    def init(self, **options: Any) -> EnvironmentConfig:
        """Write ``environment.json``, ``dagster.yaml`` and ``workspace.yaml`` (idempotent); ``options`` are fields of
        EnvironmentConfig, None or missing ones take the environment's defaults."""
        given = {key: value for key, value in options.items() if value is not None}
        config = EnvironmentConfig(name=self.name, **(_DEFAULTS[self.name] | given))
        if self.name != "dev" and not config.postgres_url:
            raise EnvironmentNotReadyError(f"{self.name} stores its instance in PostgreSQL: give --postgres-url")
        for folder in (self.releases_dir, self.dagster_home, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config_file, json.dumps(asdict(config), indent=2) + "\n")
        write_atomic(self.dagster_home / "dagster.yaml", instance_yaml(config))
        write_atomic(self.workspace_file, workspace_yaml(config))
        self.audit_log.touch()
        return config

    def config(self) -> EnvironmentConfig:
        if not self.config_file.is_file():
            raise EnvironmentNotReadyError(
                f"environment {self.name} is not initialised under {self.root}: "
                f"run `dataops env init --env {self.name}`"
            )
        payload = json.loads(self.config_file.read_text())
        payload["gate_partitions"] = tuple(payload.get("gate_partitions") or ())
        return EnvironmentConfig(**payload)

    # -- releases -----------------------------------------------------------------------------------------------
    def read_release(self, path: Path) -> Release:
        return Release(path=path, **json.loads((path / "release.json").read_text()))

    def write_release(self, path: Path, version: str, sha256: str, wheel: str) -> Release:
        release = Release(version=version, sha256=sha256, wheel=wheel, installed_at=_now(), path=path)
        payload = {k: v for k, v in asdict(release).items() if k != "path"}
        write_atomic(path / "release.json", json.dumps(payload, indent=2) + "\n")
        return release

    def current(self) -> Release | None:
        if not self.current_link.is_symlink():
            return None
        target = self.current_link.resolve()
        return self.read_release(target) if (target / "release.json").is_file() else None

    def set_current(self, release: Release) -> None:
        """Point ``current`` at the release with an atomic rename."""
        staging = self.path / ".current.tmp"
        staging.unlink(missing_ok=True)
        staging.symlink_to(Path("releases") / release.path.name)
        staging.replace(self.current_link)

    # -- audit log ----------------------------------------------------------------------------------------------
    def append_audit(self, event: str, status: str, **details: Any) -> dict[str, Any]:
        """Append one JSON line (the file is only ever appended to); returns the record."""
        record = {"time": _now(), "env": self.name, "event": event, "status": status}
        record |= {"user": getpass.getuser(), "host": socket.gethostname(), **details}
        line = json.dumps(record, sort_keys=True, default=str)
        with self.audit_log.open("a") as log:
            log.write(line + "\n")
            log.flush()
            os.fsync(log.fileno())
        return dict(json.loads(line))  # as a reader of the log sees it

    def audit_records(self) -> list[dict[str, Any]]:
        if not self.audit_log.is_file():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]

    def went_live(self) -> list[dict[str, Any]]:
        """The records of every deploy, promote or rollback that put a release live, oldest first."""
        return [record for record in self.audit_records() if record.get("status") == "succeeded"]

    # -- lock ---------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, purpose: str) -> Iterator[None]:
        """Hold ``deploy.lock`` exclusively; a second holder fails at once, naming who holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock_file = self.path / "deploy.lock"
        with lock_file.open("a+") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise DeployLockedError(
                    f"another deploy to {self.name} is in progress ({holder}); {lock_file} is locked"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} {purpose} since {_now()}")
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def instance_yaml(config: EnvironmentConfig) -> str:
    """The instance: runs launched at once (no daemon needed for gate runs), SQLite for dev, PostgreSQL else."""
    text = (
        "# Written by `dataops env init`; the environment's own Dagster instance.\n"
        "telemetry: {enabled: false}\n"
        "run_coordinator: {module: dagster._core.run_coordinator, class: DefaultRunCoordinator}\n"
        "run_launcher: {module: dagster._core.launcher, class: DefaultRunLauncher}\n"
    )
    if config.postgres_url:
        text += f"storage: {{postgres: {{postgres_url: {json.dumps(sqlalchemy_url(config.postgres_url))}}}}}\n"
    return text


def sqlalchemy_url(url: str) -> str:
    """Name the driver: SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, while the lock installs
    psycopg2-binary (what dagster-postgres depends on)."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare) :]
    return url


def workspace_yaml(config: EnvironmentConfig) -> str:
    return (
        "# Written by `dataops env init`: the environment's code server, restarted by `dataops deploy`.\n"
        f"load_from: [{{grpc_server: {{host: 127.0.0.1, port: {config.code_server_port}, "
        f"location_name: {config.location_name}}}}}]\n"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
