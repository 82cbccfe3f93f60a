"""One environment on disk: ``<root>/<env>/`` holds everything an environment is.

::

    <root>/<env>/
        environment.json        ports, storage and gate settings (written by ``dataops env init``)
        releases/<version>/     one per deployed version: venv/ (the artifact installed), artifact/ (wheel +
                                manifest), release.json
        current -> releases/<version>   the release the code server runs (a symlink, switched atomically)
        dagster_home/dagster.yaml       the environment's own Dagster instance (SQLite for dev, PostgreSQL else)
        workspace.yaml          the webserver's workspace: one gRPC code server on 127.0.0.1
        audit.jsonl             append-only: one JSON line per deploy, rollback and failure
        deploy.lock             flock'ed by a deploy so two cannot interleave
        run/                    pid files and logs of the services
        landing/, warehouse.duckdb      the environment's data (``Settings.env_dir`` with data root ``<root>``)

``<root>`` doubles as the code server's ``DATAOPS_DATA_ROOT``, so ``Settings.env_dir`` of the environment is this
folder and its data lives beside its releases.
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

from dataops_assets.environments import ENVIRONMENT_NAMES, UnknownEnvironmentError, settings_for

ROOT_VAR = "DATAOPS_DEPLOY_ROOT"
CONFIG_NAME = "environment.json"
_DEFAULT_PORTS = {"dev": (3010, 4010), "stage": (3020, 4020), "prod": (3030, 4030)}
_DEFAULT_GATE_PARTITIONS: dict[str, tuple[str, ...]] = {
    "dev": ("2013-01",),
    "stage": tuple(f"2013-{month:02d}" for month in range(1, 13)),
    "prod": (),
}


class EnvironmentNotReadyError(RuntimeError):
    """The environment root has not been initialised, or is not usable."""


class DeployLockedError(RuntimeError):
    """Another deploy holds the environment's lock."""


def default_root() -> Path:
    """``$DATAOPS_DEPLOY_ROOT``, else ``var/environments`` under the data root of this checkout."""
    configured = os.environ.get(ROOT_VAR)
    if configured:
        return Path(configured)
    return settings_for("dev").data_root / "environments"


def check_environment_name(name: str) -> str:
    if name not in ENVIRONMENT_NAMES:
        valid = ", ".join(ENVIRONMENT_NAMES)
        raise UnknownEnvironmentError(f"unknown environment {name!r}; expected one of: {valid}")
    return name


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
        self.root = root.resolve()
        self.name = check_environment_name(name)
        self.path = self.root / name

    # -- layout -------------------------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def releases_dir(self) -> Path:
        return self.path / "releases"

    @property
    def current_link(self) -> Path:
        return self.path / "current"

    @property
    def dagster_home(self) -> Path:
        return settings_for(self.name, self.root).dagster_home

    @property
    def warehouse_path(self) -> Path:
        return settings_for(self.name, self.root).warehouse_path

    @property
    def landing_dir(self) -> Path:
        return settings_for(self.name, self.root).landing_dir

    @property
    def workspace_file(self) -> Path:
        return self.path / "workspace.yaml"

    @property
    def audit_log(self) -> Path:
        return self.path / "audit.jsonl"

    @property
    def run_dir(self) -> Path:
        return self.path / "run"

    @property
    def code_server_pidfile(self) -> Path:
        return self.run_dir / "code-server.pid"

    # -- configuration ------------------------------------------------------------------------------------------
    def init(
        self,
        *,
        webserver_port: int | None = None,
        code_server_port: int | None = None,
        postgres_url: str | None = None,
        gate_partitions: tuple[str, ...] | None = None,
        gate_timeout_s: float = 900.0,
        dependency_base: str | None = None,
    ) -> EnvironmentConfig:
        """Write ``environment.json``, ``dagster.yaml`` and ``workspace.yaml`` (idempotent; rewrites them)."""
        web_default, code_default = _DEFAULT_PORTS[self.name]
        if self.name != "dev" and not postgres_url:
            raise EnvironmentNotReadyError(f"{self.name} stores its instance in PostgreSQL: give --postgres-url")
        config = EnvironmentConfig(
            name=self.name,
            webserver_port=webserver_port or web_default,
            code_server_port=code_server_port or code_default,
            postgres_url=postgres_url,
            gate_partitions=tuple(gate_partitions) if gate_partitions else _DEFAULT_GATE_PARTITIONS[self.name],
            gate_timeout_s=gate_timeout_s,
            dependency_base=dependency_base,
        )
        for folder in (self.releases_dir, self.dagster_home, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        payload = asdict(config)
        payload["gate_partitions"] = list(config.gate_partitions)
        _write_atomically(self.config_file, json.dumps(payload, indent=2) + "\n")
        _write_atomically(self.dagster_home / "dagster.yaml", instance_yaml(config))
        _write_atomically(self.workspace_file, workspace_yaml(config))
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
    def release_dir(self, version: str) -> Path:
        return self.releases_dir / version

    def read_release(self, path: Path) -> Release:
        payload = json.loads((path / "release.json").read_text())
        return Release(path=path, **payload)

    def write_release(self, path: Path, version: str, sha256: str, wheel: str) -> Release:
        release = Release(version=version, sha256=sha256, wheel=wheel, installed_at=_now(), path=path)
        payload = {k: v for k, v in asdict(release).items() if k != "path"}
        _write_atomically(path / "release.json", json.dumps(payload, indent=2) + "\n")
        return release

    def current(self) -> Release | None:
        if not self.current_link.is_symlink():
            return None
        target = self.current_link.resolve()
        return self.read_release(target) if (target / "release.json").is_file() else None

    def set_current(self, release: Release | None) -> None:
        """Point ``current`` at the release (or remove it) with an atomic rename."""
        if release is None:
            self.current_link.unlink(missing_ok=True)
            return
        staging = self.path / ".current.tmp"
        staging.unlink(missing_ok=True)
        staging.symlink_to(Path("releases") / release.path.name)
        staging.replace(self.current_link)

    # -- audit log ----------------------------------------------------------------------------------------------
    def append_audit(self, event: str, status: str, **details: Any) -> dict[str, Any]:
        """Append one JSON line; the file is only ever appended to."""
        record = {
            "time": _now(),
            "env": self.name,
            "event": event,
            "status": status,
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            **details,
        }
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        fd = os.open(self.audit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def audit_records(self) -> list[dict[str, Any]]:
        if not self.audit_log.is_file():
            return []
        records = []
        for line in self.audit_log.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
        return records

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
    lines = [
        "# Written by `dataops env init`; the environment's own Dagster instance.",
        "telemetry:",
        "  enabled: false",
        "run_coordinator:",
        "  module: dagster._core.run_coordinator",
        "  class: DefaultRunCoordinator",
        "run_launcher:",
        "  module: dagster._core.launcher",
        "  class: DefaultRunLauncher",
    ]
    if config.postgres_url:
        lines += ["storage:", "  postgres:", f"    postgres_url: {json.dumps(sqlalchemy_url(config.postgres_url))}"]
    return "\n".join(lines) + "\n"


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
        "load_from:\n"
        "  - grpc_server:\n"
        "      host: 127.0.0.1\n"
        f"      port: {config.code_server_port}\n"
        f"      location_name: {config.location_name}\n"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
