"""End to end on 127.0.0.1: build the artifact once, deploy it dev → stage → prod through the webservers' GraphQL
API, and check that a failing gate, a location that does not load and a bad artifact leave the environment on its
previous release, and a gate run that does not finish in time is terminated and rolled back.

The test starts and stops everything itself, each by process id: a PostgreSQL cluster in a temporary folder
(Debian's ``postgresql`` package; as the ``postgres`` user when run as root) that asks for a password on 127.0.0.1,
one webserver per environment and the code servers the deploys start. stage and prod get the password only through
an environment variable; after init, deploys and promotions no file under the environments root contains it, and the
configuration files are private to their owner. It is skipped, saying why, only when the PostgreSQL binaries are
missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import pytest
import sqlalchemy

from dataops_assets.environments import UnknownEnvironmentError
from dataops_assets_tests.fixtures.deploy import VARIANTS, Artifacts, free_port, release_wheel
from dataops_ops.deploy import deploy as operations
from dataops_ops.deploy.artifact import Manifest, verify_artifact
from dataops_ops.deploy.environment_root import EnvironmentRoot, sqlalchemy_url
from dataops_ops.deploy.errors import ArtifactError, DeployError, DeployFailedError, DeployLockedError
from dataops_ops.deploy.services import served_python, start_webserver, stop_services
from dataops_ops.deploy.webserver import Webserver
from dataops_ops.preview import STATE_FILE
from dataops_ops.processes import stop

pytestmark = pytest.mark.e2e

T = TypeVar("T")
PASSWORD_VAR = "DATAOPS_E2E_PG_PASSWORD"
CONFIG_FILES = (
    "environment.json",
    "workspace.yaml",
    "audit.jsonl",
    "dagster_home/dagster.yaml",
    "releases/*/release.json",
)


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


@dataclass
class Postgres:
    port: int
    data_dir: Path
    bin_dir: Path
    as_user: list[str]
    password: str

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are missing: `apt-get install -y postgresql` (see .ci/run)")
    # Not under pytest's tmp folder: that is private to the current user, and postgres refuses to run as root.
    base = Path(tempfile.mkdtemp(prefix="dataops-e2e-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, user="postgres")
    data_dir = base / "data"
    # URL-special characters: the password must survive Dagster's quoting into the connection URL.
    server = Postgres(free_port(), data_dir, bin_dir, as_user, password=f"e2e-{secrets.token_hex(8)}@:%")
    password_file = base / "password"
    password_file.write_text(server.password + "\n")
    if as_user:
        shutil.chown(password_file, user="postgres")
    # The socket (createdb below) is trusted; TCP on 127.0.0.1, which the environments use, needs the password.
    auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={password_file}"]
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", *auth, "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    password_file.unlink()
    options = f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={base}"
    subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    postmaster_pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    try:
        for database in ("dataops_stage", "dataops_prod"):
            subprocess.run(
                [
                    *as_user,
                    str(bin_dir / "createdb"),
                    "-h",
                    str(base),
                    "-p",
                    str(server.port),
                    "-U",
                    "postgres",
                    database,
                ],
                check=True,
                capture_output=True,
            )
        without_password = sqlalchemy.create_engine(sqlalchemy_url(server.url("dataops_stage")))
        with pytest.raises(sqlalchemy.exc.OperationalError, match="password"):  # the password is really asked for
            without_password.connect().close()
        without_password.dispose()
        yield server
    finally:
        # pg_ctl's fast shutdown is SIGINT to the postmaster; fall back to SIGKILL by its pid.
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "-t", "20", "stop"],
            check=False,
            capture_output=True,
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster_pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    good = release_wheel(tmp_path_factory, "good")
    manifest = Manifest.read(good.with_name("manifest.json"))
    assert {f.name for f in manifest.files} == {good.name, good.name.replace("-py3-none-any.whl", ".tar.gz")}
    return Artifacts(good=good, **{name: release_wheel(tmp_path_factory, name) for name in VARIANTS})


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres) -> Iterator[Path]:
    """dev (SQLite), stage and prod (PostgreSQL) under one root, each with its own webserver on 127.0.0.1."""
    root = tmp_path_factory.mktemp("environments")
    envs = [EnvironmentRoot(root, name) for name in ("dev", "stage", "prod")]
    for env in envs:
        env.init(
            webserver_port=free_port(),
            code_server_port=free_port(),
            postgres_url=None if env.name == "dev" else postgres.url(f"dataops_{env.name}"),
            postgres_password_env=None if env.name == "dev" else PASSWORD_VAR,
            # stage's gate is the full year by default; one full month keeps the test within minutes
            gate_partitions=("2013-01",) if env.name != "prod" else None,
            gate_timeout_s=300,
        )
    pids: list[int] = []
    with pytest.MonkeyPatch.context() as patch:  # the caller's environment, inherited by every service it starts
        patch.setenv(PASSWORD_VAR, postgres.password)
        try:
            for env in envs:
                pids.append(start_webserver(env))
            yield root
        finally:
            for env in envs:
                stop_services(env)
            for pid in pids:
                stop(pid)


def _assert_secret_kept(root: Path, password: str) -> None:
    """No file under the environments root holds the password, as is or URL-quoted; configuration is 0600."""
    forms = {password, quote(password), quote(password, safe="")}
    files = [path for path in root.rglob("*") if path.is_file() and not path.is_symlink()]
    leaks = [str(path) for path in files if _holds_any(path.read_bytes(), forms)]
    assert leaks == [], f"the password is written in {leaks}"
    for name in ("dev", "stage", "prod"):
        config_files = [path for pattern in CONFIG_FILES for path in (root / name).glob(pattern)]
        assert len(config_files) >= len(CONFIG_FILES), config_files  # at least one release each
        assert {str(path): oct(path.stat().st_mode & 0o777) for path in config_files} == dict.fromkeys(
            map(str, config_files), "0o600"
        )


def _holds_any(data: bytes, forms: set[str]) -> bool:
    return any(form.encode() in data for form in forms)


def _served_release(root: Path, env_name: str) -> str:
    """The release behind the webserver's location: it reloads without error, and the code server at the
    workspace's port runs the release's interpreter (``releases/<version>/venv/bin/python``)."""
    config = EnvironmentRoot(root, env_name).config()
    Webserver(config.webserver_port).reload(config.location_name)
    served = served_python(config.code_server_port)
    assert served is not None
    return Path(served).parents[2].name


def test_artifact_manifest_rejects_corruption(artifacts: Artifacts, tmp_path: Path) -> None:
    verified = verify_artifact(artifacts.good)
    assert verified.version == Manifest.read(artifacts.good.with_name("manifest.json")).version
    corrupted = tmp_path / artifacts.good.name
    data = bytearray(artifacts.good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="corrupted"):
        verify_artifact(corrupted, artifacts.good.with_name("manifest.json"))
    with pytest.raises(ArtifactError, match="not listed"):
        verify_artifact(artifacts.good2, artifacts.good.with_name("manifest.json"))


def test_promotion_path_end_to_end(
    artifacts: Artifacts, environments: Path, postgres: Postgres, tmp_path: Path
) -> None:
    root = environments
    dev, stage, prod = (EnvironmentRoot(root, name) for name in ("dev", "stage", "prod"))
    good = verify_artifact(artifacts.good)
    log: list[str] = []
    timings: dict[str, float] = {}

    def timed(name: str, action: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return action()
        finally:
            timings[name] = round(time.monotonic() - started, 1)

    # Bad input that changes nothing.
    with pytest.raises(UnknownEnvironmentError, match="qa"):
        operations.deploy(root, "qa", artifacts.good, log=log.append)
    corrupted = tmp_path / artifacts.good.name
    corrupted.write_bytes(artifacts.good.read_bytes()[:-10])
    with pytest.raises(DeployError, match="corrupted"):
        operations.deploy(root, "dev", corrupted, artifacts.good.with_name("manifest.json"), log=log.append)
    with dev.lock("test holds it"), pytest.raises(DeployLockedError, match="in progress"):
        operations.deploy(root, "dev", artifacts.good, log=log.append)
    unreachable = EnvironmentRoot(tmp_path / "elsewhere", "dev")
    unreachable.init(webserver_port=free_port(), code_server_port=free_port())
    with pytest.raises(DeployError, match="not reachable"):
        operations.deploy(unreachable.root, "dev", artifacts.good, log=log.append)
    assert dev.current() is None

    # dev: the smoke gate on one sampled partition, through GraphQL.
    report = timed("deploy dev", lambda: operations.deploy(root, "dev", artifacts.good, log=log.append))
    assert report["status"] == "succeeded" and report["gate"]["passed"], report
    reference, month = report["gate"]["runs"]  # the reference tables' job, then the month
    assert reference["job"] == "reference_tables" and reference["status"] == "SUCCESS", reference
    assert month["partition"] == "2013-01" and month["status"] == "SUCCESS" and month["checks_total"] > 0, month
    assert "staging/flights/quarantine_share" in report["gate"]["details"]["blocking_checks"]
    assert _served_release(root, "dev") == good.version
    timed("deploy dev v2", lambda: operations.deploy(root, "dev", artifacts.good2, log=log.append))
    assert _served_release(root, "dev") == "0.0.2.dev1+e2e"

    # A gate that fails: rolled back to the previous release, which the webserver serves again.
    with pytest.raises(DeployFailedError, match="deliberately_broken") as failed:
        timed("failed gate + rollback", lambda: operations.deploy(root, "dev", artifacts.broken_gate, log=log.append))
    assert "rolled back to 0.0.2.dev1+e2e" in str(failed.value)
    assert dev.current() is not None and dev.current().version == "0.0.2.dev1+e2e"  # type: ignore[union-attr]
    assert _served_release(root, "dev") == "0.0.2.dev1+e2e"
    last = dev.audit_records()[-1]
    assert last["status"] == "rolled_back" and any("deliberately_broken" in f for f in last["failures"])

    # A location that fails to load: rolled back as well.
    with pytest.raises(DeployFailedError, match="deliberately broken definitions"):
        timed("failed load + rollback", lambda: operations.deploy(root, "dev", artifacts.broken_import, log=log.append))
    assert _served_release(root, "dev") == "0.0.2.dev1+e2e"

    # A gate run that does not finish in time: terminated through GraphQL, then rolled back.
    with pytest.raises(DeployFailedError, match="dev-smoke ran out of its 1s at reference_tables") as timed_out:
        timed(
            "gate timeout + rollback",
            lambda: operations.deploy(root, "dev", artifacts.slow, log=log.append, gate_timeout_s=1),
        )
    assert "rolled back to 0.0.2.dev1+e2e" in str(timed_out.value)
    gate_run = re.search(r"run (\S+) was still \w+ at its deadline; canceled", str(timed_out.value))
    assert gate_run is not None, str(timed_out.value)
    assert Webserver(dev.config().webserver_port).run_status(gate_run.group(1)) == "CANCELED"
    assert _served_release(root, "dev") == "0.0.2.dev1+e2e"
    last = dev.audit_records()[-1]
    assert last["status"] == "rolled_back" and "ran out of its 1s" in last["reason"], last

    # `dataops rollback`: back to the first good release.
    timed("rollback dev", lambda: operations.rollback(root, "dev", log=log.append))
    assert dev.current().version == good.version  # type: ignore[union-attr]
    assert _served_release(root, "dev") == good.version

    # stage: the same artifact, promoted; its blocking checks include the marts' reconciliation with core.
    report = timed("promote dev→stage", lambda: operations.promote(root, "dev", "stage", log=log.append))
    assert report["sha256"] == good.sha256 and report["gate"]["passed"], report
    reconciliation = {"marts/carrier_monthly/reconciles_with_core", "marts/route_monthly/reconciles_with_core"}
    assert reconciliation <= set(report["gate"]["details"]["blocking_checks"])
    assert _served_release(root, "stage") == good.version

    # prod: refuses an artifact that never passed stage, accepts the one that did.
    with pytest.raises(DeployError, match="no passed stage gate"):
        operations.deploy(root, "prod", artifacts.good2, log=log.append)
    assert prod.current() is None
    report = timed("promote stage→prod", lambda: operations.promote(root, "stage", "prod", log=log.append))
    assert report["gate"]["gate"] == "prod-post-release" and report["gate"]["passed"], report
    assert report["gate"]["runs"] == []  # read-only: nothing launched in prod
    published = ["core/flights", "marts/carrier_monthly", "marts/route_monthly"]
    assert report["gate"]["details"]["published"] == published, report["gate"]
    assert _served_release(root, "prod") == good.version
    # Each live release recorded its definitions state, written by its own interpreter, for previews to compare with.
    for live in (dev, stage, prod):
        release = live.current()
        assert release is not None
        state = json.loads((release.path / STATE_FILE).read_text())
        assert state["environment"] == live.name and {"raw/flights", "publish/months"} <= set(state["assets"]), state

    rows = {row["env"]: row for row in operations.status(root)}
    assert {name: rows[name]["version"] for name in rows} == dict.fromkeys(("dev", "stage", "prod"), good.version)
    assert all(row["gate_passed"] and row["code_server"] == "up" for row in rows.values()), rows
    print("\n" + operations.format_status(list(rows.values())))
    print("timings (s):", timings)
    assert stage.audit_records()[-1]["status"] == "succeeded"
    _assert_secret_kept(root, postgres.password)  # after init, deploys, a rollback and both promotions
