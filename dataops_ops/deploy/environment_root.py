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
import re
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from dataops_assets.environments import DATA_ROOT_VAR, ENV_VAR, ENVIRONMENT_NAMES, UnknownEnvironmentError, settings_for
from dataops_assets.files import write_atomic
from dataops_assets.partitions import MONTH_KEYS
from dataops_ops.deploy.errors import DeployLockedError, EnvironmentNotReadyError

ROOT_VAR = "DATAOPS_DEPLOY_ROOT"
# Configuration names the database and its user: only the owner reads it (the password is in no file at all).
PRIVATE = 0o600
PORTS = (1, 65535)
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
    postgres_url: str | None = None  # without the password
    postgres_password_env: str | None = None  # the variable holding the password, in every process's environment
    gate_partitions: tuple[str, ...] = ()
    gate_timeout_s: float = 900.0
    load_timeout_s: float = 120.0
    dependency_base: str | None = None  # a Python whose site-packages provide the locked dependencies

    @property
    def location_name(self) -> str:
        return f"dataops-{self.name}"


class InvalidSettingError(EnvironmentNotReadyError): ...  # `env init` was given a value it cannot use


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
        """Variables for the environment's processes: its instance and data root, not this checkout's code; the
        PostgreSQL password comes from the caller's environment, named in ``environment.json``."""
        variable = self.config().postgres_password_env
        if variable and variable not in os.environ:
            raise EnvironmentNotReadyError(
                f"{self.name} reads its PostgreSQL password from ${variable}, which is not set: export it and retry"
            )
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
        check_settings(config)
        for folder in (self.releases_dir, self.dagster_home, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.config_file, json.dumps(asdict(config), indent=2) + "\n", mode=PRIVATE)
        write_atomic(self.dagster_home / "dagster.yaml", instance_yaml(config), mode=PRIVATE)
        write_atomic(self.workspace_file, workspace_yaml(config), mode=PRIVATE)
        self.audit_log.touch(mode=PRIVATE)
        self.audit_log.chmod(PRIVATE)  # a log created before files were private
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
        write_atomic(path / "release.json", json.dumps(payload, indent=2) + "\n", mode=PRIVATE)
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
        with os.fdopen(os.open(self.audit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE), "a") as log:
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


def check_settings(config: EnvironmentConfig) -> None:
    """Refuse, in one line naming the value and what is valid, what would only fail later in a service or a gate."""
    low, high = PORTS
    for option, port in (("--webserver-port", config.webserver_port), ("--code-server-port", config.code_server_port)):
        if not low <= port <= high:
            raise InvalidSettingError(f"{option} {port} is not a port: valid ports are {low} to {high}")
    outside = [month for month in config.gate_partitions if month not in MONTH_KEYS]
    if outside:
        valid = f"valid months are {MONTH_KEYS[0]} to {MONTH_KEYS[-1]}"
        raise InvalidSettingError(f"--gate-partitions {' '.join(outside)} is not a partition: {valid}")
    if config.postgres_url:
        check_postgres(config.postgres_url, config.postgres_password_env)


def check_postgres(url: str, password_env: str | None) -> None:
    """The URL carries no password (it would land in environment.json); the variable that does is a valid name."""
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 (parsing the port raises on a bad one)
    except ValueError as error:
        raise InvalidSettingError(f"--postgres-url is not a URL: {error}") from None
    if parsed.password is not None:
        raise InvalidSettingError(
            "--postgres-url must not contain the password: give postgresql://USER@HOST:PORT/DB and "
            "--postgres-password-env VARIABLE, with the password in that environment variable"
        )
    if password_env is None:
        return
    if not _VARIABLE_NAME.fullmatch(password_env):
        raise InvalidSettingError(f"--postgres-password-env {password_env!r} is not an environment variable name")
    if not (parsed.username and parsed.hostname and parsed.path.strip("/")):
        raise InvalidSettingError(
            f"--postgres-url {url} must name the user, host and database, e.g. postgresql://dagster@127.0.0.1:5432/db"
        )


def instance_yaml(config: EnvironmentConfig) -> str:
    """The instance: runs launched at once (no daemon needed for gate runs), SQLite for dev, PostgreSQL else."""
    text = (
        "# Written by `dataops env init`; the environment's own Dagster instance.\n"
        "telemetry: {enabled: false}\n"
        "run_coordinator: {module: dagster._core.run_coordinator, class: DefaultRunCoordinator}\n"
        # Dagster's default launcher plus a health check, so the daemon's run monitoring fails a run whose process
        # died (dataops_ops/launcher.py; the wheel ships it to every process that opens the instance).
        "run_launcher: {module: dataops_ops.launcher, class: LocalRunLauncher}\n"
        "run_monitoring: {enabled: true, poll_interval_seconds: 5, start_timeout_seconds: 180, "
        "cancel_timeout_seconds: 60, max_resume_run_attempts: 0}\n"
    )
    if config.postgres_url:
        storage = postgres_storage(config.postgres_url, config.postgres_password_env)
        text += f"storage: {json.dumps({'postgres': storage})}\n"  # JSON is YAML
    return text


def postgres_storage(postgres_url: str, password_env: str | None) -> dict[str, Any]:
    """dagster-postgres' config: the URL as is when there is no password, else its parts with the password read
    by Dagster from the environment variable (``{env: VARIABLE}``) when the instance starts."""
    if not password_env:
        return {"postgres_url": sqlalchemy_url(postgres_url)}
    url = urlsplit(postgres_url)
    database: dict[str, Any] = {
        "username": unquote(url.username or ""),
        "password": {"env": password_env},
        "hostname": url.hostname,
        "port": url.port or 5432,
        "db_name": unquote(url.path.strip("/")),
        "scheme": _driver_scheme(url),
    }
    if url.query:
        database["params"] = dict(parse_qsl(url.query))
    return {"postgres_db": database}


def sqlalchemy_url(url: str) -> str:
    """Name the driver: SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, while the lock installs
    psycopg2-binary (what dagster-postgres depends on)."""
    parsed = urlsplit(url)
    return parsed._replace(scheme=_driver_scheme(parsed)).geturl()


def _driver_scheme(url: SplitResult) -> str:
    return "postgresql+psycopg2" if url.scheme in ("postgresql", "postgres") else url.scheme


def workspace_yaml(config: EnvironmentConfig) -> str:
    return (
        "# Written by `dataops env init`: the environment's code server, restarted by `dataops deploy`.\n"
        f"load_from: [{{grpc_server: {{host: 127.0.0.1, port: {config.code_server_port}, "
        f"location_name: {config.location_name}}}}}]\n"
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
